#include "atrium/core/log.h"

#include <fmt/format.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cctype>
#include <chrono>
#include <ctime>

#include "atrium/core/config.h"
#include "atrium/core/strings.h"

namespace atrium {
namespace {

thread_local std::string current_request_id;

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence at the start of `s`, or 0 when it is invalid (overlong
// forms, surrogates and code points above U+10FFFF are invalid).
size_t Utf8SequenceLength(std::string_view s) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char c = b(0);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

// `Out` is std::string or spdlog::memory_buf_t (both have push_back and append(begin, end)).
template <typename Out>
void EscapeJson(std::string_view s, Out& out) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = Utf8SequenceLength(s.substr(i));
      if (n == 0) {
        static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
        out.append(kReplacement.data(), kReplacement.data() + kReplacement.size());
        ++i;
      } else {
        out.append(s.data() + i, s.data() + i + n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out.push_back('\\');
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        out.push_back('\\');
        break;
      case '\n':
        out.push_back('\\');
        out.push_back('n');
        break;
      case '\r':
        out.push_back('\\');
        out.push_back('r');
        break;
      case '\t':
        out.push_back('\\');
        out.push_back('t');
        break;
      case '\b':
        out.push_back('\\');
        out.push_back('b');
        break;
      case '\f':
        out.push_back('\\');
        out.push_back('f');
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out.append(buf, buf + 6);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
}

void Append(spdlog::memory_buf_t& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

// Text format: control characters become \n, \r, \t or \xNN; everything else is kept.
void EscapeText(std::string_view s, spdlog::memory_buf_t& out) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      out.push_back(ch);
    } else if (c == '\n') {
      Append(out, "\\n");
    } else if (c == '\r') {
      Append(out, "\\r");
    } else if (c == '\t') {
      Append(out, "\\t");
    } else {
      char buf[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 0xF]};
      out.append(buf, buf + 4);
    }
  }
}

// Formats "2026-11-22T10:00:00.123Z", caching the part up to the seconds. One instance per sink;
// spdlog calls a sink's formatter under the sink's mutex, so the cache needs no lock.
class UtcTimestamp {
 public:
  void AppendTo(std::chrono::system_clock::time_point t, spdlog::memory_buf_t& out) {
    auto ms_total =
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    int64_t secs = ms_total / 1000;
    int64_t ms = ms_total % 1000;
    if (ms < 0) {
      ms += 1000;
      --secs;
    }
    if (secs != cached_sec_ || cached_.empty()) {
      std::time_t tt = static_cast<std::time_t>(secs);
      std::tm tm{};
      gmtime_r(&tt, &tm);
      cached_ = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
      cached_sec_ = secs;
    }
    Append(out, cached_);
    char frac[5] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                    static_cast<char>('0' + ms % 10), 'Z'};
    out.append(frac, frac + 5);
  }

 private:
  int64_t cached_sec_ = 0;
  std::string cached_;
};

std::string_view ModuleOf(const spdlog::details::log_msg& msg) {
  return std::string_view(msg.logger_name.data(), msg.logger_name.size());
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    Append(dest, "{\"ts\":\"");
    ts_.AppendTo(msg.time, dest);
    Append(dest, "\",\"level\":\"");
    Append(dest, LogLevelName(msg.level));
    Append(dest, "\",\"module\":\"");
    EscapeJson(ModuleOf(msg), dest);
    Append(dest, "\",\"msg\":\"");
    EscapeJson(std::string_view(msg.payload.data(), msg.payload.size()), dest);
    Append(dest, "\"");
    if (!current_request_id.empty()) {
      Append(dest, ",\"request_id\":\"");
      EscapeJson(current_request_id, dest);
      Append(dest, "\"");
    }
    Append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  UtcTimestamp ts_;
};

class TextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    ts_.AppendTo(msg.time, dest);
    std::string_view level = LogLevelName(msg.level);
    dest.push_back(' ');
    Append(dest, level);
    for (size_t i = level.size(); i < 5; ++i) dest.push_back(' ');
    Append(dest, " [");
    EscapeText(ModuleOf(msg), dest);
    Append(dest, "] ");
    if (!current_request_id.empty()) {
      Append(dest, "[req=");
      EscapeText(current_request_id, dest);
      Append(dest, "] ");
    }
    EscapeText(std::string_view(msg.payload.data(), msg.payload.size()), dest);
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>();
  }

 private:
  UtcTimestamp ts_;
};

// Adapts a Parse* function into a config validator.
template <auto kParse>
Status ValidateWith(const ConfigValue& value) {
  const auto* s = std::get_if<std::string>(&value);
  if (s == nullptr) return InvalidArgument("must be a string");
  return kParse(*s).status();
}

}  // namespace

std::string_view LogLevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    case spdlog::level::off:
      return "off";
    default:
      return "unknown";
  }
}

