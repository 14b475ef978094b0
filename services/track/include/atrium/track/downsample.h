// Server-side downsampling of one metric's history for charts (docs/track.md, Metrics).
//
// The step range is cut into at most `max_points` buckets of equal step width; each non-empty
// bucket yields its last point (step and value) plus the minimum and maximum finite value in the
// bucket, so spikes survive any reduction. O(n), no allocation beyond the output. Pure;
// thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace atrium::track {

struct SeriesPoint {
  int64_t step = 0;
  double value = 0;  // may be NaN or ±Inf
  int64_t ts_ms = 0;
};

struct Bucket {
  int64_t step = 0;   // the bucket's last step
  double value = 0;   // the value at that step
  int64_t ts_ms = 0;  // its timestamp
  double min = 0;     // min/max of the finite values; NaN when the bucket has none
  double max = 0;
  int64_t count = 0;
};

// `points` sorted by step, unique steps. `max_points` ≥ 1. When points.size() ≤ max_points the
// result has one bucket per point (count 1).
std::vector<Bucket> Downsample(std::span<const SeriesPoint> points, int64_t max_points);

}  // namespace atrium::track
