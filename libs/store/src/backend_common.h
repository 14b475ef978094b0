// Private: small pieces both SQL backends use (statement cache bookkeeping, error text).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace atrium::store::internal {

// Beyond this many distinct statements a connection's cache is emptied, so code that (wrongly)
// builds many distinct SQL strings cannot grow memory without bound.
inline constexpr size_t kMaxCachedStatements = 512;

// Shared by the connections of one database; read by Database::Stats().
struct StatementCounters {
  std::atomic<uint64_t> prepared{0};
  std::atomic<uint64_t> cache_hits{0};
};

// The first 160 bytes of `sql`, for error messages.
inline std::string Abbreviate(std::string_view sql) {
  constexpr size_t kMax = 160;
  if (sql.size() <= kMax) return std::string(sql);
  return std::string(sql.substr(0, kMax)) + "...";
}

}  // namespace atrium::store::internal
