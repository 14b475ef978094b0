// Crash test: a child process (bus_crash_child) publishes with the `sync` policy and reports each
// acknowledged offset; we SIGKILL it at random moments, reopen the bus, and check that every
// acknowledged record is present, intact and in order, and that offsets are never reused.
// BUS_CRASH_CYCLES overrides the number of cycles (CI: 50; `make stress`: 1000).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include "atrium/bus/crc32c.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/core/testing.h"

namespace atrium::bus {
namespace {

std::string ChildPath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "bus_crash_child";
  buf[n] = '\0';
  return DirName(buf) + "/bus_crash_child";
}

// Runs the child for about `run_ms`, kills it, and returns the complete lines it wrote.
std::string RunAndKill(const std::string& child, const std::string& dir, int run_ms) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl(child.c_str(), child.c_str(), dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[65536];
  auto kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(run_ms);
  bool killed = false;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    kill_at - std::chrono::steady_clock::now())
                    .count();
    if (!killed && left <= 0) {
      kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{fds[0], POLLIN, 0};
    int r = poll(&p, 1, killed ? 1000 : static_cast<int>(std::max<long>(left, 0)));
    if (r <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;  // EOF: the child is gone
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);
  // The last line may be cut by the kill: it was never reported, so it does not count.
  size_t last_nl = out.rfind('\n');
  return last_nl == std::string::npos ? std::string() : out.substr(0, last_nl + 1);
}

TEST(BusCrashTest, EveryAcknowledgedRecordSurvivesSigkill) {
  int cycles = 50;
  if (const char* c = std::getenv("BUS_CRASH_CYCLES")) cycles = std::atoi(c);
  testing::TempDir dir;
  const std::string child = ChildPath();
  ASSERT_EQ(access(child.c_str(), X_OK), 0) << child;
  std::mt19937 rng(std::random_device{}());
  // offset -> CRC32C of the payload, across all cycles.
  std::map<uint64_t, uint32_t> acked;

  for (int cycle = 0; cycle < cycles; ++cycle) {
    // Every 10th cycle (and the last) checks the whole topic; the others start at the newest
    // record acknowledged before this cycle, which keeps long runs linear.
    const bool full = cycle % 10 == 9 || cycle + 1 == cycles;
    const uint64_t check_from = full || acked.empty() ? 0 : acked.rbegin()->first;
    std::string lines = RunAndKill(child, dir.path(), 20 + static_cast<int>(rng() % 150));
    size_t pos = 0;
    while (pos < lines.size()) {
      size_t nl = lines.find('\n', pos);
      std::string line = lines.substr(pos, nl - pos);
      pos = nl + 1;
      size_t sp = line.find(' ');
      ASSERT_NE(sp, std::string::npos) << line;
      uint64_t off = std::stoull(line.substr(0, sp));
      auto [it, inserted] = acked.emplace(off, Crc32c(std::string_view(line).substr(sp + 1)));
      ASSERT_TRUE(inserted) << "offset " << off << " acknowledged twice (reused after a crash)";
    }

    EmbeddedBusOptions o;
    o.data_dir = dir.path();
    auto bus = OpenEmbeddedBus(Env::Default(), o);
    ASSERT_TRUE(bus.ok()) << "cycle " << cycle << ": " << bus.status().ToString();
    if ((*bus)->ListTopics().empty()) continue;  // killed before the topic existed
    auto stats = (*bus)->GetTopicStats("crash");
    ASSERT_TRUE(stats.ok());
    auto sub = (*bus)->Subscribe({"crash", Filter::All(), StartPosition::AtOffset(check_from)});
    ASSERT_TRUE(sub.ok());
    auto expect = acked.lower_bound(check_from);
    uint64_t prev = 0;
    bool first = true;
    uint64_t seen = 0;
    while (seen < stats->next_offset) {
      auto d = (*sub)->Next(std::chrono::milliseconds(0));
      if (!d.ok()) break;
      ASSERT_EQ(d->kind, Delivery::Kind::kRecord);
      const Record& r = *d->record;
      ASSERT_TRUE(first || r.offset > prev) << "cycle " << cycle << ": offsets out of order";
      first = false;
      prev = r.offset;
      seen = r.offset + 1;
      while (expect != acked.end() && expect->first < r.offset) {
        FAIL() << "cycle " << cycle << ": acknowledged offset " << expect->first << " is missing";
      }
      if (expect != acked.end() && expect->first == r.offset) {
        ASSERT_EQ(Crc32c(r.payload), expect->second) << "cycle " << cycle << " offset " << r.offset;
        ++expect;
      }
    }
    ASSERT_TRUE(expect == acked.end())
        << "cycle " << cycle << ": acknowledged offset " << expect->first << " is missing";
  }
  std::printf("crash test: %d cycles, %zu acknowledged records verified\n", cycles, acked.size());
  EXPECT_GT(acked.size(), 0u);
}

}  // namespace
}  // namespace atrium::bus
