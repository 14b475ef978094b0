// Scale-out revocation: two AuthService instances (two "nodes") on one database share the
// revocation list through Redis at once, and fail closed when Redis is unreachable.
#include <gtest/gtest.h>

#include "atrium/auth/auth_service.h"
#include "atrium/core/testing.h"
#include "atrium/store/redis_client.h"
#include "test_db.h"

namespace atrium::auth {
namespace {

std::string RedisUrl() { return atrium::testing::FixtureUrl("redis", "ATRIUM_TEST_REDIS_URL"); }

class RedisRevocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string url = RedisUrl();
    if (url.empty()) GTEST_SKIP() << "no Redis test server (redis fixture)";
    auto redis = store::RedisClient::Connect({.url = url});
    ASSERT_TRUE(redis.ok()) << redis.status().ToString();
    redis_ = std::move(*redis);
    db_ = testing::OpenTestDatabase(testing::Backend::kSqlite, tmp_, "revocation");
    ASSERT_NE(db_, nullptr);
    node_a_ = MakeNode(redis_);
    node_b_ = MakeNode(redis_);
    auto user = node_a_->CreateUser("alice@example.com", "correct horse battery", "Alice", false);
    ASSERT_TRUE(user.ok()) << user.status().ToString();
    user_id_ = user->id;
  }

  std::unique_ptr<AuthService> MakeNode(std::shared_ptr<store::RedisClient> redis) {
    AuthOptions o;
    o.jwt_secret = std::string(32, 's');
    o.password_cost = PasswordCost::kTest;
    o.revocation_sync = std::chrono::hours(1);  // only Redis can spread a revocation quickly
    auto s = AuthService::Create(std::move(o), *db_, Env::Default(), nullptr, nullptr, nullptr,
                                 std::move(redis));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  http::Request RequestWith(const std::string& jti) {
    int64_t now = Env::Default().NowMicros() / 1'000'000;
    JwtClaims c{.sub = user_id_,
                .ws = "w1",
                .role = "owner",
                .jti = jti,
                .iss = node_a_->jwt().issuer(),
                .iat = now,
                .exp = now + 900};
    http::Request req;
    req.headers.Set("Authorization", "Bearer " + node_a_->jwt().Sign(c));
    return req;
  }

  atrium::testing::TempDir tmp_;
  std::shared_ptr<store::RedisClient> redis_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<AuthService> node_a_, node_b_;
  std::string user_id_;
};

TEST_F(RedisRevocationTest, RevocationOnOneNodeTakesEffectOnAnotherAtOnce) {
  std::string jti = "jti-" + std::to_string(Env::Default().RandomU64());
  http::Request req = RequestWith(jti);
  ASSERT_TRUE(node_b_->Authenticate(req).ok());
  int64_t exp = (Env::Default().NowMicros() / 1'000'000 + 900) * 1'000'000;
  ASSERT_TRUE(node_a_->RevokeAccessToken(jti, exp).ok());
  auto denied = node_b_->Authenticate(req);
  EXPECT_EQ(denied.status().code(), StatusCode::kUnauthenticated);
  // Other tokens of the user are unaffected.
  EXPECT_TRUE(node_b_->Authenticate(RequestWith(jti + "-other")).ok());
}

TEST_F(RedisRevocationTest, UnreachableRedisFailsClosed) {
  // A node whose Redis stops answering: its commands time out.
  auto slow = store::RedisClient::Connect(
      {.url = RedisUrl(), .command_timeout = std::chrono::milliseconds(200)});
  ASSERT_TRUE(slow.ok());
  auto node = MakeNode(std::move(*slow));
  ASSERT_NE(node, nullptr);
  http::Request req = RequestWith("jti-closed");
  ASSERT_TRUE(node->Authenticate(req).ok());
  ASSERT_TRUE(redis_->Command({"CLIENT", "PAUSE", "1000", "ALL"}).ok());
  auto r = node->Authenticate(req);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
}

}  // namespace
}  // namespace atrium::auth
