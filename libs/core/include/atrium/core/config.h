// Config: Atrium's layered, typed, validated configuration.
//
// Modules declare their keys in a ConfigSchema (name, type, default, description, constraint).
// Config::Load then merges, from lowest to highest precedence:
//
//   defaults  <  TOML file  <  environment (ATRIUM_*)  <  command-line overrides
//
// and validates every value against its key's type and constraint. The result is an immutable
// snapshot that remembers, per key, where its value came from (for `atrium config show`).
// See docs/configuration.md for the user-facing description (env naming, units).
//
// Errors in user input (unknown keys in the file or on the command line, bad values, TOML syntax)
// come back as an InvalidArgument Status naming the key, the value, its source and what is
// allowed; all such errors of one Load are reported together, one per line. Mistakes in the
// schema or in the getters' use (undefined key, wrong type) are programmer errors and abort.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "atrium/core/status.h"

namespace atrium {

class Env;

// The alternatives of ConfigValue are in ConfigType order.
enum class ConfigType {
  kBool,
  kInt,         // int64_t
  kDouble,      // double
  kString,      // std::string
  kStringList,  // std::vector<std::string>
  kDuration,  // std::chrono::milliseconds: "250ms", "10s", "5m", "1h", "1h30m", or an integer of ms
  kBytes,     // uint64_t: "512", "64KiB", "2MiB", "1GiB" (also KB/MB/GB = powers of 1000)
};
// "bool", "int", "double", "string", "string list", "duration", "byte size".
std::string_view ConfigTypeName(ConfigType type);

using ConfigValue = std::variant<bool, int64_t, double, std::string, std::vector<std::string>,
                                 std::chrono::milliseconds, uint64_t>;

// The type a ConfigValue holds.
ConfigType TypeOf(const ConfigValue& value);

// Restrictions on a key's value beyond its type. Unused members are ignored.
struct ConfigConstraint {
  // Inclusive bounds for kInt, kDouble, kDuration (in milliseconds) and kBytes.
  std::optional<double> min = std::nullopt;
  std::optional<double> max = std::nullopt;
  // kString: the allowed values; kStringList: the allowed elements. Empty = anything.
  std::vector<std::string> one_of = {};
  // kString / kStringList: the value must not be empty.
  bool non_empty = false;
  // Extra check run after the above. Its error message should say what is allowed
  // ("must be one of trace, debug, ..."); it is embedded in the user-facing message.
  std::function<Status(const ConfigValue&)> validator = nullptr;
};

// Parses a duration: "250ms", "10s", "5m", "1h", combinations ("1h30m") or a bare integer of ms.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
// Parses a byte size: "512", "512B", "64KiB", "2MiB", "1GiB", "1TiB", "10KB", "5MB", "1GB".
Result<uint64_t> ParseByteSize(std::string_view text);
// The shortest exact spelling: "250ms", "10s", "5m", "1h" (or "90s" when not whole minutes).
std::string FormatDuration(std::chrono::milliseconds d);
// "2MiB" when an exact multiple of a binary unit, else the bare number of bytes.
std::string FormatByteSize(uint64_t bytes);

// The set of keys the process understands. Built once at start-up, before Config::Load.
// Not thread-safe while being built; read-only afterwards.
class ConfigSchema {
 public:
  struct Key {
    std::string name;  // dotted, lower-case: "http.port"
    ConfigType type;
    ConfigValue default_value;
    std::string description;
    ConfigConstraint constraint;
    bool secret = false;  // redacted by Config::Show
  };

  // Declares a key. Keys are dotted lower-case identifiers ([a-z0-9_] segments joined by '.').
  // Aborts (programmer error) on a malformed or duplicate name, a name that is a prefix table of
  // another key ("http" vs "http.port"), a default whose type differs from `type`, or a default
  // that violates the constraint.
  ConfigSchema& Define(std::string key, ConfigType type, ConfigValue default_value,
                       std::string description, ConfigConstraint constraint = {},
                       bool secret = false);

  // Typed shortcuts for Define.
  ConfigSchema& DefineBool(std::string key, bool default_value, std::string description);
  ConfigSchema& DefineInt(std::string key, int64_t default_value, std::string description,
                          ConfigConstraint constraint = {});
  ConfigSchema& DefineDouble(std::string key, double default_value, std::string description,
                             ConfigConstraint constraint = {});
  ConfigSchema& DefineString(std::string key, std::string default_value, std::string description,
                             ConfigConstraint constraint = {});
  // A string that Show() prints as "***" (API keys, database passwords).
  ConfigSchema& DefineSecret(std::string key, std::string default_value, std::string description,
                             ConfigConstraint constraint = {});
  ConfigSchema& DefineStringList(std::string key, std::vector<std::string> default_value,
                                 std::string description, ConfigConstraint constraint = {});
  ConfigSchema& DefineDuration(std::string key, std::chrono::milliseconds default_value,
                               std::string description, ConfigConstraint constraint = {});
  ConfigSchema& DefineBytes(std::string key, uint64_t default_value, std::string description,
                            ConfigConstraint constraint = {});

