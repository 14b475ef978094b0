// Test helper: the `atrium` binary as a child process with captured stdout/stderr.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace atrium::testing {

// $ATRIUM_BINARY_DIR/bin/atrium (set by atrium_test).
inline std::string AtriumBinary() {
  const char* dir = std::getenv("ATRIUM_BINARY_DIR");
  return std::string(dir ? dir : ".") + "/bin/atrium";
}

// A child `atrium` process; killed (SIGKILL) on destruction if still running. Move-only.
class AtriumChild {
 public:
  // Starts `atrium args...` with `env` ("NAME=value") added to the environment.
  static AtriumChild Spawn(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::string bin = AtriumBinary();
    int o[2], e[2];
    EXPECT_EQ(pipe(o), 0);
    EXPECT_EQ(pipe(e), 0);
    AtriumChild c;
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
    c.out_fd_ = o[0];
    c.err_fd_ = e[0];
    fcntl(c.out_fd_, F_SETFL, O_NONBLOCK);
    fcntl(c.err_fd_, F_SETFL, O_NONBLOCK);
    return c;
  }

  AtriumChild() = default;
  AtriumChild(AtriumChild&& o) noexcept
      : pid(std::exchange(o.pid, -1)),
        out(std::move(o.out)),
        err(std::move(o.err)),
        out_fd_(std::exchange(o.out_fd_, -1)),
        err_fd_(std::exchange(o.err_fd_, -1)) {}
  AtriumChild& operator=(AtriumChild&&) = delete;
  AtriumChild(const AtriumChild&) = delete;
  ~AtriumChild() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  // Appends what the child wrote so far to `out` / `err`.
  void Pump() {
    char buf[4096];
    ssize_t n;
    while ((n = read(out_fd_, buf, sizeof buf)) > 0) out.append(buf, n);
    while ((n = read(err_fd_, buf, sizeof buf)) > 0) err.append(buf, n);
  }

  // Waits for "listening on http://HOST:PORT" and returns the URL ("" when the child exited or
  // 15 s passed).
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
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "";
  }

  // Waits for the exit; the exit code, or -1 on timeout or death by signal.
  int Wait(std::chrono::seconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        Pump();
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  pid_t pid = -1;
  std::string out, err;

 private:
  int out_fd_ = -1, err_fd_ = -1;
};

}  // namespace atrium::testing
