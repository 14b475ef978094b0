// Fuzzes the run-search filter language (services/track/src/filter.cc): parsing, compiling to
// SQL and parsing order_by terms must never crash, hang or leak on any input, and every error
// must carry a position.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "atrium/track/filter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = atrium::track::ParseFilter(text);
  if (!parsed.ok()) {
    if (parsed.status().message().find(" at position ") == std::string::npos) __builtin_trap();
  } else if (*parsed != nullptr) {
    auto lookup = [](const std::string& key) -> std::optional<int64_t> {
      if (key.size() % 2 == 0) return static_cast<int64_t>(key.size());
      return std::nullopt;
    };
    auto compiled = atrium::track::CompileFilter(**parsed, lookup, "r");
    if (compiled.ok()) {
      // Every literal is a bound argument: placeholders and arguments must match.
      size_t marks = 0;
      for (char c : compiled->sql) marks += c == '?';
      if (marks != compiled->args.size()) __builtin_trap();
    }
  }
  (void)atrium::track::ParseOrderTerm(text);
  return 0;
}
