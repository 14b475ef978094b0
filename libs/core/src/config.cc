#include "atrium/core/config.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "atrium/core/env.h"
#include "atrium/core/strings.h"

extern char** environ;  // NOLINT

namespace atrium {
namespace {

using std::chrono::milliseconds;

[[noreturn]] void ConfigBug(const std::string& message) {
  std::fprintf(stderr, "atrium config: programmer error: %s\n", message.c_str());
  std::abort();
}

bool IsKeySegmentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool IsValidKey(std::string_view key) {
  if (key.empty() || key.front() == '.' || key.back() == '.') return false;
  char prev = 0;
  for (char c : key) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!IsKeySegmentChar(c)) {
      return false;
    }
    prev = c;
  }
  return true;
}

// A TOML basic string: quotes, backslash and control characters escaped.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string FormatNumber(double d) { return fmt::format("{}", d); }

template <typename T>
bool ParseInteger(std::string_view text, T* out) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

Result<bool> ParseBool(std::string_view text) {
  std::string s = AsciiToLower(TrimWhitespace(text));
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return InvalidArgument("not a bool");
}

// Where a value came from, as used in error messages: "env ATRIUM_HTTP__PORT".
struct SourceRef {
  ConfigOrigin origin;
  std::string location;  // for files: "path:line:col"; otherwise the origin's detail
};

std::string Describe(const SourceRef& ref) {
  switch (ref.origin.source) {
    case ConfigSource::kDefault:
      return "default";
    case ConfigSource::kFile:
      return "file " + ref.location;
    case ConfigSource::kEnv:
      return "env " + ref.location;
    case ConfigSource::kCli:
      return "command line " + ref.location;
  }
  return "?";
}

std::string FormatBound(ConfigType type, double v) {
  if (type == ConfigType::kDuration) return FormatDuration(milliseconds(static_cast<int64_t>(v)));
  if (type == ConfigType::kBytes) return FormatByteSize(static_cast<uint64_t>(v));
  return FormatNumber(v);
}

// "must be an integer between 0 and 65535", etc.
std::string Allowed(const ConfigSchema::Key& key, bool from_string) {
  const ConfigConstraint& c = key.constraint;
  std::string out;
  switch (key.type) {
    case ConfigType::kBool:
      out = from_string ? "must be true/false, 1/0, yes/no or on/off" : "must be true or false";
      break;
    case ConfigType::kInt:
      out = "must be an integer";
      break;
    case ConfigType::kDouble:
      out = "must be a number";
      break;
    case ConfigType::kString:
      if (!c.one_of.empty()) {
        std::string list;
        for (const auto& v : c.one_of) list += (list.empty() ? "" : ", ") + v;
        out = "must be one of: " + list;
      } else {
        out = c.non_empty ? "must be a non-empty string" : "must be a string";
      }
      break;
    case ConfigType::kStringList:
      out = from_string ? "must be a comma-separated list" : "must be an array of strings";
      if (c.non_empty) out += " with at least one element";
      if (!c.one_of.empty()) {
        std::string list;
        for (const auto& v : c.one_of) list += (list.empty() ? "" : ", ") + v;
        out += " whose elements are among: " + list;
      }
      break;
    case ConfigType::kDuration:
      out = "must be a duration such as 250ms, 10s, 5m, 1h or an integer number of milliseconds";
      break;
    case ConfigType::kBytes:
      out = "must be a byte size such as 512, 64KiB, 2MiB, 1GiB";
      break;
  }
  bool ranged = key.type == ConfigType::kInt || key.type == ConfigType::kDouble ||
                key.type == ConfigType::kDuration || key.type == ConfigType::kBytes;
  if (ranged) {
    if (c.min && c.max) {
      out += fmt::format(" between {} and {}", FormatBound(key.type, *c.min),
                         FormatBound(key.type, *c.max));
    } else if (c.min) {
      out += fmt::format(" of at least {}", FormatBound(key.type, *c.min));
    } else if (c.max) {
      out += fmt::format(" of at most {}", FormatBound(key.type, *c.max));
    }
  }
  return out;
}