  // Null when `key` is not defined.
  const Key* Find(std::string_view key) const;
  // All keys, sorted by name.
  const std::map<std::string, Key, std::less<>>& keys() const { return keys_; }

 private:
  std::map<std::string, Key, std::less<>> keys_;
};

// One command-line override. Implicitly constructible from "key=value" so that
// `cli_overrides = {"http.port=9000"}` works; `flag` is how the user spelled it (e.g. "--port"),
// shown by SourceOf/Show; empty means the generic "--set".
struct CliOverride {
  CliOverride(std::string key_equals_value, std::string flag = {})  // NOLINT: implicit on purpose
      : text(std::move(key_equals_value)), flag(std::move(flag)) {}
  CliOverride(const char* key_equals_value)  // NOLINT: implicit on purpose
      : text(key_equals_value) {}
  std::string text;  // "key=value"
  std::string flag;
};

struct LoadOptions {
  // A TOML file to read; it must exist. When unset, `default_toml_path` is read if it exists.
  std::optional<std::string> toml_path;
  // Empty disables the implicit file (tests).
  std::string default_toml_path = "atrium.toml";
  // Environment variables; nullopt reads the process environment (environ).
  std::optional<std::map<std::string, std::string>> env;
  std::vector<CliOverride> cli_overrides;
  // Used to read the TOML file; null means Env::Default().
  Env* fs = nullptr;
};

enum class ConfigSource { kDefault, kFile, kEnv, kCli };
// "default", "file", "env", "cli".
std::string_view ConfigSourceName(ConfigSource source);

struct ConfigOrigin {
  ConfigSource source = ConfigSource::kDefault;
  // kFile: the file path; kEnv: the variable name; kCli: the flag ("--port" or "--set");
  // kDefault: empty.
  std::string detail;
};

// An immutable, validated configuration snapshot. Thread-safe (const). Share it as
// std::shared_ptr<const Config>.
class Config {
 public:
  // Merges defaults, file, environment and command line (see the file comment).
  // Environment variables named ATRIUM_* map to keys by stripping the prefix, lower-casing and
  // turning "__" into "." (ATRIUM_HTTP__MAX_BODY_SIZE → http.max_body_size). Because the
  // environment is shared with other tools, an unknown ATRIUM_* variable is not an error: it is
  // listed in warnings(). Variables reserved for the build and tests (ATRIUM_TEST_*,
  // ATRIUM_SOURCE_DIR, ATRIUM_BINARY_DIR) are skipped silently. Unknown keys in the file or on
  // the command line are errors.
  static Result<Config> Load(const ConfigSchema& schema, const LoadOptions& options);

  // Typed getters. Abort (programmer error) when `key` is not defined or has another type.
  bool GetBool(std::string_view key) const;
  int64_t GetInt(std::string_view key) const;
  double GetDouble(std::string_view key) const;
  const std::string& GetString(std::string_view key) const;
  const std::vector<std::string>& GetStringList(std::string_view key) const;
  std::chrono::milliseconds GetDuration(std::string_view key) const;
  uint64_t GetBytes(std::string_view key) const;

  bool Has(std::string_view key) const { return entries_.find(key) != entries_.end(); }
  // Aborts when `key` is not defined.
  const ConfigValue& Get(std::string_view key) const;
  const ConfigOrigin& SourceOf(std::string_view key) const;

  // Every key, sorted, one per line, in TOML syntax with its source as a comment:
  //   http.port = 9000  # env ATRIUM_HTTP__PORT
  //   store.password = "***"  # file /etc/atrium.toml
  // Secrets are "***" when non-empty. Durations and byte sizes are written as strings
  // ("10s", "2MiB") so the output can be read back as a config file.
  std::string Show() const;

  // Non-fatal findings of Load (unknown ATRIUM_* variables), for logging once logging is up.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Entry {
    ConfigSchema::Key key;
    ConfigValue value;
    ConfigOrigin origin;
  };
  const Entry& At(std::string_view key, ConfigType type) const;

  std::map<std::string, Entry, std::less<>> entries_;
  std::vector<std::string> warnings_;
};

// The value in TOML syntax: true, 42, 0.5, "text", ["a", "b"], "10s", "2MiB".
std::string FormatConfigValue(const ConfigValue& value);

}  // namespace atrium
