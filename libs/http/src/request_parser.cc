#include "request_parser.h"

#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <string_view>

namespace atrium::http::internal {

namespace bhttp = boost::beast::http;

bool ExpectsContinue(const Headers& headers) {
  auto expect = headers.Get("expect");
  return expect && bhttp::token_list(*expect).exists("100-continue");
}

void RequestParser::on_request_impl(bhttp::verb, StringView method_string, StringView target,
                                    int version, ErrorCode&) {
  method_.assign(method_string.data(), method_string.size());
  target_.assign(target.data(), target.size());
  version_ = static_cast<unsigned>(version);
}

void RequestParser::on_response_impl(int, StringView, int, ErrorCode& ec) {
  ec = bhttp::error::bad_method;  // never called: this parser reads requests
}

void RequestParser::on_field_impl(bhttp::field, StringView name_string, StringView value,
                                  ErrorCode&) {
  headers_.Add(std::string_view(name_string.data(), name_string.size()),
               std::string_view(value.data(), value.size()));
}

void RequestParser::on_header_impl(ErrorCode&) {}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                                      ErrorCode&) {
  // Room for a declared length up to 1 MiB at once (a larger body, or a chunked one, grows as
  // it comes: a length alone must not commit memory).
  constexpr std::uint64_t kReserveAtMost = 1 << 20;
  if (content_length) body_.reserve(static_cast<size_t>(std::min(*content_length, kReserveAtMost)));
}

std::size_t RequestParser::on_body_impl(StringView data, ErrorCode&) {
  body_.append(data.data(), data.size());
  return data.size();
}

void RequestParser::on_chunk_header_impl(std::uint64_t, StringView, ErrorCode&) {}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, StringView data, ErrorCode&) {
  body_.append(data.data(), data.size());
  return data.size();
}

void RequestParser::on_finish_impl(ErrorCode&) {}

}  // namespace atrium::http::internal
