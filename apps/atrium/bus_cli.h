// `atrium bus tail` and `atrium bus bench`: the bus from the command line.
#pragma once

#include <cstdint>
#include <string>

namespace atrium::app {

struct BusTailOptions {
  std::string topic;
  std::string from = "latest";  // earliest | latest | <offset>
  std::string url = "http://127.0.0.1:8080";
  std::string key;  // API key (atr_...) with bus:subscribe; empty = none
};

// Streams TOPIC over HTTP SSE from a running server and prints one line per record (the record's
// JSON, as in docs/bus.md). Follows a `resync` by reconnecting at the offset it names. Runs until
// the server ends the stream or the process is interrupted. Returns the process exit code.
int BusTail(const BusTailOptions& options);

struct BusBenchOptions {
  uint64_t messages = 1'000'000;
  size_t payload_bytes = 128;
  int publishers = 16;
  std::string durability = "sync";  // memory | sync
  int in_flight = 1000;             // publishes each publisher keeps outstanding
  size_t batch = 1;                 // messages per publish call
  int subscribers = 0;              // readers that must receive every record (fan-out)
  int ring_pow = 16;                // the topic's ring of 2^ring_pow records (the default)
};

// Publishes against an embedded bus in a temporary directory and prints msgs/s and the p50/p99
// publish-to-ack latency (per publish call). With subscribers, the clock stops once every
// subscriber has received every record. Returns the process exit code.
int BusBench(const BusBenchOptions& options);

}  // namespace atrium::app
