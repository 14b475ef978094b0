#include "atrium/store/redis_client.h"
#include "atrium/core/testing.h"

#include <gtest/gtest.h>

namespace atrium::store {
namespace {

std::string RedisUrl() { return atrium::testing::FixtureUrl("redis", "ATRIUM_TEST_REDIS_URL"); }

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string url = RedisUrl();
    if (url.empty()) GTEST_SKIP() << "no Redis test server (redis fixture)";
    auto c = RedisClient::Connect({.url = url});
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
  }
  std::unique_ptr<RedisClient> client_;
};

TEST_F(RedisClientTest, CommandsAreBinarySafe) {
  std::string value("a\0b\r\nc", 6);
  ASSERT_TRUE(client_->Command({"SET", "atrium:test:bin", value}).ok());
  auto r = client_->Command({"GET", "atrium:test:bin"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->type, RedisReply::Type::kString);
  EXPECT_EQ(r->str, value);
  auto missing = client_->Command({"GET", "atrium:test:none"});
  EXPECT_EQ(missing->type, RedisReply::Type::kNil);
}

TEST_F(RedisClientTest, ServerErrorsAreInternal) {
  auto r = client_->Command({"NOSUCHCOMMAND"});
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_TRUE(client_->Ping().ok());  // the connection survives an error reply
}

TEST_F(RedisClientTest, ScriptsLoadOnFirstUseAndReturnArrays) {
  const char* script = "return {tonumber(ARGV[1]) * 2, KEYS[1]}";
  for (int i = 0; i < 2; ++i) {
    auto r = client_->Eval(script, {"k"}, {"21"});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->elements.size(), 2u);
    EXPECT_EQ(r->elements[0].integer, 42);
    EXPECT_EQ(r->elements[1].str, "k");
  }
}

TEST(RedisClientConnectTest, UnreachableServerIsUnavailable) {
  auto c = RedisClient::Connect(
      {.url = "redis://127.0.0.1:1", .connect_timeout = std::chrono::milliseconds(300)});
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
}

TEST(RedisClientConnectTest, BadUrlIsInvalidArgument) {
  EXPECT_EQ(RedisClient::Connect({.url = "http://x"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RedisClient::Connect({.url = "redis://host:notaport"}).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atrium::store
