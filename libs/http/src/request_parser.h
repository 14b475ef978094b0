// RequestParser: Beast's HTTP/1.1 request parser writing straight into Atrium's types.
//
// Beast's request_parser keeps the fields in its own container (one allocation per field), which
// the server then copied into Headers. This parser hands each field to Headers as Beast reads it,
// and the body to a string, so a request costs neither the container nor the copy. Syntax, limits
// (header_limit, body_limit), chunked decoding and keep-alive stay Beast's. Used by the server
// and by the request fuzzer; no coroutine (the fuzzers compile it).
#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include <cstdint>
#include <string>

#include "atrium/http/headers.h"

namespace atrium::http::internal {

class RequestParser : public boost::beast::http::basic_parser<true> {
 public:
  RequestParser() = default;

  // Valid once is_header_done(); the caller may move them out (trailer fields of a chunked
  // body then still arrive in headers(), as they did in Beast's container).
  std::string& method() { return method_; }
  std::string& target() { return target_; }
  unsigned version() const { return version_; }  // 10 or 11
  Headers& headers() { return headers_; }

  // The body received so far (all of it once is_done()).
  std::string& body() { return body_; }

 private:
  using ErrorCode = boost::beast::error_code;
  using StringView = boost::beast::string_view;

  void on_request_impl(boost::beast::http::verb method, StringView method_string, StringView target,
                       int version, ErrorCode& ec) override;
  void on_response_impl(int code, StringView reason, int version, ErrorCode& ec) override;
  void on_field_impl(boost::beast::http::field name, StringView name_string, StringView value,
                     ErrorCode& ec) override;
  void on_header_impl(ErrorCode& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         ErrorCode& ec) override;
  std::size_t on_body_impl(StringView data, ErrorCode& ec) override;
  void on_chunk_header_impl(std::uint64_t size, StringView extensions, ErrorCode& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t remain, StringView data, ErrorCode& ec) override;
  void on_finish_impl(ErrorCode& ec) override;

  std::string method_;
  std::string target_;
  unsigned version_ = 11;
  Headers headers_;
  std::string body_;
};

// Whether a request with these fields asks for "100 Continue" before it sends its body.
bool ExpectsContinue(const Headers& headers);

}  // namespace atrium::http::internal
