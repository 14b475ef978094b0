#include "atrium/store/postgres_database.h"
#include "atrium/core/strings.h"
#include "backend_common.h"
#include "connection_transaction.h"

#include <libpq-fe.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "placeholders.h"

namespace atrium::store {
namespace {

struct PgConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultClearer {
  void operator()(PGresult* res) const { PQclear(res); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnCloser>;
using PgResultPtr = std::unique_ptr<PGresult, PgResultClearer>;

// Type OIDs from pg_type.h (stable across PostgreSQL versions).
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kOidOid = 26;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;
constexpr Oid kNumericOid = 1700;

using internal::Abbreviate;
using internal::kMaxCachedStatements;
using internal::StatementCounters;

std::string Trimmed(const char* s) {
  std::string out = s != nullptr ? s : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// Maps a failed result (or a failed connection when `res` is null) to a Status.
Status PgError(PGconn* conn, const PGresult* res, std::string_view what, std::string_view sql) {
  std::string detail = Trimmed(res != nullptr ? PQresultErrorMessage(res) : nullptr);
  if (detail.empty()) detail = Trimmed(PQerrorMessage(conn));
  std::string msg = "postgres: " + std::string(what) + " failed: " + detail;
  if (!sql.empty()) msg += " [" + Abbreviate(sql) + "]";
  if (PQstatus(conn) != CONNECTION_OK) return Unavailable(std::move(msg));
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string_view code = state != nullptr ? state : "";
  if (code == "23505" || code == "23503") return Conflict(std::move(msg));
  if (code.substr(0, 2) == "08" || code == "40001" || code == "40P01" || code == "55P03" ||
      code == "57014" || code == "57P01" || code == "57P02" || code == "57P03" || code == "53300") {
    return Unavailable(std::move(msg));
  }
  return Internal(std::move(msg));
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", d);
  return buf;
}

Value DecodeCell(const PGresult* res, int row, int col) {
  if (PQgetisnull(res, row, col)) return Value();
  const char* text = PQgetvalue(res, row, col);
  int len = PQgetlength(res, row, col);
  switch (PQftype(res, col)) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kOidOid:
      return Value(static_cast<int64_t>(std::strtoll(text, nullptr, 10)));
    case kBoolOid:
      return Value(int64_t{text[0] == 't' ? 1 : 0});
    case kFloat4Oid:
    case kFloat8Oid:
    case kNumericOid:
      return Value(std::strtod(text, nullptr));
    case kByteaOid: {
      size_t n = 0;
      unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &n);
      if (bytes == nullptr) return Value(Blob{});
      Blob blob{std::string(reinterpret_cast<const char*>(bytes), n)};
      PQfreemem(bytes);
      return Value(std::move(blob));
    }
    default:
      return Value(std::string(text, len));
  }
}

// One libpq connection with its prepared statements. Not thread-safe: used by one lease holder.
class PgConnection {
 public:
  PgConnection(PgConnPtr conn, StatementCounters& counters)
      : conn_(std::move(conn)), counters_(counters) {}
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  static Result<std::unique_ptr<PgConnection>> Connect(const std::string& conninfo,
                                                       StatementCounters& counters) {
    PgConnPtr conn(PQconnectdb(conninfo.c_str()));
    if (conn == nullptr) return Internal("postgres: out of memory creating a connection");
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      return Unavailable("postgres: cannot connect: " + Trimmed(PQerrorMessage(conn.get())));
    }
    auto out = std::make_unique<PgConnection>(std::move(conn), counters);
    // Quiet NOTICEs (e.g. "table already exists, skipping") instead of writing them to stderr.
    PQsetNoticeProcessor(
        out->conn_.get(), [](void*, const char*) {}, nullptr);
    return out;
  }

