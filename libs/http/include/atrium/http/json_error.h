// Atrium's uniform JSON error body and the helpers that keep it valid JSON whatever the input.
//
//   {"error": {"code": "not_found", "message": "...", "request_id": "..."}}
//
// Messages can carry user input (a bad field value); invalid UTF-8 in them is replaced by U+FFFD
// so the body always parses. Thread-safe (pure functions).
#pragma once

#include <string>
#include <string_view>

#include "atrium/core/status.h"

namespace atrium::http {

// Renders the error body for `code` (a CodeName) with `message` and `request_id`.
std::string ErrorJson(std::string_view code, std::string_view message, std::string_view request_id);
// Renders the error body for a non-ok Status.
std::string ErrorJson(const Status& status, std::string_view request_id);
// `s` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view s);
// A JSON string literal (quoted, escaped) for `s` after SanitizeUtf8.
std::string JsonQuote(std::string_view s);

}  // namespace atrium::http
