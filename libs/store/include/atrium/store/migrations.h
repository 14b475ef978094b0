// Schema migrations: numbered SQL scripts, embedded in the binary, applied in order.
//
// Each module exposes its migrations as a function returning std::vector<Migration> (e.g.
// FoundationMigrations()); the composition root adds them all to one MigrationSet and runs a
// Migrator at start-up (`atrium migrate up`) or to report (`atrium migrate status`). Versions
// are global across modules, so each module owns a block of numbers (the foundation owns 1-99;
// see docs/store.md). The root must register every module's migrations whether or not its
// service is enabled, or a database migrated by a fuller build would look "newer than known".
//
// Applied migrations are recorded in schema_migrations(version, name, applied_at) where
// applied_at is microseconds since the Unix epoch. Each migration runs in its own transaction,
// together with its schema_migrations row, so a failed migration leaves no trace. Migration
// scripts must not contain BEGIN/COMMIT.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "atrium/core/env.h"
#include "atrium/core/status.h"
#include "atrium/store/database.h"

namespace atrium::store {

struct Migration {
  int version = 0;  // > 0, unique across all modules
  std::string name;
  std::string sqlite_sql;
  std::string postgres_sql;  // empty: same as sqlite_sql

  const std::string& SqlFor(Dialect d) const {
    return d == Dialect::kPostgres && !postgres_sql.empty() ? postgres_sql : sqlite_sql;
  }
};

// The migrations a binary knows, kept sorted by version. Not thread-safe (built once at
// start-up, then read).
class MigrationSet {
 public:
  // InvalidArgument when the version is not positive, already taken, or the SQL is empty.
  Status Add(Migration migration);
  Status Add(std::vector<Migration> migrations);

  const std::vector<Migration>& migrations() const { return migrations_; }
  // 0 when empty.
  int latest_version() const { return migrations_.empty() ? 0 : migrations_.back().version; }

 private:
  std::vector<Migration> migrations_;  // sorted by version
};

struct MigrationState {
  struct Entry {
    int version = 0;
    std::string name;
    bool applied = false;
    int64_t applied_at_micros = 0;  // 0 when pending
    bool known = true;              // false: applied, but this binary does not know it
  };
  std::vector<Entry> entries;  // sorted by version, known and unknown
  int current_version = 0;     // highest applied version (0: none)
  int latest_known_version = 0;
  int pending = 0;

  // Human-readable table for `atrium migrate status`.
  std::string ToString() const;
};

// Applies a MigrationSet to a Database. Thread-compatible; concurrent Migrators on one database
// (several processes starting at once) are safe: each migration re-checks inside its
// transaction, serialised by SQLite's write lock or a PostgreSQL advisory lock.
class Migrator {
 public:
  // `db`, `set` and `env` (used for applied_at) must outlive the Migrator.
  Migrator(Database& db, const MigrationSet& set, Env& env) : db_(db), set_(set), env_(env) {}

  // Applies every pending migration in version order and returns how many ran. Fails, before
  // applying anything, when the database has a version newer than the latest this binary
  // knows; fails with the migration's version and name in the message when one fails (that
  // migration is rolled back and not recorded; earlier ones stay applied).
  Result<int> Up();

  // Applied and pending migrations (what `atrium migrate status` prints). Creates the
  // schema_migrations table when missing.
  Result<MigrationState> GetStatus();

 private:
  Status EnsureTable();

  Database& db_;
  const MigrationSet& set_;
  Env& env_;
};

// The foundation's own migrations (versions 1-99): kv_settings(key, value, updated_at).
std::vector<Migration> FoundationMigrations();

}  // namespace atrium::store
