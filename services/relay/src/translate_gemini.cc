// OpenAI chat ⇄ Gemini generateContent (requests, responses, streams). Anthropic ⇄ Gemini is
// composed through the OpenAI form in translate.cc. Golden files: test/golden/*gemini*.
#include "translate_gemini.h"

#include <boost/json.hpp>

#include <map>

namespace atrium::relay {
namespace json = boost::json;
namespace {

std::string Str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t Int(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_number()) return 0;
  return v->to_number<int64_t>();
}

Result<json::object> ParseObject(std::string_view body, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return InvalidArgument(std::string(what) + " must be a JSON object");
  return std::move(v.as_object());
}

std::string FinishGeminiToOpenAI(std::string_view f) {
  if (f == "MAX_TOKENS") return "length";
  if (f == "SAFETY" || f == "RECITATION" || f == "PROHIBITED_CONTENT") return "content_filter";
  return "stop";
}

std::string FinishOpenAIToGemini(std::string_view f) {
  if (f == "length") return "MAX_TOKENS";
  if (f == "content_filter") return "SAFETY";
  return "STOP";
}

json::value ParseArgs(std::string_view args) {
  boost::system::error_code ec;
  json::value v = json::parse(args.empty() ? "{}" : args, ec);
  return ec || !v.is_object() ? json::value(json::object()) : v;
}

// OpenAI message content -> Gemini parts.
json::array PartsOf(const json::value& content) {
  json::array parts;
  if (content.is_string()) {
    if (!content.as_string().empty()) parts.push_back(json::object{{"text", content.as_string()}});
  } else if (content.is_array()) {
    for (const auto& pv : content.as_array()) {
      if (!pv.is_object()) continue;
      const auto& p = pv.as_object();
      std::string type = Str(p, "type");
      if (type == "text") {
        parts.push_back(json::object{{"text", Str(p, "text")}});
      } else if (type == "image_url") {
        const auto* iu = p.if_contains("image_url");
        std::string url = iu != nullptr && iu->is_object() ? Str(iu->as_object(), "url") : "";
        size_t semi = url.find(";base64,");
        if (url.starts_with("data:") && semi != std::string::npos) {
          parts.push_back(
              json::object{{"inlineData", json::object{{"mimeType", url.substr(5, semi - 5)},
                                                       {"data", url.substr(semi + 8)}}}});
        } else {
          parts.push_back(json::object{{"fileData", json::object{{"fileUri", url}}}});
        }
      }
    }
  }
  return parts;
}

json::object UsageToOpenAI(const json::object& um) {
  int64_t prompt = Int(um, "promptTokenCount");
  int64_t completion = Int(um, "candidatesTokenCount") + Int(um, "thoughtsTokenCount");
  json::object u{{"prompt_tokens", prompt},
                 {"completion_tokens", completion},
                 {"total_tokens", prompt + completion}};
  if (int64_t cached = Int(um, "cachedContentTokenCount"); cached > 0) {
    u["prompt_tokens_details"] = json::object{{"cached_tokens", cached}};
  }
  return u;
}

json::object UsageToGemini(const json::object& u) {
  int64_t prompt = Int(u, "prompt_tokens"), completion = Int(u, "completion_tokens");
  json::object um{{"promptTokenCount", prompt},
                  {"candidatesTokenCount", completion},
                  {"totalTokenCount", prompt + completion}};
  if (const auto* d = u.if_contains("prompt_tokens_details"); d != nullptr && d->is_object()) {
    if (int64_t cached = Int(d->as_object(), "cached_tokens"); cached > 0) {
      um["cachedContentTokenCount"] = cached;
    }
  }
  return um;
}

// OpenAI-style choice content from one Gemini candidate.
void CandidateToOpenAI(const json::object& cand, std::string& text, json::array& tool_calls,
                       int& next_call) {
  const auto* content = cand.if_contains("content");
  if (content == nullptr || !content->is_object()) return;
  const auto* parts = content->as_object().if_contains("parts");
  if (parts == nullptr || !parts->is_array()) return;
  for (const auto& pv : parts->as_array()) {
    if (!pv.is_object()) continue;
    const auto& p = pv.as_object();
    if (p.contains("text") &&
        !(p.contains("thought") && p.at("thought").is_bool() && p.at("thought").as_bool())) {
      text += Str(p, "text");
    }
    if (const auto* fc = p.if_contains("functionCall"); fc != nullptr && fc->is_object()) {
      const auto& f = fc->as_object();
      const auto* args = f.if_contains("args");
      std::string id = Str(f, "id");
      if (id.empty()) id = "call_" + std::to_string(next_call);
      ++next_call;
      tool_calls.push_back(json::object{
          {"id", id},
          {"type", "function"},
          {"function",
           json::object{{"name", Str(f, "name")},
                        {"arguments", args != nullptr ? json::serialize(*args) : "{}"}}}});
    }
  }
}

}  // namespace

