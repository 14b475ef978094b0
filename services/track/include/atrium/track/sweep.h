// Hyper-parameter sweeps (docs/track.md, Sweeps): the configuration, the suggestion methods
// (grid, seeded random, TPE) and Hyperband early termination, as pure functions so the HTTP
// layer only stores and loads state. Deterministic: the same config, index and history give the
// same suggestion. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "atrium/core/status.h"

namespace atrium::track {

struct ParamSpec {
  enum class Kind { kConstant, kCategorical, kUniform, kLogUniform, kInt };
  std::string name;
  Kind kind = Kind::kConstant;
  std::vector<std::string> values;  // JSON texts: kConstant (one), kCategorical (≥ 1)
  double min = 0, max = 0;          // kUniform, kLogUniform (> 0), kInt (inclusive)
};

struct SweepConfig {
  enum class Method { kGrid, kRandom, kBayes };
  Method method = Method::kRandom;
  std::string metric;  // may be empty for grid/random
  bool maximize = false;
  std::vector<ParamSpec> params;  // in the config's order
  int64_t run_cap = 0;            // 0 = unlimited
  uint64_t seed = 0;
  int n_startup = 10;  // bayes: random suggestions before TPE starts
  bool hyperband = false;
  int64_t min_iter = 1;
  int64_t eta = 3;
};

// Parses and validates the W&B-style JSON config; errors name the field (InvalidArgument).
Result<SweepConfig> ParseSweepConfig(std::string_view json_text);

// A suggestion: parameter name → value as JSON text, in the config's order.
using Assignment = std::vector<std::pair<std::string, std::string>>;

// Number of grid points (product of the value counts; ints count max-min+1).
int64_t GridSize(const SweepConfig& config);
// The `index`-th grid point (first parameter varies slowest); nullopt past the end.
std::optional<Assignment> GridSuggestion(const SweepConfig& config, int64_t index);
// An independent random draw for suggestion `index`.
Assignment RandomSuggestion(const SweepConfig& config, int64_t index);

struct Observation {
  Assignment params;
  double value = 0;  // the metric; finite
};
// TPE suggestion `index` given completed observations (random until n_startup of them).
Assignment TpeSuggestion(const SweepConfig& config, int64_t index,
                         const std::vector<Observation>& history);

// Hyperband: the highest rung (min_iter·eta^k) at or below `step`; nullopt below min_iter.
std::optional<int64_t> HyperbandRung(const SweepConfig& config, int64_t step);
// Whether a run whose metric at a rung is `mine` stops, given the values of every run of the
// sweep at that rung (`mine` included): it continues only within the best ceil(n/eta). Fewer
// than eta values never stop anyone.
bool HyperbandShouldStop(const SweepConfig& config, double mine, std::vector<double> all);

}  // namespace atrium::track
