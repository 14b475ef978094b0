#include "account_store.h"

#include <boost/json.hpp>

#include <map>
#include <tuple>

namespace atrium::relay {
namespace json = boost::json;
namespace {

constexpr const char* kColumns =
    "id, workspace_id, name, provider, base_url, proxy, priority, weight, max_concurrency, "
    "models, model_aliases, groups_json, schedulable, status, status_reason, status_until, "
    "credentials, created_at, updated_at";

std::string ListJson(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return json::serialize(a);
}

std::vector<std::string> ParseList(const std::string& text) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& e : v.as_array()) {
    if (e.is_string()) out.emplace_back(e.as_string());
  }
  return out;
}

std::string MapJson(const std::map<std::string, std::string>& m) {
  json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return json::serialize(o);
}

std::map<std::string, std::string> ParseMap(std::string_view text) {
  std::map<std::string, std::string> out;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return out;
  for (const auto& [k, e] : v.as_object()) {
    if (e.is_string()) out[std::string(k)] = std::string(e.as_string());
  }
  return out;
}

}  // namespace

Result<std::string> AccountStore::SealCredentials(const Account& a) {
  if (a.credentials.empty()) return std::string();
  return box_.Seal(env_, MapJson(a.credentials), a.id);
}

Status AccountStore::Insert(const Account& a) {
  ASSIGN_OR_RETURN(std::string sealed, SealCredentials(a));
  return db_
      .Exec(std::string("INSERT INTO relay_accounts (") + kColumns +
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {a.id, a.workspace_id, a.name, a.provider, a.base_url, a.proxy, a.priority, a.weight,
             a.max_concurrency, ListJson(a.models), MapJson(a.model_aliases), ListJson(a.groups),
             a.schedulable ? 1 : 0, a.status, a.status_reason, a.status_until, sealed, a.created_at,
             a.updated_at})
      .status();
}

Status AccountStore::SetCredentials(const Account& a) {
  ASSIGN_OR_RETURN(std::string sealed, SealCredentials(a));
  ASSIGN_OR_RETURN(
      int64_t n, db_.Exec("UPDATE relay_accounts SET credentials = ?, updated_at = ? WHERE id = ?",
                          {sealed, env_.NowMicros(), a.id}));
  if (n == 0) return NotFound("account " + a.id + " not found");
  return Status::Ok();
}

Status AccountStore::Update(const Account& a) {
  ASSIGN_OR_RETURN(std::string sealed, SealCredentials(a));
  ASSIGN_OR_RETURN(
      int64_t n,
      db_.Exec(
          "UPDATE relay_accounts SET name = ?, base_url = ?, proxy = ?, priority = ?, "
          "weight = ?, max_concurrency = ?, models = ?, model_aliases = ?, groups_json = ?, "
          "schedulable = ?, status = ?, status_reason = ?, status_until = ?, "
          "credentials = ?, updated_at = ? WHERE id = ? AND workspace_id = ?",
          {a.name, a.base_url, a.proxy, a.priority, a.weight, a.max_concurrency, ListJson(a.models),
           MapJson(a.model_aliases), ListJson(a.groups), a.schedulable ? 1 : 0, a.status,
           a.status_reason, a.status_until, sealed, a.updated_at, a.id, a.workspace_id}));
  if (n == 0) return NotFound("account " + a.id + " not found");
  return Status::Ok();
}

Status AccountStore::Delete(const std::string& workspace_id, const std::string& id) {
  ASSIGN_OR_RETURN(int64_t n, db_.Exec("DELETE FROM relay_accounts WHERE id = ? AND "
                                       "workspace_id = ?",
                                       {id, workspace_id}));
  if (n == 0) return NotFound("account " + id + " not found");
  return Status::Ok();
}

Result<Account> AccountStore::FromRow(const store::Row& r) {
  Account a;
  a.id = r.Text("id");
  a.workspace_id = r.Text("workspace_id");
  a.name = r.Text("name");
  a.provider = r.Text("provider");
  a.base_url = r.Text("base_url");
  a.proxy = r.Text("proxy");
  a.priority = static_cast<int>(r.Int("priority"));
  a.weight = static_cast<int>(r.Int("weight"));
  a.max_concurrency = static_cast<int>(r.Int("max_concurrency"));
  a.models = ParseList(r.Text("models"));
  a.model_aliases = ParseMap(r.Text("model_aliases"));
  a.groups = ParseList(r.Text("groups_json"));
  a.schedulable = r.Int("schedulable") != 0;
  a.status = r.Text("status");
  a.status_reason = r.Text("status_reason");
  a.status_until = r.Int("status_until");
  a.created_at = r.Int("created_at");
  a.updated_at = r.Int("updated_at");
  std::string sealed = r.Text("credentials");
  if (!sealed.empty()) {
    auto opened = box_.Open(sealed, a.id);
    if (!opened.ok()) {
      return opened.status().WithContext("opening the credentials of account " + a.id);
    }
    a.credentials = ParseMap(*opened);
  }
  return a;
}

