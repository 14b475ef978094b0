#include "atrium/auth/redis_rate_limiter.h"

#include <algorithm>

namespace atrium::auth {
namespace {

// KEYS[1] = bucket; ARGV = interval_us, burst, cost, now_us ("" = server TIME).
// Returns {allowed, remaining, retry_after_us, reset_after_us}; mirrors InMemoryRateLimiter.
constexpr const char* kGcraScript = R"lua(
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
if ttl_ms < 1 then ttl_ms = 1 end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
local remaining = math.floor((now - (new_tat - tolerance)) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0, new_tat - now}
)lua";

}  // namespace

RedisRateLimiter::RedisRateLimiter(std::shared_ptr<store::RedisClient> redis,
                                   std::string key_prefix, std::function<int64_t()> now_micros)
    : redis_(std::move(redis)), prefix_(std::move(key_prefix)), now_(std::move(now_micros)) {}

Result<RateDecision> RedisRateLimiter::Acquire(std::string_view key, const RateLimit& limit,
                                               int64_t cost) {
  if (limit.limit <= 0 || limit.period.count() <= 0 || cost < 0) {
    return InvalidArgument("invalid rate limit");
  }
  const int64_t interval = std::max<int64_t>(1, limit.period.count() / limit.limit);
  const int64_t burst = limit.effective_burst();
  std::vector<std::string> args{std::to_string(interval), std::to_string(burst),
                                std::to_string(cost), now_ ? std::to_string(now_()) : ""};
  ASSIGN_OR_RETURN(store::RedisReply r,
                   redis_->Eval(kGcraScript, {prefix_ + std::string(key)}, args));
  if (r.type != store::RedisReply::Type::kArray || r.elements.size() != 4) {
    return Internal("redis rate limiter: unexpected script reply");
  }
  RateDecision d;
  d.limit = burst;
  d.allowed = r.elements[0].integer == 1;
  d.remaining = r.elements[1].integer;
  d.retry_after = std::chrono::microseconds(r.elements[2].integer);
  d.reset_after = std::chrono::microseconds(r.elements[3].integer);
  return d;
}

}  // namespace atrium::auth
