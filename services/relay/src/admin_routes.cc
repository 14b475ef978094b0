// The relay's admin API (docs/relay.md, "Admin API"): accounts (secrets write-only), groups,
// key settings, pricing overrides, the account test, usage reports (JSON or CSV) and the
// per-account and per-key dashboards.
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include <fmt/format.h>

#include <set>

#include "atrium/auth/crypto.h"
#include "atrium/relay/provider.h"
#include "relay_impl.h"

namespace atrium::relay {
namespace json = boost::json;
using http::Request;
using http::Response;

namespace {

Response Error(const Status& s) { return Response::FromStatus(s); }

Response Json(int status, const json::value& v) {
  return Response::Json(status, json::serialize(v));
}

Result<json::object> ParseBody(const Request& req) {
  boost::system::error_code ec;
  json::value v = json::parse(req.body.empty() ? "{}" : req.body, ec);
  if (ec || !v.is_object()) return InvalidArgument("the body must be a JSON object");
  return std::move(v.as_object());
}

Result<std::optional<std::string>> OptString(const json::object& o, std::string_view name,
                                             size_t max = 2048) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return InvalidArgument(std::string(name) + " must be a string");
  if (v->as_string().size() > max) return InvalidArgument(std::string(name) + " is too long");
  return std::optional<std::string>(std::string(v->as_string()));
}

Result<std::optional<int64_t>> OptInt(const json::object& o, std::string_view name, int64_t min,
                                      int64_t max) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>();
  if (!v->is_int64() && !v->is_uint64()) {
    return InvalidArgument(std::string(name) + " must be an integer");
  }
  int64_t n = v->is_int64() ? v->as_int64() : static_cast<int64_t>(v->as_uint64());
  if (n < min || n > max) {
    return InvalidArgument(fmt::format("{} must be between {} and {}", name, min, max));
  }
  return std::optional<int64_t>(n);
}

