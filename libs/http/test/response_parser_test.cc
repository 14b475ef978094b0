#include "message_parser.h"
#include "message_parser_feed.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <string>
#include <string_view>

namespace atrium::http::internal {
namespace {

namespace bhttp = boost::beast::http;

TEST(ResponseParserTest, ReadsStatusFieldsAndABodyLargerThanTheWindow) {
  const std::string body(1000, 'x');
  const std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: r1\r\n"
      "Content-Length: 1000\r\n\r\n" +
      body;
  for (size_t step : {wire.size(), size_t{1}, size_t{100}}) {
    for (size_t window : {size_t{1}, size_t{64}, size_t{4096}}) {
      ResponseParser parser;
      FeedResult r = Feed(parser, wire, step, window);
      ASSERT_FALSE(r.ec) << step << " " << window << ": " << r.ec.message();
      ASSERT_TRUE(parser.is_done());
      EXPECT_EQ(parser.status(), 200);
      EXPECT_EQ(parser.version(), 11u);
      EXPECT_TRUE(parser.keep_alive());
      EXPECT_EQ(parser.headers().Get("content-type"), "application/json");
      EXPECT_EQ(parser.headers().Get("x-request-id"), "r1");
      EXPECT_EQ(r.body, body);
    }
  }
}

TEST(ResponseParserTest, ChunkedAndEofDelimitedBodies) {
  {
    ResponseParser parser;
    FeedResult r = Feed(parser,
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "6\r\nevent:\r\n7;x=y\r\n ping\n\n\r\n0\r\n\r\n",
                        5, 4);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_TRUE(parser.is_done());
    EXPECT_EQ(r.body, "event: ping\n\n");
    EXPECT_TRUE(parser.keep_alive());
  }
  {
    ResponseParser parser;  // neither length nor chunked: the body ends with the connection
    FeedResult r = Feed(parser, "HTTP/1.1 200 OK\r\n\r\nuntil close", 4, 3);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_TRUE(parser.is_done());
    EXPECT_EQ(r.body, "until close");
    EXPECT_FALSE(parser.keep_alive());
  }
}

TEST(ResponseParserTest, HeadAnswersAndInterimResponsesHaveNoBody) {
  {
    ResponseParser parser;
    parser.skip(true);  // the answer to HEAD: Content-Length describes a body not sent
    FeedResult r = Feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", 64, 16);
    ASSERT_FALSE(r.ec);
    EXPECT_TRUE(parser.is_done());
    EXPECT_TRUE(r.body.empty());
  }
  {
    ResponseParser parser;
    FeedResult r = Feed(parser, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 64, 16);
    ASSERT_FALSE(r.ec);
    EXPECT_TRUE(parser.is_done());  // the interim response alone; the client reads again
    EXPECT_EQ(parser.status(), 100);
  }
}

TEST(ResponseParserTest, LimitsAndMalformedInputAreErrors) {
  {
    ResponseParser parser;
    parser.header_limit(64);
    std::string wire = "HTTP/1.1 200 OK\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n";
    EXPECT_EQ(Feed(parser, wire, wire.size(), 16).ec, bhttp::error::header_limit);
  }
  {
    ResponseParser parser;
    parser.body_limit(10);
    EXPECT_EQ(Feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 64, 16).ec,
              bhttp::error::body_limit);
  }
  for (const char* bad : {"HTTP/1.1 2000 OK\r\n\r\n", "HTTP/7.1 200 OK\r\n\r\n",
                          "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    ResponseParser parser;
    EXPECT_TRUE(Feed(parser, bad, 64, 16).ec) << bad;
  }
}

}  // namespace
}  // namespace atrium::http::internal
