// Logging: spdlog loggers per module, sharing one sink, in a human text or a JSON-lines format.
//
// main builds one Logging from LogOptions (usually from the log.* config keys, see
// DefineLogConfig) and hands `Get("http")`-style loggers to the modules. Each module logger has
// its own level (LogOptions::module_levels, else LogOptions::level); all write to the same sink.
// Nothing is registered in spdlog's global registry.
//
// Formats, one record per line:
//   text: 2026-11-22T10:00:00.123Z info  [http] [req=abc] message
//   json: {"ts":"2026-11-22T10:00:00.123Z","level":"info","module":"http","msg":"message",
//          "request_id":"abc"}
// Timestamps are UTC with millisecond precision. "request_id" / "[req=...]" appear only while a
// ScopedRequestId is active on the logging thread. Control characters in messages are escaped in
// both formats (\n, \", \u0001 in JSON; \n, \r, \t, \x01 in text), so one record is one line.
#pragma once

#include <spdlog/common.h>
#include <spdlog/logger.h>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "atrium/core/status.h"

namespace atrium {

class Config;
class ConfigSchema;

enum class LogFormat { kText, kJson };

// "trace", "debug", "info", "warn" (or "warning"), "error", "critical", "off"; case-insensitive.
Result<spdlog::level::level_enum> ParseLogLevel(std::string_view text);
// "text" or "json".
Result<LogFormat> ParseLogFormat(std::string_view text);
// "http=debug,store=warn" (spaces around items allowed; empty string = no overrides).
Result<std::map<std::string, spdlog::level::level_enum, std::less<>>> ParseModuleLevels(
    std::string_view text);
// The lower-case name used in both formats: "trace", "debug", "info", "warn", "error",
// "critical", "off".
std::string_view LogLevelName(spdlog::level::level_enum level);

struct LogOptions {
  LogFormat format = LogFormat::kText;
  spdlog::level::level_enum level = spdlog::level::info;
  // Per-module levels overriding `level`, e.g. {"http": debug}.
  std::map<std::string, spdlog::level::level_enum, std::less<>> module_levels;
  // "stderr" (or empty), "stdout", or a file path (appended to; the file and missing parent
  // directories are created).
  std::string output = "stderr";
};

// Declares log.level, log.format, log.modules and log.output (validated) in `schema`.
void DefineLogConfig(ConfigSchema& schema);
// Reads the keys declared by DefineLogConfig. Fails only if they hold unparsable values, which a
// Config loaded with DefineLogConfig's validators never does.
Result<LogOptions> LogOptionsFromConfig(const Config& config);

// Owns the sink and the per-module loggers. Thread-safe. Loggers handed out by Get stay valid
// (they share ownership of the sink) even after the Logging is destroyed.
class Logging {
 public:
  // Opens `options.output`. Fails (InvalidArgument) when the file cannot be opened.
  static Result<std::unique_ptr<Logging>> Open(const LogOptions& options);
  // Writes to `sink` instead of options.output (tests, or embedding).
  Logging(const LogOptions& options, spdlog::sink_ptr sink);
  ~Logging();
  Logging(const Logging&) = delete;
  Logging& operator=(const Logging&) = delete;

  // The logger of `module` (created on first use, then cached; its name is the module).
  std::shared_ptr<spdlog::logger> Get(std::string_view module);
  // Flushes the sink (file output is otherwise flushed on warn and above).
  void Flush();

 private:
  LogOptions options_;
  spdlog::sink_ptr sink_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers_;  // guarded by mu_
};

// Sets the current thread's request id for the lifetime of the object, restoring the previous
// one (nesting works) on destruction. Log records written by this thread meanwhile carry it.
// Note for coroutine code: the id is thread_local, so re-establish it after every co_await that
// may resume on another thread (or only hold it across synchronous sections).
class ScopedRequestId {
 public:
  explicit ScopedRequestId(std::string request_id);
  ~ScopedRequestId();
  ScopedRequestId(const ScopedRequestId&) = delete;
  ScopedRequestId& operator=(const ScopedRequestId&) = delete;

 private:
  std::string previous_;
};

// The current thread's request id; empty when none is set.
std::string_view CurrentRequestId();

// Appends `s` to `out` as the inside of a JSON string (quotes, backslash, control characters
// escaped; invalid UTF-8 bytes are replaced with U+FFFD). Exposed for other JSON writers.
void AppendJsonEscaped(std::string_view s, std::string& out);

}  // namespace atrium
