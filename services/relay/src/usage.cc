#include "atrium/relay/usage.h"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "atrium/core/log.h"
#include "scratch_json.h"

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

double Num(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return 0;
}

// Reads Anthropic usage members into `u` (only those present).
void ReadAnthropicUsage(const json::object& uo, Usage& u, bool& output_reported) {
  if (uo.contains("input_tokens")) u.input_tokens = Int(uo, "input_tokens");
  if (uo.contains("cache_creation_input_tokens")) {
    u.cache_write_tokens = Int(uo, "cache_creation_input_tokens");
  }
  if (uo.contains("cache_read_input_tokens")) {
    u.cache_read_tokens = Int(uo, "cache_read_input_tokens");
  }
  if (uo.contains("output_tokens")) {
    u.output_tokens = Int(uo, "output_tokens");
    output_reported = true;
  }
  u.reported = true;
}

void ReadOpenAIUsage(const json::object& uo, Usage& u) {
  int64_t cached = 0;
  if (const auto* d = uo.if_contains("prompt_tokens_details"); d != nullptr && d->is_object()) {
    cached = Int(d->as_object(), "cached_tokens");
  }
  u.input_tokens = Int(uo, "prompt_tokens") - cached;
  u.cache_read_tokens = cached;
  u.output_tokens = Int(uo, "completion_tokens");
  u.reported = true;
}

// Gemini usageMetadata (cumulative in streams): prompt includes cached content.
void ReadGeminiUsage(const json::object& uo, Usage& u) {
  int64_t cached = Int(uo, "cachedContentTokenCount");
  u.input_tokens = Int(uo, "promptTokenCount") - cached;
  u.cache_read_tokens = cached;
  u.output_tokens = Int(uo, "candidatesTokenCount") + Int(uo, "thoughtsTokenCount");
  u.reported = true;
}

// Text characters and the finish reason of one Gemini GenerateContentResponse.
void ReadGeminiCandidates(const json::object& o, int64_t& chars, std::string& finish) {
  const auto* cands = o.if_contains("candidates");
  if (cands == nullptr || !cands->is_array()) return;
  for (const auto& c : cands->as_array()) {
    if (!c.is_object()) continue;
    if (std::string f = Str(c.as_object(), "finishReason"); !f.empty()) finish = f;
    const auto* content = c.as_object().if_contains("content");
    if (content == nullptr || !content->is_object()) continue;
    const auto* parts = content->as_object().if_contains("parts");
    if (parts == nullptr || !parts->is_array()) continue;
    for (const auto& p : parts->as_array()) {
      if (p.is_object()) chars += static_cast<int64_t>(Str(p.as_object(), "text").size());
    }
  }
}

}  // namespace

int64_t EstimateTokens(int64_t chars) {
  return chars <= 0 ? 0 : std::max<int64_t>(1, (chars + 3) / 4);
}

// Written directly rather than through a json::object: one record per request, on the request's
// I/O thread. FromJson reads it back (and any other JSON object with these fields).
std::string UsageRecord::ToJson() const {
  std::string out;
  out.reserve(384 + request_id.size() + key_id.size() + user_id.size() + workspace_id.size() +
              account_id.size() + client_model.size() + upstream_model.size() + error.size() +
              stop_reason.size());
  auto field = [&out](std::string_view name) {
    out += out.empty() ? "{\"" : ",\"";
    out += name;
    out += "\":";
  };
  auto text = [&](std::string_view name, std::string_view value) {
    field(name);
    out += '"';
    AppendJsonEscaped(value, out);
    out += '"';
  };
  auto integer = [&](std::string_view name, int64_t value) {
    field(name);
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof(buf), value).ptr);
  };
  auto flag = [&](std::string_view name, bool value) {
    field(name);
    out += value ? "true" : "false";
  };
  integer("time", time_micros);
  text("request_id", request_id);
  text("key_id", key_id);
  text("user_id", user_id);
  text("workspace_id", workspace_id);
  text("account_id", account_id);
  text("provider", provider);
  text("client_model", client_model);
  text("upstream_model", upstream_model);
  integer("input_tokens", usage.input_tokens);
  integer("output_tokens", usage.output_tokens);
  integer("cache_write_tokens", usage.cache_write_tokens);
  integer("cache_read_tokens", usage.cache_read_tokens);
  flag("usage_reported", usage.reported);
  field("cost");
  char buf[32];  // shortest form that reads back as the same double
  out.append(buf, std::to_chars(buf, buf + sizeof(buf), std::isfinite(cost) ? cost : 0.0).ptr);
  integer("status", status);
  text("error", error);
  integer("latency_ms", latency_ms);
  integer("ttfb_ms", ttfb_ms);
  flag("streamed", streamed);
  text("stop_reason", stop_reason);
  integer("attempts", attempts);
  out += '}';
  return out;
}