  // True when the connection can serve a new caller: still connected and not inside a
  // transaction. An idle connection never has anything to read (Atrium does not LISTEN), so
  // readable data or a hang-up means the server sent a FATAL error and closed it (restart,
  // pg_terminate_backend, idle timeout); such a connection is dropped before use.
  bool Healthy() {
    if (PQstatus(conn_.get()) != CONNECTION_OK) return false;
    if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) return false;
    pollfd pfd{};
    pfd.fd = PQsocket(conn_.get());
    pfd.events = POLLIN;
    if (pfd.fd < 0) return false;
    int n = ::poll(&pfd, 1, /*timeout=*/0);
    return n == 0;
  }

  bool Broken() const { return PQstatus(conn_.get()) != CONNECTION_OK; }
  PGTransactionStatusType TransactionStatus() const { return PQtransactionStatus(conn_.get()); }

  Result<Rows> Query(std::string_view sql, const Params& params) {
    ASSIGN_OR_RETURN(PgResultPtr res, Execute(sql, params));
    int ncols = PQnfields(res.get());
    auto names = std::make_shared<std::vector<std::string>>();
    names->reserve(ncols);
    for (int c = 0; c < ncols; ++c) names->emplace_back(PQfname(res.get(), c));
    Rows rows(std::move(names));
    int nrows = PQntuples(res.get());
    for (int r = 0; r < nrows; ++r) {
      std::vector<Value> values;
      values.reserve(ncols);
      for (int c = 0; c < ncols; ++c) values.push_back(DecodeCell(res.get(), r, c));
      rows.Add(std::move(values));
    }
    return rows;
  }

  Result<int64_t> Exec(std::string_view sql, const Params& params) {
    ASSIGN_OR_RETURN(PgResultPtr res, Execute(sql, params));
    const char* tuples = PQcmdTuples(res.get());
    return static_cast<int64_t>(
        tuples != nullptr && *tuples != '\0' ? std::strtoll(tuples, nullptr, 10) : 0);
  }

  // Simple-query protocol: several statements, no parameters.
  Status ExecScript(std::string_view sql) {
    std::string script(sql);
    PgResultPtr res(PQexec(conn_.get(), script.c_str()));
    ExecStatusType st = res != nullptr ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
      return PgError(conn_.get(), res.get(), "script", sql);
    }
    return Status::Ok();
  }

  // Runs a transaction-control command (BEGIN, COMMIT, ROLLBACK) and returns its command tag.
  Result<std::string> Command(const char* sql) {
    PgResultPtr res(PQexec(conn_.get(), sql));
    if (res == nullptr || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
      return PgError(conn_.get(), res.get(), sql, "");
    }
    return std::string(PQcmdStatus(res.get()));
  }

 private:
  Result<PgResultPtr> Execute(std::string_view sql, const Params& params) {
    ASSIGN_OR_RETURN(const std::string* name, Prepare(sql, params.size()));
    std::vector<std::string> text;  // storage for numbers formatted as text
    text.reserve(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    std::vector<int> lengths(params.size(), 0);
    std::vector<int> formats(params.size(), 0);
    for (size_t i = 0; i < params.size(); ++i) {
      const Value& v = params[i];
      switch (v.type()) {
        case ValueType::kNull:
          break;
        case ValueType::kInt:
          text.push_back(std::to_string(v.int_value()));
          values[i] = text.back().c_str();
          break;
        case ValueType::kDouble:
          text.push_back(FormatDouble(v.double_value()));
          values[i] = text.back().c_str();
          break;
        case ValueType::kText:
          // Text-format parameters are NUL-terminated; libpq ignores lengths for them.
          if (v.text_value().find('\0') != std::string::npos) {
            return InvalidArgument("postgres: text parameter " + std::to_string(i + 1) +
                                   " contains a NUL byte (use a Blob) [" + Abbreviate(sql) + "]");
          }
          values[i] = v.text_value().c_str();
          break;
        case ValueType::kBlob:
          values[i] = v.blob_value().data();
          lengths[i] = static_cast<int>(v.blob_value().size());
          formats[i] = 1;  // binary: the raw bytes, no escaping
          break;
      }
    }
    PgResultPtr res(PQexecPrepared(conn_.get(), name->c_str(), static_cast<int>(params.size()),
                                   values.data(), lengths.data(), formats.data(),
                                   /*resultFormat=*/0));
    ExecStatusType st = res != nullptr ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      return PgError(conn_.get(), res.get(), "statement", sql);
    }
    return res;
  }