Result<Account> AccountStore::Get(const std::string& workspace_id, const std::string& id) {
  ASSIGN_OR_RETURN(auto rows, db_.Query(std::string("SELECT ") + kColumns +
                                            " FROM relay_accounts WHERE id = ? AND "
                                            "workspace_id = ?",
                                        {id, workspace_id}));
  if (rows.empty()) return NotFound("account " + id + " not found");
  return FromRow(rows[0]);
}

Result<std::vector<Account>> AccountStore::All() {
  ASSIGN_OR_RETURN(auto rows, db_.Query(std::string("SELECT ") + kColumns +
                                        " FROM relay_accounts ORDER BY created_at, id"));
  std::vector<Account> out;
  for (const auto& r : rows) {
    ASSIGN_OR_RETURN(Account a, FromRow(r));
    out.push_back(std::move(a));
  }
  return out;
}

Status AccountStore::SetStatus(const std::string& id, const std::string& status,
                               const std::string& reason, int64_t until) {
  return db_
      .Exec(
          "UPDATE relay_accounts SET status = ?, status_reason = ?, status_until = ?, "
          "updated_at = ? WHERE id = ?",
          {status, reason, until, env_.NowMicros(), id})
      .status();
}

Result<std::optional<KeySettings>> AccountStore::GetKeySettings(const std::string& key_id) {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT key_id, workspace_id, cost_multiplier, "
                                        "account_group, account_id FROM relay_key_settings "
                                        "WHERE key_id = ?",
                                        {key_id}));
  if (rows.empty()) return std::optional<KeySettings>();
  const auto& r = rows[0];
  return std::optional<KeySettings>(
      KeySettings{r.Text(0), r.Text(1), r.Double(2), r.Text(3), r.Text(4)});
}

Status AccountStore::PutKeySettings(const KeySettings& s) {
  return db_
      .Exec(
          "INSERT INTO relay_key_settings (key_id, workspace_id, cost_multiplier, "
          "account_group, account_id, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (key_id) DO UPDATE SET cost_multiplier = excluded.cost_multiplier, "
          "account_group = excluded.account_group, account_id = excluded.account_id, "
          "updated_at = excluded.updated_at",
          {s.key_id, s.workspace_id, s.cost_multiplier, s.account_group, s.account_id,
           env_.NowMicros()})
      .status();
}

Result<std::vector<ModelPrice>> AccountStore::PricingOverrides() {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT pattern, input, output, cache_write, cache_read "
                                        "FROM relay_pricing ORDER BY pattern"));
  std::vector<ModelPrice> out;
  for (const auto& r : rows) {
    out.push_back(ModelPrice{r.Text(0), r.Double(1), r.Double(2), r.Double(3), r.Double(4)});
  }
  return out;
}

Status AccountStore::PutPricing(const ModelPrice& p) {
  return db_
      .Exec(
          "INSERT INTO relay_pricing (pattern, input, output, cache_write, cache_read, "
          "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pattern) DO UPDATE SET "
          "input = excluded.input, output = excluded.output, cache_write = "
          "excluded.cache_write, cache_read = excluded.cache_read, updated_at = "
          "excluded.updated_at",
          {p.pattern, p.input, p.output, p.cache_write, p.cache_read, env_.NowMicros()})
      .status();
}

Status AccountStore::DeletePricing(const std::string& pattern) {
  ASSIGN_OR_RETURN(int64_t n, db_.Exec("DELETE FROM relay_pricing WHERE pattern = ?", {pattern}));
  if (n == 0) return NotFound("no pricing override for '" + pattern + "'");
  return Status::Ok();
}

Result<uint64_t> AccountStore::Cursor(const std::string& consumer) {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT next_offset FROM relay_usage_cursor WHERE "
                                        "consumer = ?",
                                        {consumer}));
  return rows.empty() ? uint64_t{0} : static_cast<uint64_t>(rows[0].Int(0));
}

Status AccountStore::Aggregate(const std::string& consumer, uint64_t offset, const UsageRecord& r) {
  return AggregateBatch(consumer, {{offset, r}});
}

