// Small ASCII string helpers shared by the core parsers (config values, log levels), and the
// hash for string-keyed maps probed with a string_view. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace atrium {

// `s` with ASCII letters lower-cased.
std::string AsciiToLower(std::string_view s);
// `s` without leading and trailing ASCII whitespace.
std::string_view TrimWhitespace(std::string_view s);

// Transparent hash: an unordered_map<std::string, V, StringHash, std::equal_to<>> can be probed
// with a string_view without building a string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace atrium
