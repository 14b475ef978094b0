// The embedding cache's second tier in Redis: vectors stored as raw float32 bytes under
// "<prefix><sha256 of the cache key>" with a TTL, read with one MGET per request and written with
// one scripted multi-SET per batch. Errors (Redis down, slow) count as misses and are logged by
// the metrics embed_cache_tier_errors_total; serving never fails because of the tier.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "atrium/embed/result_cache.h"

namespace atrium {
class MetricsRegistry;
class Counter;
namespace store {
class RedisClient;
}
}  // namespace atrium

namespace atrium::embed {

class RedisTier final : public SecondTier {
 public:
  RedisTier(std::shared_ptr<store::RedisClient> redis, std::chrono::seconds ttl,
            std::string prefix = "atrium:embed:", MetricsRegistry* metrics = nullptr);

  std::vector<CachedVector> GetMany(const std::vector<std::string>& keys) override;
  void PutMany(const std::vector<std::string>& keys,
               const std::vector<CachedVector>& values) override;

 private:
  std::string RedisKey(const std::string& key) const;

  std::shared_ptr<store::RedisClient> redis_;
  std::chrono::seconds ttl_;
  std::string prefix_;
  Counter* hits_ = nullptr;
  Counter* misses_ = nullptr;
  Counter* errors_ = nullptr;
};

}  // namespace atrium::embed
