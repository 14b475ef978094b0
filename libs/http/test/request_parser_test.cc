#include "message_parser.h"
#include "message_parser_feed.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace atrium::http::internal {
namespace {

namespace bhttp = boost::beast::http;

std::vector<std::pair<std::string, std::string>> Fields(const Headers& h) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : h.fields()) out.emplace_back(name, value);
  return out;
}

TEST(RequestParserTest, ReadsTheRequestLineFieldsAndBodyInAnyPieces) {
  const std::string wire =
      "POST /v1/messages?beta=true HTTP/1.1\r\nHost: relay\r\nX-Api-Key: sk-1\r\n"
      "Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}";
  for (size_t step : {wire.size(), size_t{1}, size_t{7}}) {
    RequestParser parser;
    parser.eager(true);
    ASSERT_FALSE(Feed(parser, wire, step).ec) << step;
    ASSERT_TRUE(parser.is_done()) << step;
    EXPECT_EQ(parser.method(), "POST");
    EXPECT_EQ(parser.target(), "/v1/messages?beta=true");
    EXPECT_EQ(parser.version(), 11u);
    EXPECT_TRUE(parser.keep_alive());
    EXPECT_EQ(Fields(parser.headers()), (std::vector<std::pair<std::string, std::string>>{
                                            {"Host", "relay"},
                                            {"X-Api-Key", "sk-1"},
                                            {"Content-Type", "application/json"},
                                            {"Content-Length", "11"}}));
    EXPECT_EQ(parser.body(), "{\"a\":\"b c\"}");
  }
}

TEST(RequestParserTest, ChunkedBodiesAreJoinedAndTrailersKept) {
  const std::string wire =
      "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
  RequestParser parser;
  parser.eager(true);
  ASSERT_FALSE(Feed(parser, wire, 3).ec);
  ASSERT_TRUE(parser.is_done());
  EXPECT_EQ(parser.body(), "hello world");
  EXPECT_EQ(parser.headers().Get("x-trailer"), "t");
}

TEST(RequestParserTest, KeepAliveFollowsVersionAndConnection) {
  struct Case {
    const char* wire;
    bool keep_alive;
    unsigned version;
  } cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", true, 11},
      {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, 11},
      {"GET / HTTP/1.0\r\n\r\n", false, 10},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 10},
  };
  for (const auto& c : cases) {
    RequestParser parser;
    ASSERT_FALSE(Feed(parser, c.wire, 64).ec) << c.wire;
    EXPECT_TRUE(parser.is_done()) << c.wire;
    EXPECT_EQ(parser.keep_alive(), c.keep_alive) << c.wire;
    EXPECT_EQ(parser.version(), c.version) << c.wire;
    EXPECT_TRUE(parser.body().empty());
  }
}

TEST(RequestParserTest, LimitsAndMalformedInputAreErrors) {
  {
    RequestParser parser;
    parser.header_limit(64);
    std::string wire = "GET / HTTP/1.1\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n";
    EXPECT_EQ(Feed(parser, wire, wire.size()).ec, bhttp::error::header_limit);
  }
  {
    RequestParser parser;
    parser.body_limit(10);
    EXPECT_EQ(Feed(parser, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 64).ec,
              bhttp::error::body_limit);
  }
  {
    RequestParser parser;
    parser.body_limit(4);
    parser.eager(true);
    EXPECT_EQ(
        Feed(parser, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
             64)
            .ec,
        bhttp::error::body_limit);
  }
  for (const char* bad :
       {"GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"}) {
    RequestParser parser;
    EXPECT_TRUE(Feed(parser, bad, 64).ec) << bad;
  }
}

TEST(RequestParserTest, ExpectsContinueReadsTheTokenList) {
  Headers h;
  EXPECT_FALSE(ExpectsContinue(h));
  h.Add("Expect", "100-continue");
  EXPECT_TRUE(ExpectsContinue(h));
  h.Set("expect", "foo, 100-Continue");
  EXPECT_TRUE(ExpectsContinue(h));
  h.Set("Expect", "200-ok");
  EXPECT_FALSE(ExpectsContinue(h));
}

}  // namespace
}  // namespace atrium::http::internal