  // The server-side name of the prepared statement for `sql`, preparing it on first use.
  Result<const std::string*> Prepare(std::string_view sql, size_t nparams) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) {
      if (it->second.params != nparams) return WrongParamCount(sql, it->second.params, nparams);
      counters_.cache_hits.fetch_add(1, std::memory_order_relaxed);
      return &it->second.name;
    }
    RewrittenSql rewritten = RewritePlaceholders(sql);
    if (static_cast<size_t>(rewritten.placeholders) != nparams) {
      return WrongParamCount(sql, rewritten.placeholders, nparams);
    }
    if (statements_.size() >= kMaxCachedStatements) {
      RETURN_IF_ERROR(Command("DEALLOCATE ALL").status());
      statements_.clear();
    }
    std::string name = "atrium_" + std::to_string(next_statement_++);
    PgResultPtr res(PQprepare(conn_.get(), name.c_str(), rewritten.sql.c_str(),
                              static_cast<int>(nparams), nullptr));
    if (res == nullptr || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
      return PgError(conn_.get(), res.get(), "prepare", sql);
    }
    counters_.prepared.fetch_add(1, std::memory_order_relaxed);
    auto [pos, inserted] =
        statements_.emplace(std::string(sql), Prepared{std::move(name), nparams});
    return &pos->second.name;
  }

  static Status WrongParamCount(std::string_view sql, size_t want, size_t got) {
    return InvalidArgument("postgres: statement wants " + std::to_string(want) +
                           " parameters, got " + std::to_string(got) + " [" + Abbreviate(sql) +
                           "]");
  }

  struct Prepared {
    std::string name;
    size_t params;
  };

  PgConnPtr conn_;
  StatementCounters& counters_;
  std::unordered_map<std::string, Prepared, StringHash, std::equal_to<>> statements_;
  uint64_t next_statement_ = 0;
};

class PostgresDatabase;

// A connection taken from the pool, given back on destruction.
class Lease {
 public:
  Lease(PostgresDatabase& db, std::unique_ptr<PgConnection> conn)
      : db_(db), conn_(std::move(conn)) {}
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  PgConnection& operator*() { return *conn_; }
  PgConnection* operator->() { return conn_.get(); }

 private:
  PostgresDatabase& db_;
  std::unique_ptr<PgConnection> conn_;
};

using PgTransaction = internal::ConnectionTransaction<PgConnection, Dialect::kPostgres>;

