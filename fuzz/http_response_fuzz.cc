// libFuzzer target: HTTP/1.1 response parsing as the HTTP client does it (the client's
// ResponseParser: Beast's parser writing into Atrium's Headers and a body window), with the
// bytes arriving in pieces and the window emptied whenever it fills.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "message_parser.h"
#include "message_parser_feed.h"  // libs/http/test: the same piecewise reads the tests use

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first two bytes choose the piece size (2..257) and the body window (1..256). Pieces of
  // one byte are left out: Boost 1.81's basic_parser asserts, in debug builds only, when the
  // header of a final chunk comes back with exactly one more byte (a false assertion, removed
  // upstream in Beast PR #2861; release builds parse it correctly).
  const size_t step = static_cast<size_t>(data[0]) + 2;
  const size_t window = static_cast<size_t>(data[1]) + 1;
  std::string_view wire(reinterpret_cast<const char*>(data + 2), size - 2);

  atrium::http::internal::ResponseParser parser;
  parser.header_limit(8 * 1024);
  parser.body_limit(1024 * 1024);
  (void)atrium::http::internal::Feed(parser, wire, step, window);  // the client's reads
  if (parser.is_header_done()) {
    (void)parser.status();
    (void)parser.headers().Get("content-type");
    (void)parser.keep_alive();
  }
  return 0;
}
