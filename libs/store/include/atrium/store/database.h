// Database: Atrium's one interface to relational storage (SQLite or PostgreSQL).
//
// Repositories write SQL once and run it on both backends. The rules that make that work
// (see docs/store.md):
//   - Parameterised statements only: values travel as `Value`s bound to `?` placeholders, never
//     spliced into SQL text. The PostgreSQL backend rewrites `?` to `$1..$n` outside string
//     literals, quoted identifiers, dollar-quoted strings and comments (so PostgreSQL's jsonb `?`
//     operators must be written as functions, e.g. jsonb_exists()).
//   - New ids: `INSERT ... RETURNING id` through Query() works on both (SQLite >= 3.35).
//   - Portable types: BIGINT/INTEGER, DOUBLE PRECISION/REAL, TEXT, BLOB (SQLite) vs BYTEA
//     (PostgreSQL, hence per-dialect migrations), booleans stored as integers 0/1.
//
// Errors: unique / primary-key / foreign-key violations are Conflict (→ 409), lock contention,
// timeouts and lost connections are Unavailable (→ 503), misuse (wrong parameter count,
// several statements in Query/Exec) is InvalidArgument, anything else is Internal. Messages say
// which statement failed and why.
//
// Thread-safety: every Database implementation is thread-safe; any thread may call any method
// concurrently. Calls block the calling thread on I/O, so code on I/O threads must hand them to a
// worker pool. A `Transaction` object is confined to the function it is passed to.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "atrium/core/status.h"

namespace atrium::store {

// Raw bytes (SQLite BLOB, PostgreSQL BYTEA); distinct from text so backends can bind it as such.
struct Blob {
  std::string bytes;
  friend bool operator==(const Blob&, const Blob&) = default;
};

// SQL NULL.
struct Null {
  friend bool operator==(Null, Null) { return true; }
};

enum class ValueType { kNull, kInt, kDouble, kText, kBlob };

// One SQL value: a statement parameter or a result cell. Implicitly constructible from the
// obvious C++ types so parameters read naturally: db.Exec("... ?, ?", {42, "text"}).
class Value {
 public:
  Value() = default;                           // NULL
  Value(Null) {}                               // NOLINT(google-explicit-constructor)
  Value(std::nullptr_t) {}                     // NOLINT(google-explicit-constructor)
  template <std::integral T>                   // bool, int, size_t, ... (stored as int64;
  Value(T v) : v_(static_cast<int64_t>(v)) {}  // NOLINT  unsigned values above INT64_MAX wrap)
  template <std::floating_point T>
  Value(T v) : v_(static_cast<double>(v)) {}         // NOLINT(google-explicit-constructor)
  Value(const char* s) : v_(std::string(s)) {}       // NOLINT(google-explicit-constructor)
  Value(std::string s) : v_(std::move(s)) {}         // NOLINT(google-explicit-constructor)
  Value(std::string_view s) : v_(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  Value(Blob b) : v_(std::move(b)) {}                // NOLINT(google-explicit-constructor)

  ValueType type() const { return static_cast<ValueType>(v_.index()); }
  bool is_null() const { return type() == ValueType::kNull; }

  // Accessors for a known type; calling the wrong one is a programmer error (asserts).
  int64_t int_value() const { return std::get<int64_t>(v_); }
  double double_value() const { return std::get<double>(v_); }
  const std::string& text_value() const { return std::get<std::string>(v_); }
  const std::string& blob_value() const { return std::get<Blob>(v_).bytes; }

  // For messages and tests: 42, 1.5, 'text', x'00ff', NULL.
  std::string DebugString() const;

  friend bool operator==(const Value&, const Value&) = default;

 private:
  std::variant<Null, int64_t, double, std::string, Blob> v_;
};

using Params = std::vector<Value>;

// One result row. Cells are converted leniently so both backends read the same: NULL reads as
// 0 / 0.0 / "" (use IsNull to tell), Int() of a double truncates, Int()/Double() of text parse
// it, Text() of a number formats it. An out-of-range index or unknown column name is a
// programmer error (asserts in debug builds, reads as NULL otherwise).
class Row {
 public:
  Row(std::shared_ptr<const std::vector<std::string>> columns, std::vector<Value> values)
      : columns_(std::move(columns)), values_(std::move(values)) {}

  size_t size() const { return values_.size(); }
  const std::vector<std::string>& column_names() const { return *columns_; }

