// HTTP/1.1 message heads written by hand, and writes that skip the scheduler when they can.
//
// The server's whole responses and the client's requests are small and usually fit the socket's
// send buffer: their head is serialized here into one string, and the message goes out in one
// sendmsg() on the calling thread; only what the socket does not take is written
// asynchronously (under the caller's deadline). Beast's serializer and its composed write cost
// more than the system call itself for such messages. The server frames its chunked streams the
// same way, a write per batch of chunks.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace atrium::http::internal {

// Whether `s` is a non-empty HTTP token (RFC 9110 tchar*): a method or a field name.
bool IsHttpToken(std::string_view s);

// Appends "name: value\r\n". Returns false, appending nothing, when the field would break the
// message's framing: a name that is not an HTTP token, or a value holding CR, LF or NUL.
bool AppendHeaderField(std::string& out, std::string_view name, std::string_view value);

// Whether `name` is Content-Length or Transfer-Encoding: the body's framing, which the writer of
// a message sets from the body itself, never from the caller's fields.
bool IsBodyFramingField(std::string_view name);

// Appends "HTTP/1.<minor> <status> <reason>\r\n"; `version` is 10 or 11 (Beast's encoding).
void AppendStatusLine(std::string& out, unsigned version, int status);

// Whether a response with this status carries no body and no Content-Length (1xx, 204, 304).
bool StatusHasNoBody(int status);

struct WriteResult {
  boost::system::error_code error;
  size_t written = 0;  // bytes the socket took, head included
};

// Sends as much of `head` then `body` as `stream`'s socket takes now, without waiting. `written`
// below the total (and no error) means the socket's buffer is full: WriteRest sends the rest.
WriteResult SendNow(boost::beast::tcp_stream& stream, std::string_view head, std::string_view body);

// Writes what SendNow left (`sent.written` bytes are out) asynchronously, with `deadline` as the
// stream's expiry. Completes with the first error and the total written.
boost::asio::awaitable<WriteResult> WriteRest(boost::beast::tcp_stream& stream,
                                              std::string_view head, std::string_view body,
                                              WriteResult sent,
                                              std::chrono::steady_clock::time_point deadline);

// Whether a SendNow result still needs WriteRest.
inline bool NeedsRest(const WriteResult& sent, std::string_view head, std::string_view body) {
  return !sent.error && sent.written < head.size() + body.size();
}

}  // namespace atrium::http::internal