class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(std::string conninfo, const DatabaseOptions& options)
      : conninfo_(std::move(conninfo)),
        pool_size_(std::max(options.pool_size, 1)),
        acquire_timeout_(options.busy_timeout_ms) {}
  PostgresDatabase(const PostgresDatabase&) = delete;
  PostgresDatabase& operator=(const PostgresDatabase&) = delete;

  // Opens the first connection so a bad URL or an unreachable server fails at start-up.
  Status Init() {
    ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(conninfo_, counters_));
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(conn));
    open_ = 1;
    return Status::Ok();
  }

  Result<Rows> Query(std::string_view sql, const Params& params) override {
    ASSIGN_OR_RETURN(auto conn, Acquire());
    Lease lease(*this, std::move(conn));
    return lease->Query(sql, params);
  }

  Result<int64_t> Exec(std::string_view sql, const Params& params) override {
    ASSIGN_OR_RETURN(auto conn, Acquire());
    Lease lease(*this, std::move(conn));
    return lease->Exec(sql, params);
  }

  Status ExecScript(std::string_view sql) override {
    ASSIGN_OR_RETURN(auto conn, Acquire());
    Lease lease(*this, std::move(conn));
    return lease->ExecScript(sql);
  }

  Status Transaction(const std::function<Status(store::Transaction&)>& fn) override {
    ASSIGN_OR_RETURN(auto conn, Acquire());
    Lease lease(*this, std::move(conn));
    RETURN_IF_ERROR(lease->Command("BEGIN").status());
    PgTransaction tx(*lease, "postgres");
    Status status;
    try {
      status = fn(tx);
    } catch (...) {
      tx.Close();
      (void)lease->Command("ROLLBACK");
      throw;
    }
    tx.Close();
    if (!status.ok()) {
      (void)lease->Command("ROLLBACK");
      return status;
    }
    if (lease->TransactionStatus() == PQTRANS_INERROR) {
      // A statement failed and the function carried on: the server aborted the transaction,
      // and COMMIT would silently roll back.
      (void)lease->Command("ROLLBACK");
      return Internal(
          "postgres: a statement failed inside the transaction but the transaction function "
          "returned ok; rolled back");
    }
    ASSIGN_OR_RETURN(std::string tag, lease->Command("COMMIT"));
    if (tag != "COMMIT") return Internal("postgres: commit rolled back (" + tag + ")");
    return Status::Ok();
  }

  Dialect dialect() const override { return Dialect::kPostgres; }

  Status Ping() override { return Query("SELECT 1", {}).status(); }

  DatabaseStats Stats() const override {
    return DatabaseStats{counters_.prepared.load(std::memory_order_relaxed),
                         counters_.cache_hits.load(std::memory_order_relaxed)};
  }

  // Gives a leased connection back, dropping it when it is broken or stuck in a transaction.
  void Release(std::unique_ptr<PgConnection> conn) {
    if (!conn->Broken() && conn->TransactionStatus() != PQTRANS_IDLE) {
      (void)conn->Command("ROLLBACK");
    }
    bool reusable = !conn->Broken() && conn->TransactionStatus() == PQTRANS_IDLE;
    if (!reusable) conn.reset();  // close outside the lock is not needed: PQfinish is quick
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (reusable) {
        idle_.push_back(std::move(conn));
      } else {
        --open_;
      }
    }
    cv_.notify_one();
  }

 private:
  Result<std::unique_ptr<PgConnection>> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    auto deadline = std::chrono::steady_clock::now() + acquire_timeout_;
    while (true) {
      while (!idle_.empty()) {
        std::unique_ptr<PgConnection> conn = std::move(idle_.back());
        idle_.pop_back();
        if (conn->Healthy()) return conn;
        --open_;  // broken while idle: drop it and open a fresh one below
      }
      if (open_ < pool_size_) {
        ++open_;
        lock.unlock();
        Result<std::unique_ptr<PgConnection>> conn = PgConnection::Connect(conninfo_, counters_);
        if (!conn.ok()) {
          lock.lock();
          --open_;
          cv_.notify_one();
        }
        return conn;
      }
      if (!cv_.wait_until(lock, deadline, [&] { return !idle_.empty() || open_ < pool_size_; })) {
        return Unavailable("postgres: no free connection in the pool of " +
                           std::to_string(pool_size_) + " within " +
                           std::to_string(acquire_timeout_.count()) + " ms");
      }
    }
  }

  const std::string conninfo_;
  const int pool_size_;
  const std::chrono::milliseconds acquire_timeout_;
  StatementCounters counters_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConnection>> idle_;  // guarded by mu_
  int open_ = 0;                                     // connections idle or leased; guarded by mu_
};

Lease::~Lease() { db_.Release(std::move(conn_)); }

}  // namespace

Result<std::unique_ptr<Database>> OpenPostgresDatabase(const std::string& conninfo,
                                                       const DatabaseOptions& options) {
  auto db = std::make_unique<PostgresDatabase>(conninfo, options);
  RETURN_IF_ERROR(db->Init());
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace atrium::store
