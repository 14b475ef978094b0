#include "atrium/core/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace atrium {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, ExpositionTextIsExactForASmallRegistry) {
  MetricsRegistry registry;
  auto& requests = registry.Counter("http_requests_total", "HTTP requests.", {"method", "status"});
  requests.WithLabels({"GET", "200"}).Inc(3);
  requests.WithLabels({"POST", "500"}).Inc();
  registry.Gauge("connections", "Open connections.").Get().Set(2.5);
  auto& latency =
      registry.Histogram("http_request_duration_seconds", "Latency.", {"route"}, {0.1, 0.5, 1});
  auto& x = latency.WithLabels({"/x"});
  x.Observe(0.05);
  x.Observe(0.1);  // upper bounds are inclusive
  x.Observe(0.7);
  x.Observe(3);
  registry.GaugeFunc("queue_length", "Queued jobs.", [] { return 7.0; });

  EXPECT_EQ(registry.ExpositionText(),
            "# HELP connections Open connections.\n"
            "# TYPE connections gauge\n"
            "connections 2.5\n"
            "# HELP http_request_duration_seconds Latency.\n"
            "# TYPE http_request_duration_seconds histogram\n"
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"0.5\"} 2\n"
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"
            "http_request_duration_seconds_sum{route=\"/x\"} 3.85\n"
            "http_request_duration_seconds_count{route=\"/x\"} 4\n"
            "# HELP http_requests_total HTTP requests.\n"
            "# TYPE http_requests_total counter\n"
            "http_requests_total{method=\"GET\",status=\"200\"} 3\n"
            "http_requests_total{method=\"POST\",status=\"500\"} 1\n"
            "# HELP queue_length Queued jobs.\n"
            "# TYPE queue_length gauge\n"
            "queue_length 7\n");
}

