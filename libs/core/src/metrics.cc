#include "atrium/core/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <type_traits>

namespace atrium {
namespace {

[[noreturn]] void MetricsBug(const std::string& message) {
  std::fprintf(stderr, "atrium metrics: programmer error: %s\n", message.c_str());
  std::abort();
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// HELP text: backslash and newline escaped.
void AppendEscapedHelp(std::string_view s, std::string& out) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Label values: backslash, double quote and newline escaped.
void AppendEscapedLabelValue(std::string_view s, std::string& out) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Go-style float formatting as Prometheus expects: "+Inf", "-Inf", "NaN", else the shortest
// round-trip representation ("0.25", "1", "1e+21").
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AppendHeader(const MetricFamily& f, std::string& out) {
  out += "# HELP ";
  out += f.name();
  out += ' ';
  AppendEscapedHelp(f.help(), out);
  out += "\n# TYPE ";
  out += f.name();
  out += ' ';
  out += TypeName(f.type());
  out += '\n';
}

// `name{labels} value\n`; `labels` is a LabelPrefix (open brace, no closing one) or empty.
void AppendSample(std::string& out, std::string_view name, std::string_view suffix,
                  const std::string& labels, std::string_view extra_label, std::string_view value) {
  out += name;
  out += suffix;
  if (!labels.empty() || !extra_label.empty()) {
    out += labels.empty() ? "{" : labels;
    if (!labels.empty() && !extra_label.empty()) out += ',';
    out += extra_label;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

void AppendMetric(std::string& out, const MetricFamily& f, const std::string& labels,
                  const Counter& c) {
  AppendSample(out, f.name(), "", labels, "", fmt::format("{}", c.Value()));
}

void AppendMetric(std::string& out, const MetricFamily& f, const std::string& labels,
                  const Gauge& g) {
  AppendSample(out, f.name(), "", labels, "", FormatValue(g.Value()));
}

void AppendMetric(std::string& out, const MetricFamily& f, const std::string& labels,
                  const Histogram& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += h.BucketCount(i);
    AppendSample(out, f.name(), "_bucket", labels, "le=\"" + FormatValue(h.bounds()[i]) + "\"",
                 fmt::format("{}", cumulative));
  }
  cumulative += h.BucketCount(h.bounds().size());
  AppendSample(out, f.name(), "_bucket", labels, "le=\"+Inf\"", fmt::format("{}", cumulative));
  AppendSample(out, f.name(), "_sum", labels, "", FormatValue(h.Sum()));
  AppendSample(out, f.name(), "_count", labels, "", fmt::format("{}", cumulative));
}

void AddToDoubleBits(std::atomic<uint64_t>& bits, double d) {
  uint64_t old = bits.load(std::memory_order_relaxed);
  while (!bits.compare_exchange_weak(old, std::bit_cast<uint64_t>(std::bit_cast<double>(old) + d),
                                     std::memory_order_relaxed)) {
  }
}

class CallbackGaugeFamily final : public MetricFamily {
 public:
  CallbackGaugeFamily(std::string name, std::string help, std::function<double()> read)
      : MetricFamily(std::move(name), std::move(help), MetricType::kGauge, {}),
        read_(std::move(read)) {}

  void AppendText(std::string& out) const override {
    AppendHeader(*this, out);
    AppendSample(out, name(), "", "", "", FormatValue(read_()));
  }

 private:
  std::function<double()> read_;
};

}  // namespace

std::vector<double> DefaultLatencyBuckets() {
  return std::vector<double>(std::begin(kDefaultLatencyBuckets), std::end(kDefaultLatencyBuckets));
}

// --- metrics ---

void Gauge::Set(double v) { bits_.store(std::bit_cast<uint64_t>(v), std::memory_order_relaxed); }
void Gauge::Inc(double d) { AddToDoubleBits(bits_, d); }
double Gauge::Value() const { return std::bit_cast<double>(bits_.load(std::memory_order_relaxed)); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::Observe(double v) {
  // The first bucket whose upper bound is >= v (Prometheus buckets are "less than or equal").
  // NaN lands in +Inf.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  if (std::isnan(v)) i = bounds_.size();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  AddToDoubleBits(sum_bits_, v);
}

uint64_t Histogram::Count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += BucketCount(i);
  return n;
}

double Histogram::Sum() const {
  return std::bit_cast<double>(sum_bits_.load(std::memory_order_relaxed));
}

// --- families ---

MetricFamily::MetricFamily(std::string name, std::string help, MetricType type,
                           std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

void MetricFamily::CheckLabelCount(size_t n) const {
  if (n != label_names_.size()) {
    MetricsBug(
        fmt::format("metric {} has {} labels, got {} values", name_, label_names_.size(), n));
  }
}

std::string MetricFamily::LabelPrefix(const std::vector<std::string>& values) const {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    out += i == 0 ? '{' : ',';
    out += label_names_[i];
    out += "=\"";
    AppendEscapedLabelValue(values[i], out);
    out += '"';
  }
  return out;
}

template <typename M>
M& MetricFamilyOf<M>::WithLabels(const std::vector<std::string>& values) {
  CheckLabelCount(values.size());
  std::lock_guard<std::mutex> lock(mu_);
  auto it = metrics_.find(values);
  if (it == metrics_.end()) it = metrics_.emplace(values, Make()).first;
  return *it->second;
}

template <typename M>
void MetricFamilyOf<M>::AppendText(std::string& out) const {
  AppendHeader(*this, out);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, metric] : metrics_) {
    AppendMetric(out, *this, LabelPrefix(values), *metric);
  }
}

template class MetricFamilyOf<Counter>;
template class MetricFamilyOf<Gauge>;
template class MetricFamilyOf<Histogram>;

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names, std::vector<double> bounds)
    : MetricFamilyOf<Histogram>(std::move(name), std::move(help), MetricType::kHistogram,
                                std::move(label_names)),
      bounds_(std::move(bounds)) {}

