// The relay's private state, shared by relay_service.cc (set-up, key policy, usage), proxy.cc
// (the model-facing routes) and admin_routes.cc (the admin API).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "account_store.h"
#include "atrium/auth/rate_limiter.h"
#include "atrium/http/client.h"
#include "atrium/http/handler.h"
#include "atrium/relay/budget.h"
#include "atrium/relay/relay_service.h"
#include "atrium/relay/usage.h"

namespace atrium::relay {

// The outcome of one minimal request through an account (account test, recovery probe).
struct ProbeResult {
  bool ok = false;
  int status = 0;  // HTTP status; 0 when no response came
  int64_t latency_ms = 0;
  std::string error;
  http::Headers headers;
};

// OAuth accounts (oauth.cc): an anthropic account with a refresh_token and no api_key.
bool CanRefreshOAuth(const Account& account);
// Whether its access token expires within `margin` (credentials.expires_at, Unix milliseconds).
bool OAuthNeedsRefresh(const Account& account, int64_t now_micros,
                       std::chrono::milliseconds margin);

// What the relay enforces for one client key (from the ApiKey and relay_key_settings).
struct KeyPolicy {
  std::string key_id;  // empty for user sessions (no limits)
  std::vector<std::string> models;
  int64_t rpm = 0, tpm = 0;
  KeyBudget budget;
  double cost_multiplier = 1;
  std::string account_group, account_id;
};

class RelayService::Impl {
 public:
  Impl(RelayOptions o, store::Database& d, bus::Bus& b, auth::IdentityStore& ids, Env& e,
       Authenticator a, MetricsRegistry* m, std::shared_ptr<spdlog::logger> l, auth::SecretBox box);

  // --- set-up (relay_service.cc) ---
  Status Init();
  Status ReloadAccounts();
  Status ReloadPricing();
  void StartAggregator();
  void StopAggregator();
  // Policies are shared, never changed in place: a change caches a new one.
  Result<std::shared_ptr<const KeyPolicy>> PolicyFor(const auth::Principal& p);
  // The principal's policy when cached and fresh (API keys), else null; never reads the
  // database.
  std::shared_ptr<const KeyPolicy> CachedPolicyFor(const auth::Principal& p);
  // RouteOptions::run_inline of the model routes: true when the request's principal, its key
  // policy and its budget windows are all in memory; leaves the principal in req.principal.
  bool PrepareInline(http::Request& req);
  std::shared_ptr<const PriceTable> prices() const;
  // Publishes a usage record (sync topic; errors are logged and counted).
  void PublishUsage(const UsageRecord& record);
  void OnStatusChange(const StatusChange& change);

  // --- events and webhooks (webhooks.cc) ---
  // Publishes an event on options.events_topic (errors are logged).
  void PublishEvent(const std::string& type, const std::string& workspace_id,
                    const std::string& account_id, const std::string& key_id,
                    const std::string& message);
  // Emits key.budget_80 / key.budget_100 once per key, period and threshold.
  void CheckBudgetEvents(const std::string& workspace_id, const std::string& key_id,
                         const KeyBudget& budget);
  void StartWebhooks();
  void StopWebhooks();
  Status AddWebhookRoutes(http::Router& router);

  // --- maintenance (maintenance.cc) ---
  // One minimal chat request ("ping", one token) through the account.
  ProbeResult ProbeAccount(const Account& account, const std::string& client_model);
  ProbeResult ProbeOnce(const Account& account, const std::string& client_model);
  void StartMaintenance();
  void StopMaintenance();

  // --- OAuth (oauth.cc) ---
  // Refreshes the account's access token through the token endpoint and saves the new tokens;
  // concurrent calls share one refresh. `failed_token` non-empty: the token a 401 answered —
  // when the account already has another one, `done` gets Ok without a refresh. `done` runs on
  // a client thread (or inline).
  void RefreshOAuth(const std::string& account_id, const std::string& failed_token,
                    std::function<void(Status)> done);
  // The same, waiting (never on a client thread).
  Status RefreshOAuthSync(const std::string& account_id, const std::string& failed_token);

  // --- routes ---
  Status AddProxyRoutes(http::Router& router);  // proxy.cc
  Status AddAdminRoutes(http::Router& router);  // admin_routes.cc

  RelayOptions options;
  store::Database& db;
  bus::Bus& bus;
  auth::IdentityStore& identities;
  Env& env;
  Authenticator authenticate;
  CachedAuthenticator authenticate_cached;  // optional
  MetricsRegistry* metrics;
  std::shared_ptr<spdlog::logger> log;
  AccountStore accounts;
  Scheduler scheduler;
  BudgetLedger ledger;
  auth::InMemoryRateLimiter limiter;
  std::unique_ptr<http::HttpClient> client;
  std::atomic<infer::EmbeddingProvider*> embeddings{nullptr};
  std::atomic<bool> stopping{false};

  // Counters (null without a registry).
  Counter* usage_publish_failures = nullptr;
  CounterFamily* requests_total = nullptr;
  CounterFamily* failovers_total = nullptr;
  Counter* oauth_refreshes = nullptr;

 private:
  void AggregatorLoop();

  mutable std::mutex prices_mu_;
  std::shared_ptr<const PriceTable> prices_;  // guarded by prices_mu_
  std::mutex policy_mu_;
  struct CachedPolicy {
    std::shared_ptr<const KeyPolicy> policy;
    std::chrono::steady_clock::time_point fetched;
  };
  std::map<std::string, CachedPolicy> policies_;  // guarded by policy_mu_
  void WebhookLoop();
  void MaintenanceLoop();
  // Probes unauthorized / error_cooldown accounts whose next probe is due; recovers them on
  // success, doubles their probe delay (up to probe_max_interval) on failure.
  void RunRecoveryProbes();
  // Publishes key.expired once per relay key past its expiry.
  void CheckExpiredKeys();
  struct ProbeState {
    std::string status;  // the outage being probed
    std::chrono::milliseconds delay{0};
    std::chrono::steady_clock::time_point next;
  };
  std::map<std::string, ProbeState> probes_;
  std::mutex oauth_mu_;
  std::map<std::string, std::vector<std::function<void(Status)>>>
      oauth_waiters_;  // oauth_mu_  // maintenance thread only
  std::thread maintenance_;
  std::atomic<bool> maintenance_stop_{false};
  std::thread webhooks_;
  std::atomic<bool> webhooks_stop_{false};
  std::mutex fired_mu_;
  std::set<std::string> fired_budget_events_;  // guarded by fired_mu_
  std::thread aggregator_;
  std::atomic<bool> aggregator_stop_{false};

 public:
  std::atomic<uint64_t> aggregated_offset{0};
};

// JSON helpers shared by the route files.
http::Response JsonResponse(int status, std::string body);
// Admin routes: a workspace owner/admin session, or an API key with the admin scope.
Result<auth::Principal> RequireAdmin(RelayService::Impl& s, const http::Request& req);

}  // namespace atrium::relay