Result<std::optional<std::vector<std::string>>> OptList(const json::object& o,
                                                        std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return std::optional<std::vector<std::string>>();
  if (!v->is_array()) return InvalidArgument(std::string(name) + " must be a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v->as_array()) {
    if (!e.is_string() || e.as_string().empty() || e.as_string().size() > 200) {
      return InvalidArgument(std::string(name) + " must be a list of non-empty strings");
    }
    out.emplace_back(e.as_string());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

Result<std::optional<std::map<std::string, std::string>>> OptMap(const json::object& o,
                                                                 std::string_view name) {
  const auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return std::optional<std::map<std::string, std::string>>();
  if (!v->is_object()) return InvalidArgument(std::string(name) + " must be an object of strings");
  std::map<std::string, std::string> out;
  for (const auto& [k, e] : v->as_object()) {
    if (!e.is_string()) {
      return InvalidArgument(std::string(name) + "." + std::string(k) + " must be a string");
    }
    out[std::string(k)] = std::string(e.as_string());
  }
  return std::optional<std::map<std::string, std::string>>(std::move(out));
}

json::value Time(int64_t micros) {
  return micros == 0 ? json::value(nullptr) : json::value(auth::FormatRfc3339(micros));
}

json::object AccountJson(const Account& a, Scheduler& sched) {
  json::array models, groups, creds;
  for (const auto& m : a.models) models.emplace_back(m);
  for (const auto& g : a.groups) groups.emplace_back(g);
  for (const auto& [k, v] : a.credentials) creds.emplace_back(k);  // names only: write-only
  json::object aliases;
  for (const auto& [k, v] : a.model_aliases) aliases[k] = v;
  // The scheduler's view is the live one (statuses change on the data plane).
  auto live = sched.Find(a.id);
  const Account& st = live ? *live : a;
  double ewma = sched.LatencyEwmaMs(a.id);
  return json::object{{"id", a.id},
                      {"name", a.name},
                      {"provider", a.provider},
                      {"base_url", a.base_url},
                      {"proxy", a.proxy},
                      {"priority", a.priority},
                      {"weight", a.weight},
                      {"max_concurrency", a.max_concurrency},
                      {"models", std::move(models)},
                      {"model_aliases", std::move(aliases)},
                      {"groups", std::move(groups)},
                      {"schedulable", a.schedulable},
                      {"status", st.status},
                      {"status_reason", st.status_reason},
                      {"status_until", Time(st.status_until)},
                      {"credentials_set", std::move(creds)},
                      {"in_flight", sched.InFlight(a.id)},
                      {"latency_ewma_ms", ewma < 0 ? json::value(nullptr) : json::value(ewma)},
                      {"created_at", Time(a.created_at)},
                      {"updated_at", Time(a.updated_at)}};
}

// Applies the members of `body` to `a` (all optional for PATCH; `create` requires name and
// provider and checks the credentials the provider needs).
Status ApplyAccount(const json::object& body, Account& a, bool create) {
  ASSIGN_OR_RETURN(auto name, OptString(body, "name", 100));
  if (name) {
    if (name->empty()) return InvalidArgument("name must not be empty");
    a.name = *name;
  } else if (create) {
    return InvalidArgument("name is required");
  }
  ASSIGN_OR_RETURN(auto provider, OptString(body, "provider", 40));
  if (provider && !create && *provider != a.provider) {
    return InvalidArgument("provider cannot be changed; create another account");
  }
  if (create) {
    if (!provider) return InvalidArgument("provider is required");
    if (std::find(std::begin(kProviders), std::end(kProviders), *provider) ==
        std::end(kProviders)) {
      return InvalidArgument(
          "provider must be one of anthropic, openai, azure-openai, gemini, "
          "bedrock, openai-compatible, local");
    }
    if (FindProvider(*provider) == nullptr) {
      return InvalidArgument("provider '" + *provider + "' is not served by this build yet");
    }
    a.provider = *provider;
  }
  ASSIGN_OR_RETURN(auto base_url, OptString(body, "base_url"));
  if (base_url) {
    if (!base_url->empty() && !base_url->starts_with("http://") &&
        !base_url->starts_with("https://")) {
      return InvalidArgument("base_url must be an http:// or https:// URL");
    }
    a.base_url = *base_url;
  }
  ASSIGN_OR_RETURN(auto proxy, OptString(body, "proxy"));
  if (proxy) {
    if (!proxy->empty() && !proxy->starts_with("http://") && !proxy->starts_with("socks5://") &&
        !proxy->starts_with("socks5h://")) {
      return InvalidArgument("proxy must be an http://, socks5:// or socks5h:// URL");
    }
    a.proxy = *proxy;
  }
  ASSIGN_OR_RETURN(auto priority, OptInt(body, "priority", 0, 1000));
  if (priority) a.priority = static_cast<int>(*priority);
  ASSIGN_OR_RETURN(auto weight, OptInt(body, "weight", 1, 1000));
  if (weight) a.weight = static_cast<int>(*weight);
  ASSIGN_OR_RETURN(auto conc, OptInt(body, "max_concurrency", 0, 100000));
  if (conc) a.max_concurrency = static_cast<int>(*conc);
  ASSIGN_OR_RETURN(auto models, OptList(body, "models"));
  if (models) a.models = std::move(*models);
  ASSIGN_OR_RETURN(auto aliases, OptMap(body, "model_aliases"));
  if (aliases) a.model_aliases = std::move(*aliases);
  ASSIGN_OR_RETURN(auto groups, OptList(body, "groups"));
  if (groups) a.groups = std::move(*groups);
  if (const auto* sch = body.if_contains("schedulable"); sch != nullptr && !sch->is_null()) {
    if (!sch->is_bool()) return InvalidArgument("schedulable must be a boolean");
    a.schedulable = sch->as_bool();
  }
  ASSIGN_OR_RETURN(auto status, OptString(body, "status", 40));
  if (status) {
    if (*status != kStatusActive && *status != kStatusDisabled) {
      return InvalidArgument("status can be set to active or disabled");
    }
    a.status = *status;
    a.status_reason =
        *status == kStatusActive ? "set by an administrator" : "disabled by an administrator";
    a.status_until = 0;
  }
  if (const auto* c = body.if_contains("credentials"); c != nullptr && !c->is_null()) {
    if (!c->is_object()) return InvalidArgument("credentials must be an object");
    if (!create && a.status == kStatusUnauthorized && !status) {
      a.status = kStatusActive;  // new credentials: worth trying again
      a.status_reason = "credentials changed";
      a.status_until = 0;
    }
    for (const auto& [k, v] : c->as_object()) {
      if (v.is_null()) {
        a.credentials.erase(std::string(k));  // PATCH: null removes a field
      } else if (v.is_string()) {
        a.credentials[std::string(k)] = std::string(v.as_string());
      } else {
        return InvalidArgument("credentials." + std::string(k) + " must be a string");
      }
    }
  }
  if (const ProviderAdapter* adapter = FindProvider(a.provider)) {
    for (const auto& field : adapter->required_credentials()) {
      if (!a.credentials.contains(field)) {
        return InvalidArgument("credentials." + field + " is required for provider " + a.provider);
      }
    }
    if (a.provider == "anthropic" && !a.credentials.contains("api_key") &&
        !a.credentials.contains("access_token")) {
      return InvalidArgument("credentials.api_key (or access_token) is required for anthropic");
    }
    if ((a.provider == "openai-compatible" || a.provider == "azure-openai") && a.base_url.empty()) {
      return InvalidArgument("base_url is required for provider " + a.provider);
    }
  }
  return Status::Ok();
}

// The model an account test uses: the body's, else the first plain model name or alias.
std::string TestModel(const Account& a, const json::object& body) {
  if (auto* m = body.if_contains("model"); m != nullptr && m->is_string()) {
    return std::string(m->as_string());
  }
  for (const auto& m : a.models) {
    if (m.find_first_of("*?") == std::string::npos) return m;
  }
  if (!a.model_aliases.empty()) return a.model_aliases.begin()->first;
  return a.provider == "anthropic" || a.provider == "bedrock" ? "claude-3-5-haiku-latest"
                                                              : "gpt-4o-mini";
}

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

constexpr int64_t kHourMicros = 3'600'000'000;
constexpr int64_t kDayMicros = 86'400'000'000;
constexpr int64_t kMaxDashboardBuckets = 2'000;

// The window of a usage report or dashboard: ?bucket=hour|day (default day), ?from and ?to
// (RFC 3339; from defaults to 7 days before `now`, to stays 0 = now when absent).
Status ParseUsageWindow(const Request& req, int64_t now, UsageQuery& q) {
  q.bucket = req.Query("bucket").value_or("day");
  if (q.bucket != "hour" && q.bucket != "day") return InvalidArgument("bucket must be hour or day");
  q.from = now - 7 * kDayMicros;
  for (auto [name, field] : {std::pair{"from", &q.from}, {"to", &q.to}}) {
    if (auto v = req.Query(name); v && !v->empty()) {
      auto t = auth::ParseRfc3339(*v);
      if (!t.ok()) return InvalidArgument(std::string(name) + " must be an RFC 3339 time");
      *field = *t;
    }
  }
  return Status::Ok();
}

// A dashboard's window (ParseUsageWindow), with `to` defaulting to now and `from` rounded down
// to its bucket; at most kMaxDashboardBuckets buckets.
Result<UsageQuery> DashboardQuery(const Request& req, int64_t now, const std::string& workspace) {
  UsageQuery q{.workspace_id = workspace};
  RETURN_IF_ERROR(ParseUsageWindow(req, now, q));
  const int64_t width = q.bucket == "day" ? kDayMicros : kHourMicros;
  if (q.to == 0) q.to = now;
  q.from -= q.from % width;
  if (q.to <= q.from) return InvalidArgument("to must be after from");
  if ((q.to - q.from) / width > kMaxDashboardBuckets) {
    return InvalidArgument(
        fmt::format("from..to spans more than {} {} buckets", kMaxDashboardBuckets, q.bucket));
  }
  return q;
}

void AddUsage(UsageRow& into, const UsageRow& r) {
  into.requests += r.requests;
  into.errors += r.errors;
  into.input_tokens += r.input_tokens;
  into.output_tokens += r.output_tokens;
  into.cache_write_tokens += r.cache_write_tokens;
  into.cache_read_tokens += r.cache_read_tokens;
  into.latency_ms_sum += r.latency_ms_sum;
  into.cost += r.cost;
}

json::object MeasuresJson(const UsageRow& r) {
  // A mean over the bucket's requests: the hourly aggregates keep sums only.
  json::value latency = nullptr;
  if (r.requests > 0) latency = static_cast<double>(r.latency_ms_sum) / r.requests;
  return json::object{{"requests", r.requests},
                      {"errors", r.errors},
                      {"input_tokens", r.input_tokens},
                      {"output_tokens", r.output_tokens},
                      {"cache_write_tokens", r.cache_write_tokens},
                      {"cache_read_tokens", r.cache_read_tokens},
                      {"cost", r.cost},
                      {"avg_latency_ms", std::move(latency)}};
}

// The dashboard of the requests `q` selects (one account or one key): totals, a series with a
// point per bucket from `from` to `to` (zeros where nothing ran) and totals per model.
Result<json::object> Dashboard(AccountStore& store, const UsageQuery& q) {
  ASSIGN_OR_RETURN(auto rows, store.QueryUsage(q));
  UsageQuery per_model = q;
  per_model.group_by = "model";
  ASSIGN_OR_RETURN(auto model_rows, store.QueryUsage(per_model));
  UsageRow total;
  std::map<int64_t, UsageRow> buckets;
  for (const auto& r : rows) {
    AddUsage(buckets[r.bucket], r);
    AddUsage(total, r);
  }
  json::array series;
  int64_t width = q.bucket == "day" ? kDayMicros : kHourMicros;
  for (int64_t b = q.from; b < q.to; b += width) {
    auto it = buckets.find(b);
    json::object point = MeasuresJson(it == buckets.end() ? UsageRow{} : it->second);
    point["bucket"] = auth::FormatRfc3339(b);
    series.push_back(std::move(point));
  }
  std::map<std::string, UsageRow> models;
  for (const auto& r : model_rows) AddUsage(models[r.group], r);
  json::array per_model_json;
  for (const auto& [model, r] : models) {
    json::object o = MeasuresJson(r);
    o["model"] = model;
    per_model_json.push_back(std::move(o));
  }
  return json::object{{"bucket", q.bucket},
                      {"from", auth::FormatRfc3339(q.from)},
                      {"to", auth::FormatRfc3339(q.to)},
                      {"totals", MeasuresJson(total)},
                      {"series", std::move(series)},
                      {"models", std::move(per_model_json)}};
}

}  // namespace

Status RelayService::Impl::AddAdminRoutes(http::Router& router) {
  http::RouteOptions opts{.blocking = true, .auth_scope = "session", .audit = true};
  http::RouteOptions read_opts{.blocking = true, .auth_scope = "session"};
  using http::SyncHandler;

  // POST /api/v1/relay/accounts
  RETURN_IF_ERROR(router.Add("POST", "/api/v1/relay/accounts", SyncHandler([this](Request& req) {
                               auto p = RequireAdmin(*this, req);
                               if (!p.ok()) return Error(p.status());
                               auto body = ParseBody(req);
                               if (!body.ok()) return Error(body.status());
                               Account a;
                               a.id = auth::NewId(env, "acc_");
                               a.workspace_id = p->workspace_id;
                               if (Status s = ApplyAccount(*body, a, true); !s.ok())
                                 return Error(s);
                               a.created_at = a.updated_at = env.NowMicros();
                               if (Status s = accounts.Insert(a); !s.ok()) {
                                 if (s.code() == StatusCode::kConflict) {
                                   return Error(
                                       Conflict("an account named '" + a.name + "' exists"));
                                 }
                                 return Error(s);
                               }
                               if (Status s = ReloadAccounts(); !s.ok()) return Error(s);
                               return Json(201, AccountJson(a, scheduler));
                             }),
                             opts));

  // GET /api/v1/relay/accounts
  RETURN_IF_ERROR(router.Add("GET", "/api/v1/relay/accounts", SyncHandler([this](Request& req) {
                               auto p = RequireAdmin(*this, req);
                               if (!p.ok()) return Error(p.status());
                               auto all = accounts.All();
                               if (!all.ok()) return Error(all.status());
                               json::array items;
                               for (const auto& a : *all) {
                                 if (a.workspace_id == p->workspace_id)
                                   items.push_back(AccountJson(a, scheduler));
                               }
                               return Json(200, json::object{{"accounts", std::move(items)}});
                             }),
                             read_opts));

  RETURN_IF_ERROR(router.Add("GET", "/api/v1/relay/accounts/{id}",
                             SyncHandler([this](Request& req) {
                               auto p = RequireAdmin(*this, req);
                               if (!p.ok()) return Error(p.status());
                               auto a = accounts.Get(p->workspace_id, std::string(req.Param("id")));
                               if (!a.ok()) return Error(a.status());
                               return Json(200, AccountJson(*a, scheduler));
                             }),
                             read_opts));

  RETURN_IF_ERROR(router.Add("PATCH", "/api/v1/relay/accounts/{id}",
                             SyncHandler([this](Request& req) {
                               auto p = RequireAdmin(*this, req);
                               if (!p.ok()) return Error(p.status());
                               auto body = ParseBody(req);
                               if (!body.ok()) return Error(body.status());
                               auto a = accounts.Get(p->workspace_id, std::string(req.Param("id")));
                               if (!a.ok()) return Error(a.status());
                               if (auto live = scheduler.Find(a->id)) {
                                 a->status = live->status;
                                 a->status_reason = live->status_reason;
                                 a->status_until = live->status_until;
                               }
                               if (Status s = ApplyAccount(*body, *a, false); !s.ok())
                                 return Error(s);
                               a->updated_at = env.NowMicros();
                               if (Status s = accounts.Update(*a); !s.ok()) return Error(s);
                               if (Status s = ReloadAccounts(); !s.ok()) return Error(s);
                               return Json(200, AccountJson(*a, scheduler));
                             }),
                             opts));

  RETURN_IF_ERROR(router.Add(
      "DELETE", "/api/v1/relay/accounts/{id}", SyncHandler([this](Request& req) {
        auto p = RequireAdmin(*this, req);
        if (!p.ok()) return Error(p.status());
        if (Status s = accounts.Delete(p->workspace_id, std::string(req.Param("id"))); !s.ok()) {
          return Error(s);
        }
        if (Status s = ReloadAccounts(); !s.ok()) return Error(s);
        return Response::NoContent();
      }),
      opts));

  // POST /api/v1/relay/accounts/{id}/test {"model"?}: one minimal request through the account.
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/relay/accounts/{id}/test", SyncHandler([this](Request& req) {
        auto p = RequireAdmin(*this, req);
        if (!p.ok()) return Error(p.status());
        auto body = ParseBody(req);
        if (!body.ok()) return Error(body.status());
        auto a = accounts.Get(p->workspace_id, std::string(req.Param("id")));
        if (!a.ok()) return Error(a.status());
        ProbeResult r = ProbeAccount(*a, TestModel(*a, *body));
        json::object out{{"ok", r.ok}, {"latency_ms", r.latency_ms}};
        if (r.status != 0) out["status"] = r.status;
        if (!r.ok) out["error"] = r.error;
        if (r.ok) {
          auto live = scheduler.Find(a->id);
          if (live && live->status != kStatusActive && live->status != kStatusDisabled) {
            scheduler.SetStatus(a->id, std::string(kStatusActive), "account test succeeded", 0);
          }
        } else if (r.status != 0) {
          scheduler.ReportHttpError(a->id, r.status, r.headers);
        }
        return Json(200, out);
      }),
      opts));

  // GET /api/v1/relay/groups: every group with its accounts.
  RETURN_IF_ERROR(
      router.Add("GET", "/api/v1/relay/groups", SyncHandler([this](Request& req) {
                   auto p = RequireAdmin(*this, req);
                   if (!p.ok()) return Error(p.status());
                   std::map<std::string, json::array> groups;
                   for (const auto& a : scheduler.accounts()) {
                     if (a->workspace_id != p->workspace_id) continue;
                     for (const auto& g : a->groups) groups[g].emplace_back(a->id);
                   }
                   json::array items;
                   for (auto& [name, ids] : groups) {
                     items.push_back(json::object{{"name", name}, {"accounts", std::move(ids)}});
                   }
                   return Json(200, json::object{{"groups", std::move(items)}});
                 }),
                 read_opts));

  // GET/PUT /api/v1/relay/keys/{key_id}/settings {"cost_multiplier","account_group","account_id"}
  RETURN_IF_ERROR(
      router.Add("GET", "/api/v1/relay/keys/{key_id}/settings", SyncHandler([this](Request& req) {
                   auto p = RequireAdmin(*this, req);
                   if (!p.ok()) return Error(p.status());
                   std::string key_id(req.Param("key_id"));
                   auto key = identities.FindApiKey(p->workspace_id, key_id);
                   if (!key.ok()) return Error(key.status());
                   auto s = accounts.GetKeySettings(key_id);
                   if (!s.ok()) return Error(s.status());
                   KeySettings ks =
                       s->value_or(KeySettings{.key_id = key_id, .workspace_id = p->workspace_id});
                   auto spent = ledger.SpentOf(key_id);
                   return Json(200, json::object{{"key_id", key_id},
                                                 {"cost_multiplier", ks.cost_multiplier},
                                                 {"account_group", ks.account_group},
                                                 {"account_id", ks.account_id},
                                                 {"spent", json::object{{"daily", spent.daily},
                                                                        {"weekly", spent.weekly},
                                                                        {"monthly", spent.monthly},
                                                                        {"total", spent.total}}}});
                 }),
                 read_opts));
  RETURN_IF_ERROR(router.Add(
      "PUT", "/api/v1/relay/keys/{key_id}/settings", SyncHandler([this](Request& req) {
        auto p = RequireAdmin(*this, req);
        if (!p.ok()) return Error(p.status());
        std::string key_id(req.Param("key_id"));
        auto key = identities.FindApiKey(p->workspace_id, key_id);
        if (!key.ok()) return Error(key.status());
        auto body = ParseBody(req);
        if (!body.ok()) return Error(body.status());
        KeySettings ks{.key_id = key_id, .workspace_id = p->workspace_id};
        if (const auto* m = body->if_contains("cost_multiplier"); m != nullptr && !m->is_null()) {
          if (!m->is_number() || m->to_number<double>() < 0) {
            return Error(InvalidArgument("cost_multiplier must be a non-negative number"));
          }
          ks.cost_multiplier = m->to_number<double>();
        }
        auto group = OptString(*body, "account_group", 200);
        if (!group.ok()) return Error(group.status());
        ks.account_group = group->value_or("");
        auto account = OptString(*body, "account_id", 200);
        if (!account.ok()) return Error(account.status());
        ks.account_id = account->value_or("");
        if (!ks.account_id.empty() && !accounts.Get(p->workspace_id, ks.account_id).ok()) {
          return Error(NotFound("account_id: account " + ks.account_id + " not found"));
        }
        if (Status s = accounts.PutKeySettings(ks); !s.ok()) return Error(s);
        return Json(200, json::object{{"key_id", key_id},
                                      {"cost_multiplier", ks.cost_multiplier},
                                      {"account_group", ks.account_group},
                                      {"account_id", ks.account_id}});
      }),
      opts));

  // Pricing: GET the effective table; PUT {"pattern","input","output","cache_write","cache_read"};
  // DELETE ?pattern=.
  RETURN_IF_ERROR(router.Add("GET", "/api/v1/relay/pricing", SyncHandler([this](Request& req) {
                               auto p = RequireAdmin(*this, req);
                               if (!p.ok()) return Error(p.status());
                               return Response::Json(200, prices()->ToJson());
                             }),
                             read_opts));
  RETURN_IF_ERROR(router.Add(
      "PUT", "/api/v1/relay/pricing", SyncHandler([this](Request& req) {
        auto p = RequireAdmin(*this, req);
        if (!p.ok()) return Error(p.status());
        if (!p->is_api_key() && p->role != "owner") {
          return Error(PermissionDenied("pricing is platform-wide: workspace owners only"));
        }
        auto body = ParseBody(req);
        if (!body.ok()) return Error(body.status());
        auto pattern = OptString(*body, "pattern", 200);
        if (!pattern.ok()) return Error(pattern.status());
        if (!*pattern || (*pattern)->empty()) return Error(InvalidArgument("pattern is required"));
        ModelPrice price{.pattern = **pattern};
        for (auto [name, field] : {std::pair{"input", &price.input},
                                   {"output", &price.output},
                                   {"cache_write", &price.cache_write},
                                   {"cache_read", &price.cache_read}}) {
          const auto* v = body->if_contains(name);
          if (v == nullptr || !v->is_number() || v->to_number<double>() < 0) {
            return Error(InvalidArgument(std::string(name) + " must be a non-negative number"));
          }
          *field = v->to_number<double>();
        }
        if (Status s = accounts.PutPricing(price); !s.ok()) return Error(s);
        if (Status s = ReloadPricing(); !s.ok()) return Error(s);
        return Response::Json(200, prices()->ToJson());
      }),
      opts));
  RETURN_IF_ERROR(router.Add("DELETE", "/api/v1/relay/pricing", SyncHandler([this](Request& req) {
                               auto p = RequireAdmin(*this, req);
                               if (!p.ok()) return Error(p.status());
                               auto pattern = req.Query("pattern");
                               if (!pattern || pattern->empty())
                                 return Error(InvalidArgument("pattern is required"));
                               if (Status s = accounts.DeletePricing(*pattern); !s.ok())
                                 return Error(s);
                               if (Status s = ReloadPricing(); !s.ok()) return Error(s);
                               return Response::NoContent();
                             }),
                             opts));

  // GET /api/v1/relay/usage?group_by=key|account|model&bucket=hour|day&from=&to=&format=json|csv
  // Admins see the workspace; a relay key sees its own usage.
  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/relay/usage", SyncHandler([this](Request& req) {
        const auto* p = std::any_cast<auth::Principal>(&req.principal);
        if (p == nullptr) return Error(Unauthenticated("authentication required"));
        UsageQuery q;
        q.workspace_id = p->workspace_id;
        if (!RequireAdmin(*this, req).ok()) {
          if (!p->is_api_key() || !p->Allows("relay")) {
            return Error(PermissionDenied("usage reports need a workspace admin or a relay key"));
          }
          q.key_id = p->key_id;
        }
        q.group_by = req.Query("group_by").value_or("");
        if (!q.group_by.empty() && q.group_by != "key" && q.group_by != "account" &&
            q.group_by != "model") {
          return Error(InvalidArgument("group_by must be key, account or model"));
        }
        if (Status st = ParseUsageWindow(req, env.NowMicros(), q); !st.ok()) return Error(st);
        if (auto k = req.Query("key_id"); k && !k->empty() && q.key_id.empty()) q.key_id = *k;
        if (auto a = req.Query("account_id"); a && !a->empty()) q.account_id = *a;
        std::string format = req.Query("format").value_or("json");
        if (format != "json" && format != "csv") {
          return Error(InvalidArgument("format must be json or csv"));
        }
        auto rows = accounts.QueryUsage(q);
        if (!rows.ok()) return Error(rows.status());
        std::string group_field = q.group_by == "key"       ? "key_id"
                                  : q.group_by == "account" ? "account_id"
                                  : q.group_by == "model"   ? "model"
                                                            : "";
        if (format == "csv") {
          std::string csv = "bucket," + (group_field.empty() ? "" : group_field + ",") +
                            "requests,errors,input_tokens,output_tokens,cache_write_tokens,"
                            "cache_read_tokens,cost,avg_latency_ms\n";
          for (const auto& r : *rows) {
            csv +=
                auth::FormatRfc3339(r.bucket) + "," +
                (group_field.empty() ? "" : CsvField(r.group) + ",") +
                fmt::format("{},{},{},{},{},{},{:.6f},{}\n", r.requests, r.errors, r.input_tokens,
                            r.output_tokens, r.cache_write_tokens, r.cache_read_tokens, r.cost,
                            r.requests > 0 ? r.latency_ms_sum / r.requests : 0);
          }
          Response resp = Response::Text(200, std::move(csv), "text/csv; charset=utf-8");
          resp.headers.Set("content-disposition", "attachment; filename=\"relay-usage.csv\"");
          return resp;
        }
        json::array items;
        for (const auto& r : *rows) {
          json::object o{{"bucket", auth::FormatRfc3339(r.bucket)},
                         {"requests", r.requests},
                         {"errors", r.errors},
                         {"input_tokens", r.input_tokens},
                         {"output_tokens", r.output_tokens},
                         {"cache_write_tokens", r.cache_write_tokens},
                         {"cache_read_tokens", r.cache_read_tokens},
                         {"cost", r.cost},
                         {"avg_latency_ms", r.requests > 0 ? r.latency_ms_sum / r.requests : 0}};
          if (!group_field.empty()) o[group_field] = r.group;
          items.push_back(std::move(o));
        }
        return Json(200, json::object{{"rows", std::move(items)}});
      }),
      read_opts));

  // GET /api/v1/relay/accounts/{id}/dashboard?from=&to=&bucket=hour|day
  RETURN_IF_ERROR(router.Add("GET", "/api/v1/relay/accounts/{id}/dashboard",
                             SyncHandler([this](Request& req) {
                               auto p = RequireAdmin(*this, req);
                               if (!p.ok()) return Error(p.status());
                               auto a = accounts.Get(p->workspace_id, std::string(req.Param("id")));
                               if (!a.ok()) return Error(a.status());
                               auto q = DashboardQuery(req, env.NowMicros(), p->workspace_id);
                               if (!q.ok()) return Error(q.status());
                               q->account_id = a->id;
                               auto d = Dashboard(accounts, *q);
                               if (!d.ok()) return Error(d.status());
                               (*d)["account_id"] = a->id;
                               (*d)["name"] = a->name;
                               return Json(200, *d);
                             }),
                             read_opts));

  // GET /api/v1/relay/keys/{key_id}/dashboard?from=&to=&bucket=hour|day: for admins, and for
  // the relay key itself.
  RETURN_IF_ERROR(
      router.Add("GET", "/api/v1/relay/keys/{key_id}/dashboard", SyncHandler([this](Request& req) {
                   const auto* p = std::any_cast<auth::Principal>(&req.principal);
                   if (p == nullptr) return Error(Unauthenticated("authentication required"));
                   std::string key_id(req.Param("key_id"));
                   bool own = p->is_api_key() && p->key_id == key_id && p->Allows("relay");
                   if (!own) {
                     if (auto admin = RequireAdmin(*this, req); !admin.ok())
                       return Error(admin.status());
                   }
                   auto key = identities.FindApiKey(p->workspace_id, key_id);
                   if (!key.ok()) return Error(key.status());
                   auto q = DashboardQuery(req, env.NowMicros(), p->workspace_id);
                   if (!q.ok()) return Error(q.status());
                   q->key_id = key_id;
                   auto d = Dashboard(accounts, *q);
                   if (!d.ok()) return Error(d.status());
                   auto spent = ledger.SpentOf(key_id);
                   (*d)["key_id"] = key_id;
                   (*d)["name"] = key->name;
                   (*d)["budget"] = json::object{{"daily", key->budget_daily},
                                                 {"weekly", key->budget_weekly},
                                                 {"monthly", key->budget_monthly},
                                                 {"total", key->budget_total}};
                   (*d)["spent"] = json::object{{"daily", spent.daily},
                                                {"weekly", spent.weekly},
                                                {"monthly", spent.monthly},
                                                {"total", spent.total}};
                   return Json(200, *d);
                 }),
                 read_opts));
  return Status::Ok();
}

}  // namespace atrium::relay
