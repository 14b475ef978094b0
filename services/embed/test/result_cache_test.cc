#include "atrium/embed/result_cache.h"

#include <gtest/gtest.h>

#include <string>

#include "atrium/core/metrics.h"

namespace atrium::embed {
namespace {

CachedVector Vec(size_t n, float fill = 1.0f) {
  return std::make_shared<const std::vector<float>>(n, fill);
}

// Keys of equal length below 100.
std::string Key(int i) { return (i < 10 ? "key0" : "key") + std::to_string(i); }

// Room for exactly `entries` entries of Key(i) (i < 100) and 10-float vectors.
size_t Room(size_t entries) {
  return entries * ResultCache::EntryBytes(Key(0), std::vector<float>(10));
}

TEST(ResultCacheTest, ParsesPolicyNames) {
  EXPECT_EQ(*ParseCachePolicy("lru"), CachePolicy::kLru);
  EXPECT_EQ(*ParseCachePolicy("lfu"), CachePolicy::kLfu);
  EXPECT_EQ(*ParseCachePolicy("arc"), CachePolicy::kArc);
  EXPECT_EQ(ParseCachePolicy("fifo").status().code(), StatusCode::kInvalidArgument);
}

class EveryPolicy : public ::testing::TestWithParam<CachePolicy> {};

TEST_P(EveryPolicy, HitsReturnWhatWasStoredAndCountsAreKept) {
  MetricsRegistry metrics;
  ResultCache cache(GetParam(), Room(8), &metrics);
  EXPECT_EQ(cache.Get(Key(1)), nullptr);
  cache.Put(Key(1), Vec(10, 0.5f));
  auto hit = cache.Get(Key(1));
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ((*hit)[3], 0.5f);
  auto stats = cache.stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.entries, 1u);
  std::string text = metrics.ExpositionText();
  EXPECT_NE(text.find("embed_cache_hits_total 1"), std::string::npos);
  EXPECT_NE(text.find("embed_cache_misses_total 1"), std::string::npos);
}

TEST_P(EveryPolicy, NeverHoldsMoreBytesThanItsCapacity) {
  ResultCache cache(GetParam(), Room(5));
  for (int i = 0; i < 200; ++i) {
    cache.Put(Key(i % 37), Vec(10));
    cache.Get(Key((i * 7) % 41));
    ASSERT_LE(cache.stats().bytes, Room(5));
  }
  EXPECT_EQ(cache.stats().entries, 5u);
  EXPECT_GT(cache.stats().evictions, 0u);
}

TEST_P(EveryPolicy, AnEntryLargerThanTheCacheIsNotKept) {
  ResultCache cache(GetParam(), Room(2));
  cache.Put("big", Vec(1000));
  EXPECT_EQ(cache.Get("big"), nullptr);
  EXPECT_EQ(cache.stats().bytes, 0u);
}

TEST_P(EveryPolicy, ZeroBytesDisablesTheCache) {
  ResultCache cache(GetParam(), 0);
  cache.Put(Key(1), Vec(10));
  EXPECT_EQ(cache.Get(Key(1)), nullptr);
  EXPECT_FALSE(cache.enabled());
}

TEST_P(EveryPolicy, ReplacingAKeyKeepsOneEntry) {
  ResultCache cache(GetParam(), Room(4));
  cache.Put(Key(1), Vec(10, 1.0f));
  cache.Put(Key(1), Vec(10, 2.0f));
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ((*cache.Get(Key(1)))[0], 2.0f);
}

INSTANTIATE_TEST_SUITE_P(Policies, EveryPolicy,
                         ::testing::Values(CachePolicy::kLru, CachePolicy::kLfu, CachePolicy::kArc),
                         [](const auto& info) {
                           switch (info.param) {
                             case CachePolicy::kLru:
                               return std::string("Lru");
                             case CachePolicy::kLfu:
                               return std::string("Lfu");
                             default:
                               return std::string("Arc");
                           }
                         });

TEST(LruTest, EvictsTheLeastRecentlyUsed) {
  ResultCache cache(CachePolicy::kLru, Room(3));
  cache.Put(Key(1), Vec(10));
  cache.Put(Key(2), Vec(10));
  cache.Put(Key(3), Vec(10));
  cache.Get(Key(1));           // 2 is now the least recent
  cache.Put(Key(4), Vec(10));  // evicts 2
  EXPECT_NE(cache.Get(Key(1)), nullptr);
  EXPECT_EQ(cache.Get(Key(2)), nullptr);
  EXPECT_NE(cache.Get(Key(3)), nullptr);
  EXPECT_NE(cache.Get(Key(4)), nullptr);
}

TEST(LfuTest, EvictsTheLeastFrequentlyUsed) {
  ResultCache cache(CachePolicy::kLfu, Room(3));
  cache.Put(Key(1), Vec(10));
  cache.Put(Key(2), Vec(10));
  cache.Put(Key(3), Vec(10));
  for (int i = 0; i < 3; ++i) cache.Get(Key(1));
  cache.Get(Key(3));
  cache.Put(Key(4), Vec(10));  // 2 was never read
  EXPECT_EQ(cache.Get(Key(2)), nullptr);
  EXPECT_NE(cache.Get(Key(1)), nullptr);
  EXPECT_NE(cache.Get(Key(3)), nullptr);
}

TEST(ArcTest, FrequentEntriesSurviveAOneTimeScan) {
  // Entries read twice live in T2; a long scan of new keys only churns T1.
  ResultCache cache(CachePolicy::kArc, Room(4));
  cache.Put(Key(1), Vec(10));
  cache.Put(Key(2), Vec(10));
  cache.Get(Key(1));
  cache.Get(Key(2));
  for (int i = 100; i < 200; ++i) cache.Put(Key(i), Vec(10));
  EXPECT_NE(cache.Get(Key(1)), nullptr);
  EXPECT_NE(cache.Get(Key(2)), nullptr);
  // The same scan flushes an LRU cache.
  ResultCache lru(CachePolicy::kLru, Room(4));
  lru.Put(Key(1), Vec(10));
  lru.Get(Key(1));
  for (int i = 100; i < 200; ++i) lru.Put(Key(i), Vec(10));
  EXPECT_EQ(lru.Get(Key(1)), nullptr);
}

TEST(ArcTest, AGhostHitBringsTheKeyBackAsFrequent) {
  ResultCache cache(CachePolicy::kArc, Room(2));
  cache.Put(Key(1), Vec(10));
  cache.Put(Key(2), Vec(10));
  cache.Put(Key(3), Vec(10));  // 1 → ghost list B1
  EXPECT_EQ(cache.Get(Key(1)), nullptr);
  cache.Put(Key(1), Vec(10));  // ghost hit: into T2
  EXPECT_NE(cache.Get(Key(1)), nullptr);
  EXPECT_LE(cache.stats().bytes, Room(2));
}

}  // namespace
}  // namespace atrium::embed