Result<std::string> OpenAIToGeminiRequest(std::string_view body) {
  auto parsed = ParseObject(body, "the request body");
  if (!parsed.ok()) return parsed.status();
  const json::object& in = *parsed;
  const auto* msgs = in.if_contains("messages");
  if (msgs == nullptr || !msgs->is_array()) return InvalidArgument("messages must be a list");
  json::object out;
  json::array contents;
  std::string system;
  std::map<std::string, std::string> call_names;  // tool_call_id -> function name
  auto append = [&contents](std::string_view role, json::array parts) {
    if (parts.empty()) return;
    if (!contents.empty() && contents.back().as_object().at("role").as_string() == role) {
      auto& existing = contents.back().as_object()["parts"].as_array();
      for (auto& p : parts) existing.push_back(std::move(p));
      return;
    }
    contents.push_back(json::object{{"role", role}, {"parts", std::move(parts)}});
  };
  for (const auto& mv : msgs->as_array()) {
    if (!mv.is_object()) return InvalidArgument("messages[] must be objects");
    const auto& m = mv.as_object();
    std::string role = Str(m, "role");
    json::value content = m.contains("content") ? m.at("content") : json::value();
    if (role == "system" || role == "developer") {
      json::array parts = PartsOf(content);
      for (const auto& p : parts) {
        if (!system.empty()) system += "\n\n";
        system += Str(p.as_object(), "text");
      }
    } else if (role == "user") {
      append("user", PartsOf(content));
    } else if (role == "assistant") {
      json::array parts = PartsOf(content);
      if (const auto* tc = m.if_contains("tool_calls"); tc != nullptr && tc->is_array()) {
        for (const auto& cv : tc->as_array()) {
          if (!cv.is_object()) continue;
          const auto* fn = cv.as_object().if_contains("function");
          if (fn == nullptr || !fn->is_object()) continue;
          std::string name = Str(fn->as_object(), "name");
          call_names[Str(cv.as_object(), "id")] = name;
          parts.push_back(
              json::object{{"functionCall",
                            json::object{{"name", name},
                                         {"args", ParseArgs(Str(fn->as_object(), "arguments"))}}}});
        }
      }
      append("model", std::move(parts));
    } else if (role == "tool") {
      std::string id = Str(m, "tool_call_id");
      std::string text;
      for (const auto& p : PartsOf(content)) text += Str(p.as_object(), "text");
      auto it = call_names.find(id);
      append(
          "user",
          json::array{json::object{
              {"functionResponse", json::object{{"name", it == call_names.end() ? id : it->second},
                                                {"response", json::object{{"content", text}}}}}}});
    } else {
      return InvalidArgument("messages[].role: unsupported role '" + role + "'");
    }
  }
  out["contents"] = std::move(contents);
  if (!system.empty()) {
    out["systemInstruction"] = json::object{{"parts", json::array{json::object{{"text", system}}}}};
  }
  json::object gen;
  int64_t max_tokens = Int(in, "max_completion_tokens");
  if (max_tokens == 0) max_tokens = Int(in, "max_tokens");
  if (max_tokens > 0) gen["maxOutputTokens"] = max_tokens;
  if (const auto* t = in.if_contains("temperature"); t != nullptr && t->is_number()) {
    gen["temperature"] = *t;
  }
  if (const auto* t = in.if_contains("top_p"); t != nullptr && t->is_number()) gen["topP"] = *t;
  if (const auto* stop = in.if_contains("stop"); stop != nullptr && !stop->is_null()) {
    gen["stopSequences"] = stop->is_string() ? json::value(json::array{stop->as_string()}) : *stop;
  }
  if (!gen.empty()) out["generationConfig"] = std::move(gen);
  if (const auto* tools = in.if_contains("tools"); tools != nullptr && tools->is_array()) {
    json::array decls;
    for (const auto& t : tools->as_array()) {
      if (!t.is_object()) continue;
      const auto* fn = t.as_object().if_contains("function");
      if (fn == nullptr || !fn->is_object()) continue;
      const auto& f = fn->as_object();
      json::object d{{"name", Str(f, "name")}};
      if (std::string desc = Str(f, "description"); !desc.empty()) d["description"] = desc;
      if (const auto* params = f.if_contains("parameters")) d["parameters"] = *params;
      decls.push_back(std::move(d));
    }
    out["tools"] = json::array{json::object{{"functionDeclarations", std::move(decls)}}};
  }
  if (const auto* tc = in.if_contains("tool_choice"); tc != nullptr && !tc->is_null()) {
    json::object cfg{{"mode", "AUTO"}};
    if (tc->is_string() && tc->as_string() == "required") cfg["mode"] = "ANY";
    if (tc->is_string() && tc->as_string() == "none") cfg["mode"] = "NONE";
    if (tc->is_object()) {
      const auto* fn = tc->as_object().if_contains("function");
      if (fn != nullptr && fn->is_object()) {
        cfg["mode"] = "ANY";
        cfg["allowedFunctionNames"] = json::array{json::string(Str(fn->as_object(), "name"))};
      }
    }
    out["toolConfig"] = json::object{{"functionCallingConfig", std::move(cfg)}};
  }
  return json::serialize(out);
}

