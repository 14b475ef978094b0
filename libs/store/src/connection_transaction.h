// Private: the Transaction both backends hand to Database::Transaction callbacks. It forwards to
// the connection that holds the open transaction and refuses use after the transaction ended.
#pragma once

#include <string>

#include "atrium/store/database.h"

namespace atrium::store::internal {

template <typename Connection, Dialect kDialect>
class ConnectionTransaction final : public Transaction {
 public:
  ConnectionTransaction(Connection& conn, const char* backend) : conn_(conn), backend_(backend) {}

  Result<Rows> Query(std::string_view sql, const Params& params) override {
    RETURN_IF_ERROR(CheckOpen());
    return conn_.Query(sql, params);
  }
  Result<int64_t> Exec(std::string_view sql, const Params& params) override {
    RETURN_IF_ERROR(CheckOpen());
    return conn_.Exec(sql, params);
  }
  Status ExecScript(std::string_view sql) override {
    RETURN_IF_ERROR(CheckOpen());
    return conn_.ExecScript(sql);
  }
  Dialect dialect() const override { return kDialect; }

  void Close() { open_ = false; }

 private:
  Status CheckOpen() const {
    if (!open_) return Internal(std::string(backend_) + ": transaction used after it ended");
    return Status::Ok();
  }

  Connection& conn_;
  const char* backend_;
  bool open_ = true;
};

}  // namespace atrium::store::internal
