// Translation golden files (services/relay/test/golden/<kind>_<from>_to_<to>/<case>.in.* →
// <case>.out.*, read as data), pass-through model replacement, error shapes and the SSE parser.
// ATRIUM_UPDATE_GOLDEN=1 rewrites the .out files from the current translator (review the diff).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "atrium/relay/sse_parser.h"
#include "atrium/relay/translate.h"

namespace atrium::relay {
namespace {
namespace json = boost::json;
namespace fs = std::filesystem;

std::string GoldenDir() {
  const char* src = std::getenv("ATRIUM_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/services/relay/test/golden";
}

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

bool Updating() {
  const char* u = std::getenv("ATRIUM_UPDATE_GOLDEN");
  return u != nullptr && std::string(u) == "1";
}

ApiFormat FormatNamed(const std::string& name) {
  if (name == "gemini") return ApiFormat::kGemini;
  return name == "anthropic" ? ApiFormat::kAnthropic : ApiFormat::kOpenAI;
}

// Pretty JSON for golden files (stable: objects keep insertion order).
void Pretty(std::ostream& os, const json::value& v, int indent = 0) {
  std::string pad(indent, ' ');
  if (v.is_object()) {
    const auto& o = v.as_object();
    if (o.empty()) {
      os << "{}";
      return;
    }
    os << "{\n";
    size_t i = 0;
    for (const auto& [k, e] : o) {
      os << pad << "  " << json::serialize(json::value(json::string(k))) << ": ";
      Pretty(os, e, indent + 2);
      os << (++i < o.size() ? ",\n" : "\n");
    }
    os << pad << "}";
  } else if (v.is_array() && !v.as_array().empty()) {
    os << "[\n";
    const auto& a = v.as_array();
    for (size_t i = 0; i < a.size(); ++i) {
      os << pad << "  ";
      Pretty(os, a[i], indent + 2);
      os << (i + 1 < a.size() ? ",\n" : "\n");
    }
    os << pad << "]";
  } else {
    os << json::serialize(v);
  }
}

std::string PrettyJson(std::string_view text) {
  std::ostringstream os;
  Pretty(os, json::parse(text));
  os << "\n";
  return os.str();
}

// Events of an SSE transcript with their data parsed when it is JSON.
std::vector<std::pair<std::string, json::value>> Events(std::string_view text) {
  SseParser parser;
  std::vector<std::pair<std::string, json::value>> out;
  for (auto& e : parser.Feed(text)) {
    boost::system::error_code ec;
    json::value v = json::parse(e.data, ec);
    out.emplace_back(e.event, ec ? json::value(json::string(e.data)) : v);
  }
  return out;
}

struct GoldenCase {
  std::string kind;  // request, response, stream
  ApiFormat from, to;
  fs::path in, out;
};

std::vector<GoldenCase> Cases() {
  std::vector<GoldenCase> cases;
  for (const auto& dir : fs::directory_iterator(GoldenDir())) {
    std::string name = dir.path().filename().string();  // kind_from_to_to
    size_t a = name.find('_'), b = name.find("_to_");
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string kind = name.substr(0, a);
    ApiFormat from = FormatNamed(name.substr(a + 1, b - a - 1));
    ApiFormat to = FormatNamed(name.substr(b + 4));
    for (const auto& f : fs::directory_iterator(dir.path())) {
      std::string fname = f.path().filename().string();
      size_t in = fname.find(".in.");
      if (in == std::string::npos) continue;
      fs::path out =
          f.path().parent_path() / (fname.substr(0, in) + ".out." + fname.substr(in + 4));
      cases.push_back({kind, from, to, f.path(), out});
    }
  }
  std::sort(cases.begin(), cases.end(), [](const auto& x, const auto& y) { return x.in < y.in; });
  return cases;
}

TEST(TranslationGoldenTest, EveryTranscriptTranslatesAsRecorded) {
  auto cases = Cases();
  ASSERT_GE(cases.size(), 30u) << "golden files missing under " << GoldenDir();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in.string());
    std::string input = ReadText(c.in);
    std::string actual;
    if (c.kind == "request") {
      auto r = TranslateRequest(c.from, c.to, input, "upstream-model");
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      actual = PrettyJson(*r);
    } else if (c.kind == "response") {
      auto r = TranslateResponse(c.from, c.to, input, "client-model");
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      actual = PrettyJson(*r);
    } else {
      auto t = MakeStreamTranslator(
          c.from, c.to,
          StreamTranslatorOptions{
              .client_model = "client-model", .include_usage = true, .id_seed = "req1"});
      ASSERT_NE(t, nullptr);
      SseParser parser;
      // Fed in small pieces: the translator must not depend on chunk boundaries.
      for (size_t i = 0; i < input.size(); i += 7) {
        for (auto& ev : parser.Feed(std::string_view(input).substr(i, 7))) {
          actual += t->OnEvent(ev);
        }
      }
      actual += t->Finish();
    }
    if (Updating()) {
      WriteText(c.out, actual);
      continue;
    }
    ASSERT_TRUE(fs::exists(c.out)) << "missing " << c.out << " (run with ATRIUM_UPDATE_GOLDEN=1)";
    std::string expected = ReadText(c.out);
    if (c.kind == "stream") {
      auto e = Events(expected), a = Events(actual);
      ASSERT_EQ(e.size(), a.size()) << actual;
      for (size_t i = 0; i < e.size(); ++i) {
        EXPECT_EQ(e[i].first, a[i].first) << "event " << i;
        EXPECT_EQ(e[i].second, a[i].second)
            << "event " << i << ": " << json::serialize(a[i].second);
      }
    } else {
      EXPECT_EQ(json::parse(expected), json::parse(actual)) << actual;
    }
  }
}

TEST(PassThroughTest, OnlyTheTopLevelModelChanges) {
  std::string body =
      R"({ "metadata": {"model": "inner"}, "model" : "alias-x", "messages":[{"model":"m"}],)"
      R"( "stream": true })";
  std::string out = ReplaceTopLevelModel(body, "claude-real-1");
  EXPECT_EQ(
      out,
      R"({ "metadata": {"model": "inner"}, "model" : "claude-real-1", "messages":[{"model":"m"}],)"
      R"( "stream": true })");
  // Escapes in the new name are JSON-escaped; bodies without a model stay identical.
  EXPECT_EQ(ReplaceTopLevelModel(R"({"model":"a\"b","x":1})", "q\"z"), R"({"model":"q\"z","x":1})");
  EXPECT_EQ(ReplaceTopLevelModel(R"({"x":{"model":"y"}})", "z"), R"({"x":{"model":"y"}})");
  auto same = TranslateRequest(ApiFormat::kAnthropic, ApiFormat::kAnthropic, body, "alias-x");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, body);
}

