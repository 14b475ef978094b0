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
#include <vector>

#include "atrium/core/status.h"

namespace atrium {

struct HealthResult {
  std::string name;
  Status status;
  std::chrono::microseconds latency{0};
  bool required = true;
};

class HealthRegistry {
 public:
  using Check = std::function<Status()>;

  void Register(std::string name, Check check, bool required = true);
  // Runs every check in registration order; an exception counts as a failure.
  std::vector<HealthResult> RunAll() const;
  // True when every required check in `results` is ok.
  static bool Ready(const std::vector<HealthResult>& results);
  // {"status":"ok"|"unavailable","components":{"name":{"status":"ok","latency_ms":0.12,
  //  "error":"..."}}}
  static std::string ToJson(const std::vector<HealthResult>& results);

 private:
  struct Entry {
    std::string name;
    Check check;
    bool required;
  };
  mutable std::mutex mu_;
  std::vector<Entry> entries_;  // guarded by mu_
};

}  // namespace atrium
