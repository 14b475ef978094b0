#include "atrium/relay/translate.h"

#include "translate_gemini.h"

#include <boost/json.hpp>

#include <map>
#include <vector>

namespace atrium::relay {
namespace json = boost::json;
namespace {

std::string Str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t Int(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  if (v->is_double()) return static_cast<int64_t>(v->as_double());
  return 0;
}

Result<json::object> ParseObject(std::string_view body, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return InvalidArgument(std::string(what) + " must be a JSON object");
  return std::move(v.as_object());
}

// "data:image/png;base64,AAAA" -> (media type, data); false for other URLs.
bool SplitDataUrl(std::string_view url, std::string& media_type, std::string& data) {
  if (!url.starts_with("data:")) return false;
  size_t semi = url.find(";base64,");
  if (semi == std::string_view::npos) return false;
  media_type = std::string(url.substr(5, semi - 5));
  data = std::string(url.substr(semi + 8));
  return true;
}

// Text of OpenAI content (a string or parts).
std::string OpenAIText(const json::value& content) {
  if (content.is_string()) return std::string(content.as_string());
  std::string out;
  if (content.is_array()) {
    for (const auto& part : content.as_array()) {
      if (part.is_object() && Str(part.as_object(), "type") == "text") {
        if (!out.empty()) out += "\n";
        out += Str(part.as_object(), "text");
      }
    }
  }
  return out;
}

// OpenAI content -> Anthropic content blocks.
Result<json::array> OpenAIContentToBlocks(const json::value& content, std::string_view field) {
  json::array blocks;
  if (content.is_string()) {
    blocks.push_back(json::object{{"type", "text"}, {"text", content.as_string()}});
    return blocks;
  }
  if (content.is_null()) return blocks;
  if (!content.is_array())
    return InvalidArgument(std::string(field) + " must be a string or a list");
  for (const auto& part_v : content.as_array()) {
    if (!part_v.is_object()) return InvalidArgument(std::string(field) + " parts must be objects");
    const auto& part = part_v.as_object();
    std::string type = Str(part, "type");
    if (type == "text") {
      blocks.push_back(json::object{{"type", "text"}, {"text", Str(part, "text")}});
    } else if (type == "image_url") {
      const auto* iu = part.if_contains("image_url");
      std::string url = iu && iu->is_object()
                            ? Str(iu->as_object(), "url")
                            : (iu && iu->is_string() ? std::string(iu->as_string()) : "");
      std::string media, data;
      if (SplitDataUrl(url, media, data)) {
        blocks.push_back(json::object{
            {"type", "image"},
            {"source", json::object{{"type", "base64"}, {"media_type", media}, {"data", data}}}});
      } else {
        blocks.push_back(json::object{{"type", "image"},
                                      {"source", json::object{{"type", "url"}, {"url", url}}}});
      }
    } else {
      return InvalidArgument(std::string(field) + ": unsupported content part type '" + type + "'");
    }
  }
  return blocks;
}

std::string StopOpenAIToAnthropic(std::string_view r) {
  if (r == "length") return "max_tokens";
  if (r == "tool_calls" || r == "function_call") return "tool_use";
  if (r == "content_filter") return "refusal";
  return "end_turn";
}

std::string StopAnthropicToOpenAI(std::string_view r) {
  if (r == "max_tokens") return "length";
  if (r == "tool_use") return "tool_calls";
  if (r == "refusal") return "content_filter";
  return "stop";
}

// ---- OpenAI chat request -> Anthropic messages request ----
Result<std::string> OpenAIToAnthropicRequest(std::string_view body, std::string_view model) {
  auto parsed = ParseObject(body, "the request body");
  if (!parsed.ok()) return parsed.status();
  const json::object& in = *parsed;
  json::object out;
  out["model"] = model;
  const auto* msgs = in.if_contains("messages");
  if (msgs == nullptr || !msgs->is_array()) return InvalidArgument("messages must be a list");
  std::string system;
  json::array messages;
  auto append = [&messages](std::string_view role, json::array blocks) {
    if (!messages.empty() && messages.back().as_object().at("role").as_string() == role) {
      auto& content = messages.back().as_object()["content"].as_array();
      for (auto& b : blocks) content.push_back(std::move(b));
      return;
    }
    messages.push_back(json::object{{"role", role}, {"content", std::move(blocks)}});
  };
  size_t i = 0;
  for (const auto& mv : msgs->as_array()) {
    std::string field = "messages[" + std::to_string(i++) + "]";
    if (!mv.is_object()) return InvalidArgument(field + " must be an object");
    const auto& m = mv.as_object();
    std::string role = Str(m, "role");
    const json::value* content = m.if_contains("content");
    json::value null_content;
    if (content == nullptr) content = &null_content;
    if (role == "system" || role == "developer") {
      if (!system.empty()) system += "\n\n";
      system += OpenAIText(*content);
    } else if (role == "user") {
      auto blocks = OpenAIContentToBlocks(*content, field + ".content");
      if (!blocks.ok()) return blocks.status();
      append("user", std::move(*blocks));
    } else if (role == "assistant") {
      auto blocks = OpenAIContentToBlocks(*content, field + ".content");
      if (!blocks.ok()) return blocks.status();
      if (const auto* tc = m.if_contains("tool_calls"); tc != nullptr && tc->is_array()) {
        for (const auto& call_v : tc->as_array()) {
          if (!call_v.is_object()) continue;
          const auto& call = call_v.as_object();
          const auto* fn = call.if_contains("function");
          if (fn == nullptr || !fn->is_object()) {
            return InvalidArgument(field + ".tool_calls[].function is required");
          }
          std::string args = Str(fn->as_object(), "arguments");
          boost::system::error_code ec;
          json::value input = json::parse(args.empty() ? "{}" : args, ec);
          if (ec || !input.is_object()) input = json::object();
          blocks->push_back(json::object{{"type", "tool_use"},
                                         {"id", Str(call, "id")},
                                         {"name", Str(fn->as_object(), "name")},
                                         {"input", std::move(input)}});
        }
      }
      append("assistant", std::move(*blocks));
    } else if (role == "tool") {
      json::array blocks;
      blocks.push_back(json::object{{"type", "tool_result"},
                                    {"tool_use_id", Str(m, "tool_call_id")},
                                    {"content", OpenAIText(*content)}});
      append("user", std::move(blocks));
    } else {
      return InvalidArgument(field + ".role: unsupported role '" + role + "'");
    }
  }
  if (!system.empty()) out["system"] = system;
  out["messages"] = std::move(messages);
  int64_t max_tokens = Int(in, "max_completion_tokens");
  if (max_tokens == 0) max_tokens = Int(in, "max_tokens");
  out["max_tokens"] = max_tokens > 0 ? max_tokens : 4096;
  for (const char* k : {"temperature", "top_p"}) {
    if (const auto* v = in.if_contains(k); v != nullptr && !v->is_null()) out[k] = *v;
  }
  if (const auto* stop = in.if_contains("stop"); stop != nullptr && !stop->is_null()) {
    json::array seqs;
    if (stop->is_string()) seqs.push_back(stop->as_string());
    if (stop->is_array()) seqs = stop->as_array();
    out["stop_sequences"] = std::move(seqs);
  }
  if (const auto* s = in.if_contains("stream"); s != nullptr && s->is_bool() && s->as_bool()) {
    out["stream"] = true;
  }
  if (std::string user = Str(in, "user"); !user.empty()) {
    out["metadata"] = json::object{{"user_id", user}};
  }
  if (const auto* tools = in.if_contains("tools"); tools != nullptr && tools->is_array()) {
    json::array atools;
    for (const auto& t : tools->as_array()) {
      if (!t.is_object()) continue;
      const auto* fn = t.as_object().if_contains("function");
      if (fn == nullptr || !fn->is_object()) continue;
      const auto& f = fn->as_object();
      json::object tool{{"name", Str(f, "name")}};
      if (std::string d = Str(f, "description"); !d.empty()) tool["description"] = d;
      const auto* params = f.if_contains("parameters");
      tool["input_schema"] = params != nullptr && params->is_object()
                                 ? *params
                                 : json::value(json::object{{"type", "object"}});
      atools.push_back(std::move(tool));
    }
    out["tools"] = std::move(atools);
  }
  if (const auto* tc = in.if_contains("tool_choice"); tc != nullptr && !tc->is_null()) {
    if (tc->is_string()) {
      std::string_view c = tc->as_string();
      if (c == "required")
        out["tool_choice"] = json::object{{"type", "any"}};
      else if (c == "none")
        out["tool_choice"] = json::object{{"type", "none"}};
      else
        out["tool_choice"] = json::object{{"type", "auto"}};
    } else if (tc->is_object()) {
      const auto* fn = tc->as_object().if_contains("function");
      if (fn != nullptr && fn->is_object()) {
        out["tool_choice"] = json::object{{"type", "tool"}, {"name", Str(fn->as_object(), "name")}};
      }
    }
  }
  return json::serialize(out);
}

// ---- Anthropic messages request -> OpenAI chat request ----
std::string AnthropicText(const json::value& content) {
  if (content.is_string()) return std::string(content.as_string());
  std::string out;
  if (content.is_array()) {
    for (const auto& b : content.as_array()) {
      if (b.is_object() && Str(b.as_object(), "type") == "text") {
        if (!out.empty()) out += "\n";
        out += Str(b.as_object(), "text");
      }
    }
  }
  return out;
}

Result<std::string> AnthropicToOpenAIRequest(std::string_view body, std::string_view model) {
  auto parsed = ParseObject(body, "the request body");
  if (!parsed.ok()) return parsed.status();
  const json::object& in = *parsed;
  json::object out;
  out["model"] = model;
  json::array messages;
  if (const auto* sys = in.if_contains("system"); sys != nullptr && !sys->is_null()) {
    messages.push_back(json::object{{"role", "system"}, {"content", AnthropicText(*sys)}});
  }
  const auto* msgs = in.if_contains("messages");
  if (msgs == nullptr || !msgs->is_array()) return InvalidArgument("messages must be a list");
  size_t i = 0;
  for (const auto& mv : msgs->as_array()) {
    std::string field = "messages[" + std::to_string(i++) + "]";
    if (!mv.is_object()) return InvalidArgument(field + " must be an object");
    const auto& m = mv.as_object();
    std::string role = Str(m, "role");
    if (role != "user" && role != "assistant") {
      return InvalidArgument(field + ".role must be user or assistant");
    }
    const json::value* content = m.if_contains("content");
    if (content == nullptr) return InvalidArgument(field + ".content is required");
    if (content->is_string()) {
      messages.push_back(json::object{{"role", role}, {"content", content->as_string()}});
      continue;
    }
    if (!content->is_array()) return InvalidArgument(field + ".content must be a string or a list");
    json::array parts;
    json::array tool_calls;
    bool only_text = true;
    for (const auto& bv : content->as_array()) {
      if (!bv.is_object()) continue;
      const auto& b = bv.as_object();
      std::string type = Str(b, "type");
      if (type == "text") {
        parts.push_back(json::object{{"type", "text"}, {"text", Str(b, "text")}});
      } else if (type == "image") {
        only_text = false;
        const auto* src = b.if_contains("source");
        if (src == nullptr || !src->is_object()) continue;
        const auto& s = src->as_object();
        std::string url = Str(s, "type") == "base64"
                              ? "data:" + Str(s, "media_type") + ";base64," + Str(s, "data")
                              : Str(s, "url");
        parts.push_back(
            json::object{{"type", "image_url"}, {"image_url", json::object{{"url", url}}}});
      } else if (type == "tool_use") {
        const auto* input = b.if_contains("input");
        tool_calls.push_back(json::object{
            {"id", Str(b, "id")},
            {"type", "function"},
            {"function",
             json::object{{"name", Str(b, "name")},
                          {"arguments", input != nullptr ? json::serialize(*input) : "{}"}}}});
      } else if (type == "tool_result") {
        const auto* c = b.if_contains("content");
        messages.push_back(json::object{{"role", "tool"},
                                        {"tool_call_id", Str(b, "tool_use_id")},
                                        {"content", c != nullptr ? AnthropicText(*c) : ""}});
      }
    }
    if (parts.empty() && tool_calls.empty()) continue;
    json::object msg{{"role", role}};
    if (only_text) {
      std::string text;
      for (const auto& p : parts) {
        if (!text.empty()) text += "\n";
        text += Str(p.as_object(), "text");
      }
      if (parts.empty())
        msg["content"] = nullptr;
      else
        msg["content"] = text;
    } else {
      msg["content"] = std::move(parts);
    }
    if (!tool_calls.empty()) msg["tool_calls"] = std::move(tool_calls);
    messages.push_back(std::move(msg));
  }
  out["messages"] = std::move(messages);
  if (int64_t mt = Int(in, "max_tokens"); mt > 0) out["max_tokens"] = mt;
  for (const char* k : {"temperature", "top_p"}) {
    if (const auto* v = in.if_contains(k); v != nullptr && !v->is_null()) out[k] = *v;
  }
  if (const auto* s = in.if_contains("stop_sequences"); s != nullptr && s->is_array()) {
    out["stop"] = *s;
  }
  if (const auto* s = in.if_contains("stream"); s != nullptr && s->is_bool() && s->as_bool()) {
    out["stream"] = true;
    out["stream_options"] = json::object{{"include_usage", true}};
  }
  if (const auto* md = in.if_contains("metadata"); md != nullptr && md->is_object()) {
    if (std::string u = Str(md->as_object(), "user_id"); !u.empty()) out["user"] = u;
  }
  if (const auto* tools = in.if_contains("tools"); tools != nullptr && tools->is_array()) {
    json::array otools;
    for (const auto& t : tools->as_array()) {
      if (!t.is_object()) continue;
      const auto& to = t.as_object();
      json::object fn{{"name", Str(to, "name")}};
      if (std::string d = Str(to, "description"); !d.empty()) fn["description"] = d;
      if (const auto* schema = to.if_contains("input_schema")) fn["parameters"] = *schema;
      otools.push_back(json::object{{"type", "function"}, {"function", std::move(fn)}});
    }
    out["tools"] = std::move(otools);
  }
  if (const auto* tc = in.if_contains("tool_choice"); tc != nullptr && tc->is_object()) {
    std::string type = Str(tc->as_object(), "type");
    if (type == "any")
      out["tool_choice"] = "required";
    else if (type == "none")
      out["tool_choice"] = "none";
    else if (type == "tool") {
      out["tool_choice"] = json::object{
          {"type", "function"}, {"function", json::object{{"name", Str(tc->as_object(), "name")}}}};
    } else {
      out["tool_choice"] = "auto";
    }
  }
  return json::serialize(out);
}

// ---- responses ----
Result<std::string> AnthropicToOpenAIResponse(std::string_view body, std::string_view model) {
  auto parsed = ParseObject(body, "the upstream response");
  if (!parsed.ok()) return parsed.status();
  const json::object& in = *parsed;
  std::string text;
  json::array tool_calls;
  if (const auto* content = in.if_contains("content"); content != nullptr && content->is_array()) {
    for (const auto& bv : content->as_array()) {
      if (!bv.is_object()) continue;
      const auto& b = bv.as_object();
      std::string type = Str(b, "type");
      if (type == "text") {
        text += Str(b, "text");
      } else if (type == "tool_use") {
        const auto* input = b.if_contains("input");
        tool_calls.push_back(json::object{
            {"id", Str(b, "id")},
            {"type", "function"},
            {"function",
             json::object{{"name", Str(b, "name")},
                          {"arguments", input != nullptr ? json::serialize(*input) : "{}"}}}});
      }
    }
  }
  json::object message{{"role", "assistant"}};
  if (text.empty() && !tool_calls.empty())
    message["content"] = nullptr;
  else
    message["content"] = text;
  if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);
  json::object usage_out;
  if (const auto* u = in.if_contains("usage"); u != nullptr && u->is_object()) {
    const auto& uo = u->as_object();
    int64_t cached = Int(uo, "cache_read_input_tokens");
    int64_t prompt = Int(uo, "input_tokens") + cached + Int(uo, "cache_creation_input_tokens");
    int64_t completion = Int(uo, "output_tokens");
    usage_out = json::object{{"prompt_tokens", prompt},
                             {"completion_tokens", completion},
                             {"total_tokens", prompt + completion}};
    if (cached > 0) usage_out["prompt_tokens_details"] = json::object{{"cached_tokens", cached}};
  }
  json::object out{
      {"id", "chatcmpl-" + Str(in, "id")},
      {"object", "chat.completion"},
      {"created", 0},
      {"model", model},
      {"choices",
       json::array{json::object{{"index", 0},
                                {"message", std::move(message)},
                                {"logprobs", nullptr},
                                {"finish_reason", StopAnthropicToOpenAI(Str(in, "stop_reason"))}}}},
      {"usage", std::move(usage_out)}};
  return json::serialize(out);
}

Result<std::string> OpenAIToAnthropicResponse(std::string_view body, std::string_view model) {
  auto parsed = ParseObject(body, "the upstream response");
  if (!parsed.ok()) return parsed.status();
  const json::object& in = *parsed;
  json::array content;
  std::string finish;
  if (const auto* choices = in.if_contains("choices"); choices != nullptr && choices->is_array() &&
                                                       !choices->as_array().empty() &&
                                                       choices->as_array()[0].is_object()) {
    const auto& c = choices->as_array()[0].as_object();
    finish = Str(c, "finish_reason");
    if (const auto* m = c.if_contains("message"); m != nullptr && m->is_object()) {
      const auto& mo = m->as_object();
      if (const auto* t = mo.if_contains("content"); t != nullptr && !t->is_null()) {
        std::string text = OpenAIText(*t);
        if (!text.empty()) content.push_back(json::object{{"type", "text"}, {"text", text}});
      }
      if (const auto* tc = mo.if_contains("tool_calls"); tc != nullptr && tc->is_array()) {
        for (const auto& call_v : tc->as_array()) {
          if (!call_v.is_object()) continue;
          const auto& call = call_v.as_object();
          const auto* fn = call.if_contains("function");
          if (fn == nullptr || !fn->is_object()) continue;
          boost::system::error_code ec;
          std::string args = Str(fn->as_object(), "arguments");
          json::value input = json::parse(args.empty() ? "{}" : args, ec);
          if (ec || !input.is_object()) input = json::object();
          content.push_back(json::object{{"type", "tool_use"},
                                         {"id", Str(call, "id")},
                                         {"name", Str(fn->as_object(), "name")},
                                         {"input", std::move(input)}});
        }
      }
    }
  }
  int64_t input = 0, output = 0, cached = 0;
  if (const auto* u = in.if_contains("usage"); u != nullptr && u->is_object()) {
    const auto& uo = u->as_object();
    input = Int(uo, "prompt_tokens");
    output = Int(uo, "completion_tokens");
    if (const auto* d = uo.if_contains("prompt_tokens_details"); d != nullptr && d->is_object()) {
      cached = Int(d->as_object(), "cached_tokens");
    }
  }
  json::object usage{{"input_tokens", input - cached}, {"output_tokens", output}};
  if (cached > 0) usage["cache_read_input_tokens"] = cached;
  std::string id = Str(in, "id");
  json::object out{{"id", id.starts_with("msg_") ? id : "msg_" + id},
                   {"type", "message"},
                   {"role", "assistant"},
                   {"model", model},
                   {"content", std::move(content)},
                   {"stop_reason", StopOpenAIToAnthropic(finish)},
                   {"stop_sequence", nullptr},
                   {"usage", std::move(usage)}};
  return json::serialize(out);
}

// ---- streams ----

// Anthropic SSE events -> OpenAI chat.completion.chunk data lines.
class AnthropicToOpenAIStream : public StreamTranslator {
 public:
  explicit AnthropicToOpenAIStream(StreamTranslatorOptions o) : o_(std::move(o)) {}

