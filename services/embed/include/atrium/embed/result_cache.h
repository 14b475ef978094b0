// The embed service's exact-match result cache: input → pooled embedding, bounded in bytes.
//
// Keys are opaque byte strings built by the service from (model, token ids, pooling); values are
// the pooled, not yet normalized vectors, so one entry serves every `normalize` and `dimensions`
// variant of the same input (normalization and Matryoshka truncation are applied per request).
// Eviction policies are extensions behind one interface: `lru` (least recently used), `lfu`
// (least frequently used, ties broken by recency, O(1)) and `arc` (adaptive replacement cache:
// balances recency and frequency with ghost lists, scan resistant). Capacity counts key and
// value bytes plus a fixed per-entry overhead; an entry larger than the whole cache is not kept.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/core/status.h"

namespace atrium {
class MetricsRegistry;
class Counter;
}  // namespace atrium

namespace atrium::embed {

enum class CachePolicy { kLru, kLfu, kArc };

// "lru", "lfu", "arc"; InvalidArgument otherwise.
Result<CachePolicy> ParseCachePolicy(std::string_view name);

using CachedVector = std::shared_ptr<const std::vector<float>>;

// The policy interface (one implementation per policy in result_cache.cc).
class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual CachedVector Get(const std::string& key) = 0;
  virtual void Put(const std::string& key, CachedVector value, size_t bytes) = 0;
  virtual size_t bytes() const = 0;
  virtual size_t entries() const = 0;
  virtual uint64_t evictions() const = 0;
};

// An optional shared second tier behind the in-process cache (Redis in scale-out deployments, so
// replicas share their work). Failures are not errors for the caller: a tier that cannot answer
// reports misses and drops writes. Implementations must be thread-safe.
class SecondTier {
 public:
  virtual ~SecondTier() = default;
  // One lookup for many keys; result i is null on a miss.
  virtual std::vector<CachedVector> GetMany(const std::vector<std::string>& keys) = 0;
  virtual void PutMany(const std::vector<std::string>& keys,
                       const std::vector<CachedVector>& values) = 0;
};

class ResultCache {
 public:
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t evictions = 0;
    size_t entries = 0;
    size_t bytes = 0;
  };

  // `max_bytes` 0 disables the cache (every Get misses, Put keeps nothing). `metrics` may be
  // null; otherwise embed_cache_{hits,misses}_total and embed_cache_{bytes,entries} are kept.
  ResultCache(CachePolicy policy, size_t max_bytes, MetricsRegistry* metrics = nullptr);
  ~ResultCache();
  ResultCache(const ResultCache&) = delete;
  ResultCache& operator=(const ResultCache&) = delete;

  // The cached vector, or null on a miss.
  CachedVector Get(const std::string& key);
  void Put(const std::string& key, CachedVector value);
  Stats stats() const;
  bool enabled() const { return max_bytes_ > 0; }

  // Attaches a shared second tier (set once, before the cache is used; null = none). The
  // scheduler consults it for local misses and writes finished vectors to it.
  void SetSecondTier(std::shared_ptr<SecondTier> tier) { second_tier_ = std::move(tier); }
  SecondTier* second_tier() const { return second_tier_.get(); }

  // Bytes an entry is charged.
  static size_t EntryBytes(const std::string& key, const std::vector<float>& value);

 private:
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::unique_ptr<EvictionPolicy> policy_;  // guarded by mu_
  uint64_t hits_ = 0;                       // guarded by mu_
  uint64_t misses_ = 0;                     // guarded by mu_
  std::shared_ptr<SecondTier> second_tier_;
  Counter* hit_counter_ = nullptr;
  Counter* miss_counter_ = nullptr;
};

}  // namespace atrium::embed
