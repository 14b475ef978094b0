#include "atrium/auth/audit.h"

#include <algorithm>

namespace atrium::auth {

Status SqlAuditSink::Record(AuditRecord r) {
  if (r.details.empty()) r.details = "{}";
  store::Value event_id = r.event_id.empty() ? store::Value(nullptr) : store::Value(r.event_id);
  Status s =
      db_.Exec(
             "INSERT INTO auth_audit_log (at, workspace_id, actor_type, actor_id, action, "
             "resource_type, resource_id, ip, user_agent, outcome, details, event_id) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             {r.at, r.workspace_id, r.actor_type, r.actor_id, r.action, r.resource_type,
              r.resource_id, r.ip, r.user_agent.substr(0, 512), r.outcome, r.details, event_id})
          .status();
  // The same event delivered twice (at-least-once bus delivery) is already recorded.
  if (s.code() == StatusCode::kConflict && !r.event_id.empty()) return Status::Ok();
  return s;
}

namespace {

// WHERE clause and parameters shared by Query and Stats.
void AddFilter(std::string& sql, store::Params& params, const char* column,
               const std::string& value) {
  if (value.empty()) return;
  sql += std::string(" AND ") + column + " = ?";
  params.emplace_back(value);
}

}  // namespace

Result<AuditPage> SqlAuditSink::Query(const AuditQuery& q) {
  std::string sql =
      "SELECT id, at, workspace_id, actor_type, actor_id, action, resource_type, resource_id, "
      "ip, user_agent, outcome, details FROM auth_audit_log WHERE workspace_id = ?";
  store::Params params{q.workspace_id};
  AddFilter(sql, params, "actor_id", q.actor_id);
  AddFilter(sql, params, "action", q.action);
  AddFilter(sql, params, "resource_type", q.resource_type);
  AddFilter(sql, params, "resource_id", q.resource_id);
  AddFilter(sql, params, "outcome", q.outcome);
  if (q.since > 0) {
    sql += " AND at >= ?";
    params.emplace_back(q.since);
  }
  if (q.until > 0) {
    sql += " AND at <= ?";
    params.emplace_back(q.until);
  }
  if (q.before_id > 0) {
    sql += " AND id < ?";
    params.emplace_back(q.before_id);
  }
  int limit = std::clamp(q.limit, 1, 500);
  sql += " ORDER BY id DESC LIMIT ?";
  params.emplace_back(limit + 1);
  ASSIGN_OR_RETURN(auto rows, db_.Query(sql, params));
  AuditPage page;
  for (const auto& r : rows) {
    if (static_cast<int>(page.records.size()) == limit) {
      page.next_cursor = page.records.back().id;
      break;
    }
    page.records.push_back(AuditRecord{r.Int(0), r.Int(1), r.Text(2), r.Text(3), r.Text(4),
                                       r.Text(5), r.Text(6), r.Text(7), r.Text(8), r.Text(9),
                                       r.Text(10), r.Text(11)});
  }
  return page;
}

Result<AuditStats> SqlAuditSink::Stats(const std::string& workspace_id, int64_t since,
                                       int64_t until) {
  std::string where = " WHERE workspace_id = ?";
  store::Params params{workspace_id};
  if (since > 0) {
    where += " AND at >= ?";
    params.emplace_back(since);
  }
  if (until > 0) {
    where += " AND at <= ?";
    params.emplace_back(until);
  }
  AuditStats stats;
  for (const char* column : {"action", "outcome"}) {
    ASSIGN_OR_RETURN(auto rows,
                     db_.Query(std::string("SELECT ") + column + ", COUNT(*) FROM auth_audit_log" +
                                   where + " GROUP BY " + column,
                               params));
    auto& map = std::string_view(column) == "action" ? stats.by_action : stats.by_outcome;
    for (const auto& r : rows) {
      map[r.Text(0)] = r.Int(1);
      if (std::string_view(column) == "action") stats.total += r.Int(1);
    }
  }
  return stats;
}

}  // namespace atrium::auth
