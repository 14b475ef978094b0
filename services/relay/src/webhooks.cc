// Relay events and webhooks (docs/relay.md, "Webhooks"): events on `relay.events`, a durable
// consumer delivering them to the workspace's targets with retries and exponential backoff, a
// delivery log, and the admin routes (create, list, edit in place, delete, send a test event).
//
// Generic targets get the event JSON with `x-atrium-timestamp` (Unix seconds) and
// `x-atrium-signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`; Slack targets
// get {"text": "..."} (incoming-webhook format).
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "atrium/auth/crypto.h"
#include "atrium/core/thread_name.h"
#include "relay_impl.h"

namespace atrium::relay {
namespace json = boost::json;
using http::Request;
using http::Response;

namespace {

// The event POST /api/v1/relay/webhooks/{id}/test sends (whatever the webhook's event filter).
constexpr std::string_view kTestEvent = "webhook.test";

// The event types a webhook can subscribe to (docs/relay.md, "Webhooks").
constexpr std::string_view kEventTypes[] = {
    "account.rate_limited",   "account.overloaded", "account.unauthorized",
    "account.error_cooldown", "account.disabled",   "account.recovered",
    "key.budget_80",          "key.budget_100",     "key.expired"};

struct Webhook {
  std::string id, workspace_id, url, secret, format = "json";
  std::vector<std::string> events;  // empty: all
  bool enabled = true;
  int64_t created_at = 0, updated_at = 0;
};

// The outcome of one delivery attempt, as logged in relay_webhook_deliveries.
struct DeliveryResult {
  std::string id;  // the log row
  bool ok = false;
  int status = 0;  // HTTP status; 0 when no response came
  int64_t latency_ms = 0;
  std::string error;
};

std::string Hex(std::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

json::value Time(int64_t micros) {
  return micros == 0 ? json::value(nullptr) : json::value(auth::FormatRfc3339(micros));
}

json::object WebhookJson(const Webhook& w) {
  json::array events;
  for (const auto& e : w.events) events.emplace_back(e);
  return json::object{{"id", w.id},
                      {"url", w.url},
                      {"format", w.format},
                      {"events", std::move(events)},
                      {"enabled", w.enabled},
                      {"created_at", auth::FormatRfc3339(w.created_at)},
                      {"updated_at", Time(w.updated_at)}};
}

// The workspace's webhooks (secrets opened), or only the one with `id` when it is non-empty.
Result<std::vector<Webhook>> LoadWebhooks(RelayService::Impl& s, const std::string& workspace_id,
                                          const std::string& id = "") {
  std::string sql =
      "SELECT id, workspace_id, url, secret, format, events, created_at, enabled, updated_at "
      "FROM relay_webhooks WHERE workspace_id = ?";
  store::Params params{workspace_id};
  if (!id.empty()) {
    sql += " AND id = ?";
    params.emplace_back(id);
  }
  sql += " ORDER BY created_at, id";
  ASSIGN_OR_RETURN(auto rows, s.db.Query(sql, params));
  std::vector<Webhook> out;
  for (const auto& r : rows) {
    Webhook w{.id = r.Text(0),
              .workspace_id = r.Text(1),
              .url = r.Text(2),
              .format = r.Text(4),
              .enabled = r.Int(7) != 0,
              .created_at = r.Int(6),
              .updated_at = r.Int(8)};
    ASSIGN_OR_RETURN(w.secret, s.accounts.box().Open(r.Text(3), w.id));
    boost::system::error_code ec;
    json::value ev = json::parse(r.Text(5), ec);
    if (!ec && ev.is_array()) {
      for (const auto& e : ev.as_array()) {
        if (e.is_string()) w.events.emplace_back(e.as_string());
      }
    }
    out.push_back(std::move(w));
  }
  return out;
}

// One webhook of the workspace; NotFound for another workspace's.
Result<Webhook> LoadWebhook(RelayService::Impl& s, const std::string& workspace_id,
                            const std::string& id) {
  ASSIGN_OR_RETURN(auto hooks, LoadWebhooks(s, workspace_id, id));
  if (hooks.empty()) return NotFound("webhook not found");
  return std::move(hooks[0]);
}

std::string EventsJson(const Webhook& w) {
  json::array events;
  for (const auto& e : w.events) events.emplace_back(e);
  return json::serialize(events);
}

Result<json::object> ParseObject(const Request& req) {
  boost::system::error_code ec;
  json::value v = json::parse(req.body.empty() ? "{}" : req.body, ec);
  if (ec || !v.is_object()) return InvalidArgument("the body must be a JSON object");
  return std::move(v.as_object());
}

// Applies the members of `body` to `w`, all optional on PATCH (`create` requires url). Sets
// `secret_given` when the body carries a secret; errors name the field.
Status ApplyWebhook(const json::object& body, Webhook& w, bool create, bool& secret_given) {
  if (const auto* url = body.if_contains("url"); url != nullptr && !url->is_null()) {
    if (!url->is_string() || url->as_string().size() > 2048 ||
        !(url->as_string().starts_with("http://") || url->as_string().starts_with("https://"))) {
      return InvalidArgument("url must be an http:// or https:// URL");
    }
    w.url = std::string(url->as_string());
  } else if (create) {
    return InvalidArgument("url must be an http:// or https:// URL");
  }
  if (const auto* f = body.if_contains("format"); f != nullptr && !f->is_null()) {
    if (!f->is_string() || (f->as_string() != "json" && f->as_string() != "slack")) {
      return InvalidArgument("format must be json or slack");
    }
    w.format = std::string(f->as_string());
  }
  if (const auto* e = body.if_contains("events"); e != nullptr && !e->is_null()) {
    if (!e->is_array()) return InvalidArgument("events must be a list of event types");
    std::vector<std::string> events;
    for (const auto& t : e->as_array()) {
      if (!t.is_string()) return InvalidArgument("events must be a list of strings");
      std::string_view type(t.as_string());
      if (std::find(std::begin(kEventTypes), std::end(kEventTypes), type) ==
          std::end(kEventTypes)) {
        return InvalidArgument(fmt::format("events: unknown event type '{}'", type));
      }
      events.emplace_back(type);
    }
    w.events = std::move(events);
  }
  secret_given = false;
  if (const auto* sec = body.if_contains("secret"); sec != nullptr && !sec->is_null()) {
    if (!sec->is_string() || sec->as_string().size() > 512) {
      return InvalidArgument("secret must be a string of at most 512 characters");
    }
    if (!sec->as_string().empty()) {
      w.secret = std::string(sec->as_string());
      secret_given = true;
    } else if (!create) {
      return InvalidArgument("secret must not be empty (leave it out to keep the current one)");
    }
  }
  if (const auto* en = body.if_contains("enabled"); en != nullptr && !en->is_null()) {
    if (!en->is_bool()) return InvalidArgument("enabled must be a boolean");
    w.enabled = en->as_bool();
  }
  return Status::Ok();
}

// Posts one event to one webhook now — the event JSON signed, or Slack text — and logs the
// attempt in relay_webhook_deliveries (a failure to log is logged, not returned: the delivery
// happened).
DeliveryResult Deliver(RelayService::Impl& s, const Webhook& hook, const std::string& event_id,
                       const std::string& type, const std::string& event_json,
                       const std::string& message, int attempt) {
  std::string body = hook.format == "slack"
                         ? json::serialize(json::object{{"text", "[atrium relay] " + message}})
                         : event_json;
  http::ClientRequest req;
  req.method = "POST";
  req.url = hook.url;
  req.headers.Set("content-type", "application/json");
  req.headers.Set("x-atrium-event", type);
  req.headers.Set("x-atrium-delivery", event_id);
  std::string ts = std::to_string(s.env.NowMicros() / 1'000'000);
  req.headers.Set("x-atrium-timestamp", ts);
  req.headers.Set("x-atrium-signature",
                  "sha256=" + Hex(auth::HmacSha256(hook.secret, ts + "." + body)));
  req.body = std::move(body);
  req.connect_timeout = std::chrono::seconds(5);
  req.read_timeout = std::chrono::seconds(10);
  auto started = s.env.SteadyNow();
  auto r = s.client->SendSync(std::move(req));
  DeliveryResult out;
  out.id = auth::NewId(s.env, "dlv_");
  out.latency_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(s.env.SteadyNow() - started).count();
  out.ok = r.ok() && r->status >= 200 && r->status < 300;
  out.status = r.ok() ? r->status : 0;
  out.error = r.ok() ? (out.ok ? "" : "HTTP " + std::to_string(r->status)) : r.status().message();
  auto logged = s.db.Exec(
      "INSERT INTO relay_webhook_deliveries (id, webhook_id, event_id, event_type, attempt, ok, "
      "status_code, error, latency_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {out.id, hook.id, event_id, type, attempt, out.ok ? 1 : 0, out.status, out.error,
       out.latency_ms, s.env.NowMicros()});
  if (!logged.ok() && s.log) {
    s.log->error("relay webhook {}: delivery log: {}", hook.id, logged.status().ToString());
  }
  return out;
}

}  // namespace

void RelayService::Impl::PublishEvent(const std::string& type, const std::string& workspace_id,
                                      const std::string& account_id, const std::string& key_id,
                                      const std::string& message) {
  json::object ev{{"id", auth::NewId(env, "evt_")},
                  {"type", type},
                  {"time", auth::FormatRfc3339(env.NowMicros())},
                  {"workspace_id", workspace_id},
                  {"message", message}};
  if (!account_id.empty()) ev["account_id"] = account_id;
  if (!key_id.empty()) ev["key_id"] = key_id;
  std::vector<bus::Message> batch(1);
  batch[0].key = workspace_id;
  batch[0].headers = {{"type", type}};
  batch[0].payload = json::serialize(ev);
  auto logger = log;
  bus.PublishBatchAsync(options.events_topic, std::move(batch),
                        [logger](Result<bus::OffsetRange> r) {
                          if (!r.ok() && logger) {
                            logger->error("relay event lost: {}", r.status().ToString());
                          }
                        });
}

void RelayService::Impl::CheckBudgetEvents(const std::string& workspace_id,
                                           const std::string& key_id, const KeyBudget& budget) {
  auto spent = ledger.SpentOf(key_id);
  int64_t now = env.NowMicros();
  struct Period {
    const char* name;
    double limit, spent;
    int64_t start;
  } periods[] = {{"daily", budget.daily, spent.daily, BudgetLedger::DayStart(now)},
                 {"weekly", budget.weekly, spent.weekly, BudgetLedger::WeekStart(now)},
                 {"monthly", budget.monthly, spent.monthly, BudgetLedger::MonthStart(now)},
                 {"total", budget.total, spent.total, 0}};
  for (const auto& p : periods) {
    if (p.limit <= 0) continue;
    for (int pct : {80, 100}) {
      if (p.spent < p.limit * pct / 100.0) continue;
      std::string id =
          key_id + "/" + p.name + "/" + std::to_string(p.start) + "/" + std::to_string(pct);
      {
        std::lock_guard lock(fired_mu_);
        if (!fired_budget_events_.insert(id).second) continue;
      }
      PublishEvent("key.budget_" + std::to_string(pct), workspace_id, "", key_id,
                   fmt::format("key {} has spent ${:.4f} of its {} budget of ${:.2f} ({}%)", key_id,
                               p.spent, p.name, p.limit, pct));
    }
  }
}

void RelayService::Impl::StartWebhooks() {
  if (options.webhook_worker_name.empty()) return;
  webhooks_ = std::thread([this] {
    SetThreadName("relay-webhooks");
    WebhookLoop();
  });
}

void RelayService::Impl::StopWebhooks() {
  webhooks_stop_ = true;
  if (webhooks_.joinable()) webhooks_.join();
}

void RelayService::Impl::WebhookLoop() {
  std::unique_ptr<bus::Consumer> consumer;
  auto sleep_interruptible = [this](std::chrono::milliseconds d) {
    auto end = env.SteadyNow() + d;
    while (!webhooks_stop_ && env.SteadyNow() < end) {
      env.SleepFor(std::chrono::milliseconds(20));
    }
  };
  while (!webhooks_stop_) {
    if (consumer == nullptr) {
      auto opened =
          bus.OpenConsumer(bus::ConsumerOptions{.name = options.webhook_worker_name,
                                                .topic = options.events_topic,
                                                .start = bus::StartPosition::Earliest(),
                                                // Deliveries with retries may take minutes.
                                                .ack_timeout = std::chrono::minutes(10)});
      if (!opened.ok()) {
        if (log) log->error("relay webhooks: {}", opened.status().ToString());
        sleep_interruptible(std::chrono::seconds(1));
        continue;
      }
      consumer = std::move(*opened);
    }
    auto d = consumer->Next(std::chrono::milliseconds(200));
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kDeadlineExceeded) continue;
      if (d.status().code() == StatusCode::kCancelled) break;
      consumer.reset();
      continue;
    }
    if (d->kind != bus::Delivery::Kind::kRecord) continue;
    boost::system::error_code ec;
    json::value ev = json::parse(d->record->payload, ec);
    if (ec || !ev.is_object()) {
      (void)consumer->Ack(d->record->offset);
      continue;
    }
    const auto& o = ev.as_object();
    std::string type(o.at("type").as_string());
    std::string event_id(o.at("id").as_string());
    std::string message(o.contains("message") ? o.at("message").as_string() : "");
    auto hooks = LoadWebhooks(*this, std::string(o.at("workspace_id").as_string()));
    if (!hooks.ok()) {
      if (log) log->error("relay webhooks: {}", hooks.status().ToString());
      sleep_interruptible(std::chrono::seconds(1));
      continue;  // redelivered after the ack timeout
    }
    for (const auto& hook : *hooks) {
      if (!hook.enabled) continue;
      if (!hook.events.empty() &&
          std::find(hook.events.begin(), hook.events.end(), type) == hook.events.end()) {
        continue;
      }
      auto backoff = options.webhook_backoff;
      for (int attempt = 1; attempt <= options.webhook_max_attempts && !webhooks_stop_; ++attempt) {
        DeliveryResult r =
            Deliver(*this, hook, event_id, type, d->record->payload, message, attempt);
        if (r.ok) break;
        if (attempt < options.webhook_max_attempts) {
          sleep_interruptible(backoff);
          backoff = std::min(backoff * 2, std::chrono::milliseconds(60'000));
        } else if (log) {
          log->warn("relay webhook {}: giving up on event {} after {} attempts ({})", hook.id,
                    event_id, attempt, r.error);
        }
      }
    }
    (void)consumer->Ack(d->record->offset);
  }
  if (consumer) consumer->Close();
}

Status RelayService::Impl::AddWebhookRoutes(http::Router& router) {
  http::RouteOptions opts{.blocking = true, .auth_scope = "session", .audit = true};
  http::RouteOptions read_opts{.blocking = true, .auth_scope = "session"};
  using http::SyncHandler;
  // POST /api/v1/relay/webhooks {"url","secret"?,"format"?:"json|slack","events"?:[...],
  // "enabled"?}
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/relay/webhooks", SyncHandler([this](Request& req) {
        auto p = RequireAdmin(*this, req);
        if (!p.ok()) return Response::FromStatus(p.status());
        auto body = ParseObject(req);
        if (!body.ok()) return Response::FromStatus(body.status());
        Webhook w{.id = auth::NewId(env, "whk_"), .workspace_id = p->workspace_id};
        bool secret_given = false;
        if (Status st = ApplyWebhook(*body, w, true, secret_given); !st.ok()) {
          return Response::FromStatus(st);
        }
        if (!secret_given) w.secret = "whsec_" + auth::Base62Encode(auth::RandomBytes(env, 24));
        auto sealed = accounts.box().Seal(env, w.secret, w.id);
        if (!sealed.ok()) return Response::FromStatus(sealed.status());
        w.created_at = env.NowMicros();
        auto st = db.Exec(
            "INSERT INTO relay_webhooks (id, workspace_id, url, secret, format, events, enabled, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
            {w.id, w.workspace_id, w.url, *sealed, w.format, EventsJson(w), w.enabled ? 1 : 0,
             w.created_at});
        if (!st.ok()) return Response::FromStatus(st.status());
        json::object out = WebhookJson(w);
        if (!secret_given) out["secret"] = w.secret;  // generated: shown once
        return Response::Json(201, json::serialize(out));
      }),
      opts));
  RETURN_IF_ERROR(
      router.Add("GET", "/api/v1/relay/webhooks", SyncHandler([this](Request& req) {
                   auto p = RequireAdmin(*this, req);
                   if (!p.ok()) return Response::FromStatus(p.status());
                   auto hooks = LoadWebhooks(*this, p->workspace_id);
                   if (!hooks.ok()) return Response::FromStatus(hooks.status());
                   json::array items;
                   for (const auto& w : *hooks) items.push_back(WebhookJson(w));
                   return Response::Json(200, json::serialize(json::object{{"webhooks", items}}));
                 }),
                 read_opts));
  // PATCH /api/v1/relay/webhooks/{id}: the members POST takes, each optional; the secret is
  // replaced when given and kept otherwise (never read back).
  RETURN_IF_ERROR(router.Add(
      "PATCH", "/api/v1/relay/webhooks/{id}", SyncHandler([this](Request& req) {
        auto p = RequireAdmin(*this, req);
        if (!p.ok()) return Response::FromStatus(p.status());
        auto body = ParseObject(req);
        if (!body.ok()) return Response::FromStatus(body.status());
        auto w = LoadWebhook(*this, p->workspace_id, std::string(req.Param("id")));
        if (!w.ok()) return Response::FromStatus(w.status());
        bool secret_given = false;
        if (Status st = ApplyWebhook(*body, *w, false, secret_given); !st.ok()) {
          return Response::FromStatus(st);
        }
        auto sealed = accounts.box().Seal(env, w->secret, w->id);
        if (!sealed.ok()) return Response::FromStatus(sealed.status());
        w->updated_at = env.NowMicros();
        auto n = db.Exec(
            "UPDATE relay_webhooks SET url = ?, secret = ?, format = ?, events = ?, enabled = ?, "
            "updated_at = ? WHERE id = ? AND workspace_id = ?",
            {w->url, *sealed, w->format, EventsJson(*w), w->enabled ? 1 : 0, w->updated_at, w->id,
             p->workspace_id});
        if (!n.ok()) return Response::FromStatus(n.status());
        if (*n == 0) return Response::FromStatus(NotFound("webhook not found"));  // just deleted
        return Response::Json(200, json::serialize(WebhookJson(*w)));
      }),
      opts));
  RETURN_IF_ERROR(
      router.Add("DELETE", "/api/v1/relay/webhooks/{id}", SyncHandler([this](Request& req) {
                   auto p = RequireAdmin(*this, req);
                   if (!p.ok()) return Response::FromStatus(p.status());
                   auto n = db.Exec("DELETE FROM relay_webhooks WHERE id = ? AND workspace_id = ?",
                                    {std::string(req.Param("id")), p->workspace_id});
                   if (!n.ok()) return Response::FromStatus(n.status());
                   if (*n == 0) return Response::FromStatus(NotFound("webhook not found"));
                   return Response::NoContent();
                 }),
                 opts));
  // POST /api/v1/relay/webhooks/{id}/test: one signed `webhook.test` event sent now (enabled or
  // not, whatever its event filter), logged like any delivery; answers the attempt's outcome.
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/relay/webhooks/{id}/test", SyncHandler([this](Request& req) {
        auto p = RequireAdmin(*this, req);
        if (!p.ok()) return Response::FromStatus(p.status());
        auto w = LoadWebhook(*this, p->workspace_id, std::string(req.Param("id")));
        if (!w.ok()) return Response::FromStatus(w.status());
        std::string event_id = auth::NewId(env, "evt_");
        std::string message = "test event for the webhook to " + w->url;
        json::object ev{{"id", event_id},
                        {"type", kTestEvent},
                        {"time", auth::FormatRfc3339(env.NowMicros())},
                        {"workspace_id", p->workspace_id},
                        {"webhook_id", w->id},
                        {"message", message}};
        DeliveryResult r =
            Deliver(*this, *w, event_id, std::string(kTestEvent), json::serialize(ev), message, 1);
        json::object out{{"ok", r.ok},
                         {"status_code", r.status},
                         {"latency_ms", r.latency_ms},
                         {"event_id", event_id},
                         {"delivery_id", r.id}};
        if (!r.ok) out["error"] = r.error;
        return Response::Json(200, json::serialize(out));
      }),
      opts));
  return router.Add(
      "GET", "/api/v1/relay/webhooks/{id}/deliveries", SyncHandler([this](Request& req) {
        auto p = RequireAdmin(*this, req);
        if (!p.ok()) return Response::FromStatus(p.status());
        std::string id(req.Param("id"));
        auto owned = db.Query("SELECT id FROM relay_webhooks WHERE id = ? AND workspace_id = ?",
                              {id, p->workspace_id});
        if (!owned.ok()) return Response::FromStatus(owned.status());
        if (owned->empty()) return Response::FromStatus(NotFound("webhook not found"));
        auto rows = db.Query(
            "SELECT id, event_id, event_type, attempt, ok, status_code, error, created_at, "
            "latency_ms FROM relay_webhook_deliveries WHERE webhook_id = ? ORDER BY created_at "
            "DESC, attempt DESC LIMIT 200",
            {id});
        if (!rows.ok()) return Response::FromStatus(rows.status());
        json::array items;
        for (const auto& r : *rows) {
          items.push_back(json::object{{"id", r.Text(0)},
                                       {"event_id", r.Text(1)},
                                       {"event_type", r.Text(2)},
                                       {"attempt", r.Int(3)},
                                       {"ok", r.Int(4) != 0},
                                       {"status_code", r.Int(5)},
                                       {"error", r.Text(6)},
                                       {"latency_ms", r.Int(8)},
                                       {"created_at", auth::FormatRfc3339(r.Int(7))}});
        }
        return Response::Json(200, json::serialize(json::object{{"deliveries", items}}));
      }),
      read_opts);
}

}  // namespace atrium::relay