  std::string OnEvent(const ParsedSseEvent& ev) override {
    boost::system::error_code ec;
    json::value v = json::parse(ev.data, ec);
    if (ec || !v.is_object()) return "";
    const auto& d = v.as_object();
    std::string type = Str(d, "type");
    if (type == "message_start") {
      if (const auto* m = d.if_contains("message"); m != nullptr && m->is_object()) {
        id_ = "chatcmpl-" + Str(m->as_object(), "id");
        if (const auto* u = m->as_object().if_contains("usage"); u != nullptr && u->is_object()) {
          const auto& uo = u->as_object();
          cached_ = Int(uo, "cache_read_input_tokens");
          prompt_ = Int(uo, "input_tokens") + cached_ + Int(uo, "cache_creation_input_tokens");
          completion_ = Int(uo, "output_tokens");
        }
      }
      return Chunk(json::object{{"role", "assistant"}, {"content", ""}}, nullptr);
    }
    if (type == "content_block_start") {
      const auto* cb = d.if_contains("content_block");
      if (cb == nullptr || !cb->is_object()) return "";
      const auto& b = cb->as_object();
      if (Str(b, "type") != "tool_use") return "";
      int index = tool_index_++;
      block_to_tool_[Int(d, "index")] = index;
      json::array calls{
          json::object{{"index", index},
                       {"id", Str(b, "id")},
                       {"type", "function"},
                       {"function", json::object{{"name", Str(b, "name")}, {"arguments", ""}}}}};
      return Chunk(json::object{{"tool_calls", std::move(calls)}}, nullptr);
    }
    if (type == "content_block_delta") {
      const auto* dv = d.if_contains("delta");
      if (dv == nullptr || !dv->is_object()) return "";
      const auto& delta = dv->as_object();
      std::string dtype = Str(delta, "type");
      if (dtype == "text_delta") {
        return Chunk(json::object{{"content", Str(delta, "text")}}, nullptr);
      }
      if (dtype == "input_json_delta") {
        auto it = block_to_tool_.find(Int(d, "index"));
        if (it == block_to_tool_.end()) return "";
        json::array calls{
            json::object{{"index", it->second},
                         {"function", json::object{{"arguments", Str(delta, "partial_json")}}}}};
        return Chunk(json::object{{"tool_calls", std::move(calls)}}, nullptr);
      }
      return "";
    }
    if (type == "message_delta") {
      if (const auto* u = d.if_contains("usage"); u != nullptr && u->is_object()) {
        const auto& uo = u->as_object();
        if (uo.contains("output_tokens")) completion_ = Int(uo, "output_tokens");
        if (uo.contains("input_tokens")) {
          prompt_ = Int(uo, "input_tokens") + Int(uo, "cache_read_input_tokens") +
                    Int(uo, "cache_creation_input_tokens");
        }
      }
      std::string stop;
      if (const auto* dv = d.if_contains("delta"); dv != nullptr && dv->is_object()) {
        stop = Str(dv->as_object(), "stop_reason");
      }
      return Chunk(json::object{}, json::value(StopAnthropicToOpenAI(stop)));
    }
    if (type == "message_stop") return Finish();
    if (type == "error") {
      std::string message = "upstream error";
      if (const auto* e = d.if_contains("error"); e != nullptr && e->is_object()) {
        message = Str(e->as_object(), "message");
      }
      finished_ = true;
      return StreamErrorEvent(ApiFormat::kOpenAI, 529, message);
    }
    return "";
  }