Result<std::string> GeminiToOpenAIRequest(std::string_view body, std::string_view model) {
  auto parsed = ParseObject(body, "the request body");
  if (!parsed.ok()) return parsed.status();
  const json::object& in = *parsed;
  json::object out{{"model", model}};
  json::array messages;
  if (const auto* si = in.if_contains("systemInstruction"); si != nullptr && si->is_object()) {
    std::string text;
    if (const auto* parts = si->as_object().if_contains("parts"); parts && parts->is_array()) {
      for (const auto& p : parts->as_array()) {
        if (p.is_object()) text += Str(p.as_object(), "text");
      }
    }
    if (!text.empty()) messages.push_back(json::object{{"role", "system"}, {"content", text}});
  }
  const auto* contents = in.if_contains("contents");
  if (contents == nullptr || !contents->is_array()) {
    return InvalidArgument("contents must be a list");
  }
  int call = 0;
  std::map<std::string, std::vector<std::string>> pending_ids;  // function name -> call ids
  for (const auto& cv : contents->as_array()) {
    if (!cv.is_object()) continue;
    const auto& c = cv.as_object();
    std::string role = Str(c, "role") == "model" ? "assistant" : "user";
    const auto* parts = c.if_contains("parts");
    if (parts == nullptr || !parts->is_array()) continue;
    json::array content;
    json::array tool_calls;
    bool only_text = true;
    for (const auto& pv : parts->as_array()) {
      if (!pv.is_object()) continue;
      const auto& p = pv.as_object();
      if (p.contains("text")) {
        content.push_back(json::object{{"type", "text"}, {"text", Str(p, "text")}});
      } else if (const auto* d = p.if_contains("inlineData"); d != nullptr && d->is_object()) {
        only_text = false;
        content.push_back(json::object{
            {"type", "image_url"},
            {"image_url", json::object{{"url", "data:" + Str(d->as_object(), "mimeType") +
                                                   ";base64," + Str(d->as_object(), "data")}}}});
      } else if (const auto* fc = p.if_contains("functionCall"); fc && fc->is_object()) {
        std::string name = Str(fc->as_object(), "name");
        std::string id = "call_" + std::to_string(call++);
        pending_ids[name].push_back(id);
        const auto* args = fc->as_object().if_contains("args");
        tool_calls.push_back(json::object{
            {"id", id},
            {"type", "function"},
            {"function",
             json::object{{"name", name}, {"arguments", args ? json::serialize(*args) : "{}"}}}});
      } else if (const auto* fr = p.if_contains("functionResponse"); fr && fr->is_object()) {
        std::string name = Str(fr->as_object(), "name");
        std::string id = name;
        if (auto it = pending_ids.find(name); it != pending_ids.end() && !it->second.empty()) {
          id = it->second.front();
          it->second.erase(it->second.begin());
        }
        const auto* resp = fr->as_object().if_contains("response");
        messages.push_back(json::object{{"role", "tool"},
                                        {"tool_call_id", id},
                                        {"content", resp ? json::serialize(*resp) : "{}"}});
      }
    }
    if (content.empty() && tool_calls.empty()) continue;
    json::object msg{{"role", role}};
    if (only_text) {
      std::string text;
      for (const auto& p : content) text += Str(p.as_object(), "text");
      msg["content"] = content.empty() ? json::value(nullptr) : json::value(text);
    } else {
      msg["content"] = std::move(content);
    }
    if (!tool_calls.empty()) msg["tool_calls"] = std::move(tool_calls);
    messages.push_back(std::move(msg));
  }
  out["messages"] = std::move(messages);
  if (const auto* g = in.if_contains("generationConfig"); g != nullptr && g->is_object()) {
    const auto& gen = g->as_object();
    if (int64_t mt = Int(gen, "maxOutputTokens"); mt > 0) out["max_tokens"] = mt;
    if (const auto* t = gen.if_contains("temperature")) out["temperature"] = *t;
    if (const auto* t = gen.if_contains("topP")) out["top_p"] = *t;
    if (const auto* s = gen.if_contains("stopSequences")) out["stop"] = *s;
  }
  if (const auto* tools = in.if_contains("tools"); tools != nullptr && tools->is_array()) {
    json::array otools;
    for (const auto& t : tools->as_array()) {
      if (!t.is_object()) continue;
      const auto* decls = t.as_object().if_contains("functionDeclarations");
      if (decls == nullptr || !decls->is_array()) continue;
      for (const auto& d : decls->as_array()) {
        if (!d.is_object()) continue;
        json::object fn{{"name", Str(d.as_object(), "name")}};
        if (std::string desc = Str(d.as_object(), "description"); !desc.empty()) {
          fn["description"] = desc;
        }
        if (const auto* p = d.as_object().if_contains("parameters")) fn["parameters"] = *p;
        otools.push_back(json::object{{"type", "function"}, {"function", std::move(fn)}});
      }
    }
    if (!otools.empty()) out["tools"] = std::move(otools);
  }
  // The relay marks streaming requests (the method is in the Gemini path) with "stream".
  if (const auto* s = in.if_contains("stream"); s != nullptr && s->is_bool() && s->as_bool()) {
    out["stream"] = true;
    out["stream_options"] = json::object{{"include_usage", true}};
  }
  return json::serialize(out);
}

