// Sweep configuration, grid / random / TPE suggestions and Hyperband (see sweep.h).
#include "atrium/track/sweep.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

namespace atrium::track {
namespace json = boost::json;
namespace {

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::mt19937_64 RngFor(const SweepConfig& c, int64_t index, uint64_t salt) {
  return std::mt19937_64(SplitMix(c.seed ^ SplitMix(static_cast<uint64_t>(index) * 31 + salt)));
}

std::string NumberText(double d) { return json::serialize(json::value(d)); }

Result<double> Number(const json::object& o, std::string_view name, const std::string& field) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || !v->is_number()) {
    return InvalidArgument(field + "." + std::string(name) + " must be a number");
  }
  double d = v->to_number<double>();
  if (!std::isfinite(d))
    return InvalidArgument(field + "." + std::string(name) + " must be finite");
  return d;
}

// Internal continuous space of a numeric parameter (log for log-uniform).
double ToSpace(const ParamSpec& p, double v) {
  return p.kind == ParamSpec::Kind::kLogUniform ? std::log(v) : v;
}
double Lo(const ParamSpec& p) { return ToSpace(p, p.min); }
double Hi(const ParamSpec& p) {
  return p.kind == ParamSpec::Kind::kInt ? p.max + 0.999999 : ToSpace(p, p.max);
}

std::string FromSpace(const ParamSpec& p, double x) {
  switch (p.kind) {
    case ParamSpec::Kind::kLogUniform:
      return NumberText(std::clamp(std::exp(x), p.min, p.max));
    case ParamSpec::Kind::kInt:
      return std::to_string(static_cast<int64_t>(std::clamp(std::floor(x), p.min, p.max)));
    default:
      return NumberText(std::clamp(x, p.min, p.max));
  }
}

std::string Draw(const ParamSpec& p, std::mt19937_64& rng) {
  switch (p.kind) {
    case ParamSpec::Kind::kConstant:
      return p.values[0];
    case ParamSpec::Kind::kCategorical: {
      std::uniform_int_distribution<size_t> d(0, p.values.size() - 1);
      return p.values[d(rng)];
    }
    case ParamSpec::Kind::kInt: {
      std::uniform_int_distribution<int64_t> d(static_cast<int64_t>(p.min),
                                               static_cast<int64_t>(p.max));
      return std::to_string(d(rng));
    }
    default: {
      std::uniform_real_distribution<double> d(Lo(p), Hi(p));
      return FromSpace(p, d(rng));
    }
  }
}

const std::string* Find(const Assignment& a, const std::string& name) {
  for (const auto& [k, v] : a) {
    if (k == name) return &v;
  }
  return nullptr;
}

double NormalPdfLog(double x, double mu, double sigma) {
  double z = (x - mu) / sigma;
  return -0.5 * z * z - std::log(sigma);
}

// log of a Parzen mixture over `centers` (plus a uniform prior component) at x.
double MixtureLog(double x, const std::vector<double>& centers, double sigma, double lo,
                  double hi) {
  double width = hi - lo;
  double prior = 1.0 / width;
  double sum = prior;  // the prior counts as one component
  for (double c : centers) sum += std::exp(NormalPdfLog(x, c, sigma)) / std::sqrt(2 * M_PI);
  return std::log(sum / static_cast<double>(centers.size() + 1));
}

}  // namespace