// Checks the constraint of `key` on a value of the right type. The error message is what is
// allowed (to be embedded in the caller's message).
Status CheckConstraint(const ConfigSchema::Key& key, const ConfigValue& value, bool from_string) {
  const ConfigConstraint& c = key.constraint;
  auto fail = [&] { return InvalidArgument(Allowed(key, from_string)); };
  std::optional<double> numeric;
  switch (key.type) {
    case ConfigType::kInt:
      numeric = static_cast<double>(std::get<int64_t>(value));
      break;
    case ConfigType::kDouble:
      if (std::isnan(std::get<double>(value))) return fail();
      numeric = std::get<double>(value);
      break;
    case ConfigType::kDuration:
      numeric = static_cast<double>(std::get<milliseconds>(value).count());
      break;
    case ConfigType::kBytes:
      numeric = static_cast<double>(std::get<uint64_t>(value));
      break;
    case ConfigType::kString: {
      const auto& s = std::get<std::string>(value);
      if (c.non_empty && s.empty()) return fail();
      if (!c.one_of.empty() && std::find(c.one_of.begin(), c.one_of.end(), s) == c.one_of.end()) {
        return fail();
      }
      break;
    }
    case ConfigType::kStringList: {
      const auto& list = std::get<std::vector<std::string>>(value);
      if (c.non_empty && list.empty()) return fail();
      if (!c.one_of.empty()) {
        for (const auto& s : list) {
          if (std::find(c.one_of.begin(), c.one_of.end(), s) == c.one_of.end()) return fail();
        }
      }
      break;
    }
    case ConfigType::kBool:
      break;
  }
  if (numeric) {
    if (c.min && *numeric < *c.min) return fail();
    if (c.max && *numeric > *c.max) return fail();
  }
  if (c.validator) {
    Status s = c.validator(value);
    if (!s.ok()) return InvalidArgument(s.message());
  }
  return Status::Ok();
}

// Parses a value given as text (environment, command line) per the key's type.
Result<ConfigValue> ParseText(const ConfigSchema::Key& key, std::string_view text) {
  Status bad = InvalidArgument("");
  switch (key.type) {
    case ConfigType::kBool: {
      auto b = ParseBool(text);
      if (!b.ok()) return bad;
      return ConfigValue(*b);
    }
    case ConfigType::kInt: {
      int64_t v;
      if (!ParseInteger(TrimWhitespace(text), &v)) return bad;
      return ConfigValue(v);
    }
    case ConfigType::kDouble: {
      double v;
      std::string_view t = TrimWhitespace(text);
      if (!t.empty() && t.front() == '+') t.remove_prefix(1);
      auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (t.empty() || ec != std::errc() || ptr != t.data() + t.size() || std::isnan(v)) {
        return bad;
      }
      return ConfigValue(v);
    }
    case ConfigType::kString:
      return ConfigValue(std::string(text));
    case ConfigType::kStringList: {
      std::vector<std::string> list;
      std::string_view rest = text;
      if (!TrimWhitespace(rest).empty()) {
        while (true) {
          size_t comma = rest.find(',');
          std::string_view item = TrimWhitespace(rest.substr(0, comma));
          if (!item.empty()) list.emplace_back(item);
          if (comma == std::string_view::npos) break;
          rest.remove_prefix(comma + 1);
        }
      }
      return ConfigValue(std::move(list));
    }
    case ConfigType::kDuration: {
      auto d = ParseDuration(text);
      if (!d.ok()) return bad;
      return ConfigValue(*d);
    }
    case ConfigType::kBytes: {
      auto b = ParseByteSize(text);
      if (!b.ok()) return bad;
      return ConfigValue(*b);
    }
  }
  return bad;
}

// Converts a TOML node per the key's type. The error carries no message (the caller builds it).
Result<ConfigValue> FromToml(const ConfigSchema::Key& key, const toml::node& node) {
  Status bad = InvalidArgument("");
  switch (key.type) {
    case ConfigType::kBool:
      if (auto v = node.value_exact<bool>()) return ConfigValue(*v);
      return bad;
    case ConfigType::kInt:
      if (auto v = node.value_exact<int64_t>()) return ConfigValue(*v);
      return bad;
    case ConfigType::kDouble:
      if (node.is_floating_point()) return ConfigValue(*node.value_exact<double>());
      if (auto v = node.value_exact<int64_t>()) return ConfigValue(static_cast<double>(*v));
      return bad;
    case ConfigType::kString:
      if (auto v = node.value_exact<std::string>()) return ConfigValue(std::move(*v));
      return bad;
    case ConfigType::kStringList: {
      const toml::array* arr = node.as_array();
      if (arr == nullptr) return bad;
      std::vector<std::string> list;
      for (const toml::node& item : *arr) {
        auto s = item.value_exact<std::string>();
        if (!s) return bad;
        list.push_back(std::move(*s));
      }
      return ConfigValue(std::move(list));
    }
    case ConfigType::kDuration:
      if (auto v = node.value_exact<int64_t>()) {
        if (*v < 0) return bad;
        return ConfigValue(milliseconds(*v));
      }
      if (auto s = node.value_exact<std::string>()) {
        auto d = ParseDuration(*s);
        if (!d.ok()) return bad;
        return ConfigValue(*d);
      }
      return bad;
    case ConfigType::kBytes:
      if (auto v = node.value_exact<int64_t>()) {
        if (*v < 0) return bad;
        return ConfigValue(static_cast<uint64_t>(*v));
      }
      if (auto s = node.value_exact<std::string>()) {
        auto b = ParseByteSize(*s);
        if (!b.ok()) return bad;
        return ConfigValue(*b);
      }
      return bad;
  }
  return bad;
}

