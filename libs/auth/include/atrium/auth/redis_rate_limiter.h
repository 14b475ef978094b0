// RedisRateLimiter: the same GCRA as InMemoryRateLimiter, kept in Redis so that every node of a
// scale-out deployment shares one bucket per key. One Lua script reads and updates the bucket
// atomically; the key expires when the bucket is full again. Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "atrium/auth/rate_limiter.h"
#include "atrium/store/redis_client.h"

namespace atrium::auth {

class RedisRateLimiter : public RateLimiter {
 public:
  // `now_micros`: the clock passed to the script (tests inject one); when null the script uses
  // the Redis server's TIME, so nodes with skewed clocks still agree.
  RedisRateLimiter(std::shared_ptr<store::RedisClient> redis, std::string key_prefix = "atrium:rl:",
                   std::function<int64_t()> now_micros = nullptr);

  // Unavailable when Redis cannot be reached.
  Result<RateDecision> Acquire(std::string_view key, const RateLimit& limit,
                               int64_t cost = 1) override;

 private:
  std::shared_ptr<store::RedisClient> redis_;
  std::string prefix_;
  std::function<int64_t()> now_;
};

}  // namespace atrium::auth