Result<UsageRecord> UsageRecord::FromJson(std::string_view text) {
  boost::system::error_code ec;
  ScratchJson scratch;
  json::value v = json::parse(text, ec, scratch.storage());
  if (ec || !v.is_object()) return InvalidArgument("usage record: not a JSON object");
  const auto& o = v.as_object();
  UsageRecord r;
  r.time_micros = Int(o, "time");
  r.request_id = Str(o, "request_id");
  r.key_id = Str(o, "key_id");
  r.user_id = Str(o, "user_id");
  r.workspace_id = Str(o, "workspace_id");
  r.account_id = Str(o, "account_id");
  r.provider = Str(o, "provider");
  r.client_model = Str(o, "client_model");
  r.upstream_model = Str(o, "upstream_model");
  r.usage.input_tokens = Int(o, "input_tokens");
  r.usage.output_tokens = Int(o, "output_tokens");
  r.usage.cache_write_tokens = Int(o, "cache_write_tokens");
  r.usage.cache_read_tokens = Int(o, "cache_read_tokens");
  const auto* rep = o.if_contains("usage_reported");
  r.usage.reported = rep != nullptr && rep->is_bool() && rep->as_bool();
  r.cost = Num(o, "cost");
  r.status = static_cast<int>(Int(o, "status"));
  r.error = Str(o, "error");
  r.latency_ms = Int(o, "latency_ms");
  r.ttfb_ms = Int(o, "ttfb_ms");
  const auto* st = o.if_contains("streamed");
  r.streamed = st != nullptr && st->is_bool() && st->as_bool();
  r.stop_reason = Str(o, "stop_reason");
  r.attempts = static_cast<int>(Int(o, "attempts"));
  return r;
}

Usage UsageFromResponse(ApiFormat format, std::string_view body, std::string* stop_reason) {
  Usage u;
  boost::system::error_code ec;
  ScratchJson scratch;
  json::value v = json::parse(body, ec, scratch.storage());
  if (!ec && format == ApiFormat::kGemini) {
    // One response object, or the JSON-array stream of them (usage is cumulative: the last).
    std::vector<const json::object*> items;
    if (v.is_object()) items.push_back(&v.as_object());
    if (v.is_array()) {
      for (const auto& e : v.as_array()) {
        if (e.is_object()) items.push_back(&e.as_object());
      }
    }
    int64_t chars = 0;
    std::string finish;
    for (const auto* item : items) {
      if (const auto* um = item->if_contains("usageMetadata"); um != nullptr && um->is_object()) {
        ReadGeminiUsage(um->as_object(), u);
      }
      ReadGeminiCandidates(*item, chars, finish);
    }
    if (!u.reported) u.output_tokens = EstimateTokens(chars);
    if (stop_reason != nullptr) *stop_reason = finish;
    return u;
  }
  if (ec || !v.is_object()) return u;
  const auto& o = v.as_object();
  const auto* uv = o.if_contains("usage");
  if (format == ApiFormat::kAnthropic) {
    bool reported = false;
    if (uv != nullptr && uv->is_object()) ReadAnthropicUsage(uv->as_object(), u, reported);
    if (stop_reason != nullptr) *stop_reason = Str(o, "stop_reason");
  } else {
    if (uv != nullptr && uv->is_object()) ReadOpenAIUsage(uv->as_object(), u);
    if (stop_reason != nullptr) {
      if (const auto* ch = o.if_contains("choices"); ch != nullptr && ch->is_array() &&
                                                     !ch->as_array().empty() &&
                                                     ch->as_array()[0].is_object()) {
        *stop_reason = Str(ch->as_array()[0].as_object(), "finish_reason");
      }
    }
  }
  return u;
}

