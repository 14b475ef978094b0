#include "atrium/store/migrations.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace atrium::store {
namespace {

constexpr char kCreateTableSql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version BIGINT PRIMARY KEY, "
    "name TEXT NOT NULL, "
    "applied_at BIGINT NOT NULL)";

// Arbitrary constant key for pg_advisory_xact_lock, serialising concurrent migrators.
constexpr int64_t kMigrationLockKey = 0x61747269756d;  // "atrium"

std::string Label(const Migration& m) {
  return "migration " + std::to_string(m.version) + " (" + m.name + ")";
}

}  // namespace

Status MigrationSet::Add(Migration migration) {
  if (migration.version <= 0) {
    return InvalidArgument("migration version must be positive: " + Label(migration));
  }
  if (migration.sqlite_sql.empty()) return InvalidArgument("empty SQL in " + Label(migration));
  auto it = std::lower_bound(migrations_.begin(), migrations_.end(), migration.version,
                             [](const Migration& m, int version) { return m.version < version; });
  if (it != migrations_.end() && it->version == migration.version) {
    return InvalidArgument("duplicate migration version " + std::to_string(migration.version) +
                           ": " + it->name + " and " + migration.name);
  }
  migrations_.insert(it, std::move(migration));
  return Status::Ok();
}

Status MigrationSet::Add(std::vector<Migration> migrations) {
  for (Migration& m : migrations) RETURN_IF_ERROR(Add(std::move(m)));
  return Status::Ok();
}

std::string MigrationState::ToString() const {
  std::string out = "current version " + std::to_string(current_version) + ", latest known " +
                    std::to_string(latest_known_version) + ", " + std::to_string(pending) +
                    " pending\n";
  for (const Entry& e : entries) {
    char line[64];
    std::snprintf(line, sizeof(line), "%6d  %-8s  ", e.version,
                  !e.known ? "UNKNOWN" : (e.applied ? "applied" : "pending"));
    out += line;
    out += e.name;
    if (e.applied) out += "  (applied_at_us=" + std::to_string(e.applied_at_micros) + ")";
    out += '\n';
  }
  return out;
}

Status Migrator::EnsureTable() {
  return db_.Exec(kCreateTableSql, {}).status().WithContext("creating schema_migrations");
}

Result<MigrationState> Migrator::GetStatus() {
  RETURN_IF_ERROR(EnsureTable());
  ASSIGN_OR_RETURN(Rows rows,
                   db_.Query("SELECT version, name, applied_at FROM schema_migrations", {}));
  std::map<int, MigrationState::Entry> entries;
  MigrationState state;
  for (const Row& row : rows) {
    MigrationState::Entry e;
    e.version = static_cast<int>(row.Int(0));
    e.name = row.Text(1);
    e.applied = true;
    e.applied_at_micros = row.Int(2);
    e.known = false;
    state.current_version = std::max(state.current_version, e.version);
    entries[e.version] = std::move(e);
  }
  for (const Migration& m : set_.migrations()) {
    auto it = entries.find(m.version);
    if (it != entries.end()) {
      it->second.known = true;
      continue;
    }
    MigrationState::Entry e;
    e.version = m.version;
    e.name = m.name;
    entries[m.version] = std::move(e);
    ++state.pending;
  }
  for (auto& [version, e] : entries) state.entries.push_back(std::move(e));
  state.latest_known_version = set_.latest_version();
  return state;
}

Result<int> Migrator::Up() {
  ASSIGN_OR_RETURN(MigrationState state, GetStatus());
  if (state.current_version > state.latest_known_version) {
    return Internal("database schema version " + std::to_string(state.current_version) +
                    " is newer than the latest this binary knows (" +
                    std::to_string(state.latest_known_version) +
                    "); refusing to run: upgrade atrium or point it at another database");
  }
  std::vector<int> already;
  for (const MigrationState::Entry& e : state.entries) {
    if (e.applied) already.push_back(e.version);
  }
  int applied = 0;
  const Dialect dialect = db_.dialect();
  for (const Migration& m : set_.migrations()) {
    if (std::binary_search(already.begin(), already.end(), m.version)) continue;
    bool ran = false;
    Status s = db_.Transaction([&](Transaction& tx) -> Status {
      if (dialect == Dialect::kPostgres) {
        RETURN_IF_ERROR(tx.Query("SELECT pg_advisory_xact_lock(?)", {kMigrationLockKey}).status());
      }
      // Re-check inside the transaction: another process may have applied it meanwhile.
      ASSIGN_OR_RETURN(Rows done,
                       tx.Query("SELECT 1 FROM schema_migrations WHERE version = ?", {m.version}));
      if (!done.empty()) return Status::Ok();
      RETURN_IF_ERROR(tx.ExecScript(m.SqlFor(dialect)));
      RETURN_IF_ERROR(tx.Exec("INSERT INTO schema_migrations (version, name, applied_at) "
                              "VALUES (?, ?, ?)",
                              {m.version, m.name, env_.NowMicros()})
                          .status());
      ran = true;
      return Status::Ok();
    });
    if (!s.ok()) return s.WithContext(Label(m));
    if (ran) ++applied;
  }
  return applied;
}

std::vector<Migration> FoundationMigrations() {
  return {
      Migration{1, "kv_settings",
                "CREATE TABLE kv_settings ("
                "key TEXT PRIMARY KEY, "
                "value TEXT NOT NULL, "
                "updated_at BIGINT NOT NULL);",
                ""},
  };
}

}  // namespace atrium::store