TEST(MetricsTest, UnlabeledFamiliesExposeZeroBeforeFirstUse) {
  MetricsRegistry registry;
  registry.Counter("started_total", "Starts.");
  registry.Histogram("h", "H.", {}, {1});
  EXPECT_EQ(registry.ExpositionText(),
            "# HELP h H.\n"
            "# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\n"
            "h_bucket{le=\"+Inf\"} 0\n"
            "h_sum 0\n"
            "h_count 0\n"
            "# HELP started_total Starts.\n"
            "# TYPE started_total counter\n"
            "started_total 0\n");
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry registry;
  registry.Counter("c_total", "Help with \\ and\nnewline \"quotes\".", {"path"})
      .WithLabels({"a\\b\"c\nd"})
      .Inc();
  EXPECT_EQ(registry.ExpositionText(),
            "# HELP c_total Help with \\\\ and\\nnewline \"quotes\".\n"
            "# TYPE c_total counter\n"
            "c_total{path=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(MetricsTest, ConcurrentIncrementsAreExact) {
  MetricsRegistry registry;
  Counter& counter = registry.Counter("hits_total", "Hits.").Get();
  Gauge& gauge = registry.Gauge("level", "Level.").Get();
  Histogram& hist = registry.Histogram("obs", "Obs.", {}, {0.5}).Get();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        counter.Inc();
        gauge.Inc();
        hist.Observe(i % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.Value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(gauge.Value(), double{kThreads} * kPerThread);
  EXPECT_EQ(hist.Count(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(hist.BucketCount(0), uint64_t{kThreads} * kPerThread / 2);
  EXPECT_EQ(hist.Sum(), kThreads * (kPerThread / 2) * (0.25 + 1.0));
}

TEST(MetricsTest, ConcurrentWithLabelsReturnsOneMetricPerLabelSet) {
  MetricsRegistry registry;
  auto& family = registry.Counter("c_total", "C.", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) family.WithLabels({t % 2 == 0 ? "even" : "odd"}).Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(family.WithLabels({"even"}).Value(), 4000u);
  EXPECT_EQ(family.WithLabels({"odd"}).Value(), 4000u);
}

TEST(MetricsTest, WithLabelsReturnsAStableReference) {
  MetricsRegistry registry;
  auto& family = registry.Gauge("g", "G.", {"a"});
  Gauge* first = &family.WithLabels({"x"});
  for (int i = 0; i < 100; ++i) family.WithLabels({std::to_string(i)});
  EXPECT_EQ(first, &family.WithLabels({"x"}));
}

TEST(MetricsTest, GaugeSetIncDec) {
  Gauge g;
  g.Set(10);
  g.Inc(2.5);
  g.Dec();
  EXPECT_DOUBLE_EQ(g.Value(), 11.5);
  g.Set(-1);
  EXPECT_DOUBLE_EQ(g.Value(), -1);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeInExposition) {
  MetricsRegistry registry;
  Histogram& h = registry.Histogram("lat", "L.", {}, {1, 2, 3}).Get();
  for (double v : {0.5, 1.5, 1.6, 2.5, 2.6, 2.7, 99.0}) h.Observe(v);
  std::string text = registry.ExpositionText();
  EXPECT_THAT(text, HasSubstr("lat_bucket{le=\"1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("lat_bucket{le=\"2\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("lat_bucket{le=\"3\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("lat_bucket{le=\"+Inf\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("lat_count 7\n"));
}

TEST(MetricsTest, DefaultLatencyBucketsAreUsedWhenNoneGiven) {
  MetricsRegistry registry;
  auto& family = registry.Histogram("d", "D.");
  EXPECT_EQ(family.bounds(), DefaultLatencyBuckets());
  EXPECT_THAT(registry.ExpositionText(), HasSubstr("d_bucket{le=\"0.0025\"} 0\n"));
}

TEST(MetricsTest, RegisteringTheSameFamilyTwiceReturnsIt) {
  MetricsRegistry registry;
  auto& a = registry.Counter("c_total", "C.", {"k"});
  auto& b = registry.Counter("c_total", "C.", {"k"});
  EXPECT_EQ(&a, &b);
  auto& h1 = registry.Histogram("h", "H.", {}, {1, 2, std::numeric_limits<double>::infinity()});
  auto& h2 = registry.Histogram("h", "H.", {}, {1, 2});
  EXPECT_EQ(&h1, &h2);
}

TEST(MetricsTest, GaugeFuncIsReadAtScrapeTimeAndMayUseTheRegistry) {
  MetricsRegistry registry;
  double value = 1;
  registry.GaugeFunc("families", "Number of metric families.", [&] {
    // Calling back into the registry must not deadlock.
    return value + static_cast<double>(registry.Counter("x_total", "X.").Get().Value());
  });
  EXPECT_THAT(registry.ExpositionText(), HasSubstr("families 1\n"));
  value = 41;
  registry.Counter("x_total", "X.").Get().Inc();
  EXPECT_THAT(registry.ExpositionText(), HasSubstr("families 42\n"));
}

TEST(MetricsDeathTest, ProgrammerErrorsAbort) {
  MetricsRegistry registry;
  registry.Counter("c_total", "C.", {"k"});
  EXPECT_DEATH(registry.Gauge("c_total", "C.", {"k"}), "different types or labels");
  EXPECT_DEATH(registry.Counter("c_total", "C.", {"other"}), "different types or labels");
  EXPECT_DEATH(registry.Counter("c_total", "C.", {"k"}).WithLabels({"a", "b"}),
               "has 1 labels, got 2");
  EXPECT_DEATH(registry.Counter("1bad", "B."), "invalid metric name");
  EXPECT_DEATH(registry.Counter("ok_total", "B.", {"__x"}), "invalid label name");
  EXPECT_DEATH(registry.Histogram("h", "H.", {"le"}), "invalid label name");
  EXPECT_DEATH(registry.Histogram("h2", "H.", {}, {2, 1}), "strictly increasing");
  registry.Histogram("h3", "H.", {}, {1});
  EXPECT_DEATH(registry.Histogram("h3", "H.", {}, {2}), "different buckets");
}

TEST(MetricsTest, NameValidationAcceptsColonsAndUnderscores) {
  MetricsRegistry registry;
  registry.Counter("atrium:http_requests_total", "X.");
  registry.Counter("_private", "X.");
  EXPECT_THAT(registry.ExpositionText(), HasSubstr("atrium:http_requests_total 0\n"));
}

}  // namespace
}  // namespace atrium