void StreamUsageTracker::OnEvent(const ParsedSseEvent& ev) {
  if (format_ == ApiFormat::kOpenAI && ev.data == "[DONE]") {
    completed_ = true;
    return;
  }
  // Anthropic names each event after its type: these carry no usage, text, stop reason or
  // error, so their JSON is not parsed (half of a short answer's events).
  if (format_ == ApiFormat::kAnthropic &&
      (ev.event == "ping" || ev.event == "content_block_start" ||
       ev.event == "content_block_stop")) {
    return;
  }
  boost::system::error_code ec;
  ScratchJson scratch;
  json::value v = json::parse(ev.data, ec, scratch.storage());
  if (ec || !v.is_object()) return;
  const auto& o = v.as_object();
  if (format_ == ApiFormat::kAnthropic) {
    std::string type = Str(o, "type");
    if (type == "message_start") {
      const auto* m = o.if_contains("message");
      if (m != nullptr && m->is_object()) {
        const auto* uv = m->as_object().if_contains("usage");
        if (uv != nullptr && uv->is_object()) {
          bool ignored = false;  // message_start's output_tokens is a placeholder (1)
          ReadAnthropicUsage(uv->as_object(), usage_, ignored);
        }
      }
    } else if (type == "content_block_delta") {
      const auto* d = o.if_contains("delta");
      if (d != nullptr && d->is_object()) {
        delivered_chars_ += static_cast<int64_t>(Str(d->as_object(), "text").size() +
                                                 Str(d->as_object(), "partial_json").size() +
                                                 Str(d->as_object(), "thinking").size());
      }
    } else if (type == "message_delta") {
      if (const auto* uv = o.if_contains("usage"); uv != nullptr && uv->is_object()) {
        ReadAnthropicUsage(uv->as_object(), usage_, output_reported_);
      }
      if (const auto* d = o.if_contains("delta"); d != nullptr && d->is_object()) {
        if (std::string s = Str(d->as_object(), "stop_reason"); !s.empty()) stop_reason_ = s;
      }
    } else if (type == "message_stop") {
      completed_ = true;
    } else if (type == "error") {
      const auto* e = o.if_contains("error");
      error_ = e != nullptr && e->is_object()
                   ? Str(e->as_object(), "type") + ": " + Str(e->as_object(), "message")
                   : "error event";
    }
    return;
  }
  if (format_ == ApiFormat::kGemini) {
    if (const auto* um = o.if_contains("usageMetadata"); um != nullptr && um->is_object()) {
      ReadGeminiUsage(um->as_object(), usage_);
      output_reported_ = true;
    }
    if (const auto* e = o.if_contains("error"); e != nullptr && e->is_object()) {
      error_ = Str(e->as_object(), "message");
    }
    std::string finish;
    ReadGeminiCandidates(o, delivered_chars_, finish);
    if (!finish.empty()) {
      stop_reason_ = finish;
      completed_ = true;  // Gemini has no end marker: the finish reason ends the answer
    }
    return;
  }
  // OpenAI chunks.
  if (const auto* e = o.if_contains("error"); e != nullptr && e->is_object()) {
    error_ = Str(e->as_object(), "message");
    return;
  }
  if (const auto* uv = o.if_contains("usage"); uv != nullptr && uv->is_object()) {
    ReadOpenAIUsage(uv->as_object(), usage_);
    output_reported_ = true;
  }
  if (const auto* ch = o.if_contains("choices"); ch != nullptr && ch->is_array()) {
    for (const auto& c : ch->as_array()) {
      if (!c.is_object()) continue;
      const auto& co = c.as_object();
      if (const auto* d = co.if_contains("delta"); d != nullptr && d->is_object()) {
        const auto& delta = d->as_object();
        delivered_chars_ += static_cast<int64_t>(Str(delta, "content").size());
        if (const auto* tc = delta.if_contains("tool_calls"); tc != nullptr && tc->is_array()) {
          for (const auto& call : tc->as_array()) {
            if (!call.is_object()) continue;
            const auto* fn = call.as_object().if_contains("function");
            if (fn != nullptr && fn->is_object()) {
              delivered_chars_ += static_cast<int64_t>(Str(fn->as_object(), "arguments").size());
            }
          }
        }
      }
      if (std::string f = Str(co, "finish_reason"); !f.empty()) stop_reason_ = f;
    }
  }
}