std::string RenderToml(const toml::node& node) {
  if (auto s = node.value_exact<std::string>()) return Quote(*s);
  std::ostringstream os;
  node.visit([&os](const auto& n) { os << n; });
  std::string s = os.str();
  // Keep messages on one line even for multi-line arrays or inline tables.
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// " (did you mean http.port?)" when a defined key is close, else "".
std::string Suggest(const ConfigSchema& schema, std::string_view key) {
  std::string best;
  size_t best_d = 3;
  for (const auto& [name, unused] : schema.keys()) {
    size_t d = EditDistance(name, key);
    if (d < best_d) {
      best_d = d;
      best = name;
    }
  }
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

bool IsReservedEnv(std::string_view name) {
  return name.starts_with("ATRIUM_TEST_") || name == "ATRIUM_SOURCE_DIR" ||
         name == "ATRIUM_BINARY_DIR";
}

// ATRIUM_HTTP__MAX_BODY_SIZE → http.max_body_size.
std::string EnvNameToKey(std::string_view name) {
  std::string lower = AsciiToLower(name.substr(std::string_view("ATRIUM_").size()));
  std::string key;
  for (size_t i = 0; i < lower.size(); ++i) {
    if (lower[i] == '_' && i + 1 < lower.size() && lower[i + 1] == '_') {
      key += '.';
      ++i;
    } else {
      key += lower[i];
    }
  }
  return key;
}

}  // namespace

std::string_view ConfigTypeName(ConfigType type) {
  switch (type) {
    case ConfigType::kBool:
      return "bool";
    case ConfigType::kInt:
      return "int";
    case ConfigType::kDouble:
      return "double";
    case ConfigType::kString:
      return "string";
    case ConfigType::kStringList:
      return "string list";
    case ConfigType::kDuration:
      return "duration";
    case ConfigType::kBytes:
      return "byte size";
  }
  return "?";
}

ConfigType TypeOf(const ConfigValue& value) { return static_cast<ConfigType>(value.index()); }

std::string_view ConfigSourceName(ConfigSource source) {
  switch (source) {
    case ConfigSource::kDefault:
      return "default";
    case ConfigSource::kFile:
      return "file";
    case ConfigSource::kEnv:
      return "env";
    case ConfigSource::kCli:
      return "cli";
  }
  return "?";
}

Result<milliseconds> ParseDuration(std::string_view text) {
  std::string_view t = TrimWhitespace(text);
  auto bad = [&] {
    return InvalidArgument(fmt::format(
        "invalid duration \"{}\" (expected e.g. 250ms, 10s, 5m, 1h or an integer of milliseconds)",
        text));
  };
  if (t.empty()) return bad();
  uint64_t bare;
  if (ParseInteger(t, &bare)) {
    if (bare > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return bad();
    return milliseconds(static_cast<int64_t>(bare));
  }
  int64_t total = 0;
  while (!t.empty()) {
    size_t digits = 0;
    while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
    if (digits == 0) return bad();
    int64_t n;
    if (!ParseInteger(t.substr(0, digits), &n)) return bad();
    t.remove_prefix(digits);
    size_t unit_len = 0;
    while (unit_len < t.size() && std::isalpha(static_cast<unsigned char>(t[unit_len]))) {
      ++unit_len;
    }
    std::string_view unit = t.substr(0, unit_len);
    t.remove_prefix(unit_len);
    int64_t scale;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60'000;
    } else if (unit == "h") {
      scale = 3'600'000;
    } else {
      return bad();
    }
    if (n > (std::numeric_limits<int64_t>::max() - total) / scale) return bad();
    total += n * scale;
  }
  return milliseconds(total);
}

Result<uint64_t> ParseByteSize(std::string_view text) {
  std::string_view t = TrimWhitespace(text);
  auto bad = [&] {
    return InvalidArgument(
        fmt::format("invalid byte size \"{}\" (expected e.g. 512, 64KiB, 2MiB, 1GiB)", text));
  };
  size_t digits = 0;
  while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
  if (digits == 0) return bad();
  uint64_t n;
  if (!ParseInteger(t.substr(0, digits), &n)) return bad();
  std::string_view unit = TrimWhitespace(t.substr(digits));
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},
      {"B", 1},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
      {"TiB", 1ull << 40},
      {"KB", 1000},
      {"kB", 1000},
      {"MB", 1000'000},
      {"GB", 1000'000'000},
      {"TB", 1000'000'000'000},
  };
  for (const auto& [name, scale] : kUnits) {
    if (unit == name) {
      if (n > std::numeric_limits<uint64_t>::max() / scale) return bad();
      return n * scale;
    }
  }
  return bad();
}

std::string FormatDuration(milliseconds d) {
  int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

std::string FormatByteSize(uint64_t bytes) {
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};
  for (const auto& [name, scale] : kUnits) {
    if (bytes != 0 && bytes % scale == 0) return fmt::format("{}{}", bytes / scale, name);
  }
  return fmt::format("{}", bytes);
}

std::string FormatConfigValue(const ConfigValue& value) {
  switch (TypeOf(value)) {
    case ConfigType::kBool:
      return std::get<bool>(value) ? "true" : "false";
    case ConfigType::kInt:
      return fmt::format("{}", std::get<int64_t>(value));
    case ConfigType::kDouble: {
      double d = std::get<double>(value);
      if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
      std::string s = FormatNumber(d);
      // TOML needs a '.' or exponent to read a float back as a float.
      if (s.find_first_of(".eE") == std::string::npos) s += ".0";
      return s;
    }
    case ConfigType::kString:
      return Quote(std::get<std::string>(value));
    case ConfigType::kStringList: {
      std::string out = "[";
      for (const auto& s : std::get<std::vector<std::string>>(value)) {
        if (out.size() > 1) out += ", ";
        out += Quote(s);
      }
      return out + "]";
    }
    case ConfigType::kDuration:
      return Quote(FormatDuration(std::get<milliseconds>(value)));
    case ConfigType::kBytes: {
      uint64_t b = std::get<uint64_t>(value);
      std::string s = FormatByteSize(b);
      return s == fmt::format("{}", b) ? s : Quote(s);
    }
  }
  return "?";
}

// --- ConfigSchema ---

ConfigSchema& ConfigSchema::Define(std::string key, ConfigType type, ConfigValue default_value,
                                   std::string description, ConfigConstraint constraint,
                                   bool secret) {
  if (!IsValidKey(key)) ConfigBug(fmt::format("malformed config key \"{}\"", key));
  if (keys_.count(key) != 0) ConfigBug(fmt::format("config key {} defined twice", key));
  for (const auto& [name, unused] : keys_) {
    auto is_prefix = [](std::string_view table, std::string_view k) {
      return k.size() > table.size() && k.starts_with(table) && k[table.size()] == '.';
    };
    if (is_prefix(name, key) || is_prefix(key, name)) {
      ConfigBug(
          fmt::format("config keys {} and {} clash (one is a table of the other)", name, key));
    }
  }
  if (TypeOf(default_value) != type) {
    ConfigBug(fmt::format("default of config key {} is a {}, not a {}", key,
                          ConfigTypeName(TypeOf(default_value)), ConfigTypeName(type)));
  }
  Key k{key, type, std::move(default_value), std::move(description), std::move(constraint), secret};
  Status s = CheckConstraint(k, k.default_value, /*from_string=*/false);
  if (!s.ok()) {
    ConfigBug(fmt::format("default {} of config key {} violates its constraint ({})",
                          FormatConfigValue(k.default_value), key, s.message()));
  }
  keys_.emplace(std::move(key), std::move(k));
  return *this;
}

ConfigSchema& ConfigSchema::DefineBool(std::string key, bool default_value,
                                       std::string description) {
  return Define(std::move(key), ConfigType::kBool, ConfigValue(default_value),
                std::move(description));
}
ConfigSchema& ConfigSchema::DefineInt(std::string key, int64_t default_value,
                                      std::string description, ConfigConstraint constraint) {
  return Define(std::move(key), ConfigType::kInt, ConfigValue(default_value),
                std::move(description), std::move(constraint));
}
ConfigSchema& ConfigSchema::DefineDouble(std::string key, double default_value,
                                         std::string description, ConfigConstraint constraint) {
  return Define(std::move(key), ConfigType::kDouble, ConfigValue(default_value),
                std::move(description), std::move(constraint));
}
ConfigSchema& ConfigSchema::DefineString(std::string key, std::string default_value,
                                         std::string description, ConfigConstraint constraint) {
  return Define(std::move(key), ConfigType::kString, ConfigValue(std::move(default_value)),
                std::move(description), std::move(constraint));
}
ConfigSchema& ConfigSchema::DefineSecret(std::string key, std::string default_value,
                                         std::string description, ConfigConstraint constraint) {
  return Define(std::move(key), ConfigType::kString, ConfigValue(std::move(default_value)),
                std::move(description), std::move(constraint), /*secret=*/true);
}
ConfigSchema& ConfigSchema::DefineStringList(std::string key,
                                             std::vector<std::string> default_value,
                                             std::string description, ConfigConstraint constraint) {
  return Define(std::move(key), ConfigType::kStringList, ConfigValue(std::move(default_value)),
                std::move(description), std::move(constraint));
}
ConfigSchema& ConfigSchema::DefineDuration(std::string key, milliseconds default_value,
                                           std::string description, ConfigConstraint constraint) {
  return Define(std::move(key), ConfigType::kDuration, ConfigValue(default_value),
                std::move(description), std::move(constraint));
}
ConfigSchema& ConfigSchema::DefineBytes(std::string key, uint64_t default_value,
                                        std::string description, ConfigConstraint constraint) {
  return Define(std::move(key), ConfigType::kBytes, ConfigValue(default_value),
                std::move(description), std::move(constraint));
}

const ConfigSchema::Key* ConfigSchema::Find(std::string_view key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? nullptr : &it->second;
}

// --- Config ---

Result<Config> Config::Load(const ConfigSchema& schema, const LoadOptions& options) {
  Config config;
  for (const auto& [name, key] : schema.keys()) {
    config.entries_.emplace(name, Entry{key, key.default_value, ConfigOrigin{}});
  }
  std::vector<std::string> errors;

  // Validates and stores one value; `shown` is the value as the user wrote it.
  auto apply = [&](Entry& entry, Result<ConfigValue> parsed, const std::string& shown,
                   const SourceRef& ref, bool from_string) {
    Status s = parsed.ok() ? CheckConstraint(entry.key, *parsed, from_string)
                           : InvalidArgument(Allowed(entry.key, from_string));
    if (!s.ok()) {
      std::string value = entry.key.secret ? "\"***\"" : shown;
      errors.push_back(fmt::format("invalid value for {} from {}: {} ({})", entry.key.name,
                                   Describe(ref), value, s.message()));
      return;
    }
    entry.value = std::move(parsed).value();
    entry.origin = ref.origin;
  };

  // 1. TOML file.
  Env& fs = options.fs != nullptr ? *options.fs : Env::Default();
  std::optional<std::string> path = options.toml_path;
  if (!path && !options.default_toml_path.empty() && fs.FileExists(options.default_toml_path)) {
    path = options.default_toml_path;
  }
  if (path) {
    Result<std::string> content = fs.ReadFile(*path);
    if (!content.ok()) {
      return InvalidArgument(
          fmt::format("cannot read config file {}: {}", *path, content.status().message()));
    }
    toml::table root;
    try {
      root = toml::parse(*content, std::string_view(*path));
    } catch (const toml::parse_error& e) {
      return InvalidArgument(fmt::format("{}:{}:{}: TOML syntax error: {}", *path,
                                         e.source().begin.line, e.source().begin.column,
                                         e.description()));
    }
    // Walks the tables depth first; a defined key consumes its node whatever its type.
    std::function<void(const toml::table&, const std::string&)> walk =
        [&](const toml::table& table, const std::string& prefix) {
          for (const auto& [k, node] : table) {
            std::string name =
                prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
            std::string where = fmt::format("{}:{}:{}", *path, node.source().begin.line,
                                            node.source().begin.column);
            auto it = config.entries_.find(name);
            if (it != config.entries_.end()) {
              apply(it->second, FromToml(it->second.key, node), RenderToml(node),
                    SourceRef{{ConfigSource::kFile, *path}, where}, /*from_string=*/false);
            } else if (const toml::table* sub = node.as_table()) {
              walk(*sub, name);
            } else {
              errors.push_back(fmt::format("unknown config key {} in {}:{}:{}{}", name, *path,
                                           k.source().begin.line, k.source().begin.column,
                                           Suggest(schema, name)));
            }
          }
        };
    walk(root, "");
  }

  // 2. Environment.
  std::map<std::string, std::string> process_env;
  if (!options.env) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string_view kv(*e);
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos) continue;
      process_env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  const auto& env = options.env ? *options.env : process_env;
  for (const auto& [name, value] : env) {
    if (!name.starts_with("ATRIUM_") || IsReservedEnv(name)) continue;
    std::string key = EnvNameToKey(name);
    auto it = config.entries_.find(key);
    if (it == config.entries_.end()) {
      config.warnings_.push_back(fmt::format("ignoring environment variable {}: no config key {}{}",
                                             name, key, Suggest(schema, key)));
      continue;
    }
    apply(it->second, ParseText(it->second.key, value), Quote(value),
          SourceRef{{ConfigSource::kEnv, name}, name}, /*from_string=*/true);
  }

  // 3. Command line.
  for (const CliOverride& o : options.cli_overrides) {
    size_t eq = o.text.find('=');
    std::string flag = o.flag.empty() ? "--set" : o.flag;
    if (eq == std::string::npos || eq == 0) {
      errors.push_back(fmt::format(
          "invalid command-line override \"{}\" for {} (expected key=value)", o.text, flag));
      continue;
    }
    std::string key(TrimWhitespace(std::string_view(o.text).substr(0, eq)));
    std::string value = o.text.substr(eq + 1);
    auto it = config.entries_.find(key);
    if (it == config.entries_.end()) {
      errors.push_back(fmt::format("unknown config key {} from command line {}{}", key, flag,
                                   Suggest(schema, key)));
      continue;
    }
    apply(it->second, ParseText(it->second.key, value), Quote(value),
          SourceRef{{ConfigSource::kCli, flag}, flag}, /*from_string=*/true);
  }

  if (!errors.empty()) {
    std::string message;
    for (const auto& e : errors) message += (message.empty() ? "" : "\n") + e;
    return InvalidArgument(std::move(message));
  }
  return config;
}