Result<SweepConfig> ParseSweepConfig(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return InvalidArgument("config must be a JSON object");
  const auto& o = v.as_object();
  SweepConfig c;
  const auto* method = o.if_contains("method");
  if (method == nullptr || !method->is_string())
    return InvalidArgument("config.method is required");
  std::string_view m = method->as_string();
  if (m == "grid") {
    c.method = SweepConfig::Method::kGrid;
  } else if (m == "random") {
    c.method = SweepConfig::Method::kRandom;
  } else if (m == "bayes" || m == "tpe") {
    c.method = SweepConfig::Method::kBayes;
  } else {
    return InvalidArgument("config.method must be grid, random or bayes");
  }
  if (const auto* metric = o.if_contains("metric"); metric && !metric->is_null()) {
    if (!metric->is_object()) return InvalidArgument("config.metric must be an object");
    const auto* name = metric->as_object().if_contains("name");
    if (name == nullptr || !name->is_string() || name->as_string().empty()) {
      return InvalidArgument("config.metric.name is required");
    }
    c.metric = std::string(name->as_string());
    if (const auto* goal = metric->as_object().if_contains("goal"); goal && !goal->is_null()) {
      if (!goal->is_string() ||
          (goal->as_string() != "minimize" && goal->as_string() != "maximize")) {
        return InvalidArgument("config.metric.goal must be minimize or maximize");
      }
      c.maximize = goal->as_string() == "maximize";
    }
  }
  if (c.method == SweepConfig::Method::kBayes && c.metric.empty()) {
    return InvalidArgument("config.metric is required for bayes");
  }
  const auto* params = o.if_contains("parameters");
  if (params == nullptr || !params->is_object() || params->as_object().empty()) {
    return InvalidArgument("config.parameters must be a non-empty object");
  }
  if (params->as_object().size() > 100) return InvalidArgument("config.parameters: at most 100");
  for (const auto& [name, spec_v] : params->as_object()) {
    std::string field = "config.parameters." + std::string(name);
    if (!spec_v.is_object()) return InvalidArgument(field + " must be an object");
    const auto& spec = spec_v.as_object();
    ParamSpec p;
    p.name = std::string(name);
    std::string dist;
    if (const auto* d = spec.if_contains("distribution"); d && !d->is_null()) {
      if (!d->is_string()) return InvalidArgument(field + ".distribution must be a string");
      dist = std::string(d->as_string());
    }
    if (const auto* value = spec.if_contains("value")) {
      p.kind = ParamSpec::Kind::kConstant;
      p.values.push_back(json::serialize(*value));
    } else if (const auto* values = spec.if_contains("values");
               values && (dist.empty() || dist == "categorical")) {
      if (!values->is_array() || values->as_array().empty()) {
        return InvalidArgument(field + ".values must be a non-empty list");
      }
      p.kind = ParamSpec::Kind::kCategorical;
      for (const auto& e : values->as_array()) p.values.push_back(json::serialize(e));
    } else {
      if (dist.empty()) dist = "uniform";
      if (dist == "uniform") {
        p.kind = ParamSpec::Kind::kUniform;
      } else if (dist == "log_uniform" || dist == "log_uniform_values") {
        p.kind = ParamSpec::Kind::kLogUniform;
      } else if (dist == "int" || dist == "int_uniform") {
        p.kind = ParamSpec::Kind::kInt;
      } else {
        return InvalidArgument(field +
                               ".distribution must be uniform, log_uniform, int or "
                               "categorical");
      }
      auto mn = Number(spec, "min", field);
      if (!mn.ok()) return mn.status();
      auto mx = Number(spec, "max", field);
      if (!mx.ok()) return mx.status();
      p.min = *mn;
      p.max = *mx;
      if (p.min > p.max) return InvalidArgument(field + ".min must not exceed max");
      if (p.kind == ParamSpec::Kind::kLogUniform && p.min <= 0) {
        return InvalidArgument(field + ".min must be positive for log_uniform");
      }
      if (p.kind == ParamSpec::Kind::kInt) {
        p.min = std::ceil(p.min);
        p.max = std::floor(p.max);
        if (p.min > p.max) return InvalidArgument(field + " has no integer in [min, max]");
      }
    }
    if (c.method == SweepConfig::Method::kGrid &&
        (p.kind == ParamSpec::Kind::kUniform || p.kind == ParamSpec::Kind::kLogUniform)) {
      return InvalidArgument(field + ": grid sweeps need values (or int), not continuous ranges");
    }
    c.params.push_back(std::move(p));
  }
  auto get_int = [&](std::string_view name, int64_t& out, int64_t min) -> Status {
    const auto* n = o.if_contains(name);
    if (n == nullptr || n->is_null()) return Status::Ok();
    if (!n->is_int64() || n->as_int64() < min) {
      return InvalidArgument("config." + std::string(name) +
                             " must be an integer >= " + std::to_string(min));
    }
    out = n->as_int64();
    return Status::Ok();
  };
  RETURN_IF_ERROR(get_int("run_cap", c.run_cap, 0));
  int64_t seed = 0;
  RETURN_IF_ERROR(get_int("seed", seed, 0));
  c.seed = static_cast<uint64_t>(seed);
  int64_t n_startup = c.n_startup;
  RETURN_IF_ERROR(get_int("n_startup", n_startup, 1));
  c.n_startup = static_cast<int>(std::min<int64_t>(n_startup, 1000));
  if (c.method == SweepConfig::Method::kGrid && GridSize(c) > 1'000'000) {
    return InvalidArgument("config.parameters: the grid has more than 1,000,000 points");
  }
  if (const auto* et = o.if_contains("early_terminate"); et && !et->is_null()) {
    if (!et->is_object()) return InvalidArgument("config.early_terminate must be an object");
    const auto& e = et->as_object();
    const auto* type = e.if_contains("type");
    if (type == nullptr || !type->is_string() || type->as_string() != "hyperband") {
      return InvalidArgument("config.early_terminate.type must be hyperband");
    }
    c.hyperband = true;
    auto get = [&](std::string_view name, int64_t& out, int64_t min) -> Status {
      const auto* n = e.if_contains(name);
      if (n == nullptr || n->is_null()) return Status::Ok();
      if (!n->is_int64() || n->as_int64() < min) {
        return InvalidArgument("config.early_terminate." + std::string(name) +
                               " must be an integer >= " + std::to_string(min));
      }
      out = n->as_int64();
      return Status::Ok();
    };
    RETURN_IF_ERROR(get("min_iter", c.min_iter, 1));
    RETURN_IF_ERROR(get("eta", c.eta, 2));
    if (c.metric.empty()) return InvalidArgument("config.metric is required for early_terminate");
  }
  return c;
}