Usage StreamUsageTracker::usage() const {
  Usage u = usage_;
  if (!output_reported_) u.output_tokens = EstimateTokens(delivered_chars_);
  return u;
}

Result<PriceTable> PriceTable::FromJson(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return InvalidArgument("pricing: not a JSON object");
  const auto* models = v.as_object().if_contains("models");
  if (models == nullptr || !models->is_object()) {
    return InvalidArgument("pricing: models must be an object");
  }
  PriceTable t;
  for (const auto& [pattern, pv] : models->as_object()) {
    if (!pv.is_object()) {
      return InvalidArgument("pricing: models." + std::string(pattern) + " must be an object");
    }
    const auto& p = pv.as_object();
    ModelPrice price{.pattern = std::string(pattern),
                     .input = Num(p, "input"),
                     .output = Num(p, "output"),
                     .cache_write = Num(p, "cache_write"),
                     .cache_read = Num(p, "cache_read")};
    if (price.input < 0 || price.output < 0 || price.cache_write < 0 || price.cache_read < 0) {
      return InvalidArgument("pricing: models." + std::string(pattern) + ": negative price");
    }
    t.Put(std::move(price));
  }
  t.Reorder();
  return t;
}

void PriceTable::Set(ModelPrice price) {
  Put(std::move(price));
  Reorder();
}

void PriceTable::Put(ModelPrice price) {
  auto same = std::find_if(prices_.begin(), prices_.end(),
                           [&](const ModelPrice& p) { return p.pattern == price.pattern; });
  if (same != prices_.end()) {
    *same = std::move(price);
  } else {
    prices_.push_back(std::move(price));
  }
}

void PriceTable::Merge(const PriceTable& other) {
  for (const auto& p : other.prices_) Put(p);
  Reorder();
}

void PriceTable::Reorder() {
  // Longest pattern first, every wildcard costing more than any length difference.
  auto score = [](const std::string& pattern) {
    int64_t wild = std::count(pattern.begin(), pattern.end(), '*') +
                   std::count(pattern.begin(), pattern.end(), '?');
    return static_cast<int64_t>(pattern.size()) * 16 - wild * 1000;
  };
  by_specificity_.resize(prices_.size());
  for (size_t i = 0; i < prices_.size(); ++i) by_specificity_[i] = i;
  std::stable_sort(by_specificity_.begin(), by_specificity_.end(), [&](size_t a, size_t b) {
    return score(prices_[a].pattern) > score(prices_[b].pattern);
  });
  memo_ = std::make_shared<Memo>();
}

const ModelPrice* PriceTable::Find(std::string_view model) const {
  auto at = [this](size_t i) { return i == Memo::kNone ? nullptr : &prices_[i]; };
  if (memo_ == nullptr) return nullptr;  // moved from: no prices left
  {
    std::lock_guard lock(memo_->mu);
    if (auto it = memo_->index.find(model); it != memo_->index.end()) return at(it->second);
  }
  size_t found = Memo::kNone;
  for (size_t i : by_specificity_) {
    if (GlobMatch(prices_[i].pattern, model)) {
      found = i;
      break;
    }
  }
  std::lock_guard lock(memo_->mu);
  if (memo_->index.size() >= Memo::kMaxNames) memo_->index.clear();
  memo_->index.emplace(std::string(model), found);
  return at(found);
}

double PriceTable::Cost(std::string_view model, const Usage& u, double multiplier) const {
  return CostAt(Find(model), u, multiplier);
}

double PriceTable::CostAt(const ModelPrice* p, const Usage& u, double multiplier) {
  if (p == nullptr) return 0;
  double dollars = (static_cast<double>(u.input_tokens) * p->input +
                    static_cast<double>(u.output_tokens) * p->output +
                    static_cast<double>(u.cache_write_tokens) * p->cache_write +
                    static_cast<double>(u.cache_read_tokens) * p->cache_read) /
                   1e6;
  return dollars * multiplier;
}

std::string PriceTable::ToJson() const {
  json::object models;
  for (const auto& p : prices_) {
    models[p.pattern] = json::object{{"input", p.input},
                                     {"output", p.output},
                                     {"cache_write", p.cache_write},
                                     {"cache_read", p.cache_read}};
  }
  return json::serialize(json::object{{"models", std::move(models)}});
}

}  // namespace atrium::relay
