// End-to-end tests of the atrium binary: started as a child process on port 0, spoken to over
// HTTP, stopped with SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "child_process.h"

namespace atrium {
namespace {

using namespace std::chrono_literals;

std::string PgUrl() { return testing::FixtureUrl("pg", "ATRIUM_TEST_PG_URL"); }

using Child = testing::AtriumChild;

class AtriumServeTest : public ::testing::Test {
 protected:
  http::ClientResponse Get(const std::string& url) {
    auto res = client_.SendSync(http::ClientRequest{.method = "GET", .url = url});
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : http::ClientResponse{};
  }
  testing::TempDir dir_;
  http::HttpClient client_;
};

TEST_F(AtriumServeTest, ServesSystemEndpointsAndStopsOnSigterm) {
  std::string data = dir_.path() + "/data";
  Child c = Child::Spawn({"serve", "--port", "0", "--data-dir", data});
  std::string url = c.WaitForUrl();
  ASSERT_FALSE(url.empty()) << c.err;

  auto live = Get(url + "/health/live");
  EXPECT_EQ(live.status, 200);
  auto health = Get(url + "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_NE(health.body.find(R"("database":{"status":"ok")"), std::string::npos) << health.body;
  EXPECT_NE(health.body.find("latency_ms"), std::string::npos);
  EXPECT_EQ(Get(url + "/health/ready").status, 200);
  auto info = Get(url + "/info");
  EXPECT_NE(info.body.find(R"("version":")"), std::string::npos);
  EXPECT_NE(info.body.find(R"("services":["bus","embed","relay","track","chat"])"),
            std::string::npos)
      << info.body;
  auto metrics = Get(url + "/metrics");
  EXPECT_NE(metrics.body.find("http_requests_total"), std::string::npos);
  EXPECT_NE(metrics.headers.GetOr("content-type", "").find("text/plain"), std::string::npos);
  auto missing = Get(url + "/api/v1/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_FALSE(missing.headers.GetOr("x-request-id", "").empty());

  struct stat st;
  ASSERT_EQ(stat(data.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(stat((data + "/atrium.db").c_str(), &st), 0);

  kill(c.pid, SIGTERM);
  EXPECT_EQ(c.Wait(), 0) << c.err;
  EXPECT_NE(c.err.find("shut down cleanly"), std::string::npos) << c.err;
}

TEST_F(AtriumServeTest, ServicesFlagIsValidatedAndReported) {
  Child bad = Child::Spawn(
      {"serve", "--port", "0", "--data-dir", dir_.path() + "/d1", "--services", "chat,mail"});
  EXPECT_EQ(bad.Wait(), 1);
  EXPECT_NE(bad.err.find("services"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("mail"), std::string::npos) << bad.err;

  Child c = Child::Spawn(
      {"serve", "--port", "0", "--data-dir", dir_.path() + "/d2", "--services", "chat,track"});
  std::string url = c.WaitForUrl();
  ASSERT_FALSE(url.empty()) << c.err;
  EXPECT_NE(Get(url + "/info").body.find(R"("services":["chat","track"])"), std::string::npos);
}

TEST_F(AtriumServeTest, InvalidEnvironmentValueNamesKeyAndValue) {
  Child c = Child::Spawn({"serve", "--data-dir", dir_.path() + "/d"}, {"ATRIUM_HTTP__PORT=99999"});
  EXPECT_EQ(c.Wait(), 1);
  EXPECT_NE(c.err.find("http.port"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("99999"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("ATRIUM_HTTP__PORT"), std::string::npos) << c.err;
}

TEST_F(AtriumServeTest, PortInUseIsAClearError) {
  Child first = Child::Spawn({"serve", "--port", "0", "--data-dir", dir_.path() + "/a"});
  std::string url = first.WaitForUrl();
  ASSERT_FALSE(url.empty());
  std::string port = url.substr(url.rfind(':') + 1);
  Child second = Child::Spawn({"serve", "--port", port, "--data-dir", dir_.path() + "/b"});
  EXPECT_EQ(second.Wait(), 1);
  EXPECT_NE(second.err.find("cannot listen"), std::string::npos) << second.err;
}

TEST_F(AtriumServeTest, ConfigShowListsSourcesAndRedactsSecrets) {
  std::string toml = dir_.path() + "/atrium.toml";
  std::ofstream(toml) << "[http]\nport = 9100\n";
  Child c = Child::Spawn({"config", "show", "--config", toml, "--set",
                          "store.url=postgresql://alice:hunter2@db/atrium"},
                         {"ATRIUM_LOG__LEVEL=debug"});
  EXPECT_EQ(c.Wait(), 0) << c.err;
  EXPECT_NE(c.out.find("http.port = 9100"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find(toml), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("ATRIUM_LOG__LEVEL"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("store.url = \"***\""), std::string::npos) << c.out;
  EXPECT_EQ(c.out.find("hunter2"), std::string::npos) << c.out;
}

TEST_F(AtriumServeTest, MigrateStatusAndUp) {
  std::string data = dir_.path() + "/m";
  Child status = Child::Spawn({"migrate", "status", "--data-dir", data});
  EXPECT_EQ(status.Wait(), 0) << status.err;
  EXPECT_NE(status.out.find("pending"), std::string::npos) << status.out;
  Child up = Child::Spawn({"migrate", "up", "--data-dir", data});
  EXPECT_EQ(up.Wait(), 0) << up.err;
  // Every module's migrations; the exact count grows with the services, so only "some".
  EXPECT_NE(up.out.find("applied "), std::string::npos) << up.out;
  EXPECT_EQ(up.out.find("applied 0 migration"), std::string::npos) << up.out;
  Child again = Child::Spawn({"migrate", "up", "--data-dir", data});
  EXPECT_EQ(again.Wait(), 0);
  EXPECT_NE(again.out.find("applied 0 migration"), std::string::npos) << again.out;
}

TEST_F(AtriumServeTest, RunsOnPostgresql) {
  std::string pg = PgUrl();
  if (pg.empty()) GTEST_SKIP() << "no PostgreSQL test server (pg fixture)";
  Child c = Child::Spawn(
      {"serve", "--port", "0", "--data-dir", dir_.path() + "/pgdata", "--set", "store.url=" + pg});
  std::string url = c.WaitForUrl();
  ASSERT_FALSE(url.empty()) << c.err;
  auto health = Get(url + "/health/ready");
  EXPECT_EQ(health.status, 200) << health.body;
  kill(c.pid, SIGTERM);
  EXPECT_EQ(c.Wait(), 0) << c.err;
}

TEST(AtriumCliTest, VersionFlag) {
  Child c = Child::Spawn({"--version"});
  EXPECT_EQ(c.Wait(), 0);
  EXPECT_NE(c.out.find("atrium "), std::string::npos);
}

}  // namespace
}  // namespace atrium
