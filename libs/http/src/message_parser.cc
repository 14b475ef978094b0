#include "message_parser.h"

#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace atrium::http::internal {

namespace bhttp = boost::beast::http;

template <bool kRequest>
void MessageParser<kRequest>::on_request_impl(bhttp::verb, StringView method_string,
                                              StringView target, int version, ErrorCode&) {
  method_.assign(method_string.data(), method_string.size());
  target_.assign(target.data(), target.size());
  version_ = static_cast<unsigned>(version);
}

template <bool kRequest>
void MessageParser<kRequest>::on_response_impl(int code, StringView, int version, ErrorCode&) {
  status_ = code;
  version_ = static_cast<unsigned>(version);
}

template <bool kRequest>
void MessageParser<kRequest>::on_field_impl(bhttp::field, StringView name_string, StringView value,
                                            ErrorCode&) {
  headers_.Add(std::string_view(name_string.data(), name_string.size()),
               std::string_view(value.data(), value.size()));
}

template <bool kRequest>
void MessageParser<kRequest>::on_body_init_impl(
    const boost::optional<std::uint64_t>& content_length, ErrorCode&) {
  // Room in body_ for a declared length up to 1 MiB at once (a larger body, or a chunked one,
  // grows as it comes: a length alone must not commit memory).
  constexpr std::uint64_t kReserveAtMost = 1 << 20;
  if (window_ == nullptr && content_length) {
    body_.reserve(static_cast<size_t>(std::min(*content_length, kReserveAtMost)));
  }
}

template <bool kRequest>
std::size_t MessageParser<kRequest>::Take(StringView data, ErrorCode& ec) {
  if (window_ == nullptr) {
    body_.append(data.data(), data.size());
    return data.size();
  }
  const size_t n = std::min(window_left_, data.size());
  if (n > 0) {
    std::memcpy(window_, data.data(), n);
    window_ += n;
    window_left_ -= n;
  }
  if (n < data.size()) ec = bhttp::error::need_buffer;
  return n;
}

template class MessageParser<true>;
template class MessageParser<false>;

bool ExpectsContinue(const Headers& headers) {
  auto expect = headers.Get("expect");
  return expect && bhttp::token_list(*expect).exists("100-continue");
}

}  // namespace atrium::http::internal
