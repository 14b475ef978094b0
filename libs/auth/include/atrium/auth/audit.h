// Audit: the record of every mutation and security event, behind the AuditSink interface.
//
// SqlAuditSink writes records into auth_audit_log (migrations 101, 102); with the bus, the
// BusAuditSink of bus_audit.h publishes them instead and the AuditIndexer feeds this table. Records
// never contain secrets (passwords, tokens, keys): callers put ids and outcomes only. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/store/database.h"

namespace atrium::auth {

struct AuditRecord {
  int64_t id = 0;  // assigned by the store
  int64_t at = 0;  // micros since the epoch
  std::string workspace_id;
  std::string actor_type;  // user, key, anonymous, system
  std::string actor_id;
  std::string action;  // "auth.login", "key.create", "auth.refresh_reuse", ...
  std::string resource_type;
  std::string resource_id;
  std::string ip;
  std::string user_agent;
  std::string outcome;  // success, failure, denied
  std::string details;  // a JSON object, "{}" when empty
  // Identifies the event across redeliveries ("audit:<offset>" for records from the bus); a
  // second record with the same event_id is dropped. Empty = none.
  std::string event_id;
};

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Records `record`. Errors are the store's (Unavailable when it is unreachable).
  virtual Status Record(AuditRecord record) = 0;
};

struct AuditQuery {
  std::string workspace_id;                                           // required
  std::string actor_id, action, resource_type, resource_id, outcome;  // empty = any
  int64_t since = 0, until = 0;  // micros, inclusive; 0 = unbounded
  int64_t before_id = 0;         // cursor: records with a smaller id; 0 = from the newest
  int limit = 50;
};

struct AuditPage {
  std::vector<AuditRecord> records;  // newest first
  int64_t next_cursor = 0;           // 0 = no more
};

struct AuditStats {
  int64_t total = 0;
  std::map<std::string, int64_t> by_action;
  std::map<std::string, int64_t> by_outcome;
};

class SqlAuditSink : public AuditSink {
 public:
  // `db` must outlive the sink.
  explicit SqlAuditSink(store::Database& db) : db_(db) {}
  Status Record(AuditRecord record) override;
  Result<AuditPage> Query(const AuditQuery& q);
  // Counts over the workspace's records in [since, until] (0 = unbounded).
  Result<AuditStats> Stats(const std::string& workspace_id, int64_t since, int64_t until);

 private:
  store::Database& db_;
};

}  // namespace atrium::auth
