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
  EXPECT_EQ(b.size(), 1000u);
  EXPECT_LT(ms.count(), 200.0);  // generous: a sanity bound, not a benchmark (see bench/track)
}

}  // namespace
}  // namespace atrium::track
