// MessageParser: Beast's HTTP/1.1 parser writing straight into Atrium's types.
//
// Beast's request_parser / response_parser keep the fields in their own container (one
// allocation per field), which the server and the client then copied into Headers. This parser
// hands each field to Headers as Beast reads it, so a message costs neither the container nor
// the copy. Syntax, limits (header_limit, body_limit), chunked decoding and keep-alive stay
// Beast's. The body goes into a window the caller sets (SetBodyWindow: error::need_buffer once it
// is full, as Beast's buffer_body does, so the client can stream a large body in pieces), or,
// with no window set, into body(). No coroutine (the fuzzers compile it).
#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "atrium/http/headers.h"

namespace atrium::http::internal {

template <bool kRequest>
class MessageParser : public boost::beast::http::basic_parser<kRequest> {
 public:
  MessageParser() = default;

  // The start line, valid once is_header_done(): method and target of a request, status of a
  // response. The caller may move the strings and the headers out (trailer fields of a chunked
  // body then still arrive in headers(), as they did in Beast's container).
  std::string& method() { return method_; }
  std::string& target() { return target_; }
  int status() const { return status_; }
  unsigned version() const { return version_; }  // 10 or 11
  Headers& headers() { return headers_; }

  // The body received so far when no window is set (all of it once is_done()).
  std::string& body() { return body_; }
  // Where the next body bytes go instead: `size` bytes at `data`. Parsing a body stops with
  // error::need_buffer once they are used up.
  void SetBodyWindow(char* data, size_t size) {
    window_ = data;
    window_left_ = size;
  }
  // Room left in the window (the caller's size minus what the body filled).
  size_t body_window_left() const { return window_left_; }

 private:
  using ErrorCode = boost::beast::error_code;
  using StringView = boost::beast::string_view;

  void on_request_impl(boost::beast::http::verb method, StringView method_string, StringView target,
                       int version, ErrorCode& ec) override;
  void on_response_impl(int code, StringView reason, int version, ErrorCode& ec) override;
  void on_field_impl(boost::beast::http::field name, StringView name_string, StringView value,
                     ErrorCode& ec) override;
  void on_header_impl(ErrorCode&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         ErrorCode& ec) override;
  std::size_t on_body_impl(StringView data, ErrorCode& ec) override { return Take(data, ec); }
  void on_chunk_header_impl(std::uint64_t, StringView, ErrorCode&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, StringView data, ErrorCode& ec) override {
    return Take(data, ec);
  }
  void on_finish_impl(ErrorCode&) override {}
  // Takes body bytes: what fits into the window, or all of them into body_.
  std::size_t Take(StringView data, ErrorCode& ec);

  std::string method_;
  std::string target_;
  int status_ = 0;
  unsigned version_ = 11;
  Headers headers_;
  std::string body_;
  char* window_ = nullptr;
  size_t window_left_ = 0;
};

using RequestParser = MessageParser<true>;
using ResponseParser = MessageParser<false>;

extern template class MessageParser<true>;
extern template class MessageParser<false>;

// Whether a request with these fields asks for "100 Continue" before it sends its body.
bool ExpectsContinue(const Headers& headers);

}  // namespace atrium::http::internal
