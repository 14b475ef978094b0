#include "atrium/store/sqlite_database.h"
#include "atrium/core/strings.h"
#include "backend_common.h"
#include "connection_transaction.h"

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace atrium::store {
namespace {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using SqlitePtr = std::unique_ptr<sqlite3, SqliteCloser>;
using StatementPtr = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

using internal::Abbreviate;
using internal::kMaxCachedStatements;
using internal::StatementCounters;

// Maps an (extended) SQLite result code to a Status; see database.h for the mapping.
Status SqliteError(int rc, std::string_view detail, std::string_view what, std::string_view sql) {
  std::string msg = "sqlite: " + std::string(what) + " failed: " + std::string(detail);
  if (!sql.empty()) msg += " [" + Abbreviate(sql) + "]";
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
          rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return Conflict(std::move(msg));
      }
      return Internal(std::move(msg));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(std::move(msg));
    default:
      return Internal(std::move(msg));
  }
}

bool OnlyWhitespaceOrSemicolons(const char* p) {
  for (; p != nullptr && *p != '\0'; ++p) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != ';') return false;
  }
  return true;
}

// Resets a cached statement when a call is done with it, so it holds no locks or bound data.
class StatementUse {
 public:
  explicit StatementUse(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StatementUse() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

// One SQLite connection with its statement cache. Not thread-safe: the owner serialises use.
class Connection {
 public:
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, bool writer,
                                                  const DatabaseOptions& options,
                                                  StatementCounters& counters) {
    sqlite3* raw = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    SqlitePtr db(raw);
    if (rc != SQLITE_OK) {
      std::string detail = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
      return SqliteError(rc, detail, "opening " + path, "");
    }
    sqlite3_extended_result_codes(db.get(), 1);
    sqlite3_busy_timeout(db.get(), options.busy_timeout_ms);
    auto conn = std::make_unique<Connection>(std::move(db), counters);
    if (writer) {
      if (path != ":memory:") {
        ASSIGN_OR_RETURN(Rows mode, conn->Query("PRAGMA journal_mode=WAL", {}));
        if (mode.empty() || mode[0].Text(0) != "wal") {
          return Internal("sqlite: could not switch " + path + " to WAL mode");
        }
      }
      RETURN_IF_ERROR(conn->ExecScript("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
    } else {
      RETURN_IF_ERROR(conn->ExecScript("PRAGMA query_only=ON;"));
    }
    return conn;
  }

  Connection(SqlitePtr db, StatementCounters& counters) : db_(std::move(db)), counters_(counters) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A compiled statement for `sql`, from the cache when possible; owned by the cache.
  Result<sqlite3_stmt*> Prepare(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      counters_.cache_hits.fetch_add(1, std::memory_order_relaxed);
      return it->second.get();
    }
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &raw, &tail);
    StatementPtr stmt(raw);
    if (rc != SQLITE_OK) return SqliteError(rc, sqlite3_errmsg(db_.get()), "prepare", sql);
    if (stmt == nullptr) return InvalidArgument("sqlite: empty statement");
    if (tail != nullptr && tail < sql.data() + sql.size()) {
      std::string rest(tail, sql.data() + sql.size() - tail);
      if (!OnlyWhitespaceOrSemicolons(rest.c_str())) {
        return InvalidArgument("sqlite: several statements in one call (use ExecScript): " +
                               Abbreviate(sql));
      }
    }
    counters_.prepared.fetch_add(1, std::memory_order_relaxed);
    if (cache_.size() >= kMaxCachedStatements) cache_.clear();
    sqlite3_stmt* out = stmt.get();
    cache_.emplace(std::string(sql), std::move(stmt));
    return out;
  }

  // True when the statement only reads (so a reader connection may run it).
  static bool ReadOnly(sqlite3_stmt* stmt) { return sqlite3_stmt_readonly(stmt) != 0; }

  Result<Rows> Run(sqlite3_stmt* stmt, std::string_view sql, const Params& params) {
    StatementUse use(stmt);
    RETURN_IF_ERROR(Bind(stmt, sql, params));
    int ncols = sqlite3_column_count(stmt);
    auto names = std::make_shared<std::vector<std::string>>();
    names->reserve(ncols);
    for (int i = 0; i < ncols; ++i) {
      const char* name = sqlite3_column_name(stmt, i);
      names->emplace_back(name != nullptr ? name : "");
    }
    Rows rows(std::move(names));
    while (true) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return SqliteError(rc, sqlite3_errmsg(db_.get()), "query", sql);
      std::vector<Value> values;
      values.reserve(ncols);
      for (int i = 0; i < ncols; ++i) values.push_back(ColumnValue(stmt, i));
      rows.Add(std::move(values));
    }
    return rows;
  }

