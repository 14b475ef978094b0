#include "atrium/http/json_error.h"

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

namespace atrium::http {

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool valid = len != 0 && i + len <= n;
    for (size_t k = 1; valid && k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) valid = false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Reject overlong forms, surrogates and out-of-range code points.
    if (valid) {
      if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
          cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        valid = false;
      }
    }
    if (valid) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string JsonQuote(std::string_view s) {
  std::string clean = SanitizeUtf8(s);
  return boost::json::serialize(boost::json::string(clean));
}

std::string ErrorJson(std::string_view code, std::string_view message,
                      std::string_view request_id) {
  std::string out = R"({"error":{"code":)";
  out += JsonQuote(code);
  out += R"(,"message":)";
  out += JsonQuote(message);
  out += R"(,"request_id":)";
  out += JsonQuote(request_id);
  out += "}}";
  return out;
}

std::string ErrorJson(const Status& status, std::string_view request_id) {
  return ErrorJson(CodeName(status.code()), status.message(), request_id);
}

}  // namespace atrium::http
