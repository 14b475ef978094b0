// SqliteDatabase: the embedded Database backend (the default for single-node installs).
//
// Layout: one writer connection, guarded by a mutex, runs every Exec, ExecScript and
// Transaction (BEGIN IMMEDIATE, so writers queue instead of failing on lock upgrades), and a pool
// of reader connections runs Query calls made outside transactions. WAL mode lets readers run
// while the writer writes; a Query whose statement writes (INSERT ... RETURNING) is routed to the
// writer. Each connection caches its prepared statements keyed by SQL text.
// Pragmas: journal_mode=WAL, synchronous=NORMAL, foreign_keys=ON, busy_timeout=options.
//
// Thread-safe (see database.h).
#pragma once

#include <memory>
#include <string>

#include "atrium/store/database.h"

namespace atrium::store {

// Opens (creating if missing) the SQLite database at `path`. ":memory:" gives a private
// in-memory database served by the writer connection alone (for tests).
Result<std::unique_ptr<Database>> OpenSqliteDatabase(const std::string& path,
                                                     const DatabaseOptions& options = {});

}  // namespace atrium::store