Status AccountStore::AggregateBatch(const std::string& consumer,
                                    const std::vector<std::pair<uint64_t, UsageRecord>>& records) {
  if (records.empty()) return Status::Ok();
  constexpr int64_t kHour = 3'600'000'000;
  struct Sum {
    std::string_view workspace_id;
    int64_t requests = 0, errors = 0, input = 0, output = 0, cache_write = 0, cache_read = 0,
            latency = 0;
    double cost = 0;
  };
  return db_.Transaction([&](store::Transaction& tx) -> Status {
    ASSIGN_OR_RETURN(auto rows, tx.Query("SELECT next_offset FROM relay_usage_cursor WHERE "
                                         "consumer = ?",
                                         {consumer}));
    uint64_t cursor = rows.empty() ? 0 : static_cast<uint64_t>(rows[0].Int(0));
    // Keyed by views into `records` (which outlive the map): no copies of the ids per record.
    std::map<std::tuple<int64_t, std::string_view, std::string_view, std::string_view>, Sum> sums;
    uint64_t next = cursor;
    for (const auto& [offset, r] : records) {
      if (offset < cursor) continue;  // already counted (a redelivery)
      next = std::max(next, offset + 1);
      Sum& s =
          sums[{r.time_micros - r.time_micros % kHour, r.key_id, r.account_id, r.client_model}];
      s.workspace_id = r.workspace_id;
      s.requests += 1;
      s.errors += r.error.empty() ? 0 : 1;
      s.input += r.usage.input_tokens;
      s.output += r.usage.output_tokens;
      s.cache_write += r.usage.cache_write_tokens;
      s.cache_read += r.usage.cache_read_tokens;
      s.latency += r.latency_ms;
      s.cost += r.cost;
    }
    for (const auto& [k, s] : sums) {
      RETURN_IF_ERROR(
          tx.Exec("INSERT INTO relay_usage_hourly (bucket, workspace_id, key_id, account_id, "
                  "model, requests, errors, input_tokens, output_tokens, cache_write_tokens, "
                  "cache_read_tokens, cost, latency_ms_sum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                  "?, ?, ?, ?) ON CONFLICT (bucket, key_id, account_id, model) DO UPDATE SET "
                  "requests = relay_usage_hourly.requests + excluded.requests, "
                  "errors = relay_usage_hourly.errors + excluded.errors, "
                  "input_tokens = relay_usage_hourly.input_tokens + excluded.input_tokens, "
                  "output_tokens = relay_usage_hourly.output_tokens + excluded.output_tokens, "
                  "cache_write_tokens = relay_usage_hourly.cache_write_tokens + "
                  "excluded.cache_write_tokens, "
                  "cache_read_tokens = relay_usage_hourly.cache_read_tokens + "
                  "excluded.cache_read_tokens, "
                  "cost = relay_usage_hourly.cost + excluded.cost, "
                  "latency_ms_sum = relay_usage_hourly.latency_ms_sum + excluded.latency_ms_sum",
                  {std::get<0>(k), std::string(s.workspace_id), std::string(std::get<1>(k)),
                   std::string(std::get<2>(k)), std::string(std::get<3>(k)), s.requests, s.errors,
                   s.input, s.output, s.cache_write, s.cache_read, s.cost, s.latency})
              .status());
    }
    if (next == cursor) return Status::Ok();
    return tx
        .Exec(
            "INSERT INTO relay_usage_cursor (consumer, next_offset) VALUES (?, ?) "
            "ON CONFLICT (consumer) DO UPDATE SET next_offset = excluded.next_offset",
            {consumer, static_cast<int64_t>(next)})
        .status();
  });
}

Result<double> AccountStore::SpentSince(const std::string& key_id, int64_t since) {
  constexpr int64_t kHour = 3'600'000'000;
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT COALESCE(SUM(cost), 0) FROM relay_usage_hourly "
                                        "WHERE key_id = ? AND bucket >= ?",
                                        {key_id, since - since % kHour}));
  return rows.empty() ? 0.0 : rows[0].Double(0);
}

Result<std::vector<UsageRow>> AccountStore::QueryUsage(const UsageQuery& q) {
  int64_t width = q.bucket == "day" ? 86'400'000'000 : 3'600'000'000;
  std::string group_col = q.group_by == "key"       ? "key_id"
                          : q.group_by == "account" ? "account_id"
                          : q.group_by == "model"   ? "model"
                                                    : "''";
  // `width` and `group_col` come from fixed choices above, never from the request text.
  std::string bucket_expr = "(bucket / " + std::to_string(width) + ") * " + std::to_string(width);
  std::string sql = "SELECT " + bucket_expr + " AS b, " + group_col +
                    " AS g, SUM(requests), SUM(errors), SUM(input_tokens), SUM(output_tokens), "
                    "SUM(cache_write_tokens), SUM(cache_read_tokens), SUM(cost), "
                    "SUM(latency_ms_sum) FROM relay_usage_hourly WHERE workspace_id = ? AND "
                    "bucket >= ? AND bucket < ?";
  store::Params params{q.workspace_id, q.from - q.from % 3'600'000'000,
                       q.to == 0 ? env_.NowMicros() + 3'600'000'000 : q.to};
  if (!q.key_id.empty()) {
    sql += " AND key_id = ?";
    params.emplace_back(q.key_id);
  }
  if (!q.account_id.empty()) {
    sql += " AND account_id = ?";
    params.emplace_back(q.account_id);
  }
  sql += " GROUP BY b, g ORDER BY b, g";
  ASSIGN_OR_RETURN(auto rows, db_.Query(sql, params));
  std::vector<UsageRow> out;
  for (const auto& r : rows) {
    out.push_back(UsageRow{.bucket = r.Int(0),
                           .group = r.Text(1),
                           .requests = r.Int(2),
                           .errors = r.Int(3),
                           .input_tokens = r.Int(4),
                           .output_tokens = r.Int(5),
                           .cache_write_tokens = r.Int(6),
                           .cache_read_tokens = r.Int(7),
                           .latency_ms_sum = r.Int(9),
                           .cost = r.Double(8)});
  }
  return out;
}

}  // namespace atrium::relay