TEST(ErrorShapeTest, EachApiHasItsOwnErrorBody) {
  auto a = json::parse(ErrorBody(ApiFormat::kAnthropic, 529, "Overloaded"));
  EXPECT_EQ(a.at("type"), "error");
  EXPECT_EQ(a.at("error").at("type"), "overloaded_error");
  EXPECT_EQ(a.at("error").at("message"), "Overloaded");
  auto o = json::parse(ErrorBody(ApiFormat::kOpenAI, 429, "slow down"));
  EXPECT_EQ(o.at("error").at("message"), "slow down");
  EXPECT_EQ(o.at("error").at("type"), "rate_limit_exceeded");
  EXPECT_TRUE(o.at("error").at("param").is_null());
  EXPECT_EQ(StreamErrorEvent(ApiFormat::kAnthropic, 529, "x").rfind("event: error\ndata: ", 0), 0u);
  std::string oe = StreamErrorEvent(ApiFormat::kOpenAI, 500, "x");
  EXPECT_NE(oe.find("data: [DONE]"), std::string::npos);
  auto t = json::parse(TranslateErrorBody(
      ApiFormat::kAnthropic, ApiFormat::kOpenAI, 400,
      R"({"type":"error","error":{"type":"invalid_request_error","message":"bad max_tokens"}})"));
  EXPECT_EQ(t.at("error").at("message"), "bad max_tokens");
}

TEST(SseParserTest, HandlesSplitsLineEndingsCommentsAndMultiLineData) {
  SseParser p;
  std::string text =
      ": comment\r\nevent: a\r\ndata: 1\r\ndata: 2\r\n\r\nevent: b\ndata: x\n\ndata: y\r\r";
  std::vector<ParsedSseEvent> all;
  for (char c : text) {
    for (auto& e : p.Feed(std::string_view(&c, 1))) all.push_back(e);
  }
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].event, "a");
  EXPECT_EQ(all[0].data, "1\n2");
  EXPECT_EQ(all[1].event, "b");
  EXPECT_EQ(all[2].data, "y");
}

TEST(SseParserTest, OversizedEventsAreDropped) {
  SseParser p(16);
  auto e = p.Feed("data: " + std::string(100, 'x'));
  EXPECT_TRUE(e.empty());
  EXPECT_TRUE(p.overflowed());
}

TEST(GlobTest, Matches) {
  EXPECT_TRUE(GlobMatch("claude-*", "claude-sonnet-4"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("gpt-4?", "gpt-4o"));
  EXPECT_FALSE(GlobMatch("gpt-4?", "gpt-4o-mini"));
  EXPECT_TRUE(GlobMatch("*mini*", "gpt-4o-mini-2024"));
  EXPECT_FALSE(GlobMatch("claude-*", "gpt-4o"));
}

}  // namespace
}  // namespace atrium::relay
