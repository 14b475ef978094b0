// Test helper: feeds a message to a MessageParser in pieces, as the server and the client do.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <string>
#include <string_view>

#include "message_parser.h"

namespace atrium::http::internal {

struct FeedResult {
  boost::beast::error_code ec;  // the first error
  std::string body;             // what the body window received (empty without a window)
};

// Feeds `wire` to `parser` in pieces of `step` bytes (what the parser leaves unused comes again
// with the next piece, as a connection's buffer does). With `window` > 0 the body goes into a
// window of that size, emptied whenever it fills, as the client reads; with 0, into
// parser.body(). An EOF-delimited body ends with the input.
template <bool kRequest>
FeedResult Feed(MessageParser<kRequest>& parser, std::string_view wire, size_t step,
                size_t window = 0) {
  namespace bhttp = boost::beast::http;
  FeedResult out;
  std::string pending;
  std::string chunk(window, '\0');
  size_t at = 0;
  while (!parser.is_done()) {
    if (at < wire.size()) {
      pending.append(wire.substr(at, step));
      at += step;
    } else if (pending.empty()) {
      if (parser.need_eof()) parser.put_eof(out.ec);
      break;
    }
    if (window > 0) parser.SetBodyWindow(chunk.data(), chunk.size());
    boost::beast::error_code ec;
    size_t used = parser.put(boost::asio::buffer(pending), ec);
    pending.erase(0, used);
    if (window > 0) out.body.append(chunk.data(), chunk.size() - parser.body_window_left());
    if (ec == bhttp::error::need_more && at >= wire.size()) {
      if (parser.need_eof()) parser.put_eof(out.ec);
      break;  // the input ended inside the message
    }
    if (ec == bhttp::error::need_more || ec == bhttp::error::need_buffer) continue;
    if (ec) {
      out.ec = ec;
      break;
    }
  }
  return out;
}

}  // namespace atrium::http::internal