Result<std::string> GeminiToOpenAIResponse(std::string_view body, std::string_view model) {
  auto parsed = ParseObject(body, "the upstream response");
  if (!parsed.ok()) return parsed.status();
  const json::object& in = *parsed;
  std::string text, finish;
  json::array tool_calls;
  int next_call = 0;
  if (const auto* cands = in.if_contains("candidates"); cands != nullptr && cands->is_array() &&
                                                        !cands->as_array().empty() &&
                                                        cands->as_array()[0].is_object()) {
    const auto& cand = cands->as_array()[0].as_object();
    CandidateToOpenAI(cand, text, tool_calls, next_call);
    finish = Str(cand, "finishReason");
  }
  json::object message{{"role", "assistant"}};
  message["content"] =
      text.empty() && !tool_calls.empty() ? json::value(nullptr) : json::value(text);
  if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);
  std::string reason = next_call > 0 ? "tool_calls" : FinishGeminiToOpenAI(finish);
  json::object out{{"id", "chatcmpl-" + Str(in, "responseId")},
                   {"object", "chat.completion"},
                   {"created", 0},
                   {"model", model},
                   {"choices", json::array{json::object{{"index", 0},
                                                        {"message", std::move(message)},
                                                        {"logprobs", nullptr},
                                                        {"finish_reason", reason}}}}};
  if (const auto* um = in.if_contains("usageMetadata"); um != nullptr && um->is_object()) {
    out["usage"] = UsageToOpenAI(um->as_object());
  }
  return json::serialize(out);
}

