// Usage accounting of the relay: the usage record published per request on the bus topic
// `relay.usage` (docs/relay.md, "Usage records"), reading token usage from upstream responses and
// streams, and the pricing table that turns tokens into cost.
//
// Usage comes from the upstream's own fields: Anthropic `usage` (message_start and
// message_delta in streams), OpenAI `usage` (the include_usage chunk in streams). When a stream
// ends before the upstream reported output tokens, the delivered text is counted instead
// (about four characters per token), so interrupted streams are billed for what was delivered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/core/strings.h"
#include "atrium/relay/sse_parser.h"
#include "atrium/relay/types.h"

namespace atrium::relay {

struct UsageRecord {
  int64_t time_micros = 0;
  std::string request_id;
  std::string key_id;
  std::string user_id;
  std::string workspace_id;
  std::string account_id;  // empty when no account was reached
  std::string provider;
  std::string client_model;
  std::string upstream_model;
  Usage usage;
  double cost = 0;
  int status = 0;     // HTTP status given to the client (200 also for streams that failed later)
  std::string error;  // empty on success; else why it failed (upstream error, client gone, ...)
  int64_t latency_ms = 0;
  int64_t ttfb_ms = 0;
  bool streamed = false;
  std::string stop_reason;
  int attempts = 0;

  std::string ToJson() const;
  static Result<UsageRecord> FromJson(std::string_view text);
};

// Usage and stop reason of a complete non-streaming response body of API `format`.
Usage UsageFromResponse(ApiFormat format, std::string_view body, std::string* stop_reason);

// Follows one upstream stream (events in the upstream's format) for usage accounting.
class StreamUsageTracker {
 public:
  explicit StreamUsageTracker(ApiFormat format) : format_(format) {}
  void OnEvent(const ParsedSseEvent& event);
  // The usage so far; estimates output tokens from the delivered text when none were reported.
  Usage usage() const;
  const std::string& stop_reason() const { return stop_reason_; }
  // True once the upstream signalled the end of the message (message_stop / [DONE]).
  bool completed() const { return completed_; }
  // The upstream's in-stream error, if one came.
  const std::string& error() const { return error_; }

 private:
  ApiFormat format_;
  Usage usage_;
  bool output_reported_ = false;
  int64_t delivered_chars_ = 0;
  std::string stop_reason_;
  bool completed_ = false;
  std::string error_;
};

// Rough token count of a text (about four characters per token, at least one for non-empty).
int64_t EstimateTokens(int64_t chars);

// Prices in US dollars per million tokens.
struct ModelPrice {
  std::string pattern;  // model glob
  double input = 0, output = 0, cache_write = 0, cache_read = 0;
};

// The pricing table: the bundled defaults (BundledPricingJson) overlaid with overrides. The most
// specific pattern (longest, fewest wildcards) matching a model wins. Immutable: thread-safe.
class PriceTable {
 public:
  // Parses {"models":{"<glob>":{"input":..,"output":..,"cache_write":..,"cache_read":..}}}.
  // InvalidArgument naming the bad entry.
  static Result<PriceTable> FromJson(std::string_view json);
  // Later entries (overrides) replace earlier ones with the same pattern.
  void Merge(const PriceTable& other);
  void Set(ModelPrice price);
  // The most specific entry whose pattern matches `model`, null when none does. Answers are
  // remembered per model name (up to 4,096 names, then forgotten all at once), so a request's
  // lookups do not each walk every pattern.
  const ModelPrice* Find(std::string_view model) const;
  // Cost in dollars of `usage` for `model` (0 for unknown models), times `multiplier`.
  double Cost(std::string_view model, const Usage& usage, double multiplier = 1.0) const;
  // The same for a price already found (0 for null).
  static double CostAt(const ModelPrice* price, const Usage& usage, double multiplier = 1.0);
  const std::vector<ModelPrice>& prices() const { return prices_; }
  std::string ToJson() const;

 private:
  // Set without Reorder (FromJson and Merge reorder once, after all their entries).
  void Put(ModelPrice price);
  void Reorder();

  std::vector<ModelPrice> prices_;
  // Indexes into prices_, most specific pattern first (ties: earlier entry first), so that the
  // first match is the best one.
  std::vector<size_t> by_specificity_;

  // Find's answers: model name -> index into prices_ (kNone when no pattern matches). Shared by
  // copies of the table, which hold the same prices_; every change builds a new one (Reorder).
  struct Memo {
    static constexpr size_t kNone = static_cast<size_t>(-1);
    static constexpr size_t kMaxNames = 4096;
    std::mutex mu;
    std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> index;  // guarded by mu
  };
  std::shared_ptr<Memo> memo_ = std::make_shared<Memo>();
};

// The pricing JSON compiled into the binary (services/relay/src/pricing.json).
std::string_view BundledPricingJson();

}  // namespace atrium::relay
