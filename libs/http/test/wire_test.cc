// Unit tests of the hand-written message heads and the direct write (libs/http/src/wire.h).
#include "wire.h"

#include <gtest/gtest.h>

#include <future>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>

namespace atrium::http::internal {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

TEST(WireTest, HeaderFieldsThatWouldSplitTheMessageAreRefused) {
  std::string out;
  EXPECT_TRUE(AppendHeaderField(out, "Content-Type", "application/json"));
  EXPECT_TRUE(AppendHeaderField(out, "x-empty", ""));
  EXPECT_EQ(out, "Content-Type: application/json\r\nx-empty: \r\n");
  const std::string_view bad_values[] = {"a\r\nInjected: 1", "a\nb", std::string_view("a\0b", 3),
                                         "a\rb"};
  for (std::string_view bad : bad_values) {
    EXPECT_FALSE(AppendHeaderField(out, "x-bad", bad)) << bad;
  }
  for (std::string_view bad : {"", "bad name", "bad:name", "bad\r\n", "caf\xc3\xa9"}) {
    EXPECT_FALSE(AppendHeaderField(out, bad, "v")) << bad;
  }
  EXPECT_EQ(out, "Content-Type: application/json\r\nx-empty: \r\n");  // nothing appended
  EXPECT_TRUE(IsHttpToken("PATCH"));
  EXPECT_TRUE(IsHttpToken("x-custom_1.2~"));
  EXPECT_FALSE(IsHttpToken(""));
  EXPECT_FALSE(IsHttpToken("GET /"));
  EXPECT_FALSE(IsHttpToken("a\r\n"));
}

TEST(WireTest, StatusLinesAndBodilessStatuses) {
  std::string out;
  AppendStatusLine(out, 11, 200);
  AppendStatusLine(out, 10, 404);
  AppendStatusLine(out, 11, 529);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nHTTP/1.0 404 Not Found\r\nHTTP/1.1 529 <unknown-status>\r\n");
  for (int s : {100, 101, 204, 304}) EXPECT_TRUE(StatusHasNoBody(s)) << s;
  for (int s : {200, 201, 205, 302, 400, 500}) EXPECT_FALSE(StatusHasNoBody(s)) << s;
}

// Writes head + body with SendNow then WriteRest on a loopback connection; returns what the peer
// read and the write's result.
std::pair<std::string, WriteResult> WriteAndRead(const std::string& head, const std::string& body,
                                                 bool peer_closes_first) {
  net::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  tcp::socket peer(io);
  boost::beast::tcp_stream stream(io);
  stream.socket().connect(acceptor.local_endpoint());
  acceptor.accept(peer);
  if (peer_closes_first) {
    peer.set_option(net::socket_base::linger(true, 0));  // a reset, not a FIN
    peer.close();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::promise<std::string> read;
  std::thread reader;
  if (!peer_closes_first) {
    reader = std::thread([&] {
      std::string got(head.size() + body.size(), '\0');
      boost::system::error_code ec;
      size_t n = net::read(peer, net::buffer(got), ec);
      got.resize(n);
      read.set_value(got);
    });
  }
  WriteResult result;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        result = SendNow(stream, head, body);
        if (!peer_closes_first) {
          // Past the socket's buffer for the large message: the rest is asynchronous.
          EXPECT_EQ(NeedsRest(result, head, body), head.size() + body.size() > (1u << 20));
        }
        result = co_await WriteRest(stream, head, body, result, deadline);
        // A second write after a reset surfaces the error if the first one did not.
        if (peer_closes_first && !result.error) result = SendNow(stream, head, body);
      },
      net::detached);
  io.run();
  std::string got;
  if (reader.joinable()) {
    reader.join();
    got = read.get_future().get();
  }
  return {got, result};
}

TEST(WireTest, SmallMessageGoesOutWhole) {
  auto [got, result] = WriteAndRead("HEAD\r\n\r\n", "body", false);
  EXPECT_FALSE(result.error) << result.error.message();
  EXPECT_EQ(result.written, 12u);
  EXPECT_EQ(got, "HEAD\r\n\r\nbody");
}

TEST(WireTest, MessageLargerThanTheSocketBufferFinishesAsynchronously) {
  std::string head(100000, 'h');
  std::string body(16 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  auto [got, result] = WriteAndRead(head, body, false);
  EXPECT_FALSE(result.error) << result.error.message();
  EXPECT_EQ(result.written, head.size() + body.size());
  ASSERT_EQ(got.size(), head.size() + body.size());
  EXPECT_TRUE(got == head + body);
}

TEST(WireTest, WriteToAResetConnectionFails) {
  auto [got, result] = WriteAndRead("HEAD\r\n\r\n", "body", true);
  EXPECT_TRUE(result.error);
}

}  // namespace
}  // namespace atrium::http::internal
