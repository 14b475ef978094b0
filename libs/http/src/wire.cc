#include "wire.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <charconv>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/status.hpp>

#include "atrium/http/headers.h"

namespace atrium::http::internal {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;

namespace {

// RFC 9110 tchar.
bool IsTokenChar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

void AppendNumber(std::string& out, unsigned long long n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), n);
  out.append(digits, end);
}

}  // namespace

bool IsHttpToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsBodyFramingField(std::string_view name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding");
}

bool AppendHeaderField(std::string& out, std::string_view name, std::string_view value) {
  if (!IsHttpToken(name)) return false;
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
  return true;
}

void AppendStatusLine(std::string& out, unsigned version, int status) {
  out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  AppendNumber(out, static_cast<unsigned>(status));
  out.push_back(' ');
  out.append(bhttp::obsolete_reason(static_cast<bhttp::status>(status)));
  out.append("\r\n");
}

bool StatusHasNoBody(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

WriteResult SendNow(boost::beast::tcp_stream& stream, std::string_view head,
                    std::string_view body) {
  const int fd = stream.socket().native_handle();
  size_t total = head.size() + body.size();
  size_t sent = 0;
  while (sent < total) {
    std::array<iovec, 2> iov{};
    size_t n_iov = 0;
    if (sent < head.size()) {
      iov[n_iov++] = {const_cast<char*>(head.data()) + sent, head.size() - sent};
      if (!body.empty()) iov[n_iov++] = {const_cast<char*>(body.data()), body.size()};
    } else {
      size_t off = sent - head.size();
      iov[n_iov++] = {const_cast<char*>(body.data()) + off, body.size() - off};
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = n_iov;
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return WriteResult{boost::system::error_code(errno, boost::system::system_category()), sent};
    }
    break;  // the send buffer is full: the rest waits for the socket
  }
  return WriteResult{{}, sent};
}

net::awaitable<WriteResult> WriteRest(boost::beast::tcp_stream& stream, std::string_view head,
                                      std::string_view body, WriteResult sent,
                                      std::chrono::steady_clock::time_point deadline) {
  if (!NeedsRest(sent, head, body)) co_return sent;
  std::array<net::const_buffer, 2> rest;
  if (sent.written < head.size()) {
    rest = {net::buffer(head.substr(sent.written)), net::buffer(body)};
  } else {
    rest = {net::const_buffer(), net::buffer(body.substr(sent.written - head.size()))};
  }
  stream.expires_at(deadline);
  auto [ec, n] = co_await net::async_write(stream, rest, net::as_tuple(net::use_awaitable));
  co_return WriteResult{ec, sent.written + n};
}

}  // namespace atrium::http::internal
