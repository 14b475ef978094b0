// End-to-end tests of the identity module in the atrium binary: `admin create-user`, the
// bootstrap admin, `admin rotate-master-key`, and the auth routes being served.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <thread>

#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "child_process.h"

namespace atrium {
namespace {

using namespace std::chrono_literals;

using Child = testing::AtriumChild;

class AuthCliTest : public ::testing::Test {
 protected:
  std::vector<std::string> Flags() {
    return {"--data-dir", dir_.path() + "/data", "--set", "auth.password_hash_cost=test"};
  }
  std::vector<std::string> With(std::vector<std::string> args) {
    for (auto& f : Flags()) args.push_back(f);
    return args;
  }
  int Login(const std::string& url, const std::string& email, const std::string& password,
            std::string* body = nullptr) {
    http::ClientRequest req{.method = "POST", .url = url + "/api/v1/auth/login"};
    req.body = R"({"email":")" + email + R"(","password":")" + password + "\"}";
    req.headers.Set("content-type", "application/json");
    auto r = client_.SendSync(std::move(req));
    EXPECT_TRUE(r.ok());
    if (body && r.ok()) *body = r->body;
    return r.ok() ? r->status : 0;
  }
  testing::TempDir dir_;
  http::HttpClient client_;
};

TEST_F(AuthCliTest, CreateUserThenLogInOverHttp) {
  Child create = Child::Spawn(With({"admin", "create-user", "--email", "root@example.com",
                                    "--password", "admin-password", "--admin"}));
  ASSERT_EQ(create.Wait(), 0) << create.err;
  EXPECT_NE(create.out.find("platform admin root@example.com"), std::string::npos);
  Child again = Child::Spawn(With(
      {"admin", "create-user", "--email", "ROOT@example.com", "--password", "admin-password"}));
  EXPECT_EQ(again.Wait(), 1);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;

  Child serve = Child::Spawn(With({"serve", "--port", "0"}));
  std::string url = serve.WaitForUrl();
  ASSERT_FALSE(url.empty()) << serve.err;
  std::string body;
  EXPECT_EQ(Login(url, "root@example.com", "admin-password", &body), 200);
  EXPECT_NE(body.find("access_token"), std::string::npos);
  EXPECT_EQ(Login(url, "root@example.com", "wrong-password"), 401);
  auto me = client_.SendSync(http::ClientRequest{.method = "GET", .url = url + "/api/v1/auth/me"});
  ASSERT_TRUE(me.ok());
  EXPECT_EQ(me->status, 401);
  kill(serve.pid, SIGTERM);
  EXPECT_EQ(serve.Wait(), 0);
  EXPECT_EQ(serve.err.find("admin-password"), std::string::npos);
}

TEST_F(AuthCliTest, BootstrapAdminIsCreatedOnFirstStartOnly) {
  Child serve = Child::Spawn(With({"serve", "--port", "0"}),
                             {"ATRIUM_BOOTSTRAP_ADMIN_EMAIL=boot@example.com",
                              "ATRIUM_BOOTSTRAP_ADMIN_PASSWORD=boot-password"});
  std::string url = serve.WaitForUrl();
  ASSERT_FALSE(url.empty()) << serve.err;
  EXPECT_EQ(Login(url, "boot@example.com", "boot-password"), 200);
  EXPECT_NE(serve.err.find("bootstrap platform admin"), std::string::npos) << serve.err;
  EXPECT_EQ(serve.err.find("boot-password"), std::string::npos);
}

TEST_F(AuthCliTest, SessionsSurviveRestartsAndMasterKeyRotation) {
  std::string key_a = "a:" + std::string(43, 'A');  // 32 zero-ish bytes, base64url
  std::string key_b = "b:" + std::string(42, 'B') + "A";
  Child create = Child::Spawn(
      With({"admin", "create-user", "--email", "u@example.com", "--password", "user-password"}),
      {"ATRIUM_MASTER_KEY=" + key_a});
  ASSERT_EQ(create.Wait(), 0) << create.err;
  std::string token;
  {
    Child serve = Child::Spawn(With({"serve", "--port", "0"}), {"ATRIUM_MASTER_KEY=" + key_a});
    std::string url = serve.WaitForUrl();
    ASSERT_FALSE(url.empty()) << serve.err;
    std::string body;
    ASSERT_EQ(Login(url, "u@example.com", "user-password", &body), 200);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(body, m, std::regex(R"("access_token":"([^"]+))")));
    token = m[1];
  }
  Child rotate = Child::Spawn(With({"admin", "rotate-master-key"}),
                              {"ATRIUM_MASTER_KEY=" + key_b + "," + key_a});
  ASSERT_EQ(rotate.Wait(), 0) << rotate.err;
  EXPECT_NE(rotate.out.find("re-encrypted 1 secret"), std::string::npos) << rotate.out;
  // Only the new key from now on; the JWT secret (sealed under b) still opens, so the access
  // token issued before the restart stays valid.
  Child serve = Child::Spawn(With({"serve", "--port", "0"}), {"ATRIUM_MASTER_KEY=" + key_b});
  std::string url = serve.WaitForUrl();
  ASSERT_FALSE(url.empty()) << serve.err;
  http::ClientRequest req{.method = "GET", .url = url + "/api/v1/auth/me"};
  req.headers.Set("authorization", "Bearer " + token);
  auto me = client_.SendSync(std::move(req));
  ASSERT_TRUE(me.ok());
  EXPECT_EQ(me->status, 200) << me->body;
  // Without any master key the sealed secret cannot be used: refuse to start.
  Child no_key = Child::Spawn(With({"serve", "--port", "0"}));
  EXPECT_EQ(no_key.Wait(), 1);
  EXPECT_NE(no_key.err.find("master key"), std::string::npos) << no_key.err;
}

}  // namespace
}  // namespace atrium
