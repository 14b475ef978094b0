// Where the store tests find PostgreSQL: $ATRIUM_TEST_PG_URL, else the URL the ctest fixture
// `pg` (scripts/pg-test) wrote to $ATRIUM_BINARY_DIR/pg/url; empty when neither is there.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

namespace atrium::store::testing {

inline std::string PostgresTestUrl() {
  if (const char* url = std::getenv("ATRIUM_TEST_PG_URL"); url != nullptr && *url != '\0') {
    return url;
  }
  const char* bin = std::getenv("ATRIUM_BINARY_DIR");
  if (bin == nullptr) return "";
  std::ifstream in(std::string(bin) + "/pg/url");
  std::string url;
  std::getline(in, url);
  return url;
}

}  // namespace atrium::store::testing
