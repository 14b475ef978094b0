#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "atrium/track/downsample.h"

namespace atrium::track {
namespace {

std::vector<SeriesPoint> Series(int n) {
  std::vector<SeriesPoint> v;
  for (int i = 0; i < n; ++i) v.push_back({i, std::sin(i * 0.01), i});
  return v;
}

TEST(DownsampleTest, SmallSeriesIsReturnedAsIs) {
  auto v = Series(10);
  auto b = Downsample(v, 100);
  ASSERT_EQ(b.size(), 10u);
  EXPECT_EQ(b[3].step, 3);
  EXPECT_EQ(b[3].count, 1);
  EXPECT_EQ(b[3].min, b[3].value);
}

TEST(DownsampleTest, KeepsExtremesAndBoundsTheOutput) {
  auto v = Series(100000);
  v[31337].value = 1e6;
  v[777].value = -1e6;
  v[500].value = std::numeric_limits<double>::quiet_NaN();
  auto b = Downsample(v, 1000);
  ASSERT_LE(b.size(), 1000u);
  ASSERT_GE(b.size(), 990u);
  double mn = 0, mx = 0;
  int64_t count = 0;
  for (const auto& x : b) {
    mn = std::min(mn, x.min);
    mx = std::max(mx, x.max);
    count += x.count;
  }
  EXPECT_EQ(mn, -1e6);
  EXPECT_EQ(mx, 1e6);
  EXPECT_EQ(count, 100000);
  EXPECT_EQ(b.back().step, 99999);
  EXPECT_EQ(b.back().value, v.back().value);
}

TEST(DownsampleTest, SparseStepsAndAllNanBuckets) {
  std::vector<SeriesPoint> v{
      {0, std::nan(""), 0}, {1, std::nan(""), 0}, {2000000, 2, 0}, {2000001, 3, 0}};
  auto b = Downsample(v, 2);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_TRUE(std::isnan(b[0].min));
  EXPECT_EQ(b[0].count, 2);
  EXPECT_EQ(b[1].min, 2);
  EXPECT_EQ(b[1].max, 3);
  EXPECT_EQ(b[1].step, 2000001);
}

TEST(DownsampleTest, OneMillionPointsIsFast) {
  auto v = Series(1000000);
  auto start = std::chrono::steady_clock::now();
  auto b = Downsample(v, 1000);
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  EXPECT_LE(b.size(), 1000u);
  EXPECT_GE(b.size(), 900u);
  EXPECT_LT(ms.count(), 200.0);  // generous: a sanity bound, not a benchmark (see bench/track)
}

TEST(DownsampleTest, LongRangesUseBucketsOfWholeRollupChunks) {
  // Short ranges: plain equal widths from the first step.
  BucketGrid g = ChooseBucketGrid(5, 100004, 1000);
  EXPECT_EQ(g.level, 0);
  EXPECT_EQ(g.origin, 5);
  EXPECT_EQ(g.width, 100u);
  // 1M steps into 1,000: chunks of 256, buckets of 1,024 steps aligned to them.
  g = ChooseBucketGrid(0, 999999, 1000);
  EXPECT_EQ(g.level, 256);
  EXPECT_EQ(g.origin, 0);
  EXPECT_EQ(g.width, 1024u);
  for (int64_t first : {0LL, 1LL, 12345LL, 999'999'999LL}) {
    for (int64_t span : {128'000LL, 300'001LL, 1'000'000LL, 77'777'777LL}) {
      for (int64_t max_points : {1000LL, 777LL, 50LL}) {
        int64_t last = first + span - 1;
        g = ChooseBucketGrid(first, last, max_points);
        if (g.level == 0) continue;
        EXPECT_EQ(g.origin % g.level, 0);
        EXPECT_EQ(g.width % static_cast<uint64_t>(g.level), 0u);
        EXPECT_LE(g.origin, first);
        const uint64_t buckets = (static_cast<uint64_t>(last - g.origin)) / g.width + 1;
        EXPECT_LE(buckets, static_cast<uint64_t>(max_points)) << first << " " << span;
        EXPECT_GE(3 * buckets, 2 * static_cast<uint64_t>(max_points) - 3) << first << " " << span;
        // Fewer than 8 chunks per bucket on average.
        EXPECT_LT(static_cast<uint64_t>(span) / static_cast<uint64_t>(g.level),
                  8 * static_cast<uint64_t>(max_points) + 1);
      }
    }
  }
  // The points of a long series fall into those buckets: each bucket is one chunk-aligned
  // window, its count the points in it.
  auto v = Series(1000000);
  auto b = Downsample(v, 1000);
  g = ChooseBucketGrid(0, 999999, 1000);
  ASSERT_EQ(g.level, 256);
  ASSERT_EQ(b.size(), (999999 / g.width) + 1);
  EXPECT_EQ(b[0].count, static_cast<int64_t>(g.width));
  EXPECT_EQ(b[0].step, static_cast<int64_t>(g.width) - 1);
  EXPECT_EQ(b[1].step, 2 * static_cast<int64_t>(g.width) - 1);
}

}  // namespace
}  // namespace atrium::track
