#include "atrium/embed/redis_tier.h"

#include <openssl/evp.h>

#include <cstring>

#include "atrium/core/metrics.h"
#include "atrium/store/redis_client.h"

namespace atrium::embed {
namespace {

// SET every KEYS[i] to ARGV[i + 1] with an expiry of ARGV[1] seconds, in one round trip.
constexpr std::string_view kMultiSetScript = R"lua(
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
)lua";

}  // namespace

RedisTier::RedisTier(std::shared_ptr<store::RedisClient> redis, std::chrono::seconds ttl,
                     std::string prefix, MetricsRegistry* metrics)
    : redis_(std::move(redis)), ttl_(ttl), prefix_(std::move(prefix)) {
  if (metrics != nullptr) {
    hits_ = &metrics->Counter("embed_cache_tier_hits_total", "Hits in the Redis cache tier").Get();
    misses_ =
        &metrics->Counter("embed_cache_tier_misses_total", "Misses in the Redis cache tier").Get();
    errors_ = &metrics
                   ->Counter("embed_cache_tier_errors_total",
                             "Redis cache tier calls that failed (counted as misses)")
                   .Get();
  }
}

std::string RedisTier::RedisKey(const std::string& key) const {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(key.data(), key.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = prefix_;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::vector<CachedVector> RedisTier::GetMany(const std::vector<std::string>& keys) {
  std::vector<CachedVector> out(keys.size());
  if (keys.empty()) return out;
  std::vector<std::string> args = {"MGET"};
  for (const auto& k : keys) args.push_back(RedisKey(k));
  auto reply = redis_->Command(args);
  if (!reply.ok() || reply->type != store::RedisReply::Type::kArray ||
      reply->elements.size() != keys.size()) {
    if (errors_ != nullptr) errors_->Inc();
    return out;
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& e = reply->elements[i];
    if (e.type != store::RedisReply::Type::kString || e.str.empty() ||
        e.str.size() % sizeof(float) != 0) {
      if (misses_ != nullptr) misses_->Inc();
      continue;
    }
    auto v = std::make_shared<std::vector<float>>(e.str.size() / sizeof(float));
    std::memcpy(v->data(), e.str.data(), e.str.size());
    out[i] = std::move(v);
    if (hits_ != nullptr) hits_->Inc();
  }
  return out;
}

void RedisTier::PutMany(const std::vector<std::string>& keys,
                        const std::vector<CachedVector>& values) {
  std::vector<std::string> redis_keys;
  std::vector<std::string> args = {std::to_string(ttl_.count())};
  for (size_t i = 0; i < keys.size() && i < values.size(); ++i) {
    if (values[i] == nullptr) continue;
    redis_keys.push_back(RedisKey(keys[i]));
    args.emplace_back(reinterpret_cast<const char*>(values[i]->data()),
                      values[i]->size() * sizeof(float));
  }
  if (redis_keys.empty()) return;
  if (!redis_->Eval(kMultiSetScript, redis_keys, args).ok() && errors_ != nullptr) {
    errors_->Inc();
  }
}

}  // namespace atrium::embed
