// HealthRegistry: the checks behind /health and /health/ready.
//
// Each enabled component (database, blob store, bus, indexers...) registers a named check. A check
// returns ok or the reason it is unhealthy; it should be quick (a ping, a lag comparison). Checks
// marked `required` decide readiness. Thread-safe: registration happens at start-up, checks may
// run concurrently from several requests.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "atrium/core/status.h"

namespace atrium {

// Figures a check reports whether healthy or not (an indexer's lag), by name.
using HealthValues = std::vector<std::pair<std::string, double>>;

struct HealthResult {
  std::string name;
  Status status;
  std::chrono::microseconds latency{0};
  bool required = true;
  HealthValues values;
};

class HealthRegistry {
 public:
  using Check = std::function<Status()>;
  // A check that also reports figures (appended to `values`), shown healthy or not.
  using ValuesCheck = std::function<Status(HealthValues& values)>;

  void Register(std::string name, Check check, bool required = true);
  void Register(std::string name, ValuesCheck check, bool required = true);
  // Runs every check in registration order; an exception counts as a failure.
  std::vector<HealthResult> RunAll() const;
  // True when every required check in `results` is ok.
  static bool Ready(const std::vector<HealthResult>& results);
  // {"status":"ok"|"unavailable","components":{"name":{"status":"ok","latency_ms":0.12,
  //  "required":true,"error":"...", <value name>:<number>...}}} (values must not reuse the
  //  names status, latency_ms, required, error).
  static std::string ToJson(const std::vector<HealthResult>& results);

 private:
  struct Entry {
    std::string name;
    ValuesCheck check;
    bool required;
  };
  mutable std::mutex mu_;
  std::vector<Entry> entries_;  // guarded by mu_
};

}  // namespace atrium
