#include "atrium/core/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "atrium/core/config.h"
#include "atrium/core/env.h"
#include "atrium/core/testing.h"

namespace atrium {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// A strict parser for the flat {"k":"v",...} objects the JSON format writes (string values only).
// Returns nullopt on any syntax error, so "parses" really means valid JSON of that shape.
std::optional<std::map<std::string, std::string>> ParseFlatJson(std::string_view s) {
  size_t i = 0;
  auto parse_string = [&](std::string* out) -> bool {
    if (i >= s.size() || s[i] != '"') return false;
    ++i;
    while (i < s.size() && s[i] != '"') {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x20) return false;  // raw control characters are invalid JSON
      if (c != '\\') {
        out->push_back(s[i++]);
        continue;
      }
      if (++i >= s.size()) return false;
      char e = s[i++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'u': {
          if (i + 4 > s.size()) return false;
          unsigned cp = std::stoul(std::string(s.substr(i, 4)), nullptr, 16);
          i += 4;
          if (cp >= 0x80) return false;  // the writer only escapes ASCII control characters
          out->push_back(static_cast<char>(cp));
          break;
        }
        default:
          return false;
      }
    }
    if (i >= s.size()) return false;
    ++i;
    return true;
  };
  std::map<std::string, std::string> out;
  if (s.empty() || s[i++] != '{') return std::nullopt;
  while (true) {
    std::string k, v;
    if (!parse_string(&k) || i >= s.size() || s[i++] != ':' || !parse_string(&v)) {
      return std::nullopt;
    }
    out[k] = v;
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    break;
  }
  if (i >= s.size() || s[i++] != '}' || i != s.size()) return std::nullopt;
  return out;
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

struct Captured {
  std::ostringstream stream;
  std::unique_ptr<Logging> logging;
  explicit Captured(LogOptions options) {
    logging = std::make_unique<Logging>(
        options, std::make_shared<spdlog::sinks::ostream_sink_mt>(stream, /*force_flush=*/true));
  }
};

LogOptions Json() {
  LogOptions o;
  o.format = LogFormat::kJson;
  return o;
}

TEST(LogTest, JsonLinesParseAndCarryTheFields) {
  Captured c(Json());
  c.logging->Get("http")->info("listening on {}", 8080);
  auto lines = Lines(c.stream.str());
  ASSERT_EQ(lines.size(), 1u);
  auto obj = ParseFlatJson(lines[0]);
  ASSERT_TRUE(obj.has_value()) << lines[0];
  EXPECT_EQ((*obj)["level"], "info");
  EXPECT_EQ((*obj)["module"], "http");
  EXPECT_EQ((*obj)["msg"], "listening on 8080");
  EXPECT_THAT((*obj)["ts"],
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"));
  EXPECT_EQ(obj->count("request_id"), 0u);
}

TEST(LogTest, JsonEscapesQuotesNewlinesAndControlCharacters) {
  Captured c(Json());
  std::string nasty = "say \"hi\"\n\tback\\slash \x01\x1f end\x7f";
  nasty += std::string("\0nul", 4);
  c.logging->Get("http")->warn("{}", nasty);
  auto lines = Lines(c.stream.str());
  ASSERT_EQ(lines.size(), 1u);  // the newline in the message did not split the record
  auto obj = ParseFlatJson(lines[0]);
  ASSERT_TRUE(obj.has_value()) << lines[0];
  EXPECT_EQ((*obj)["msg"], nasty);
  EXPECT_EQ((*obj)["level"], "warn");
}

TEST(LogTest, JsonReplacesInvalidUtf8AndKeepsValidUtf8) {
  std::string out;
  AppendJsonEscaped("caf\xC3\xA9 \xE2\x82\xAC bad:\xFF\xC3 end", out);
  EXPECT_EQ(out, "caf\xC3\xA9 \xE2\x82\xAC bad:\xEF\xBF\xBD\xEF\xBF\xBD end");
}

TEST(LogTest, RequestIdAppearsInBothFormatsWhileScoped) {
  Captured json(Json());
  Captured text(LogOptions{});
  {
    ScopedRequestId id("req-\"42\"");
    EXPECT_EQ(CurrentRequestId(), "req-\"42\"");
    json.logging->Get("http")->info("inside");
    text.logging->Get("http")->info("inside");
    {
      ScopedRequestId inner("nested");
      text.logging->Get("http")->info("nested");
    }
    text.logging->Get("http")->info("restored");
  }
  EXPECT_EQ(CurrentRequestId(), "");
  json.logging->Get("http")->info("outside");

  auto json_lines = Lines(json.stream.str());
  ASSERT_EQ(json_lines.size(), 2u);
  EXPECT_EQ((*ParseFlatJson(json_lines[0]))["request_id"], "req-\"42\"");
  EXPECT_EQ(ParseFlatJson(json_lines[1])->count("request_id"), 0u);

  auto text_lines = Lines(text.stream.str());
  ASSERT_EQ(text_lines.size(), 3u);
  EXPECT_THAT(text_lines[0], HasSubstr("[http] [req=req-\"42\"] inside"));
  EXPECT_THAT(text_lines[1], HasSubstr("[req=nested] nested"));
  EXPECT_THAT(text_lines[2], HasSubstr("[req=req-\"42\"] restored"));
}

TEST(LogTest, RequestIdIsPerThread) {
  Captured c(Json());
  ScopedRequestId id("main-thread");
  std::thread([&] { c.logging->Get("bus")->info("from worker"); }).join();
  auto obj = ParseFlatJson(Lines(c.stream.str()).at(0));
  ASSERT_TRUE(obj.has_value());
  EXPECT_EQ(obj->count("request_id"), 0u);
}

TEST(LogTest, TextFormatIsOneReadableLine) {
  Captured c(LogOptions{});
  c.logging->Get("store")->error("disk {}\nfull", "almost");
  auto lines = Lines(c.stream.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], MatchesRegex("[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z error \\[store\\] disk "
                                     "almost\\\\nfull"));
}

TEST(LogTest, PerModuleLevelsFilter) {
  LogOptions o;
  o.level = spdlog::level::info;
  o.module_levels = *ParseModuleLevels("http=debug, store=warn");
  Captured c(o);
  c.logging->Get("http")->debug("http debug");
  c.logging->Get("http.client")->debug("http.client debug (inherits http)");
  c.logging->Get("store")->info("store info");
  c.logging->Get("store")->warn("store warn");
  c.logging->Get("bus")->debug("bus debug");
  c.logging->Get("bus")->info("bus info");
  std::string out = c.stream.str();
  EXPECT_THAT(out, HasSubstr("http debug"));
  EXPECT_THAT(out, HasSubstr("http.client debug"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("store info")));
  EXPECT_THAT(out, HasSubstr("store warn"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("bus debug")));
  EXPECT_THAT(out, HasSubstr("bus info"));
  EXPECT_EQ(Lines(out).size(), 4u);
}

TEST(LogTest, GetReturnsTheSameLoggerForAModule) {
  Captured c(LogOptions{});
  EXPECT_EQ(c.logging->Get("http"), c.logging->Get("http"));
  EXPECT_NE(c.logging->Get("http"), c.logging->Get("store"));
}

TEST(LogTest, ParseLogLevelAcceptsNamesAndRejectsOthers) {
  EXPECT_EQ(*ParseLogLevel("debug"), spdlog::level::debug);
  EXPECT_EQ(*ParseLogLevel("WARNING"), spdlog::level::warn);
  EXPECT_EQ(*ParseLogLevel("error"), spdlog::level::err);
  EXPECT_EQ(ParseLogLevel("loud").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseModuleLevels("http").ok());
  EXPECT_FALSE(ParseModuleLevels("http=loud").ok());
  EXPECT_TRUE(ParseModuleLevels("").ok());
}

TEST(LogTest, FileOutputAppends) {
  testing::TempDir dir;
  LogOptions o = Json();
  o.output = JoinPath(dir.path(), "atrium.log");
  {
    auto logging = Logging::Open(o);
    ASSERT_TRUE(logging.ok()) << logging.status().ToString();
    (*logging)->Get("app")->info("one");
  }
  {
    auto logging = Logging::Open(o);
    ASSERT_TRUE(logging.ok());
    (*logging)->Get("app")->info("two");
    (*logging)->Flush();
  }
  auto lines = Lines(*Env::Default().ReadFile(o.output));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ((*ParseFlatJson(lines[1]))["msg"], "two");
}

TEST(LogTest, UnopenableFileIsAnError) {
  // spdlog creates missing parent directories, so make one of them a regular file.
  testing::TempDir dir;
  std::string file = JoinPath(dir.path(), "file");
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), file, "x").ok());
  LogOptions o;
  o.output = JoinPath(file, "atrium.log");
  EXPECT_EQ(Logging::Open(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(LogTest, LogConfigKeysValidateAndConvert) {
  ConfigSchema schema;
  DefineLogConfig(schema);
  LoadOptions lo;
  lo.default_toml_path = "";
  lo.env = std::map<std::string, std::string>{{"ATRIUM_LOG__LEVEL", "loud"}};
  auto bad = Config::Load(schema, lo);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "invalid value for log.level from env ATRIUM_LOG__LEVEL: \"loud\" (must be one of "
            "trace, debug, info, warn, error, critical, off)");

  lo.env = std::map<std::string, std::string>{{"ATRIUM_LOG__LEVEL", "debug"},
                                              {"ATRIUM_LOG__FORMAT", "json"},
                                              {"ATRIUM_LOG__MODULES", "http=trace"}};
  auto config = Config::Load(schema, lo);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto options = LogOptionsFromConfig(*config);
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->level, spdlog::level::debug);
  EXPECT_EQ(options->format, LogFormat::kJson);
  EXPECT_EQ(options->module_levels.at("http"), spdlog::level::trace);
  EXPECT_EQ(options->output, "stderr");
}

}  // namespace
}  // namespace atrium
