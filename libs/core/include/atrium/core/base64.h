// Base64 (RFC 4648): the standard alphabet with padding (HTTP Basic auth, JSON payloads) and the
// URL-safe alphabet without padding (JWT, tokens). Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace atrium {

// Standard alphabet, '=' padding (RFC 4648 §4).
std::string Base64Encode(std::string_view data);
// Decodes Base64Encode's form; nullopt when malformed (length, characters, misplaced padding).
std::optional<std::string> Base64Decode(std::string_view text);
// URL-safe alphabet, no padding (RFC 4648 §5).
std::string Base64UrlEncode(std::string_view data);

}  // namespace atrium
