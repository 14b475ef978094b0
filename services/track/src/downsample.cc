#include "atrium/track/downsample.h"

#include <cmath>
#include <limits>

namespace atrium::track {

BucketGrid ChooseBucketGrid(int64_t first, int64_t last, int64_t max_points) {
  if (max_points < 1) max_points = 1;
  const uint64_t n = static_cast<uint64_t>(max_points);
  // Unsigned arithmetic: the span may exceed INT64_MAX for extreme steps.
  const uint64_t span = static_cast<uint64_t>(last) - static_cast<uint64_t>(first) + 1;
  const uint64_t width = (span + n - 1) / n;
  BucketGrid grid{first, width, 0};
  for (int64_t level : kRollupLevels) {
    if (2 * static_cast<uint64_t>(level) <= width) grid.level = level;
  }
  if (first < 0) grid.level = 0;  // (steps are never negative; stay exact anyway)
  if (grid.level == 0) return grid;
  const uint64_t l = static_cast<uint64_t>(grid.level);
  grid.origin = first / grid.level * grid.level;
  const uint64_t aligned_span =
      static_cast<uint64_t>(last) - static_cast<uint64_t>(grid.origin) + 1;
  grid.width = ((aligned_span + n - 1) / n + l - 1) / l * l;
  return grid;
}

std::vector<Bucket> Downsample(std::span<const SeriesPoint> points, int64_t max_points) {
  std::vector<Bucket> out;
  if (points.empty()) return out;
  if (max_points < 1) max_points = 1;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (static_cast<int64_t>(points.size()) <= max_points) {
    out.reserve(points.size());
    for (const auto& p : points) {
      bool finite = std::isfinite(p.value);
      out.push_back({p.step, p.value, p.ts_ms, finite ? p.value : nan, finite ? p.value : nan, 1});
    }
    return out;
  }
  const BucketGrid grid = ChooseBucketGrid(points.front().step, points.back().step, max_points);
  const int64_t first = grid.origin;
  const uint64_t width = grid.width;
  out.reserve(static_cast<size_t>(max_points));
  // One division per bucket, not per point: points only compare with the bucket's end.
  uint64_t bucket_end = 0;  // exclusive, as an offset from `first`
  for (const auto& p : points) {
    const uint64_t offset = static_cast<uint64_t>(p.step) - static_cast<uint64_t>(first);
    if (out.empty() || offset >= bucket_end) {
      bucket_end = (offset / width + 1) * width;
      out.push_back({p.step, p.value, p.ts_ms, nan, nan, 0});
    }
    Bucket& cur = out.back();
    cur.step = p.step;
    cur.value = p.value;
    cur.ts_ms = p.ts_ms;
    ++cur.count;
    if (std::isfinite(p.value)) {
      if (!(cur.min <= p.value)) cur.min = p.value;  // NaN start compares false
      if (!(cur.max >= p.value)) cur.max = p.value;
    }
  }
  return out;
}

}  // namespace atrium::track