// --- registry ---

template <typename F, typename... Args>
F& MetricsRegistry::GetOrAdd(std::string_view name, std::string_view help, MetricType type,
                             std::vector<std::string> label_names, Args&&... extra) {
  if (!IsValidMetricName(name)) MetricsBug(fmt::format("invalid metric name \"{}\"", name));
  for (const auto& l : label_names) {
    if (!IsValidLabelName(l) || (type == MetricType::kHistogram && l == "le")) {
      MetricsBug(fmt::format("invalid label name \"{}\" for metric {}", l, name));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    auto* existing = dynamic_cast<F*>(it->second.get());
    if (existing == nullptr || existing->type() != type || existing->label_names() != label_names) {
      MetricsBug(fmt::format("metric {} registered twice with different types or labels", name));
    }
    if constexpr (std::is_same_v<F, HistogramFamily>) {
      if (existing->bounds() != std::get<sizeof...(Args) - 1>(std::forward_as_tuple(extra...))) {
        MetricsBug(fmt::format("histogram {} registered twice with different buckets", name));
      }
    }
    return *existing;
  }
  bool unlabeled = label_names.empty();
  auto family =
      std::make_unique<F>(std::string(name), std::string(help), std::forward<Args>(extra)...);
  F& ref = *family;
  families_.emplace(std::string(name), std::move(family));
  if (unlabeled) ref.Get();  // expose 0 from the start
  return ref;
}

CounterFamily& MetricsRegistry::Counter(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names) {
  return GetOrAdd<CounterFamily>(name, help, MetricType::kCounter, label_names,
                                 MetricType::kCounter, label_names);
}

GaugeFamily& MetricsRegistry::Gauge(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names) {
  return GetOrAdd<GaugeFamily>(name, help, MetricType::kGauge, label_names, MetricType::kGauge,
                               label_names);
}

HistogramFamily& MetricsRegistry::Histogram(std::string_view name, std::string_view help,
                                            std::vector<std::string> label_names,
                                            std::vector<double> bounds) {
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      MetricsBug(fmt::format("histogram {} buckets must be finite and strictly increasing", name));
    }
  }
  return GetOrAdd<HistogramFamily>(name, help, MetricType::kHistogram, label_names, label_names,
                                   std::move(bounds));
}

void MetricsRegistry::GaugeFunc(std::string_view name, std::string_view help,
                                std::function<double()> read) {
  if (!IsValidMetricName(name)) MetricsBug(fmt::format("invalid metric name \"{}\"", name));
  std::lock_guard<std::mutex> lock(mu_);
  if (families_.count(name) != 0) {
    MetricsBug(fmt::format("metric {} registered twice (callback gauge)", name));
  }
  families_.emplace(std::string(name), std::make_unique<CallbackGaugeFamily>(
                                           std::string(name), std::string(help), std::move(read)));
}

std::string MetricsRegistry::ExpositionText() const {
  // Families are never removed, so the pointers stay valid after the lock is released; callback
  // gauges then run without the registry lock.
  std::vector<const MetricFamily*> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_) families.push_back(family.get());
  }
  std::string out;
  for (const MetricFamily* f : families) f->AppendText(out);
  return out;
}

}  // namespace atrium