  Result<Rows> Query(std::string_view sql, const Params& params) {
    ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
    return Run(stmt, sql, params);
  }

  Result<int64_t> Exec(std::string_view sql, const Params& params) {
    ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql));
    StatementUse use(stmt);
    RETURN_IF_ERROR(Bind(stmt, sql, params));
    // sqlite3_changes64 keeps the count of the last DML statement, so DDL would report a stale
    // count: only trust it when this statement changed something.
    int64_t before = sqlite3_total_changes64(db_.get());
    while (true) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return SqliteError(rc, sqlite3_errmsg(db_.get()), "exec", sql);
    }
    if (sqlite3_total_changes64(db_.get()) == before) return int64_t{0};
    return static_cast<int64_t>(sqlite3_changes64(db_.get()));
  }

  Status ExecScript(std::string_view sql) {
    std::string script(sql);  // sqlite3_exec wants a NUL-terminated string
    char* err = nullptr;
    int rc = sqlite3_exec(db_.get(), script.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return Status::Ok();
    std::string detail = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return SqliteError(sqlite3_extended_errcode(db_.get()), detail, "script", sql);
  }

  bool InTransaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

 private:
  Status Bind(sqlite3_stmt* stmt, std::string_view sql, const Params& params) {
    int expected = sqlite3_bind_parameter_count(stmt);
    if (expected != static_cast<int>(params.size())) {
      return InvalidArgument("sqlite: statement wants " + std::to_string(expected) +
                             " parameters, got " + std::to_string(params.size()) + " [" +
                             Abbreviate(sql) + "]");
    }
    for (int i = 0; i < expected; ++i) {
      const Value& v = params[i];
      int rc = SQLITE_OK;
      switch (v.type()) {
        case ValueType::kNull:
          rc = sqlite3_bind_null(stmt, i + 1);
          break;
        case ValueType::kInt:
          rc = sqlite3_bind_int64(stmt, i + 1, v.int_value());
          break;
        case ValueType::kDouble:
          rc = sqlite3_bind_double(stmt, i + 1, v.double_value());
          break;
        case ValueType::kText:
          // SQLITE_STATIC: `params` outlives the statement's use (reset in ~StatementUse).
          rc = sqlite3_bind_text64(stmt, i + 1, v.text_value().data(), v.text_value().size(),
                                   SQLITE_STATIC, SQLITE_UTF8);
          break;
        case ValueType::kBlob:
          // A null pointer would bind NULL, so an empty blob is bound as a zero-length blob.
          rc = v.blob_value().empty() ? sqlite3_bind_zeroblob(stmt, i + 1, 0)
                                      : sqlite3_bind_blob64(stmt, i + 1, v.blob_value().data(),
                                                            v.blob_value().size(), SQLITE_STATIC);
          break;
      }
      if (rc != SQLITE_OK) {
        return SqliteError(rc, sqlite3_errmsg(db_.get()),
                           "binding parameter " + std::to_string(i + 1), sql);
      }
    }
    return Status::Ok();
  }

  static Value ColumnValue(sqlite3_stmt* stmt, int i) {
    switch (sqlite3_column_type(stmt, i)) {
      case SQLITE_INTEGER:
        return Value(static_cast<int64_t>(sqlite3_column_int64(stmt, i)));
      case SQLITE_FLOAT:
        return Value(sqlite3_column_double(stmt, i));
      case SQLITE_TEXT: {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
        return Value(std::string(p, sqlite3_column_bytes(stmt, i)));
      }
      case SQLITE_BLOB: {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, i));
        int n = sqlite3_column_bytes(stmt, i);
        return Value(Blob{n > 0 ? std::string(p, n) : std::string()});
      }
      default:
        return Value();
    }
  }

  SqlitePtr db_;
  // Declared after db_ so the statements are finalized before the connection closes.
  std::unordered_map<std::string, StatementPtr, StringHash, std::equal_to<>> cache_;
  StatementCounters& counters_;
};

