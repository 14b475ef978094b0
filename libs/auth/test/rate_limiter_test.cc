// One GCRA test suite, run on the in-memory limiter and on the Redis one (redis fixture).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "atrium/auth/rate_limiter.h"
#include "atrium/auth/redis_rate_limiter.h"
#include "atrium/core/testing.h"
#include "atrium/store/redis_client.h"

namespace atrium::auth {
namespace {

std::string RedisUrl() { return atrium::testing::FixtureUrl("redis", "ATRIUM_TEST_REDIS_URL"); }

class RateLimiterTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    clock_ = std::make_shared<std::atomic<int64_t>>(1'700'000'000'000'000);
    auto now = [c = clock_] { return c->load(); };
    if (GetParam() == "memory") {
      limiter_ = std::make_shared<InMemoryRateLimiter>(now);
      return;
    }
    std::string url = RedisUrl();
    if (url.empty()) GTEST_SKIP() << "no Redis test server (redis fixture)";
    auto redis = store::RedisClient::Connect({.url = url});
    ASSERT_TRUE(redis.ok()) << redis.status().ToString();
    redis_ = std::shared_ptr<store::RedisClient>(std::move(*redis));
    // A fresh prefix per test keeps runs independent on a shared server.
    prefix_ =
        "atrium:test:rl:" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
        ":" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ":";
    limiter_ = std::make_shared<RedisRateLimiter>(redis_, prefix_, now);
  }
  void Advance(int64_t micros) { *clock_ += micros; }

  std::shared_ptr<std::atomic<int64_t>> clock_;
  std::shared_ptr<store::RedisClient> redis_;
  std::string prefix_;
  std::shared_ptr<RateLimiter> limiter_;
};

TEST_P(RateLimiterTest, AllowsBurstThenSpacesRequests) {
  RateLimit limit{.limit = 10, .period = std::chrono::seconds(10), .burst = 3};
  for (int i = 0; i < 3; ++i) {
    auto d = limiter_->Acquire("k", limit);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_TRUE(d->allowed) << i;
    EXPECT_EQ(d->limit, 3);
    EXPECT_EQ(d->remaining, 2 - i);
  }
  auto denied = limiter_->Acquire("k", limit);
  ASSERT_TRUE(denied.ok());
  EXPECT_FALSE(denied->allowed);
  EXPECT_EQ(denied->remaining, 0);
  EXPECT_EQ(denied->retry_after, std::chrono::seconds(1));
  Advance(999'999);
  EXPECT_FALSE(limiter_->Acquire("k", limit)->allowed);
  Advance(1);
  EXPECT_TRUE(limiter_->Acquire("k", limit)->allowed);
}

TEST_P(RateLimiterTest, KeysAreIndependent) {
  RateLimit limit{.limit = 1, .period = std::chrono::minutes(1)};
  EXPECT_TRUE(limiter_->Acquire("a", limit)->allowed);
  EXPECT_FALSE(limiter_->Acquire("a", limit)->allowed);
  EXPECT_TRUE(limiter_->Acquire("b", limit)->allowed);
}

TEST_P(RateLimiterTest, BucketRefillsCompletely) {
  RateLimit limit{.limit = 60, .period = std::chrono::minutes(1)};
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(limiter_->Acquire("k", limit)->allowed) << i;
  auto denied = limiter_->Acquire("k", limit);
  EXPECT_FALSE(denied->allowed);
  EXPECT_EQ(denied->reset_after, std::chrono::minutes(1));
  Advance(60'000'000);
  auto d = limiter_->Acquire("k", limit);
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(d->remaining, 59);
}

TEST_P(RateLimiterTest, CostTakesSeveralTokens) {
  RateLimit limit{.limit = 100, .period = std::chrono::seconds(100), .burst = 10};
  auto d = limiter_->Acquire("tokens", limit, 7);
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(d->remaining, 3);
  EXPECT_FALSE(limiter_->Acquire("tokens", limit, 4)->allowed);
  EXPECT_TRUE(limiter_->Acquire("tokens", limit, 3)->allowed);
}

TEST_P(RateLimiterTest, InvalidLimitIsRejected) {
  EXPECT_EQ(limiter_->Acquire("k", RateLimit{.limit = 0, .period = std::chrono::seconds(1)})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST_P(RateLimiterTest, ConcurrentCallersNeverExceedTheBurst) {
  RateLimit limit{.limit = 50, .period = std::chrono::hours(1)};
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto d = limiter_->Acquire("shared", limit);
        if (d.ok() && d->allowed) ++allowed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 50);
}

INSTANTIATE_TEST_SUITE_P(Backends, RateLimiterTest, ::testing::Values("memory", "redis"),
                         [](const auto& info) { return info.param; });

TEST(RedisRateLimiterTest, UsesTheServerClockWhenNoneIsInjected) {
  std::string url = RedisUrl();
  if (url.empty()) GTEST_SKIP() << "no Redis test server (redis fixture)";
  auto redis = store::RedisClient::Connect({.url = url});
  ASSERT_TRUE(redis.ok());
  RedisRateLimiter limiter(std::shared_ptr<store::RedisClient>(std::move(*redis)),
                           "atrium:test:rl:server-clock:" +
                               std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  RateLimit limit{.limit = 2, .period = std::chrono::hours(1)};
  EXPECT_TRUE(limiter.Acquire("k", limit)->allowed);
  EXPECT_TRUE(limiter.Acquire("k", limit)->allowed);
  auto denied = limiter.Acquire("k", limit);
  EXPECT_FALSE(denied->allowed);
  EXPECT_GT(denied->retry_after, std::chrono::minutes(29));
}

TEST(RedisRateLimiterTest, UnreachableRedisIsUnavailable) {
  std::string url = RedisUrl();
  if (url.empty()) GTEST_SKIP() << "no Redis test server (redis fixture)";
  auto redis = store::RedisClient::Connect({.url = url});
  ASSERT_TRUE(redis.ok());
  auto client = std::shared_ptr<store::RedisClient>(std::move(*redis));
  // Point a second client at a closed port: its first command fails as Unavailable.
  auto dead = store::RedisClient::Connect({.url = "redis://127.0.0.1:1"});
  EXPECT_EQ(dead.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace atrium::auth
