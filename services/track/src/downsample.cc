#include "atrium/track/downsample.h"

#include <cmath>
#include <limits>

namespace atrium::track {

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
  const int64_t first = points.front().step;
  const int64_t last = points.back().step;
  // Unsigned arithmetic: the span may exceed INT64_MAX for extreme steps.
  const uint64_t span = static_cast<uint64_t>(last) - static_cast<uint64_t>(first) + 1;
  const uint64_t width =
      (span + static_cast<uint64_t>(max_points) - 1) / static_cast<uint64_t>(max_points);
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