  const Value& Get(size_t i) const;
  const Value& Get(std::string_view column) const;
  bool IsNull(size_t i) const { return Get(i).is_null(); }
  bool IsNull(std::string_view column) const { return Get(column).is_null(); }
  int64_t Int(size_t i) const { return AsInt(Get(i)); }
  int64_t Int(std::string_view column) const { return AsInt(Get(column)); }
  double Double(size_t i) const { return AsDouble(Get(i)); }
  double Double(std::string_view column) const { return AsDouble(Get(column)); }
  std::string Text(size_t i) const { return AsText(Get(i)); }
  std::string Text(std::string_view column) const { return AsText(Get(column)); }
  // The bytes of a BLOB/BYTEA cell (text cells give their bytes too).
  std::string Blob(size_t i) const { return AsText(Get(i)); }
  std::string Blob(std::string_view column) const { return AsText(Get(column)); }

  const std::vector<Value>& values() const { return values_; }

 private:
  static int64_t AsInt(const Value& v);
  static double AsDouble(const Value& v);
  static std::string AsText(const Value& v);

  std::shared_ptr<const std::vector<std::string>> columns_;  // shared by the rows of a result
  std::vector<Value> values_;
};

// The rows a query returned, in order.
class Rows {
 public:
  Rows() : columns_(std::make_shared<std::vector<std::string>>()) {}
  explicit Rows(std::shared_ptr<const std::vector<std::string>> columns)
      : columns_(std::move(columns)) {}

  const std::vector<std::string>& column_names() const { return *columns_; }
  const std::shared_ptr<const std::vector<std::string>>& shared_columns() const { return columns_; }
  size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }
  const Row& operator[](size_t i) const { return rows_[i]; }
  std::vector<Row>::const_iterator begin() const { return rows_.begin(); }
  std::vector<Row>::const_iterator end() const { return rows_.end(); }

  void Add(std::vector<Value> values) { rows_.emplace_back(columns_, std::move(values)); }

 private:
  std::shared_ptr<const std::vector<std::string>> columns_;
  std::vector<Row> rows_;
};

enum class Dialect { kSqlite, kPostgres };
std::string_view DialectName(Dialect d);  // "sqlite", "postgres"

// Counters for metrics and tests; monotonically increasing over the Database's life.
struct DatabaseStats {
  uint64_t statements_prepared = 0;  // statements compiled (cache misses)
  uint64_t statement_cache_hits = 0;
};

// The statement-running half shared by Database and Transaction.
class Executor {
 public:
  virtual ~Executor() = default;

  // Runs one statement and returns its rows (SELECT, or INSERT/UPDATE/DELETE ... RETURNING).
  // `sql` must hold exactly one statement with as many `?` as `params` has values.
  virtual Result<Rows> Query(std::string_view sql, const Params& params = {}) = 0;
  // Runs one statement and returns the number of rows it inserted, updated or deleted
  // (0 for other statements). Rows the statement may return are discarded.
  virtual Result<int64_t> Exec(std::string_view sql, const Params& params = {}) = 0;
  // Runs several `;`-separated statements without parameters (migrations, schema set-up).
  // Must not contain BEGIN/COMMIT; outside a Transaction each statement commits on its own.
  virtual Status ExecScript(std::string_view sql) = 0;
};

// A transaction in progress, valid only inside the function passed to Database::Transaction.
// Its statements run on the transaction's connection and see its uncommitted writes.
// Not thread-safe.
class Transaction : public Executor {
 public:
  virtual Dialect dialect() const = 0;
};

class Database : public Executor {
 public:
  // Runs `fn` in a transaction: commits when it returns ok, rolls back when it returns an error
  // (which is returned) or throws (the exception is rethrown after the rollback). A failed
  // commit is returned as an error. Nesting (calling the Database from inside `fn` on the same
  // thread) is not supported: use the Transaction object. Writers are serialised on SQLite;
  // on PostgreSQL the usual READ COMMITTED rules apply.
  virtual Status Transaction(const std::function<Status(store::Transaction&)>& fn) = 0;

  virtual Dialect dialect() const = 0;
  // Cheap round trip proving the database is reachable (for /health/ready).
  virtual Status Ping() = 0;
  virtual DatabaseStats Stats() const = 0;
};

struct DatabaseOptions {
  // SQLite: reader connections (0 = every statement on the writer). PostgreSQL: pool size.
  int pool_size = 4;
  // SQLite busy_timeout; PostgreSQL: how long to wait for a free pooled connection.
  int busy_timeout_ms = 5000;
};

// Opens the database a URL names:
//   sqlite:///abs/path.db, sqlite://relative/path.db, a plain path, or sqlite::memory:
//     → SQLite (the file and its directory must be creatable; the file is created if missing)
//   postgres://... or postgresql://... → PostgreSQL (any libpq connection URI)
// Errors: InvalidArgument for an unknown scheme, Unavailable when the server cannot be reached,
// Internal when the file cannot be opened.
Result<std::unique_ptr<Database>> OpenDatabase(std::string_view url,
                                               const DatabaseOptions& options = {});

}  // namespace atrium::store
