// Small ASCII string helpers shared by the core parsers (config values, log levels).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace atrium {

// `s` with ASCII letters lower-cased.
std::string AsciiToLower(std::string_view s);
// `s` without leading and trailing ASCII whitespace.
std::string_view TrimWhitespace(std::string_view s);

}  // namespace atrium