int64_t GridSize(const SweepConfig& c) {
  int64_t n = 1;
  for (const auto& p : c.params) {
    int64_t k = p.kind == ParamSpec::Kind::kInt ? static_cast<int64_t>(p.max - p.min) + 1
                                                : static_cast<int64_t>(p.values.size());
    if (k <= 0) return 0;
    if (n > INT64_MAX / k) return INT64_MAX;
    n *= k;
  }
  return n;
}

std::optional<Assignment> GridSuggestion(const SweepConfig& c, int64_t index) {
  if (index < 0 || index >= GridSize(c)) return std::nullopt;
  Assignment out(c.params.size());
  int64_t rest = index;
  for (size_t i = c.params.size(); i-- > 0;) {  // the last parameter varies fastest
    const auto& p = c.params[i];
    int64_t k = p.kind == ParamSpec::Kind::kInt ? static_cast<int64_t>(p.max - p.min) + 1
                                                : static_cast<int64_t>(p.values.size());
    int64_t digit = rest % k;
    rest /= k;
    out[i].first = p.name;
    out[i].second = p.kind == ParamSpec::Kind::kInt
                        ? std::to_string(static_cast<int64_t>(p.min) + digit)
                        : p.values[static_cast<size_t>(digit)];
  }
  return out;
}

Assignment RandomSuggestion(const SweepConfig& c, int64_t index) {
  auto rng = RngFor(c, index, 1);
  Assignment out;
  for (const auto& p : c.params) out.emplace_back(p.name, Draw(p, rng));
  return out;
}

