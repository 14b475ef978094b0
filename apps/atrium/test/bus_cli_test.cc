// End-to-end tests of `atrium bus bench` and `atrium bus tail` against `atrium serve`.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
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

class BusCliTest : public ::testing::Test {
 protected:
  std::vector<std::string> With(std::vector<std::string> args) {
    for (std::string f : {"--data-dir", "DATA", "--set", "auth.password_hash_cost=test"}) {
      args.push_back(f == "DATA" ? dir_.path() + "/data" : f);
    }
    return args;
  }
  http::ClientResponse Send(const std::string& method, const std::string& url,
                            const std::string& token, std::string body) {
    http::ClientRequest req{.method = method, .url = url, .body = std::move(body)};
    req.headers.Set("content-type", "application/json");
    if (!token.empty()) req.headers.Set("authorization", "Bearer " + token);
    auto r = client_.SendSync(std::move(req));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : http::ClientResponse{};
  }
  testing::TempDir dir_;
  http::HttpClient client_;
};

TEST_F(BusCliTest, BenchPrintsThroughputAndLatency) {
  Child bench = Child::Spawn({"bus", "bench", "--messages", "2000", "--publishers", "2",
                              "--durability", "sync", "--in-flight", "50"},
                             {"TMPDIR=" + dir_.path()});
  ASSERT_EQ(bench.Wait(), 0) << bench.err;
  EXPECT_NE(bench.out.find("throughput: "), std::string::npos) << bench.out;
  EXPECT_NE(bench.out.find("p99 "), std::string::npos) << bench.out;
  EXPECT_NE(bench.out.find("failures: 0"), std::string::npos) << bench.out;
  Child bad = Child::Spawn({"bus", "bench", "--durability", "interval"});
  EXPECT_EQ(bad.Wait(), 1);
}

TEST_F(BusCliTest, TailPrintsOneLinePerRecordFromAServer) {
  Child serve =
      Child::Spawn(With({"serve", "--port", "0", "--set", "bootstrap_admin_email=root@example.com",
                         "--set", "bootstrap_admin_password=admin-password"}));
  std::string url = serve.WaitForUrl();
  ASSERT_FALSE(url.empty()) << serve.err;
  auto login = Send("POST", url + "/api/v1/auth/login", "",
                    R"({"email":"root@example.com","password":"admin-password"})");
  ASSERT_EQ(login.status, 200) << login.body;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(login.body, m, std::regex(R"re("access_token":"([^"]+)")re")));
  const std::string token = m[1];
  ASSERT_EQ(Send("POST", url + "/api/v1/bus/topics", token, R"({"name":"orders"})").status, 201);
  auto published = Send("POST", url + "/api/v1/bus/topics/orders/messages", token,
                        R"({"messages":[{"payload":"one"},{"key":"k","payload":"two"}]})");
  ASSERT_EQ(published.status, 200) << published.body;
  EXPECT_EQ(published.body, R"({"offsets":[0,1]})");

  Child tail =
      Child::Spawn({"bus", "tail", "orders", "--from", "earliest", "--url", url, "--key", token});
  for (int i = 0; i < 200 && std::count(tail.out.begin(), tail.out.end(), '\n') < 2; ++i) {
    std::this_thread::sleep_for(25ms);
    tail.Pump();
  }
  ASSERT_EQ(std::count(tail.out.begin(), tail.out.end(), '\n'), 2) << tail.out << tail.err;
  EXPECT_NE(tail.out.find(R"("offset":0)"), std::string::npos) << tail.out;
  EXPECT_NE(tail.out.find(R"("payload":"two")"), std::string::npos) << tail.out;

  Child unknown = Child::Spawn({"bus", "tail", "nope", "--url", url, "--key", token});
  EXPECT_EQ(unknown.Wait(), 1);
  EXPECT_NE(unknown.err.find("404"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace atrium
