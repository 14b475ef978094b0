#include "atrium/auth/rate_limiter.h"

#include <algorithm>
#include <charconv>

#include "atrium/auth/principal.h"
#include "atrium/core/config.h"

namespace atrium::auth {

Result<RateLimit> ParseRateLimit(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("rate limit '" + std::string(text) +
                           "' must read limit/period[:burst], e.g. 10/1m");
  };
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return bad();
  RateLimit r;
  auto lim = text.substr(0, slash);
  if (std::from_chars(lim.data(), lim.data() + lim.size(), r.limit).ec != std::errc() ||
      r.limit <= 0) {
    return bad();
  }
  std::string_view rest = text.substr(slash + 1);
  size_t colon = rest.find(':');
  auto period = ParseDuration(rest.substr(0, colon));
  if (!period.ok() || period->count() <= 0) return bad();
  r.period = std::chrono::duration_cast<std::chrono::microseconds>(*period);
  if (colon != std::string_view::npos) {
    auto b = rest.substr(colon + 1);
    if (std::from_chars(b.data(), b.data() + b.size(), r.burst).ec != std::errc() || r.burst <= 0)
      return bad();
  }
  return r;
}

InMemoryRateLimiter::InMemoryRateLimiter(std::function<int64_t()> now_micros, int shards)
    : now_(std::move(now_micros)) {
  if (!now_) {
    now_ = [] {
      return std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
  }
  for (int i = 0; i < std::max(1, shards); ++i) shards_.push_back(std::make_unique<Shard>());
}

size_t InMemoryRateLimiter::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s->mu);
    n += s->tat.size();
  }
  return n;
}

Result<RateDecision> InMemoryRateLimiter::Acquire(std::string_view key, const RateLimit& limit,
                                                  int64_t cost) {
  if (limit.limit <= 0 || limit.period.count() <= 0 || cost < 0) {
    return InvalidArgument("invalid rate limit");
  }
  const int64_t interval = std::max<int64_t>(1, limit.period.count() / limit.limit);
  const int64_t burst = limit.effective_burst();
  const int64_t tolerance = interval * burst;  // how far TAT may run ahead of now
  Shard& shard = *shards_[std::hash<std::string_view>{}(key) % shards_.size()];
  int64_t now = now_();
  RateDecision d;
  d.limit = burst;
  std::lock_guard lock(shard.mu);
  // Forget buckets that are full again, at most once per tolerance window per shard.
  if (now >= shard.next_sweep) {
    std::erase_if(shard.tat, [now](const auto& kv) { return kv.second <= now; });
    shard.next_sweep = now + tolerance;
  }
  auto it = shard.tat.find(std::string(key));
  int64_t tat = it == shard.tat.end() ? now : std::max(it->second, now);
  int64_t new_tat = tat + interval * cost;
  int64_t allow_at = new_tat - tolerance;
  if (now < allow_at) {
    d.allowed = false;
    d.retry_after = std::chrono::microseconds(allow_at - now);
    d.remaining = 0;
    d.reset_after = std::chrono::microseconds(tat - now);
    return d;
  }
  d.allowed = true;
  if (it == shard.tat.end()) {
    shard.tat.emplace(std::string(key), new_tat);
  } else {
    it->second = new_tat;
  }
  d.remaining = std::max<int64_t>(0, (now - (new_tat - tolerance)) / interval);
  d.reset_after = std::chrono::microseconds(new_tat - now);
  return d;
}

namespace {
int64_t CeilSeconds(std::chrono::microseconds d) { return (d.count() + 999999) / 1000000; }
}  // namespace

void SetRateLimitHeaders(const RateDecision& d, http::Headers& headers) {
  headers.Set("x-ratelimit-limit", std::to_string(d.limit));
  headers.Set("x-ratelimit-remaining", std::to_string(d.remaining));
  headers.Set("x-ratelimit-reset", std::to_string(CeilSeconds(d.reset_after)));
  if (!d.allowed)
    headers.Set("retry-after", std::to_string(std::max<int64_t>(1, CeilSeconds(d.retry_after))));
}

RateLimitMiddleware::RateLimitMiddleware(std::shared_ptr<RateLimiter> limiter,
                                         std::map<std::string, RateLimit, std::less<>> classes)
    : limiter_(std::move(limiter)), classes_(std::move(classes)) {}

namespace {
// The decision travels from OnRequest to OnResponse in a request header that clients cannot
// forge (it is overwritten on every limited request and removed otherwise).
constexpr std::string_view kDecisionHeader = "x-atrium-internal-ratelimit";
}  // namespace

std::optional<http::Response> RateLimitMiddleware::OnRequest(http::Request& request) {
  request.headers.Remove(kDecisionHeader);
  if (request.route == nullptr || request.route->options.rate_limit_class.empty()) {
    return std::nullopt;
  }
  const std::string& cls = request.route->options.rate_limit_class;
  auto it = classes_.find(cls);
  if (it == classes_.end()) return std::nullopt;
  std::string key = cls + "|";
  const auto* p = std::any_cast<Principal>(&request.principal);
  if (p != nullptr && !p->key_id.empty()) {
    key += "key:" + p->key_id;
  } else if (p != nullptr && !p->user_id.empty()) {
    key += "user:" + p->user_id;
  } else {
    std::string_view addr = request.remote_addr;
    size_t colon = addr.rfind(':');
    key += "ip:" + std::string(colon == std::string_view::npos ? addr : addr.substr(0, colon));
  }
  RateLimit limit = it->second;
  if (p != nullptr && p->is_api_key() && p->key_rpm > 0) {
    limit = RateLimit{.limit = p->key_rpm, .period = std::chrono::minutes(1)};
  }
  auto d = limiter_->Acquire(key, limit);
  if (!d.ok()) return std::nullopt;  // fail open, see the header comment
  if (!d->allowed) {
    http::Response r = http::Response::FromStatus(
        ResourceExhausted("rate limit exceeded for " + cls + "; retry later"));
    SetRateLimitHeaders(*d, r.headers);
    return r;
  }
  request.headers.Set(kDecisionHeader, std::to_string(d->limit) + " " +
                                           std::to_string(d->remaining) + " " +
                                           std::to_string(d->reset_after.count()));
  return std::nullopt;
}

void RateLimitMiddleware::OnResponse(const http::Request& request, http::Response& response) {
  auto v = request.headers.Get(kDecisionHeader);
  if (!v) return;
  RateDecision d;
  d.allowed = true;
  long long reset = 0;
  if (std::sscanf(std::string(*v).c_str(), "%ld %ld %lld", &d.limit, &d.remaining, &reset) != 3)
    return;
  d.reset_after = std::chrono::microseconds(reset);
  SetRateLimitHeaders(d, response.headers);
}

}  // namespace atrium::auth
