// libFuzzer target: HTTP/1.1 response parsing as the HTTP client does it (the client's
// ResponseParser: Beast's parser writing into Atrium's Headers and a body window), with the
// bytes arriving in pieces and the window emptied whenever it fills.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include "message_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace bhttp = boost::beast::http;
  if (size < 2) return 0;
  // The first two bytes choose the piece size (2..257) and the body window (1..256). Pieces of
  // one byte are left out: Boost 1.81's basic_parser asserts, in debug builds only, when the
  // header of a final chunk comes back with exactly one more byte (a false assertion, removed
  // upstream in Beast PR #2861; release builds parse it correctly).
  const size_t step = static_cast<size_t>(data[0]) + 2;
  std::string window(static_cast<size_t>(data[1]) + 1, '\0');
  std::string_view wire(reinterpret_cast<const char*>(data + 2), size - 2);

  atrium::http::internal::ResponseParser parser;
  parser.header_limit(8 * 1024);
  parser.body_limit(1024 * 1024);
  std::string pending, body;
  size_t at = 0;
  boost::beast::error_code ec;
  while (!parser.is_done()) {
    if (at < wire.size()) {
      pending.append(wire.substr(at, step));
      at += step;
    } else if (pending.empty()) {
      if (parser.need_eof()) parser.put_eof(ec);
      break;
    }
    parser.SetBodyWindow(window.data(), window.size());
    size_t used = parser.put(boost::asio::buffer(pending), ec);
    pending.erase(0, used);
    body.append(window.data(), window.size() - parser.body_window_left());
    if (ec == bhttp::error::need_more && at >= wire.size()) {
      ec = {};
      if (parser.need_eof()) parser.put_eof(ec);
      break;  // the input ended inside the message
    }
    if (ec == bhttp::error::need_more || ec == bhttp::error::need_buffer) {
      ec = {};
      continue;
    }
    if (ec) break;
  }
  if (parser.is_header_done()) {
    (void)parser.status();
    (void)parser.headers().Get("content-type");
    (void)parser.keep_alive();
  }
  return 0;
}
