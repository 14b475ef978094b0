// Metrics: counters, gauges and histograms with labels, exposed in the Prometheus text format.
//
// One MetricsRegistry is built in main and passed to the modules (there is no global registry).
// A module registers a family once (`Counter(name, help, label_names)`), resolves the label values
// it uses with `WithLabels(...)` and keeps the returned reference: the metric lives as long as the
// registry and its address never changes. Updating a metric is a relaxed atomic operation with no
// lock and no allocation, so it is cheap enough for hot paths; WithLabels takes a lock and may
// allocate, so callers cache its result.
//
// Exposition follows the Prometheus text format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): families sorted by name,
// series within a family sorted by label values, histograms with cumulative `_bucket{le=...}`
// series ending in `le="+Inf"`, then `_sum` and `_count`.
//
// Programmer errors abort with a message: invalid metric or label names, registering a name again
// with another type, other label names or other buckets, and a label value count that does not
// match the family's label names.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace atrium {

// Upper bounds, in seconds, for request latency histograms (1 ms .. 10 s).
inline constexpr double kDefaultLatencyBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                    0.25,  0.5,    1,     2.5,  5,     10};
std::vector<double> DefaultLatencyBuckets();

// A monotonically increasing count. Thread-safe, lock-free.
class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Thread-safe, lock-free (a CAS loop for Inc/Dec).
class Gauge {
 public:
  void Set(double v);
  void Inc(double d = 1);
  void Dec(double d = 1) { Inc(-d); }
  double Value() const;

 private:
  std::atomic<uint64_t> bits_{0};  // a double, bit-cast (0 bits == 0.0)
};

// Counts observations into buckets. Thread-safe, lock-free. A scrape concurrent with Observe may
// see the sum and the buckets of slightly different moments; _count always equals the +Inf bucket.
class Histogram {
 public:
  // `bounds`: finite, strictly increasing upper bounds (validated by the registry).
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Non-cumulative count of bucket i (i == bounds().size() is the +Inf overflow bucket).
  uint64_t BucketCount(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
  uint64_t Count() const;
  double Sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<uint64_t> sum_bits_{0};                // a double, bit-cast
};

enum class MetricType { kCounter, kGauge, kHistogram };

// What all families share; the registry owns them. Thread-safe.
class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, MetricType type,
               std::vector<std::string> label_names);
  virtual ~MetricFamily() = default;
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends this family in the text exposition format.
  virtual void AppendText(std::string& out) const = 0;

 protected:
  // Aborts unless `n` label values were given for this family.
  void CheckLabelCount(size_t n) const;
  // `{a="x",b="y"` (no closing brace; empty when there are no labels), values escaped.
  std::string LabelPrefix(const std::vector<std::string>& values) const;

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
};

// A family of metrics of type M (Counter, Gauge or Histogram), one per label value tuple.
template <typename M>
class MetricFamilyOf : public MetricFamily {
 public:
  using MetricFamily::MetricFamily;

  // The metric for these label values (in label_names() order), created on first use. The
  // reference stays valid for the registry's lifetime. Takes a lock: cache the result.
  M& WithLabels(std::initializer_list<std::string_view> values) {
    return WithLabels(std::vector<std::string>(values.begin(), values.end()));
  }
  M& WithLabels(const std::vector<std::string>& values);
  // The only metric of a family without labels.
  M& Get() { return WithLabels(std::vector<std::string>{}); }

  void AppendText(std::string& out) const override;

 protected:
  virtual std::unique_ptr<M> Make() const {
    if constexpr (std::is_default_constructible_v<M>) {
      return std::make_unique<M>();
    } else {
      return nullptr;  // overridden (HistogramFamily)
    }
  }

 private:
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> metrics_;  // guarded by mu_
};

extern template class MetricFamilyOf<Counter>;
extern template class MetricFamilyOf<Gauge>;
extern template class MetricFamilyOf<Histogram>;

using CounterFamily = MetricFamilyOf<Counter>;
using GaugeFamily = MetricFamilyOf<Gauge>;

class HistogramFamily final : public MetricFamilyOf<Histogram> {
 public:
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds);
  const std::vector<double>& bounds() const { return bounds_; }

 protected:
  std::unique_ptr<Histogram> Make() const override { return std::make_unique<Histogram>(bounds_); }

 private:
  std::vector<double> bounds_;
};

// Owns the families. Thread-safe; registration takes a lock, metric updates do not.
class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Register a family, or return the existing one of that name when its type and label names
  // (and, for histograms, bounds) match; anything else aborts. Names match
  // [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* without a "__" prefix
  // (and not "le" for histograms). A family without labels has its one metric from the start.
  CounterFamily& Counter(std::string_view name, std::string_view help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& Gauge(std::string_view name, std::string_view help,
                     std::vector<std::string> label_names = {});
  // `bounds`: finite, strictly increasing; a trailing +Inf is implied (and dropped if given).
  HistogramFamily& Histogram(std::string_view name, std::string_view help,
                             std::vector<std::string> label_names = {},
                             std::vector<double> bounds = DefaultLatencyBuckets());

  // A gauge whose value is read by calling `read` at exposition time (queue lengths, pool sizes).
  // `read` runs on the scraping thread without registry locks held, so it may use the registry;
  // it must be thread-safe and outlive the registry's use. Registering a name twice aborts.
  void GaugeFunc(std::string_view name, std::string_view help, std::function<double()> read);

  // The text exposition (Content-Type: text/plain; version=0.0.4; charset=utf-8).
  std::string ExpositionText() const;

 private:
  template <typename F, typename... Args>
  F& GetOrAdd(std::string_view name, std::string_view help, MetricType type,
              std::vector<std::string> label_names, Args&&... extra);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamily>, std::less<>> families_;  // guarded by mu_
};

// The Content-Type of ExpositionText().
inline constexpr std::string_view kPrometheusTextContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace atrium