Assignment TpeSuggestion(const SweepConfig& c, int64_t index,
                         const std::vector<Observation>& history) {
  if (static_cast<int>(history.size()) < c.n_startup) return RandomSuggestion(c, index);
  // Best first.
  std::vector<const Observation*> sorted;
  for (const auto& o : history) {
    if (std::isfinite(o.value)) sorted.push_back(&o);
  }
  if (static_cast<int>(sorted.size()) < c.n_startup) return RandomSuggestion(c, index);
  std::stable_sort(sorted.begin(), sorted.end(), [&](const Observation* a, const Observation* b) {
    return c.maximize ? a->value > b->value : a->value < b->value;
  });
  const size_t n_good = std::max<size_t>(1, static_cast<size_t>(std::ceil(0.25 * sorted.size())));
  auto rng = RngFor(c, index, 2);
  constexpr int kCandidates = 24;
  Assignment out;
  for (const auto& p : c.params) {
    if (p.kind == ParamSpec::Kind::kConstant) {
      out.emplace_back(p.name, p.values[0]);
      continue;
    }
    if (p.kind == ParamSpec::Kind::kCategorical) {
      std::map<std::string, double> good, bad;
      for (size_t i = 0; i < sorted.size(); ++i) {
        const std::string* v = Find(sorted[i]->params, p.name);
        if (v == nullptr) continue;
        (i < n_good ? good : bad)[*v] += 1;
      }
      const double k = static_cast<double>(p.values.size());
      std::vector<double> weights;
      for (const auto& v : p.values) weights.push_back(good[v] + 1.0);
      std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
      double best_score = -1e300;
      std::string best = p.values[0];
      for (int i = 0; i < kCandidates; ++i) {
        const std::string& cand = p.values[pick(rng)];
        double l = (good[cand] + 1.0) / (static_cast<double>(n_good) + k);
        double g = (bad[cand] + 1.0) / (static_cast<double>(sorted.size() - n_good) + k);
        double score = std::log(l) - std::log(g);
        if (score > best_score) {
          best_score = score;
          best = cand;
        }
      }
      out.emplace_back(p.name, best);
      continue;
    }
    const double lo = Lo(p), hi = Hi(p);
    std::vector<double> good, bad;
    for (size_t i = 0; i < sorted.size(); ++i) {
      const std::string* v = Find(sorted[i]->params, p.name);
      if (v == nullptr) continue;
      double x = ToSpace(p, std::strtod(v->c_str(), nullptr));
      if (p.kind == ParamSpec::Kind::kInt) x += 0.5;
      (i < n_good ? good : bad).push_back(x);
    }
    if (good.empty() || hi <= lo) {
      out.emplace_back(p.name, Draw(p, rng));
      continue;
    }
    // Bandwidths shrink as evidence grows (Scott-like rule on the range).
    const double range = hi - lo;
    const double sigma_good = range / std::pow(static_cast<double>(good.size()) + 1.0, 0.6) * 0.5;
    const double sigma_bad = range / std::pow(static_cast<double>(bad.size()) + 1.0, 0.6) * 0.5;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::uniform_int_distribution<size_t> which(0, good.size());
    double best_score = -1e300, best_x = lo;
    for (int i = 0; i < kCandidates; ++i) {
      size_t w = which(rng);
      double x;
      if (w == good.size()) {
        x = lo + unit(rng) * range;  // the prior component
      } else {
        std::normal_distribution<double> n(good[w], sigma_good);
        x = std::clamp(n(rng), lo, std::nextafter(hi, lo));
      }
      double score =
          MixtureLog(x, good, sigma_good, lo, hi) - MixtureLog(x, bad, sigma_bad, lo, hi);
      if (score > best_score) {
        best_score = score;
        best_x = x;
      }
    }
    out.emplace_back(p.name, FromSpace(p, best_x));
  }
  return out;
}

std::optional<int64_t> HyperbandRung(const SweepConfig& c, int64_t step) {
  if (step < c.min_iter) return std::nullopt;
  int64_t rung = c.min_iter;
  while (rung <= step / c.eta) rung *= c.eta;
  return rung;
}

bool HyperbandShouldStop(const SweepConfig& c, double mine, std::vector<double> all) {
  std::erase_if(all, [](double v) { return !std::isfinite(v); });
  if (static_cast<int64_t>(all.size()) < c.eta) return false;
  if (!std::isfinite(mine)) return true;
  std::sort(all.begin(), all.end());
  if (c.maximize) std::reverse(all.begin(), all.end());
  size_t keep = static_cast<size_t>((static_cast<int64_t>(all.size()) + c.eta - 1) / c.eta);
  double threshold = all[keep - 1];
  return c.maximize ? mine < threshold : mine > threshold;
}

}  // namespace atrium::track