const Config::Entry& Config::At(std::string_view key, ConfigType type) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) ConfigBug(fmt::format("config key {} is not defined", key));
  if (it->second.key.type != type) {
    ConfigBug(fmt::format("config key {} has type {}, read as {}", key,
                          ConfigTypeName(it->second.key.type), ConfigTypeName(type)));
  }
  return it->second;
}

bool Config::GetBool(std::string_view key) const {
  return std::get<bool>(At(key, ConfigType::kBool).value);
}
int64_t Config::GetInt(std::string_view key) const {
  return std::get<int64_t>(At(key, ConfigType::kInt).value);
}
double Config::GetDouble(std::string_view key) const {
  return std::get<double>(At(key, ConfigType::kDouble).value);
}
const std::string& Config::GetString(std::string_view key) const {
  return std::get<std::string>(At(key, ConfigType::kString).value);
}
const std::vector<std::string>& Config::GetStringList(std::string_view key) const {
  return std::get<std::vector<std::string>>(At(key, ConfigType::kStringList).value);
}
milliseconds Config::GetDuration(std::string_view key) const {
  return std::get<milliseconds>(At(key, ConfigType::kDuration).value);
}
uint64_t Config::GetBytes(std::string_view key) const {
  return std::get<uint64_t>(At(key, ConfigType::kBytes).value);
}

const ConfigValue& Config::Get(std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) ConfigBug(fmt::format("config key {} is not defined", key));
  return it->second.value;
}

const ConfigOrigin& Config::SourceOf(std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) ConfigBug(fmt::format("config key {} is not defined", key));
  return it->second.origin;
}

std::string Config::Show() const {
  std::string out;
  for (const auto& [name, entry] : entries_) {
    std::string value;
    if (entry.key.secret && TypeOf(entry.value) == ConfigType::kString) {
      value = std::get<std::string>(entry.value).empty() ? "\"\"" : "\"***\"";
    } else if (entry.key.secret) {
      value = "\"***\"";
    } else {
      value = FormatConfigValue(entry.value);
    }
    out += fmt::format("{} = {}  # {}", name, value, ConfigSourceName(entry.origin.source));
    if (!entry.origin.detail.empty()) out += " " + entry.origin.detail;
    out += '\n';
  }
  return out;
}

}  // namespace atrium