Result<std::string> OpenAIToGeminiResponse(std::string_view body, std::string_view model) {
  auto parsed = ParseObject(body, "the upstream response");
  if (!parsed.ok()) return parsed.status();
  const json::object& in = *parsed;
  json::array parts;
  std::string finish = "stop";
  if (const auto* ch = in.if_contains("choices");
      ch != nullptr && ch->is_array() && !ch->as_array().empty() && ch->as_array()[0].is_object()) {
    const auto& c = ch->as_array()[0].as_object();
    finish = Str(c, "finish_reason");
    if (const auto* m = c.if_contains("message"); m != nullptr && m->is_object()) {
      if (const auto* t = m->as_object().if_contains("content");
          t != nullptr && t->is_string() && !t->as_string().empty()) {
        parts.push_back(json::object{{"text", t->as_string()}});
      }
      if (const auto* tc = m->as_object().if_contains("tool_calls"); tc && tc->is_array()) {
        for (const auto& cv : tc->as_array()) {
          if (!cv.is_object()) continue;
          const auto* fn = cv.as_object().if_contains("function");
          if (fn == nullptr || !fn->is_object()) continue;
          parts.push_back(
              json::object{{"functionCall",
                            json::object{{"name", Str(fn->as_object(), "name")},
                                         {"args", ParseArgs(Str(fn->as_object(), "arguments"))}}}});
        }
      }
    }
  }
  json::object out{
      {"candidates",
       json::array{json::object{{"content", json::object{{"role", "model"}, {"parts", parts}}},
                                {"finishReason", FinishOpenAIToGemini(finish)},
                                {"index", 0}}}},
      {"modelVersion", model}};
  if (const auto* u = in.if_contains("usage"); u != nullptr && u->is_object()) {
    out["usageMetadata"] = UsageToGemini(u->as_object());
  }
  return json::serialize(out);
}

namespace {

// Gemini SSE chunks -> OpenAI chunks.
class GeminiToOpenAIStream : public StreamTranslator {
 public:
  explicit GeminiToOpenAIStream(StreamTranslatorOptions o) : o_(std::move(o)) {}
  std::string OnEvent(const ParsedSseEvent& ev) override {
    boost::system::error_code ec;
    json::value v = json::parse(ev.data, ec);
    if (ec || !v.is_object()) return "";
    const auto& d = v.as_object();
    std::string out;
    if (!started_) {
      started_ = true;
      out += Chunk(json::object{{"role", "assistant"}, {"content", ""}}, nullptr);
    }
    if (const auto* um = d.if_contains("usageMetadata"); um != nullptr && um->is_object()) {
      usage_ = UsageToOpenAI(um->as_object());
    }
    const auto* cands = d.if_contains("candidates");
    if (cands == nullptr || !cands->is_array() || cands->as_array().empty() ||
        !cands->as_array()[0].is_object()) {
      return out;
    }
    const auto& cand = cands->as_array()[0].as_object();
    std::string text;
    json::array calls;
    int before = next_call_;
    CandidateToOpenAI(cand, text, calls, next_call_);
    if (!text.empty()) out += Chunk(json::object{{"content", text}}, nullptr);
    for (size_t i = 0; i < calls.size(); ++i) {
      auto call = calls[i].as_object();
      call["index"] = before + static_cast<int>(i);
      out += Chunk(json::object{{"tool_calls", json::array{call}}}, nullptr);
    }
    if (std::string f = Str(cand, "finishReason"); !f.empty()) {
      out += Chunk(json::object{},
                   json::value(next_call_ > 0 ? "tool_calls" : FinishGeminiToOpenAI(f)));
    }
    return out;
  }
  std::string Finish() override {
    if (finished_) return "";
    finished_ = true;
    std::string out;
    if (o_.include_usage && !usage_.empty()) {
      json::object chunk = Base();
      chunk["choices"] = json::array();
      chunk["usage"] = usage_;
      out += "data: " + json::serialize(chunk) + "\n\n";
    }
    return out + "data: [DONE]\n\n";
  }

