// The Redis second tier against a real redis-server (fixture `redis`): two replicas with their
// own in-process caches share work through it.
#include "atrium/embed/redis_tier.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <future>
#include <string>

#include "atrium/core/metrics.h"
#include "atrium/core/testing.h"
#include "atrium/embed/scheduler.h"
#include "atrium/store/redis_client.h"
#include "fake_model.h"

namespace atrium::embed {
namespace {

using testing::FakeModel;

class RedisTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string url = atrium::testing::FixtureUrl("redis", "ATRIUM_TEST_REDIS_URL");
    if (url.empty()) GTEST_SKIP() << "no Redis test server (redis fixture)";
    auto redis = store::RedisClient::Connect({.url = url});
    ASSERT_TRUE(redis.ok()) << redis.status().ToString();
    redis_ = std::move(*redis);
    // A prefix of this process and test, never FLUSHDB: the Redis fixture is shared with the
    // suites ctest runs at the same time (the auth rate limiter's buckets live there too).
    prefix_ = "test:embed:" + std::to_string(::getpid()) + ":" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ":";
  }

  Result<std::vector<CachedVector>> Run(ModelScheduler& scheduler,
                                        std::vector<std::vector<int32_t>> inputs) {
    auto promise = std::make_shared<std::promise<Result<std::vector<CachedVector>>>>();
    auto future = promise->get_future();
    EmbedJob job;
    job.inputs = std::move(inputs);
    job.pooling = infer::Pooling::kMean;
    job.done = [promise](Result<std::vector<CachedVector>> r) { promise->set_value(std::move(r)); };
    Status s = scheduler.Submit(std::move(job));
    if (!s.ok()) return s;
    return future.get();
  }

  std::shared_ptr<store::RedisClient> redis_;
  std::string prefix_;
};

TEST_F(RedisTierTest, ASecondReplicaIsServedFromRedis) {
  MetricsRegistry metrics;
  auto tier = std::make_shared<RedisTier>(redis_, std::chrono::seconds(60), prefix_, &metrics);
  FakeModel model_a, model_b;
  ResultCache cache_a(CachePolicy::kLru, 1 << 20), cache_b(CachePolicy::kArc, 1 << 20);
  cache_a.SetSecondTier(tier);
  cache_b.SetSecondTier(tier);
  ModelScheduler a("fake", model_a, {}, &cache_a, nullptr);
  ModelScheduler b("fake", model_b, {}, &cache_b, nullptr);
  std::vector<std::vector<int32_t>> inputs = {{2, 5, 6, 3}, {2, 7, 3}};
  auto first = Run(a, inputs);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(model_a.calls().size(), 1u);

  auto second = Run(b, {{2, 7, 3}, {2, 5, 6, 3}, {2, 9, 3}});
  ASSERT_TRUE(second.ok());
  // Only the input replica A never saw reached B's engine.
  ASSERT_EQ(model_b.calls().size(), 1u);
  EXPECT_EQ(model_b.calls()[0], 1u);
  EXPECT_EQ(*(*second)[0], *(*first)[1]);
  EXPECT_EQ(*(*second)[1], *(*first)[0]);
  EXPECT_NE(metrics.ExpositionText().find("embed_cache_tier_hits_total 2"), std::string::npos);

  auto keys = redis_->Command({"KEYS", prefix_ + "*"});
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->elements.size(), 3u);
  auto one_ttl = redis_->Command({"TTL", keys->elements[0].str});
  ASSERT_TRUE(one_ttl.ok());
  EXPECT_GT(one_ttl->integer, 0);
  EXPECT_LE(one_ttl->integer, 60);
}

TEST_F(RedisTierTest, UnknownKeysAreMisses) {
  MetricsRegistry metrics;
  RedisTier tier(redis_, std::chrono::seconds(60), prefix_, &metrics);
  auto missing = tier.GetMany({"never-stored"});
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0], nullptr);
  EXPECT_NE(metrics.ExpositionText().find("embed_cache_tier_misses_total 1"), std::string::npos);
}

}  // namespace
}  // namespace atrium::embed