  std::string Finish() override {
    if (finished_) return "";
    finished_ = true;
    std::string out;
    if (o_.include_usage) {
      json::object usage{{"prompt_tokens", prompt_},
                         {"completion_tokens", completion_},
                         {"total_tokens", prompt_ + completion_}};
      if (cached_ > 0) usage["prompt_tokens_details"] = json::object{{"cached_tokens", cached_}};
      json::object chunk = Base();
      chunk["choices"] = json::array();
      chunk["usage"] = std::move(usage);
      out += "data: " + json::serialize(chunk) + "\n\n";
    }
    out += "data: [DONE]\n\n";
    return out;
  }

 private:
  json::object Base() const {
    return json::object{{"id", id_.empty() ? "chatcmpl-" + o_.id_seed : id_},
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
  std::string id_;
  int64_t prompt_ = 0, completion_ = 0, cached_ = 0;
  int tool_index_ = 0;
  std::map<int64_t, int> block_to_tool_;
  bool finished_ = false;
};

// OpenAI chunks -> Anthropic SSE events.
class OpenAIToAnthropicStream : public StreamTranslator {
 public:
  explicit OpenAIToAnthropicStream(StreamTranslatorOptions o) : o_(std::move(o)) {}

  std::string OnEvent(const ParsedSseEvent& ev) override {
    if (ev.data == "[DONE]") return Finish();
    boost::system::error_code ec;
    json::value v = json::parse(ev.data, ec);
    if (ec || !v.is_object()) return "";
    const auto& d = v.as_object();
    std::string out;
    if (const auto* e = d.if_contains("error"); e != nullptr && e->is_object()) {
      finished_ = true;
      return out + StreamErrorEvent(ApiFormat::kAnthropic, 500, Str(e->as_object(), "message"));
    }
    if (!started_) {
      started_ = true;
      std::string id = Str(d, "id");
      json::object msg{{"id", id.starts_with("msg_") ? id : "msg_" + id},
                       {"type", "message"},
                       {"role", "assistant"},
                       {"model", o_.client_model},
                       {"content", json::array()},
                       {"stop_reason", nullptr},
                       {"stop_sequence", nullptr},
                       {"usage", json::object{{"input_tokens", 0}, {"output_tokens", 0}}}};
      out += SseFrame("message_start",
                      json::serialize(json::object{{"type", "message_start"}, {"message", msg}}));
    }
    if (const auto* u = d.if_contains("usage"); u != nullptr && u->is_object()) {
      const auto& uo = u->as_object();
      input_ = Int(uo, "prompt_tokens");
      output_ = Int(uo, "completion_tokens");
      if (const auto* det = uo.if_contains("prompt_tokens_details"); det && det->is_object()) {
        cached_ = Int(det->as_object(), "cached_tokens");
      }
      have_usage_ = true;
    }
    const auto* choices = d.if_contains("choices");
    if (choices == nullptr || !choices->is_array() || choices->as_array().empty()) return out;
    const auto& c0 = choices->as_array()[0];
    if (!c0.is_object()) return out;
    const auto& choice = c0.as_object();
    if (const auto* dv = choice.if_contains("delta"); dv != nullptr && dv->is_object()) {
      const auto& delta = dv->as_object();
      if (const auto* t = delta.if_contains("content");
          t != nullptr && t->is_string() && !t->as_string().empty()) {
        if (open_kind_ != Kind::kText) {
          out += CloseBlock();
          out += SseFrame("content_block_start",
                          json::serialize(json::object{
                              {"type", "content_block_start"},
                              {"index", next_index_},
                              {"content_block", json::object{{"type", "text"}, {"text", ""}}}}));
          open_kind_ = Kind::kText;
          open_index_ = next_index_++;
        }
        out += SseFrame(
            "content_block_delta",
            json::serialize(json::object{
                {"type", "content_block_delta"},
                {"index", open_index_},
                {"delta", json::object{{"type", "text_delta"}, {"text", t->as_string()}}}}));
      }
      if (const auto* tc = delta.if_contains("tool_calls"); tc != nullptr && tc->is_array()) {
        for (const auto& call_v : tc->as_array()) {
          if (!call_v.is_object()) continue;
          const auto& call = call_v.as_object();
          int64_t tool = Int(call, "index");
          const auto* fn = call.if_contains("function");
          const json::object empty;
          const json::object& f = fn != nullptr && fn->is_object() ? fn->as_object() : empty;
          if (open_kind_ != Kind::kTool || tool != open_tool_) {
            out += CloseBlock();
            out += SseFrame("content_block_start",
                            json::serialize(json::object{
                                {"type", "content_block_start"},
                                {"index", next_index_},
                                {"content_block", json::object{{"type", "tool_use"},
                                                               {"id", Str(call, "id")},
                                                               {"name", Str(f, "name")},
                                                               {"input", json::object()}}}}));
            open_kind_ = Kind::kTool;
            open_tool_ = tool;
            open_index_ = next_index_++;
          }
          if (std::string args = Str(f, "arguments"); !args.empty()) {
            out += SseFrame(
                "content_block_delta",
                json::serialize(json::object{{"type", "content_block_delta"},
                                             {"index", open_index_},
                                             {"delta", json::object{{"type", "input_json_delta"},
                                                                    {"partial_json", args}}}}));
          }
        }
      }
    }
    if (const auto* f = choice.if_contains("finish_reason"); f != nullptr && f->is_string()) {
      stop_ = StopOpenAIToAnthropic(f->as_string());
    }
    return out;
  }

  std::string Finish() override {
    if (finished_) return "";
    finished_ = true;
    std::string out;
    if (!started_) return out;
    out += CloseBlock();
    json::object usage{{"output_tokens", output_}};
    if (have_usage_) {
      usage["input_tokens"] = input_ - cached_;
      if (cached_ > 0) usage["cache_read_input_tokens"] = cached_;
    }
    out += SseFrame("message_delta",
                    json::serialize(json::object{
                        {"type", "message_delta"},
                        {"delta", json::object{{"stop_reason", stop_.empty() ? "end_turn" : stop_},
                                               {"stop_sequence", nullptr}}},
                        {"usage", std::move(usage)}}));
    out += SseFrame("message_stop", R"({"type":"message_stop"})");
    return out;
  }

 private:
  enum class Kind { kNone, kText, kTool };
  std::string CloseBlock() {
    if (open_kind_ == Kind::kNone) return "";
    open_kind_ = Kind::kNone;
    return SseFrame(
        "content_block_stop",
        json::serialize(json::object{{"type", "content_block_stop"}, {"index", open_index_}}));
  }

  StreamTranslatorOptions o_;
  bool started_ = false, finished_ = false, have_usage_ = false;
  Kind open_kind_ = Kind::kNone;
  int64_t open_index_ = 0, next_index_ = 0, open_tool_ = -1;
  int64_t input_ = 0, output_ = 0, cached_ = 0;
  std::string stop_;
};

std::string AnthropicErrorType(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 529:
    case 503:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

std::string OpenAIErrorType(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_exceeded";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

Result<std::string> TranslateRequest(ApiFormat from, ApiFormat to, std::string_view body,
                                     std::string_view upstream_model) {
  if (from == to) return ReplaceTopLevelModel(body, upstream_model);
  if (from == ApiFormat::kOpenAI && to == ApiFormat::kAnthropic) {
    return OpenAIToAnthropicRequest(body, upstream_model);
  }
  if (from == ApiFormat::kAnthropic && to == ApiFormat::kOpenAI) {
    return AnthropicToOpenAIRequest(body, upstream_model);
  }
  if (to == ApiFormat::kGemini) {
    if (from == ApiFormat::kOpenAI) return OpenAIToGeminiRequest(body);
    auto openai = AnthropicToOpenAIRequest(body, upstream_model);
    if (!openai.ok()) return openai.status();
    return OpenAIToGeminiRequest(*openai);
  }
  if (from == ApiFormat::kGemini) {
    auto openai = GeminiToOpenAIRequest(body, upstream_model);
    if (!openai.ok() || to == ApiFormat::kOpenAI) return openai;
    return OpenAIToAnthropicRequest(*openai, upstream_model);
  }
  return InvalidArgument("no translation from " + std::string(ApiFormatName(from)) + " to " +
                         std::string(ApiFormatName(to)));
}

Result<std::string> TranslateResponse(ApiFormat from, ApiFormat to, std::string_view body,
                                      std::string_view client_model) {
  if (from == to) return std::string(body);
  if (from == ApiFormat::kAnthropic && to == ApiFormat::kOpenAI) {
    return AnthropicToOpenAIResponse(body, client_model);
  }
  if (from == ApiFormat::kOpenAI && to == ApiFormat::kAnthropic) {
    return OpenAIToAnthropicResponse(body, client_model);
  }
  if (from == ApiFormat::kGemini) {
    auto openai = GeminiToOpenAIResponse(body, client_model);
    if (!openai.ok() || to == ApiFormat::kOpenAI) return openai;
    return OpenAIToAnthropicResponse(*openai, client_model);
  }
  if (to == ApiFormat::kGemini) {
    if (from == ApiFormat::kOpenAI) return OpenAIToGeminiResponse(body, client_model);
    auto openai = AnthropicToOpenAIResponse(body, client_model);
    if (!openai.ok()) return openai.status();
    return OpenAIToGeminiResponse(*openai, client_model);
  }
  return InvalidArgument("no translation from " + std::string(ApiFormatName(from)) + " to " +
                         std::string(ApiFormatName(to)));
}

namespace {

// Two translators in a row: the first one's output (OpenAI chunks) is parsed and fed to the
// second one.
class ChainedStream : public StreamTranslator {
 public:
  ChainedStream(std::unique_ptr<StreamTranslator> first, std::unique_ptr<StreamTranslator> second)
      : first_(std::move(first)), second_(std::move(second)) {}
  std::string OnEvent(const ParsedSseEvent& event) override { return Pass(first_->OnEvent(event)); }
  std::string Finish() override {
    std::string out = Pass(first_->Finish());  // sequenced: the second sees the first's tail
    return out + second_->Finish();
  }

 private:
  std::string Pass(const std::string& bytes) {
    std::string out;
    for (auto& ev : parser_.Feed(bytes)) out += second_->OnEvent(ev);
    return out;
  }
  std::unique_ptr<StreamTranslator> first_, second_;
  SseParser parser_;
};

}  // namespace

std::unique_ptr<StreamTranslator> MakeStreamTranslator(ApiFormat from, ApiFormat to,
                                                       StreamTranslatorOptions options) {
  if (from == to) return nullptr;
  if (from == ApiFormat::kAnthropic && to == ApiFormat::kOpenAI) {
    return std::make_unique<AnthropicToOpenAIStream>(std::move(options));
  }
  if (from == ApiFormat::kOpenAI && to == ApiFormat::kAnthropic) {
    return std::make_unique<OpenAIToAnthropicStream>(std::move(options));
  }
  // Through the OpenAI form, carrying usage between the stages.
  StreamTranslatorOptions middle = options;
  middle.include_usage = true;
  middle.gemini_json_array = false;
  if (from == ApiFormat::kGemini) {
    auto first = MakeGeminiToOpenAIStream(to == ApiFormat::kOpenAI ? options : middle);
    if (to == ApiFormat::kOpenAI) return first;
    return std::make_unique<ChainedStream>(std::move(first),
                                           std::make_unique<OpenAIToAnthropicStream>(options));
  }
  if (from == ApiFormat::kOpenAI) return MakeOpenAIToGeminiStream(options);
  return std::make_unique<ChainedStream>(std::make_unique<AnthropicToOpenAIStream>(middle),
                                         MakeOpenAIToGeminiStream(options));
}

std::string ErrorBody(ApiFormat format, int status, std::string_view message,
                      std::string_view type) {
  if (format == ApiFormat::kAnthropic) {
    return json::serialize(json::object{
        {"type", "error"},
        {"error", json::object{{"type", type.empty() ? AnthropicErrorType(status) : type},
                               {"message", message}}}});
  }
  if (format == ApiFormat::kGemini) {
    std::string st(type);
    if (st.empty()) {
      st = status == 400                    ? "INVALID_ARGUMENT"
           : status == 401                  ? "UNAUTHENTICATED"
           : status == 403                  ? "PERMISSION_DENIED"
           : status == 404                  ? "NOT_FOUND"
           : status == 429                  ? "RESOURCE_EXHAUSTED"
           : status == 503 || status == 529 ? "UNAVAILABLE"
                                            : "INTERNAL";
    }
    return json::serialize(json::object{
        {"error", json::object{{"code", status}, {"message", message}, {"status", st}}}});
  }
  std::string t = type.empty() ? OpenAIErrorType(status) : std::string(type);
  return json::serialize(json::object{
      {"error", json::object{{"message", message}, {"type", t}, {"param", nullptr}, {"code", t}}}});
}

std::string StreamErrorEvent(ApiFormat format, int status, std::string_view message) {
  if (format == ApiFormat::kAnthropic) {
    return SseFrame("error", ErrorBody(format, status, message));
  }
  return "data: " + ErrorBody(format, status, message) + "\n\ndata: [DONE]\n\n";
}

std::string TranslateErrorBody(ApiFormat from, ApiFormat to, int status, std::string_view body) {
  std::string message(body.substr(0, 2000));
  std::string type;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (const auto* e = v.as_object().if_contains("error"); e != nullptr && e->is_object()) {
      message = Str(e->as_object(), "message");
      if (from == to) type = Str(e->as_object(), "type");
    }
  }
  return ErrorBody(to, status, message, type);
}

std::string ReplaceTopLevelModel(std::string_view body, std::string_view model) {
  // A small scanner over the top-level object: finds the key "model" at depth 1 followed by a
  // string value, and splices the new (JSON-escaped) string over the old one.
  int depth = 0;
  size_t i = 0;
  bool expect_key = false;
  while (i < body.size()) {
    char c = body[i];
    if (c == '"') {
      size_t start = i++;
      while (i < body.size() && body[i] != '"') i += body[i] == '\\' ? 2 : 1;
      size_t end = ++i;  // past the closing quote
      if (depth == 1 && expect_key && body.substr(start, end - start) == "\"model\"") {
        size_t j = end;
        while (j < body.size() && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' ||
                                   body[j] == '\r' || body[j] == ':')) {
          ++j;
        }
        if (j < body.size() && body[j] == '"') {
          size_t vs = j++;
          while (j < body.size() && body[j] != '"') j += body[j] == '\\' ? 2 : 1;
          size_t ve = j + 1;
          std::string out;
          out.reserve(body.size() + model.size());
          out.append(body.substr(0, vs));
          out += json::serialize(json::value(json::string(model)));
          out.append(body.substr(std::min(ve, body.size())));
          return out;
        }
      }
      expect_key = false;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
      expect_key = c == '{' && depth == 1;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',') {
      expect_key = depth == 1;
    }
    ++i;
  }
  return std::string(body);
}

std::string_view ApiFormatName(ApiFormat f) {
  switch (f) {
    case ApiFormat::kAnthropic:
      return "anthropic";
    case ApiFormat::kOpenAI:
      return "openai";
    case ApiFormat::kGemini:
      return "gemini";
  }
  return "?";
}

bool GlobMatch(std::string_view p, std::string_view t) {
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace atrium::relay
