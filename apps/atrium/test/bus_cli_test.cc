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

namespace atrium {
namespace {

using namespace std::chrono_literals;

// A child `atrium` process with captured output; killed on destruction.
struct Child {
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;
  std::string out, err;

  static Child Spawn(std::vector<std::string> args, std::vector<std::string> env = {}) {
    const char* dir = std::getenv("ATRIUM_BINARY_DIR");
    std::string bin = std::string(dir ? dir : ".") + "/bin/atrium";
    int o[2], e[2];
    EXPECT_EQ(pipe(o), 0);
    EXPECT_EQ(pipe(e), 0);
    Child c;
    c.pid = fork();
    if (c.pid == 0) {
      dup2(o[1], 1);
      dup2(e[1], 2);
      close(o[0]);
      close(e[0]);
      for (auto& v : env) putenv(v.data());
      std::vector<char*> argv{bin.data()};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(o[1]);
    close(e[1]);
    c.out_fd = o[0];
    c.err_fd = e[0];
    fcntl(c.out_fd, F_SETFL, O_NONBLOCK);
    fcntl(c.err_fd, F_SETFL, O_NONBLOCK);
    return c;
  }
  void Pump() {
    char buf[4096];
    ssize_t n;
    while ((n = read(out_fd, buf, sizeof buf)) > 0) out.append(buf, n);
    while ((n = read(err_fd, buf, sizeof buf)) > 0) err.append(buf, n);
  }
  std::string WaitForUrl() {
    std::regex re("listening on (http://[0-9.]+:[0-9]+)");
    for (int i = 0; i < 300; ++i) {
      Pump();
      std::smatch m;
      if (std::regex_search(out, m, re)) return m[1];
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        pid = -1;
        Pump();
        return "";
      }
      std::this_thread::sleep_for(50ms);
    }
    return "";
  }
  int Wait() {
    for (int i = 0; i < 1000; ++i) {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        Pump();
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (out_fd >= 0) close(out_fd);
    if (err_fd >= 0) close(err_fd);
  }
};

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
