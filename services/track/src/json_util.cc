// JSON and id helpers of the track handlers.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

#include "atrium/http/server.h"
#include "track_impl.h"

namespace atrium::track {

void AppendJsonNumber(std::string& out, double d) {
  if (std::isnan(d)) {
    out += "\"NaN\"";
  } else if (std::isinf(d)) {
    out += d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    out.append(buf, r.ptr);
  }
}

void AppendJsonInt(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

Response Error(const Status& s) { return Response::FromStatus(s); }

Response JsonReply(int status, const json::value& v) {
  return Response::Json(status, json::serialize(v));
}

namespace {

// Rewrites bare NaN / Infinity / -Infinity tokens outside strings into strings, so bodies
// written by Python's json.dumps (allow_nan=True, the default) parse.
std::string QuoteNonFiniteTokens(std::string_view in) {
  std::string out;
  out.reserve(in.size() + 64);
  bool in_string = false;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < in.size()) {
        out += in[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    auto starts = [&](std::string_view tok) { return in.substr(i, tok.size()) == tok; };
    if (starts("-Infinity")) {
      out += "\"-Infinity\"";
      i += 8;
    } else if (starts("Infinity")) {
      out += "\"Infinity\"";
      i += 7;
    } else if (starts("NaN")) {
      out += "\"NaN\"";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Result<json::object> ParseBody(const Request& req) {
  if (req.body.empty()) return json::object();
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec) {
    if (req.body.find("NaN") != std::string::npos ||
        req.body.find("Infinity") != std::string::npos) {
      ec.clear();
      v = json::parse(QuoteNonFiniteTokens(req.body), ec);
    }
    if (ec) return InvalidArgument("the body is not valid JSON: " + ec.message());
  }
  if (!v.is_object()) return InvalidArgument("the body must be a JSON object");
  return std::move(v.as_object());
}

Result<std::string> GetString(const json::object& o, std::string_view name, bool required,
                              size_t max_len) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) {
    if (required) return InvalidArgument(std::string(name) + " is required");
    return std::string();
  }
  if (!v->is_string()) return InvalidArgument(std::string(name) + " must be a string");
  if (v->as_string().size() > max_len) {
    return InvalidArgument(std::string(name) + " is too long (max " + std::to_string(max_len) +
                           ")");
  }
  return std::string(v->as_string());
}

Result<std::optional<int64_t>> GetInt(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>();
  if (v->is_int64()) return std::optional<int64_t>(v->as_int64());
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return std::optional<int64_t>(static_cast<int64_t>(v->as_uint64()));
  }
  if (v->is_double() && std::trunc(v->as_double()) == v->as_double() &&
      std::fabs(v->as_double()) < 9e18) {
    return std::optional<int64_t>(static_cast<int64_t>(v->as_double()));
  }
  if (v->is_string()) {  // ids travel as strings
    const auto& s = v->as_string();
    char* end = nullptr;
    long long n = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end == s.c_str() + s.size()) return std::optional<int64_t>(n);
  }
  return InvalidArgument(std::string(name) + " must be an integer");
}

Result<double> ToMetricValue(const json::value* v, const std::string& field) {
  if (v == nullptr) return InvalidArgument(field + " is required");
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  if (v->is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (v->is_bool()) return v->as_bool() ? 1.0 : 0.0;
  if (v->is_string()) {
    std::string_view s = v->as_string();
    if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "Infinity" || s == "inf" || s == "Inf") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity" || s == "-inf" || s == "-Inf") {
      return -std::numeric_limits<double>::infinity();
    }
  }
  return InvalidArgument(field + " must be a number (or \"NaN\", \"Infinity\", \"-Infinity\")");
}

std::string FormatTime(int64_t micros) {
  time_t secs = static_cast<time_t>(micros / 1000000);
  int64_t frac = micros % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

json::value Time(int64_t micros) {
  if (micros == 0) return nullptr;
  return json::value(FormatTime(micros));
}

json::value Num(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return d;
}

json::value NumOrNull(const store::Row& row, std::string_view col) {
  if (row.IsNull(col)) return nullptr;
  return Num(row.Double(col));
}

json::value ParseJsonOr(const std::string& text, json::value fallback) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? fallback : v;
}

Result<int64_t> ParseId(std::string_view text, std::string_view what) {
  int64_t v = 0;
  if (text.empty() || text.size() > 18) return NotFound(std::string(what) + " not found");
  for (char c : text) {
    if (c < '0' || c > '9')
      return NotFound(std::string(what) + " " + std::string(text) + " not found");
    v = v * 10 + (c - '0');
  }
  if (v <= 0) return NotFound(std::string(what) + " not found");
  return v;
}

std::string IdStr(int64_t id) { return std::to_string(id); }

json::value IdOrNull(const store::Row& row, std::string_view col) {
  if (row.IsNull(col)) return nullptr;
  return json::value(IdStr(row.Int(col)));
}

void Flatten(const json::object& o, const std::string& prefix,
             std::vector<std::pair<std::string, const json::value*>>& out) {
  for (const auto& [k, v] : o) {
    std::string key = prefix.empty() ? std::string(k) : prefix + "." + std::string(k);
    if (v.is_object() && !v.as_object().empty()) {
      Flatten(v.as_object(), key, out);
    } else {
      out.emplace_back(std::move(key), &v);
    }
  }
}

int ClampLimit(const Request& req, int def, int max) {
  auto q = req.Query("limit");
  if (!q) return def;
  char* end = nullptr;
  long n = std::strtol(q->c_str(), &end, 10);
  if (end == q->c_str() || n <= 0) return def;
  return n > max ? max : static_cast<int>(n);
}

}  // namespace atrium::track
