// libFuzzer target: the JSON error/response helpers must always produce valid JSON that carries
// the (sanitised) message, whatever bytes the message and request id hold.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/json/parse.hpp>

#include "atrium/http/json_error.h"
#include "atrium/http/sse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t split = in.find('\0');
  std::string_view message = in.substr(0, split);
  std::string_view rid =
      split == std::string_view::npos ? std::string_view() : in.substr(split + 1);
  std::string body = atrium::http::ErrorJson("invalid_argument", message, rid);
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec) std::abort();  // the error body must always be valid JSON
  if (v.at("error").at("message").as_string() != atrium::http::SanitizeUtf8(message)) std::abort();
  // SSE framing must never produce an event boundary inside the data.
  std::string ev =
      atrium::http::FormatSseEvent({.id = std::string(rid), .data = std::string(message)});
  if (ev.find("\n\n") != ev.size() - 2) std::abort();
  return 0;
}