 private:
  json::object Base() const {
    return json::object{{"id", "chatcmpl-" + o_.id_seed},
                        {"object", "chat.completion.chunk"},
                        {"created", 0},
                        {"model", o_.client_model}};
  }
  std::string Chunk(json::object delta, json::value finish) {
    json::object chunk = Base();
    chunk["choices"] = json::array{json::object{{"index", 0},
                                                {"delta", std::move(delta)},
                                                {"logprobs", nullptr},
                                                {"finish_reason", std::move(finish)}}};
    if (o_.include_usage) chunk["usage"] = nullptr;
    return "data: " + json::serialize(chunk) + "\n\n";
  }
  StreamTranslatorOptions o_;
  bool started_ = false, finished_ = false;
  int next_call_ = 0;
  json::object usage_;
};

// OpenAI chunks -> Gemini chunks (SSE `data:` lines, or the JSON-array form).
class OpenAIToGeminiStream : public StreamTranslator {
 public:
  explicit OpenAIToGeminiStream(StreamTranslatorOptions o) : o_(std::move(o)) {}
  std::string OnEvent(const ParsedSseEvent& ev) override {
    if (ev.data == "[DONE]") return Finish();
    boost::system::error_code ec;
    json::value v = json::parse(ev.data, ec);
    if (ec || !v.is_object()) return "";
    const auto& d = v.as_object();
    if (const auto* u = d.if_contains("usage"); u != nullptr && u->is_object()) {
      usage_ = UsageToGemini(u->as_object());
    }
    const auto* ch = d.if_contains("choices");
    if (ch == nullptr || !ch->is_array() || ch->as_array().empty() ||
        !ch->as_array()[0].is_object()) {
      return "";
    }
    const auto& c = ch->as_array()[0].as_object();
    std::string out;
    if (const auto* dv = c.if_contains("delta"); dv != nullptr && dv->is_object()) {
      const auto& delta = dv->as_object();
      if (const auto* t = delta.if_contains("content");
          t != nullptr && t->is_string() && !t->as_string().empty()) {
        out += Emit(json::array{json::object{{"text", t->as_string()}}}, "");
      }
      if (const auto* tc = delta.if_contains("tool_calls"); tc != nullptr && tc->is_array()) {
        for (const auto& cv : tc->as_array()) {
          if (!cv.is_object()) continue;
          auto& call = calls_[Int(cv.as_object(), "index")];
          const auto* fn = cv.as_object().if_contains("function");
          if (fn != nullptr && fn->is_object()) {
            if (std::string n = Str(fn->as_object(), "name"); !n.empty()) call.first = n;
            call.second += Str(fn->as_object(), "arguments");
          }
        }
      }
    }
    if (std::string f = Str(c, "finish_reason"); !f.empty()) finish_ = FinishOpenAIToGemini(f);
    return out;
  }
  std::string Finish() override {
    if (finished_) return "";
    finished_ = true;
    json::array parts;
    for (const auto& [index, call] : calls_) {
      parts.push_back(json::object{
          {"functionCall", json::object{{"name", call.first}, {"args", ParseArgs(call.second)}}}});
    }
    std::string out = Emit(std::move(parts), finish_.empty() ? "STOP" : finish_);
    if (o_.gemini_json_array) out += "]";
    return out;
  }

 private:
  std::string Emit(json::array parts, const std::string& finish) {
    json::object cand{{"content", json::object{{"role", "model"}, {"parts", std::move(parts)}}},
                      {"index", 0}};
    if (!finish.empty()) cand["finishReason"] = finish;
    json::object chunk{{"candidates", json::array{std::move(cand)}},
                       {"modelVersion", o_.client_model}};
    if (!finish.empty() && !usage_.empty()) chunk["usageMetadata"] = usage_;
    std::string text = json::serialize(chunk);
    if (o_.gemini_json_array) {
      std::string prefix = first_ ? "[" : ",\r\n";
      first_ = false;
      return prefix + text;
    }
    return "data: " + text + "\r\n\r\n";
  }
  StreamTranslatorOptions o_;
  bool finished_ = false, first_ = true;
  std::string finish_;
  json::object usage_;
  std::map<int64_t, std::pair<std::string, std::string>> calls_;  // index -> (name, args)
};

}  // namespace

std::unique_ptr<StreamTranslator> MakeGeminiToOpenAIStream(StreamTranslatorOptions o) {
  return std::make_unique<GeminiToOpenAIStream>(std::move(o));
}
std::unique_ptr<StreamTranslator> MakeOpenAIToGeminiStream(StreamTranslatorOptions o) {
  return std::make_unique<OpenAIToGeminiStream>(std::move(o));
}

}  // namespace atrium::relay
