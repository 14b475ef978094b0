#include "atrium/bus/options.h"

#include <array>

namespace atrium::bus {

Status TopicOptions::Validate() const {
  if (ring_pow < 4 || ring_pow > 26) return InvalidArgument("ring_pow must be in [4, 26]");
  if (durability == Durability::kInterval && interval.count() <= 0) {
    return InvalidArgument("interval durability needs interval_ms > 0");
  }
  if (!(pause_hi > 0 && pause_hi <= 1 && resume_lo >= 0 && resume_lo < pause_hi)) {
    return InvalidArgument("need 0 <= resume_lo < pause_hi <= 1");
  }
  if (segment_bytes < 4096) return InvalidArgument("segment_bytes must be at least 4096");
  if (commit_delay.count() < 0 || commit_delay > std::chrono::seconds(1)) {
    return InvalidArgument("commit_delay_us: must be 0..1000000");
  }
  if (commit_delay.count() > 0 && durability != Durability::kSync) {
    return InvalidArgument("commit_delay_us: applies to sync topics only");
  }
  if (max_batch_size == 0 || max_batch_bytes == 0) {
    return InvalidArgument("max_batch_size and max_batch_bytes must be positive");
  }
  return Status::Ok();
}

std::string_view DurabilityName(Durability d) {
  switch (d) {
    case Durability::kMemory:
      return "memory";
    case Durability::kAsync:
      return "async";
    case Durability::kInterval:
      return "interval";
    case Durability::kSync:
      return "sync";
  }
  return "unknown";
}

Result<Durability> ParseDurability(std::string_view name) {
  for (Durability d :
       {Durability::kMemory, Durability::kAsync, Durability::kInterval, Durability::kSync}) {
    if (DurabilityName(d) == name) return d;
  }
  return InvalidArgument("unknown durability \"" + std::string(name) + "\"");
}

Result<TopicOptions> PresetTopicOptions(std::string_view preset) {
  struct Preset {
    std::string_view name;
    int ring_pow;
    int flush_ms;
    uint64_t wal_gib;
    double pause_hi, resume_lo;
  };
  // Values from the seed's config.rs (ring 2^20/2^21/2^19/2^17, flush 10/5/1/20 ms, ...).
  static constexpr std::array<Preset, 4> kPresets = {{
      {"default", 20, 10, 8, 0.85, 0.70},
      {"high_throughput", 21, 5, 16, 0.90, 0.75},
      {"low_latency", 19, 1, 4, 0.80, 0.60},
      {"memory_optimized", 17, 20, 2, 0.75, 0.50},
  }};
  for (const Preset& p : kPresets) {
    if (p.name != preset) continue;
    TopicOptions o;
    o.durability = Durability::kInterval;
    o.interval = std::chrono::milliseconds(p.flush_ms);
    o.ring_pow = p.ring_pow;
    o.retention.max_bytes = p.wal_gib << 30;
    o.pause_hi = p.pause_hi;
    o.resume_lo = p.resume_lo;
    return o;
  }
  return NotFound("unknown bus preset \"" + std::string(preset) + "\"");
}

}  // namespace atrium::bus
