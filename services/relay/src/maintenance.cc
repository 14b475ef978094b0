// The relay's maintenance loop (docs/relay.md, "Recovery probes" and "Webhooks"): recovery
// probes of unauthorized and errored accounts with exponential backoff, and the `key.expired`
// event of relay keys that passed their expiry.
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "atrium/auth/crypto.h"
#include "atrium/core/thread_name.h"
#include "atrium/relay/provider.h"
#include "relay_impl.h"

namespace atrium::relay {
namespace json = boost::json;

ProbeResult RelayService::Impl::ProbeAccount(const Account& given,
                                             const std::string& client_model) {
  // OAuth accounts: a token about to expire is refreshed first, a refused one once after the
  // 401 (a refresh is what recovers most unauthorized OAuth accounts).
  if (OAuthNeedsRefresh(given, env.NowMicros(), options.oauth_refresh_margin)) {
    if (Status s = RefreshOAuthSync(given.id, ""); !s.ok() && log) {
      log->warn("relay: account {}: {}", given.id, s.message());
    }
  }
  auto fresh = scheduler.Find(given.id);
  const Account& a = fresh ? *fresh : given;
  ProbeResult out = ProbeOnce(a, client_model);
  if (out.status == 401 && CanRefreshOAuth(a)) {
    auto token = a.credentials.find("access_token");
    Status s = RefreshOAuthSync(a.id, token == a.credentials.end() ? "" : token->second);
    if (!s.ok()) {
      out.error = s.message();
      return out;
    }
    if (auto again = scheduler.Find(a.id)) return ProbeOnce(*again, client_model);
  }
  return out;
}

ProbeResult RelayService::Impl::ProbeOnce(const Account& a, const std::string& client_model) {
  ProbeResult out;
  const ProviderAdapter* adapter = FindProvider(a.provider);
  if (adapter == nullptr || adapter->in_process()) {
    out.ok = adapter != nullptr && embeddings.load() != nullptr;
    if (!out.ok) out.error = "the local embedding engine is not running";
    return out;
  }
  std::string model = a.UpstreamModel(client_model);
  http::ClientRequest req;
  req.method = "POST";
  req.headers.Set("content-type", "application/json");
  // The cheapest chat request: one token out of "ping" (Anthropic and OpenAI share the shape).
  if (adapter->format() == ApiFormat::kGemini) {
    req.body = json::serialize(json::object{
        {"contents",
         json::array{json::object{{"role", "user"},
                                  {"parts", json::array{json::object{{"text", "ping"}}}}}}},
        {"generationConfig", json::object{{"maxOutputTokens", 1}}}});
  } else {
    req.body = json::serialize(json::object{
        {"model", model},
        {"max_tokens", 1},
        {"messages", json::array{json::object{{"role", "user"}, {"content", "ping"}}}}});
  }
  Status prepared = adapter->Prepare(a, Operation::kChat, model, false, http::Headers(), req);
  if (prepared.ok()) prepared = adapter->Sign(a, env.NowMicros(), req);
  if (Status s = prepared; !s.ok()) {
    out.error = s.message();
    return out;
  }
  req.proxy = a.proxy;
  req.connect_timeout = options.connect_timeout;
  req.read_timeout = std::min(options.read_timeout, std::chrono::milliseconds(30'000));
  auto started = env.SteadyNow();
  auto r = client ? client->SendSync(std::move(req))
                  : Result<http::ClientResponse>(Unavailable("the relay is stopping"));
  out.latency_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(env.SteadyNow() - started).count();
  if (!r.ok()) {
    out.error = r.status().message();
    return out;
  }
  out.status = r->status;
  out.ok = r->status >= 200 && r->status < 300;
  if (!out.ok) out.error = r->body.substr(0, 2000);
  out.headers = std::move(r->headers);
  return out;
}

void RelayService::Impl::StartMaintenance() {
  if (options.maintenance_interval.count() <= 0) return;
  maintenance_ = std::thread([this] {
    SetThreadName("relay-maint");
    MaintenanceLoop();
  });
}

void RelayService::Impl::StopMaintenance() {
  maintenance_stop_ = true;
  if (maintenance_.joinable()) maintenance_.join();
}

void RelayService::Impl::MaintenanceLoop() {
  while (!maintenance_stop_) {
    if (options.probe_interval.count() > 0) RunRecoveryProbes();
    if (options.key_events) CheckExpiredKeys();
    auto end = env.SteadyNow() + options.maintenance_interval;
    while (!maintenance_stop_ && env.SteadyNow() < end) {
      env.SleepFor(std::min<std::chrono::milliseconds>(options.maintenance_interval,
                                                       std::chrono::milliseconds(20)));
    }
  }
}

void RelayService::Impl::RunRecoveryProbes() {
  auto now = env.SteadyNow();
  std::set<std::string> seen;
  for (const auto& a : scheduler.accounts()) {
    bool probed_status = a->status == kStatusUnauthorized || a->status == kStatusErrorCooldown;
    if (!probed_status || !a->schedulable || maintenance_stop_) continue;
    seen.insert(a->id);
    auto [it, fresh] = probes_.try_emplace(a->id);
    ProbeState& state = it->second;
    if (fresh || state.status != a->status) {
      // A new outage: the first probe one interval from now.
      state = ProbeState{a->status, options.probe_interval, now + options.probe_interval};
      continue;
    }
    if (now < state.next) continue;
    std::string model;
    for (const auto& m : a->models) {
      if (m.find_first_of("*?") == std::string::npos) {
        model = m;
        break;
      }
    }
    if (model.empty()) {
      model = !a->model_aliases.empty() ? a->model_aliases.begin()->first
              : a->provider == "anthropic" || a->provider == "bedrock" ? "claude-3-5-haiku-latest"
              : a->provider == "gemini"                                ? "gemini-2.0-flash"
                                                                       : "gpt-4o-mini";
    }
    ProbeResult r = ProbeAccount(*a, model);
    if (r.ok) {
      if (log) log->info("relay: recovery probe of account {} succeeded", a->id);
      auto live = scheduler.Find(a->id);
      if (live && live->status == a->status) {
        scheduler.SetStatus(a->id, std::string(kStatusActive), "recovery probe succeeded", 0);
      }
      probes_.erase(a->id);
      continue;
    }
    state.delay = std::min(state.delay * 2, options.probe_max_interval);
    state.next = env.SteadyNow() + state.delay;
    if (log) {
      log->info("relay: recovery probe of account {} failed ({}{}); next in {} ms", a->id,
                r.status != 0 ? "HTTP " + std::to_string(r.status) + " " : "",
                r.error.substr(0, 200), state.delay.count());
    }
  }
  std::erase_if(probes_, [&](const auto& kv) { return !seen.contains(kv.first); });
}

void RelayService::Impl::CheckExpiredKeys() {
  int64_t now = env.NowMicros();
  // Keys past their expiry without a key.expired marker; the marker's primary key makes the
  // event fire once per key across restarts and nodes (the node whose insert wins publishes).
  auto rows = db.Query(
      "SELECT k.id, k.workspace_id, k.name, k.scopes, k.expires_at FROM auth_api_keys k "
      "WHERE k.expires_at IS NOT NULL AND k.expires_at > 0 AND k.expires_at <= ? AND NOT EXISTS "
      "(SELECT 1 FROM relay_key_events e WHERE e.key_id = k.id AND e.event = 'key.expired') "
      "ORDER BY k.expires_at LIMIT 500",
      {now});
  if (!rows.ok()) {
    if (log) log->error("relay: expired keys: {}", rows.status().ToString());
    return;
  }
  for (const auto& row : *rows) {
    std::string key_id = row.Text(0), workspace_id = row.Text(1), name = row.Text(2);
    auto inserted = db.Exec(
        "INSERT INTO relay_key_events (key_id, event, created_at) VALUES (?, 'key.expired', ?) "
        "ON CONFLICT DO NOTHING",
        {key_id, now});
    if (!inserted.ok()) {
      if (log) log->error("relay: key.expired marker: {}", inserted.status().ToString());
      return;
    }
    if (*inserted == 0) continue;  // another node took it
    // Only keys that may use the relay are relay events.
    boost::system::error_code ec;
    json::value scopes = json::parse(row.Text(3), ec);
    bool relay_key = false;
    if (!ec && scopes.is_array()) {
      for (const auto& s : scopes.as_array()) {
        relay_key |= s.is_string() && (s.as_string() == "relay" || s.as_string() == "*");
      }
    }
    if (!relay_key) continue;
    PublishEvent("key.expired", workspace_id, "", key_id,
                 "key " + name + " (" + key_id + ") expired at " + auth::FormatRfc3339(row.Int(4)));
  }
}

}  // namespace atrium::relay
