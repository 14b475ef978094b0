// Rate limiting: the GCRA (generic cell rate algorithm, a token bucket without a refill timer)
// behind the RateLimiter interface, and the http::Middleware that applies it per route class.
//
// A limit is `limit` requests per `period` with bursts of up to `burst` requests. The in-memory
// implementation keeps one "theoretical arrival time" per key in shards (a mutex each) so that
// contention stays low; it forgets keys whose bucket is full again. A Redis implementation (one
// atomic Lua script) is planned behind the same interface for several nodes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/server.h"

namespace atrium::auth {

struct RateLimit {
  int64_t limit = 0;                    // requests per period (> 0)
  std::chrono::microseconds period{0};  // (> 0)
  int64_t burst = 0;                    // 0 = same as limit
  int64_t effective_burst() const { return burst > 0 ? burst : limit; }
};

// "10/1m", "600/1h", "5/10s:2" (limit/period[:burst]); InvalidArgument otherwise.
Result<RateLimit> ParseRateLimit(std::string_view text);

struct RateDecision {
  bool allowed = false;
  int64_t limit = 0;      // the burst size (x-ratelimit-limit)
  int64_t remaining = 0;  // requests still allowed right now (x-ratelimit-remaining)
  std::chrono::microseconds retry_after{0};  // when denied: wait this long (Retry-After)
  std::chrono::microseconds reset_after{0};  // until the bucket is full again (x-ratelimit-reset)
};

// Thread-safe.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Takes `cost` requests from the bucket of `key` if they fit. Unavailable when the backing
  // store is unreachable (callers decide whether to fail open or closed).
  virtual Result<RateDecision> Acquire(std::string_view key, const RateLimit& limit,
                                       int64_t cost = 1) = 0;
};

class InMemoryRateLimiter : public RateLimiter {
 public:
  // `now_micros` is the clock (injected in tests); null uses the steady clock.
  explicit InMemoryRateLimiter(std::function<int64_t()> now_micros = nullptr, int shards = 16);
  Result<RateDecision> Acquire(std::string_view key, const RateLimit& limit,
                               int64_t cost = 1) override;
  // Keys currently tracked (tests, metrics).
  size_t size() const;

 private:
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, int64_t> tat;  // guarded by mu: key -> theoretical arrival
    int64_t next_sweep = 0;                        // guarded by mu
  };
  std::function<int64_t()> now_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// Applies RouteOptions::rate_limit_class. The key is the principal's API key, else its user, else
// the client IP, prefixed by the class. Denied requests get 429 with Retry-After; every limited
// response carries x-ratelimit-limit/remaining/reset. Fails open (with a log line) when the
// limiter is unavailable: availability of the API outweighs a lost limit. Must run after the
// AuthMiddleware so the principal is known. Thread-safe.
class RateLimitMiddleware : public http::Middleware {
 public:
  RateLimitMiddleware(std::shared_ptr<RateLimiter> limiter,
                      std::map<std::string, RateLimit, std::less<>> classes);
  std::optional<http::Response> OnRequest(http::Request& request) override;
  void OnResponse(const http::Request& request, http::Response& response) override;

 private:
  std::shared_ptr<RateLimiter> limiter_;
  std::map<std::string, RateLimit, std::less<>> classes_;
};

// Sets the three x-ratelimit headers (and Retry-After when denied) from a decision.
void SetRateLimitHeaders(const RateDecision& d, http::Headers& headers);

}  // namespace atrium::auth
