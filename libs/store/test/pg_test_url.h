// Where the store tests find PostgreSQL: $ATRIUM_TEST_PG_URL, else the URL the ctest fixture
// `pg` (scripts/pg-test) wrote; empty when neither is there.
#pragma once

#include <string>

#include "atrium/core/testing.h"

namespace atrium::store::testing {

inline std::string PostgresTestUrl() {
  return atrium::testing::FixtureUrl("pg", "ATRIUM_TEST_PG_URL");
}

}  // namespace atrium::store::testing
