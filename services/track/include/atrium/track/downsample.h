// Server-side downsampling of one metric's history for charts (docs/track.md, Metrics).
//
// The step range is cut into at most `max_points` buckets of equal step width; each non-empty
// bucket yields its last point (step and value) plus the minimum and maximum finite value in the
// bucket, so spikes survive any reduction. For long ranges the width is a multiple of a rollup
// level (see BucketGrid), so that the same buckets can be assembled from the per-chunk rollups
// kept at ingest without reading every point. O(n), no allocation beyond the output. Pure;
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

// Chunk widths (in steps) of the rollups maintained at ingest, finest first; each level is 4
// times the previous, so a chunk is made of 4 chunks of the level below. A chunk of level L
// holds the steps [chunk * L, (chunk + 1) * L).
// (From 256: finer levels would add rows to every ingest transaction — at 64, ~5 % more time —
// for ranges that load fast enough as points.)
inline constexpr int64_t kRollupLevels[] = {256, 1024, 4096, 16384, 65536, 262144, 1048576};

// The buckets of a downsampled range: bucket i covers [origin + i * width, origin + (i+1) *
// width). When `level` is non-zero, `origin` and `width` are multiples of it, so every bucket is a
// union of whole rollup chunks of that level.
struct BucketGrid {
  int64_t origin = 0;
  uint64_t width = 1;
  int64_t level = 0;
};

// The grid for a range whose first and last stored steps are `first` ≤ `last`. Plain equal
// widths (ceil(span / max_points)) while that width is under 2 × the finest level; beyond, the
// level is the largest L with 2L ≤ that width, `origin` is rounded down and `width` up to
// multiples of L — still at most `max_points` buckets (at least two thirds of them when the
// points are dense), and fewer than 8 × max_points chunks to read.
BucketGrid ChooseBucketGrid(int64_t first, int64_t last, int64_t max_points);

// `points` sorted by step, unique steps. `max_points` ≥ 1. When points.size() ≤ max_points the
// result has one bucket per point (count 1); otherwise the buckets of ChooseBucketGrid.
std::vector<Bucket> Downsample(std::span<const SeriesPoint> points, int64_t max_points);

}  // namespace atrium::track
