// Per-topic options of the bus: durability policy, in-memory ring, overflow policy, retention,
// WAL batching, and the seed's named presets.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "atrium/core/status.h"

namespace atrium::bus {

enum class Durability {
  kMemory,    // no WAL: the bounded ring only; offsets restart at 0 with the process
  kAsync,     // appended to the WAL; publish completes once written to the OS, flushed by the OS
  kInterval,  // as kAsync, plus an fdatasync at least every `interval`
  kSync,      // publish completes only after the fdatasync covering it (group commit)
};

// What a publish does when a memory topic's ring is full of records a subscriber has not read.
enum class OverflowPolicy {
  kBlock,       // the publisher waits (pause at pause_hi, resume below resume_lo)
  kDropOldest,  // overwrite; counted in bus_drop_total, lagging subscribers get a kLagged event
  kError,       // the publish fails with ResourceExhausted
};

struct Retention {
  uint64_t max_bytes = 0;           // 0: unlimited. Whole segments are deleted, oldest first.
  std::chrono::seconds max_age{0};  // 0: unlimited. Age of a segment's newest record.
};

struct TopicOptions {
  Durability durability = Durability::kSync;
  std::chrono::milliseconds interval{10};            // kInterval only
  int ring_pow = 16;                                 // ring of 2^ring_pow records (4..26)
  OverflowPolicy overflow = OverflowPolicy::kBlock;  // memory topics only
  double pause_hi = 0.85;                            // block policy hysteresis (fractions)
  double resume_lo = 0.70;
  Retention retention;
  uint64_t segment_bytes = 64ull << 20;  // a new segment starts past this size
  // WAL batcher: the writer thread takes at most this much per write+fsync.
  size_t max_batch_size = 4096;
  uint64_t max_batch_bytes = 8ull << 20;
  // kSync only: group commit window. The WAL writer takes a batch at most once per window, so one
  // write and one fdatasync cover every publish of the window (a publish after a quiet spell is
  // written at once). Trades up to this much acknowledgement latency for fewer syncs and
  // wake-ups; zero (the default) syncs as soon as the previous sync ends. At most 1 s.
  std::chrono::microseconds commit_delay{0};

  // InvalidArgument when a value is out of range.
  Status Validate() const;
};

std::string_view DurabilityName(Durability d);  // "memory", "async", "interval", "sync"
Result<Durability> ParseDurability(std::string_view name);

// The seed's presets: "default", "high_throughput", "low_latency", "memory_optimized". Each is an
// `interval` topic with the seed's ring size, flush interval, WAL cap (retention.max_bytes) and
// pause/resume thresholds. NotFound for other names.
Result<TopicOptions> PresetTopicOptions(std::string_view preset);

}  // namespace atrium::bus
