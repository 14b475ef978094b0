#include "atrium/core/health.h"

#include <cmath>

#include <fmt/format.h>

#include "atrium/core/log.h"

namespace atrium {

void HealthRegistry::Register(std::string name, Check check, bool required) {
  Register(
      std::move(name), [check = std::move(check)](HealthValues&) { return check(); }, required);
}

void HealthRegistry::Register(std::string name, ValuesCheck check, bool required) {
  std::lock_guard lock(mu_);
  entries_.push_back(Entry{std::move(name), std::move(check), required});
}

std::vector<HealthResult> HealthRegistry::RunAll() const {
  std::vector<Entry> entries;
  {
    std::lock_guard lock(mu_);
    entries = entries_;
  }
  std::vector<HealthResult> out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    auto start = std::chrono::steady_clock::now();
    Status s;
    HealthValues values;
    try {
      s = e.check(values);
    } catch (const std::exception& ex) {
      s = Internal(std::string("health check threw: ") + ex.what());
    }
    auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    out.push_back(HealthResult{e.name, std::move(s), elapsed, e.required, std::move(values)});
  }
  return out;
}

bool HealthRegistry::Ready(const std::vector<HealthResult>& results) {
  for (const auto& r : results) {
    if (r.required && !r.status.ok()) return false;
  }
  return true;
}

std::string HealthRegistry::ToJson(const std::vector<HealthResult>& results) {
  std::string out = R"({"status":")";
  out += Ready(results) ? "ok" : "unavailable";
  out += R"(","components":{)";
  bool first = true;
  for (const auto& r : results) {
    if (!first) out += ',';
    first = false;
    out += '"';
    AppendJsonEscaped(r.name, out);
    out += R"(":{"status":")";
    out += r.status.ok() ? "ok" : "unavailable";
    out += fmt::format(R"(","latency_ms":{:.3f},"required":{})", r.latency.count() / 1000.0,
                       r.required ? "true" : "false");
    if (!r.status.ok()) {
      out += R"(,"error":")";
      AppendJsonEscaped(r.status.message(), out);
      out += '"';
    }
    for (const auto& [name, value] : r.values) {
      out += ",\"";
      AppendJsonEscaped(name, out);
      out += std::isfinite(value) ? fmt::format("\":{}", value) : std::string("\":null");
    }
    out += '}';
  }
  out += "}}";
  return out;
}

}  // namespace atrium