using SqliteTransaction = internal::ConnectionTransaction<Connection, Dialect::kSqlite>;

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase() = default;
  SqliteDatabase(const SqliteDatabase&) = delete;
  SqliteDatabase& operator=(const SqliteDatabase&) = delete;

  Status Init(const std::string& path, const DatabaseOptions& options) {
    ASSIGN_OR_RETURN(writer_, Connection::Open(path, /*writer=*/true, options, counters_));
    int readers = path == ":memory:" ? 0 : std::max(options.pool_size, 0);
    for (int i = 0; i < readers; ++i) {
      ASSIGN_OR_RETURN(auto reader, Connection::Open(path, /*writer=*/false, options, counters_));
      idle_readers_.push_back(std::move(reader));
    }
    std::lock_guard<std::mutex> lock(readers_mu_);
    reader_count_ = idle_readers_.size();
    return Status::Ok();
  }

  Result<Rows> Query(std::string_view sql, const Params& params) override {
    RETURN_IF_ERROR(CheckNotInOwnTransaction());
    if (std::unique_ptr<Connection> reader = TakeReader()) {
      Result<sqlite3_stmt*> stmt = reader->Prepare(sql);
      if (stmt.ok() && Connection::ReadOnly(*stmt)) {
        Result<Rows> rows = reader->Run(*stmt, sql, params);
        ReturnReader(std::move(reader));
        return rows;
      }
      ReturnReader(std::move(reader));
      if (!stmt.ok()) return stmt.status();
      // A writing statement (INSERT ... RETURNING): run it on the writer below.
    }
    std::lock_guard<std::mutex> lock(writer_mu_);
    return writer_->Query(sql, params);
  }

  Result<int64_t> Exec(std::string_view sql, const Params& params) override {
    RETURN_IF_ERROR(CheckNotInOwnTransaction());
    std::lock_guard<std::mutex> lock(writer_mu_);
    return writer_->Exec(sql, params);
  }

  Status ExecScript(std::string_view sql) override {
    RETURN_IF_ERROR(CheckNotInOwnTransaction());
    std::lock_guard<std::mutex> lock(writer_mu_);
    return writer_->ExecScript(sql);
  }

  Status Transaction(const std::function<Status(store::Transaction&)>& fn) override {
    RETURN_IF_ERROR(CheckNotInOwnTransaction());
    std::lock_guard<std::mutex> lock(writer_mu_);
    // IMMEDIATE takes the write lock now, so a transaction that reads then writes cannot fail
    // half-way on a lock upgrade when another process writes.
    RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE", {}).status().WithContext("begin"));
    writer_owner_.store(std::this_thread::get_id());
    SqliteTransaction tx(*writer_, "sqlite");
    Status status;
    try {
      status = fn(tx);
    } catch (...) {
      writer_owner_.store(std::thread::id());
      tx.Close();
      Rollback();
      throw;
    }
    writer_owner_.store(std::thread::id());
    tx.Close();
    if (!status.ok()) {
      Rollback();
      return status;
    }
    Result<int64_t> commit = writer_->Exec("COMMIT", {});
    if (!commit.ok()) {
      Rollback();
      return commit.status().WithContext("commit");
    }
    return Status::Ok();
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Status Ping() override { return Query("SELECT 1", {}).status(); }

  DatabaseStats Stats() const override {
    return DatabaseStats{counters_.prepared.load(std::memory_order_relaxed),
                         counters_.cache_hits.load(std::memory_order_relaxed)};
  }

 private:
  // The writer mutex is not recursive: calling the Database from inside a Transaction's
  // function on the same thread would deadlock, so it is reported instead.
  Status CheckNotInOwnTransaction() const {
    if (writer_owner_.load() == std::this_thread::get_id()) {
      return InvalidArgument(
          "sqlite: Database called from inside its own Transaction on the same thread; use the "
          "Transaction object");
    }
    return Status::Ok();
  }

  // Writer mutex held.
  void Rollback() {
    if (writer_->InTransaction()) (void)writer_->Exec("ROLLBACK", {});
  }

  // Null when there is no reader pool (in-memory databases).
  std::unique_ptr<Connection> TakeReader() {
    std::unique_lock<std::mutex> lock(readers_mu_);
    if (reader_count_ == 0) return nullptr;
    readers_cv_.wait(lock, [&] { return !idle_readers_.empty(); });
    std::unique_ptr<Connection> reader = std::move(idle_readers_.back());
    idle_readers_.pop_back();
    return reader;
  }

  void ReturnReader(std::unique_ptr<Connection> reader) {
    {
      std::lock_guard<std::mutex> lock(readers_mu_);
      idle_readers_.push_back(std::move(reader));
    }
    readers_cv_.notify_one();
  }

  StatementCounters counters_;
  std::mutex writer_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by writer_mu_ (after Init)
  // The thread running a Transaction's function, or none.
  std::atomic<std::thread::id> writer_owner_{};
  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;  // guarded by readers_mu_
  size_t reader_count_ = 0;                                // guarded by readers_mu_
};

}  // namespace

Result<std::unique_ptr<Database>> OpenSqliteDatabase(const std::string& path,
                                                     const DatabaseOptions& options) {
  auto db = std::make_unique<SqliteDatabase>();
  RETURN_IF_ERROR(db->Init(path, options));
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace atrium::store
