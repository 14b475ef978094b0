// The embedded (in-process) Bus: a ring of 2^ring_pow records per topic for fast fan-out, and a
// WAL per durable topic under `<data_dir>/topics/<name>/`. Readers that fall behind the ring
// continue from the WAL. Durable consumer positions live in `<data_dir>/consumers/<name>.pos`,
// written atomically through Env.
#pragma once

#include <memory>
#include <string>

#include "atrium/bus/bus.h"
#include "atrium/core/env.h"
#include "atrium/core/metrics.h"

namespace atrium::bus {

struct EmbeddedBusOptions {
  // Where WALs and consumer positions live. Required for durable topics and consumers.
  std::string data_dir;
  // Cut damaged WALs at the first bad record instead of refusing to open (see wal.h).
  bool repair = false;
  // Optional; must outlive the bus.
  MetricsRegistry* metrics = nullptr;
};

// Opens the bus and every durable topic found in data_dir (recovering their WALs). Fails with the
// WAL's error (naming file and byte) when a topic is corrupt and repair is off.
// `env` must outlive the bus and everything opened from it.
Result<std::unique_ptr<Bus>> OpenEmbeddedBus(Env& env, EmbeddedBusOptions options);

}  // namespace atrium::bus
