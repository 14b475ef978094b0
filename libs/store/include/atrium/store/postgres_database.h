// PostgresDatabase: the Database backend for multi-node installs, over libpq.
//
// A pool of up to options.pool_size connections, opened lazily (one is opened at start-up to
// check the conninfo). Statements are prepared once per connection (PQprepare, names generated
// per connection, keyed by SQL text) after rewriting `?` placeholders to $1..$n. Parameters are
// sent as text, Blobs as binary; result cells are decoded by column type (int2/4/8, oid and bool
// → Int; float4/8 and numeric → Double; bytea → Blob; everything else, timestamps included,
// → Text).
//
// Broken connections (server restart, terminated backend) are detected when taken from the pool
// or when a statement fails with the connection lost, and are replaced by fresh ones; the
// statement that found a connection broken fails with Unavailable rather than being retried,
// since it may have run.
//
// Thread-safe (see database.h).
#pragma once

#include <memory>
#include <string>

#include "atrium/store/database.h"

namespace atrium::store {

// Connects to `conninfo` (a postgres:// URL or key=value string). Unavailable when the server
// cannot be reached or refuses the connection.
Result<std::unique_ptr<Database>> OpenPostgresDatabase(const std::string& conninfo,
                                                       const DatabaseOptions& options = {});

}  // namespace atrium::store