Result<spdlog::level::level_enum> ParseLogLevel(std::string_view text) {
  std::string s = AsciiToLower(TrimWhitespace(text));
  if (s == "trace") return spdlog::level::trace;
  if (s == "debug") return spdlog::level::debug;
  if (s == "info") return spdlog::level::info;
  if (s == "warn" || s == "warning") return spdlog::level::warn;
  if (s == "error") return spdlog::level::err;
  if (s == "critical") return spdlog::level::critical;
  if (s == "off") return spdlog::level::off;
  return InvalidArgument("must be one of trace, debug, info, warn, error, critical, off");
}

Result<LogFormat> ParseLogFormat(std::string_view text) {
  std::string s = AsciiToLower(TrimWhitespace(text));
  if (s == "text") return LogFormat::kText;
  if (s == "json") return LogFormat::kJson;
  return InvalidArgument("must be text or json");
}

Result<std::map<std::string, spdlog::level::level_enum, std::less<>>> ParseModuleLevels(
    std::string_view text) {
  std::map<std::string, spdlog::level::level_enum, std::less<>> out;
  std::string_view rest = text;
  auto bad = [] {
    return InvalidArgument(
        "must be a comma-separated list of module=level, e.g. http=debug,store=warn, with levels "
        "trace, debug, info, warn, error, critical, off");
  };
  while (!TrimWhitespace(rest).empty()) {
    size_t comma = rest.find(',');
    std::string_view item = TrimWhitespace(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return bad();
    std::string_view module = TrimWhitespace(item.substr(0, eq));
    auto level = ParseLogLevel(item.substr(eq + 1));
    if (module.empty() || !level.ok()) return bad();
    out[std::string(module)] = *level;
  }
  return out;
}

void AppendJsonEscaped(std::string_view s, std::string& out) { EscapeJson(s, out); }

void DefineLogConfig(ConfigSchema& schema) {
  schema.DefineString("log.level", "info",
                      "Default log level: trace, debug, info, warn, error, critical or off.",
                      {.validator = ValidateWith<ParseLogLevel>});
  schema.DefineString("log.format", "text",
                      "Log format: text (human) or json (one object per line).",
                      {.one_of = {"text", "json"}});
  schema.DefineString("log.modules", "",
                      "Per-module log levels overriding log.level, e.g. \"http=debug,store=warn\".",
                      {.validator = ValidateWith<ParseModuleLevels>});
  schema.DefineString("log.output", "stderr",
                      "Where logs go: stderr, stdout or a file path (appended to).",
                      {.non_empty = true});
}

Result<LogOptions> LogOptionsFromConfig(const Config& config) {
  LogOptions options;
  ASSIGN_OR_RETURN(options.level, ParseLogLevel(config.GetString("log.level")));
  ASSIGN_OR_RETURN(options.format, ParseLogFormat(config.GetString("log.format")));
  ASSIGN_OR_RETURN(options.module_levels, ParseModuleLevels(config.GetString("log.modules")));
  options.output = config.GetString("log.output");
  return options;
}

// --- Logging ---

Result<std::unique_ptr<Logging>> Logging::Open(const LogOptions& options) {
  spdlog::sink_ptr sink;
  if (options.output.empty() || options.output == "stderr") {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else if (options.output == "stdout") {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  } else {
    try {
      sink =
          std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.output, /*truncate=*/false);
    } catch (const spdlog::spdlog_ex& e) {
      return InvalidArgument(fmt::format("cannot open log file {}: {}", options.output, e.what()));
    }
  }
  return std::make_unique<Logging>(options, std::move(sink));
}

Logging::Logging(const LogOptions& options, spdlog::sink_ptr sink)
    : options_(options), sink_(std::move(sink)) {
  sink_->set_level(spdlog::level::trace);
  if (options_.format == LogFormat::kJson) {
    sink_->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink_->set_formatter(std::make_unique<TextFormatter>());
  }
}

Logging::~Logging() { Flush(); }

std::shared_ptr<spdlog::logger> Logging::Get(std::string_view module) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = loggers_.find(module);
  if (it != loggers_.end()) return it->second;
  auto logger = std::make_shared<spdlog::logger>(std::string(module), sink_);
  // The most specific configured module wins: "http.client" falls back to "http".
  spdlog::level::level_enum level = options_.level;
  std::string_view name = module;
  while (true) {
    auto m = options_.module_levels.find(name);
    if (m != options_.module_levels.end()) {
      level = m->second;
      break;
    }
    size_t dot = name.rfind('.');
    if (dot == std::string_view::npos) break;
    name = name.substr(0, dot);
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  loggers_.emplace(std::string(module), logger);
  return logger;
}

void Logging::Flush() { sink_->flush(); }

// --- request ids ---

ScopedRequestId::ScopedRequestId(std::string request_id)
    : previous_(std::exchange(current_request_id, std::move(request_id))) {}

ScopedRequestId::~ScopedRequestId() { current_request_id = std::move(previous_); }

std::string_view CurrentRequestId() { return current_request_id; }

}  // namespace atrium
