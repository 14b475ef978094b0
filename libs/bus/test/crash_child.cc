// bus_crash_child DATA_DIR: publishes to a `sync` topic from several threads until killed,
// writing "<offset> <payload>\n" to stdout after each acknowledged publish. Used by
// crash_test.cc, which SIGKILLs it at random moments and checks what survived.
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "atrium/bus/embedded_bus.h"

int main(int argc, char** argv) {
  using namespace atrium;
  if (argc != 2) {
    std::fprintf(stderr, "usage: bus_crash_child DATA_DIR\n");
    return 2;
  }
  bus::EmbeddedBusOptions options;
  options.data_dir = argv[1];
  auto opened = bus::OpenEmbeddedBus(Env::Default(), options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto& b = **opened;
  bus::TopicOptions topic;
  topic.durability = bus::Durability::kSync;
  topic.ring_pow = 10;
  topic.segment_bytes = 64 << 10;  // small segments, so kills also land around segment rolls
  if (Status s = b.CreateTopic("crash", topic); !s.ok()) {
    std::fprintf(stderr, "create: %s\n", s.ToString().c_str());
    return 1;
  }
  const uint64_t run = Env::Default().RandomU64();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&b, t, run] {
      std::mt19937_64 rng(run + t);
      for (uint64_t seq = 0;; ++seq) {
        std::string payload = std::to_string(run % 100000) + "-" + std::to_string(t) + "-" +
                              std::to_string(seq) + "-" + std::string(rng() % 300, 'a' + t);
        auto off = b.Publish("crash", bus::Message{"k" + std::to_string(t), {}, payload});
        if (!off.ok()) {
          std::fprintf(stderr, "publish: %s\n", off.status().ToString().c_str());
          _exit(1);
        }
        // One write per line (< PIPE_BUF), so lines from threads never interleave.
        std::string line = std::to_string(*off) + " " + payload + "\n";
        if (write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          _exit(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return 0;
}
