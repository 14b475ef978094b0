#include "atrium/http/sse.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "atrium/http/json_error.h"

namespace atrium::http {
namespace {

TEST(SseFramingTest, SingleLineEvent) {
  EXPECT_EQ(FormatSseEvent({.id = "5", .event = "ping", .data = "hi"}),
            "id: 5\nevent: ping\ndata: hi\n\n");
}

TEST(SseFramingTest, DataIsSplitOnEveryLineBreakKind) {
  EXPECT_EQ(FormatSseEvent({.data = "a\nb\r\nc\rd"}), "data: a\ndata: b\ndata: c\ndata: d\n\n");
}

TEST(SseFramingTest, EmptyDataStillProducesADataLine) {
  EXPECT_EQ(FormatSseEvent({.event = "x"}), "event: x\ndata: \n\n");
}

TEST(SseFramingTest, TrailingNewlineGivesEmptyLastDataLine) {
  EXPECT_EQ(FormatSseEvent({.data = "a\n"}), "data: a\ndata: \n\n");
}

TEST(SseFramingTest, IdAndEventCannotInjectLines) {
  EXPECT_EQ(FormatSseEvent({.id = "1\n\ndata: evil", .event = "e\rv", .data = "ok"}),
            "id: 1data: evil\nevent: ev\ndata: ok\n\n");
}

TEST(SseFramingTest, RetryField) {
  EXPECT_EQ(FormatSseEvent({.data = "x", .retry_ms = 3000}), "retry: 3000\ndata: x\n\n");
}

TEST(SseFramingTest, CommentsAreSingleLine) {
  EXPECT_EQ(FormatSseComment("ping\nx"), ": ping x\n\n");
}

TEST(BodyStreamTest, CloseCallbacksRunOnceAndLateRegistrationRunsImmediately) {
  BodyStream s;
  int calls = 0;
  s.OnClose([&] { ++calls; });
  s.Close();
  s.CloseFromServer(BodyStream::CloseReason::kClientGone);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.close_reason(), BodyStream::CloseReason::kProducer);
  s.OnClose([&] { ++calls; });
  EXPECT_EQ(calls, 2);
}

TEST(BodyStreamTest, ShutdownQueuesTheShutdownChunk) {
  BodyStream s;
  s.SetShutdownChunk("bye");
  s.Write("a");
  s.CloseFromServer(BodyStream::CloseReason::kServerShutdown);
  auto d = s.Drain();
  EXPECT_EQ(d.chunks, (std::vector<std::string>{"a", "bye"}));
  EXPECT_TRUE(d.finished);
}

TEST(JsonErrorTest, RendersTheUniformShape) {
  auto v = boost::json::parse(ErrorJson(NotFound("chat \"7\"\n missing"), "rid"));
  EXPECT_EQ(v.at("error").at("code").as_string(), "not_found");
  EXPECT_EQ(v.at("error").at("message").as_string(), "chat \"7\"\n missing");
  EXPECT_EQ(v.at("error").at("request_id").as_string(), "rid");
}

TEST(JsonErrorTest, InvalidUtf8IsReplacedSoTheBodyParses) {
  std::string bad = "value \xff\xfe and \xc3 and overlong \xc0\xaf and ok \xc3\xa9";
  auto body = ErrorJson("invalid_argument", bad, "r");
  auto v = boost::json::parse(body);
  std::string msg(v.at("error").at("message").as_string());
  EXPECT_NE(msg.find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_NE(msg.find("ok \xc3\xa9"), std::string::npos);
}

TEST(JsonErrorTest, SanitizeKeepsValidUtf8) {
  std::string s = "日本語 😀 a";
  EXPECT_EQ(SanitizeUtf8(s), s);
  EXPECT_EQ(SanitizeUtf8("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

}  // namespace
}  // namespace atrium::http
