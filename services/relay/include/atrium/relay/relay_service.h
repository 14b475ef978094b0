// RelayService: Atrium's LLM API gateway (docs/relay.md) — Claude Relay Service re-created.
//
// Model-facing routes speak each provider's own wire format and error shapes:
//   Anthropic  POST /v1/messages, POST /v1/messages/count_tokens
//              (aliases /api/v1/messages, /claude/v1/messages[/count_tokens])
//   OpenAI     POST /v1/chat/completions (alias /openai/v1/chat/completions),
//              POST /v1/embeddings, GET /v1/models
// Clients authenticate with Atrium API keys with the `relay` scope, from x-api-key,
// Authorization: Bearer, x-goog-api-key, api-key or ?key= (the relay authenticates these routes
// itself so that failures come back in the API's own error shape).
//
// Per request: the key's policy (allowed models, requests/tokens per minute, budgets with
// reservations, concurrency, bound account/group) → the Scheduler picks an account (sticky
// sessions, strategy, health) → the provider adapter addresses the upstream → the body passes
// through byte for byte with only the model replaced when the formats match, else it is
// translated (translate.h) → the response streams back chunk by chunk → failover to the next
// account on connect errors, timeouts, 429, 529 and 5xx while no byte reached the client →
// one usage record on the bus topic `relay.usage` (sync durability). A durable consumer
// aggregates the records per key/account/model and hour into SQL (`GET /api/v1/relay/usage`).
//
// Account health changes (rate_limited, overloaded, unauthorized, error_cooldown, recovered),
// key budgets reaching 80 % / 100 % and relay keys expiring (key.expired) are events on
// `relay.events`; a durable consumer delivers
// them to the workspace's webhooks (JSON signed with HMAC-SHA256, or Slack format) with retries
// and exponential backoff, and logs every attempt. A maintenance loop probes unauthorized and
// errored accounts (one-token request, exponential backoff) and recovers them on success.
//
// Admin routes (/api/v1/relay/...: accounts, groups, key settings, pricing, usage, webhooks) need a
// workspace owner/admin session or an API key with the `admin` scope; accounts belong to the
// workspace that created them and serve that workspace's keys.
//
// Thread-safe. The Database, Bus, IdentityStore and Env must outlive the service; the service
// must outlive the Server its routes are on (shut the server down first, then Stop()).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "atrium/auth/identity_store.h"
#include "atrium/auth/principal.h"
#include "atrium/bus/bus.h"
#include "atrium/core/config.h"
#include "atrium/core/env.h"
#include "atrium/core/metrics.h"
#include "atrium/core/status.h"
#include "atrium/http/router.h"
#include "atrium/relay/scheduler.h"
#include "atrium/store/database.h"
#include "atrium/store/migrations.h"

namespace spdlog {
class logger;
}

namespace atrium::infer {
class EmbeddingProvider;
}

namespace atrium::relay {

// The relay's migrations (versions 500-599).
std::vector<store::Migration> RelayMigrations();

struct RelayOptions {
  SchedulerOptions scheduler;
  // Upstream attempts per request (the first try plus failovers).
  int max_attempts = 3;
  std::chrono::milliseconds connect_timeout{10'000};
  // Longest silence from the upstream (before the first byte and between stream chunks).
  std::chrono::milliseconds read_timeout{120'000};
  // Key ring "kid:base64url32[,...]" sealing account credentials; empty: a key generated at
  // first start and kept in kv_settings (relay.credentials_key).
  std::string credentials_key_ring;
  // JSON file with pricing overrides ({"models":{...}}), applied over the bundled table.
  std::string pricing_file;
  std::string usage_topic = "relay.usage";
  // Group commit window of the usage topic when the relay creates it (bus TopicOptions::
  // commit_delay): records still complete only after the fdatasync covering them, but a busy
  // relay syncs at most once per window instead of every few records. No request waits for it.
  std::chrono::milliseconds usage_commit_delay{5};
  // Durable consumer that aggregates usage into SQL; empty: none on this node.
  std::string aggregator_name = "relay-usage-aggregator";
  // Under steady traffic (a batch ending less than this before the next record), how long the
  // aggregator gathers records after the first of a batch: one transaction and one persisted
  // consumer position per batch instead of per record. A lone record is counted at once.
  std::chrono::milliseconds aggregator_linger{100};
  int client_threads = 2;
  std::string ca_file;                // extra trusted CAs for upstreams
  bool insecure_skip_verify = false;  // tests only
  size_t max_request_bytes = 32 << 20;
  size_t max_response_bytes = 64 << 20;
  // Bytes queued for a slow streaming client before the stream is cut.
  size_t stream_queue_bytes = 8 << 20;
  // Account and budget events (`relay.events`) and their webhook delivery: the durable consumer
  // (empty: no delivery on this node), attempts per target and the first retry delay (doubling,
  // at most a minute).
  std::string events_topic = "relay.events";
  std::string webhook_worker_name = "relay-webhooks";
  int webhook_max_attempts = 5;
  std::chrono::milliseconds webhook_backoff{1000};
  // The maintenance loop's period (recovery probes, key.expired); 0: no loop on this node.
  std::chrono::milliseconds maintenance_interval{5'000};
  // Recovery probes of unauthorized / error_cooldown accounts: the first one this long after the
  // outage began, then doubling after each failure up to probe_max_interval; 0: no probes.
  std::chrono::milliseconds probe_interval{60'000};
  std::chrono::milliseconds probe_max_interval{3'600'000};
  // Whether this node publishes key.expired for relay keys past their expiry (once per key
  // across nodes: a marker row in relay_key_events).
  bool key_events = true;
  // Anthropic OAuth accounts: the token endpoint and client id (an account's credentials
  // token_url / client_id override them) and how long before expiry the token is refreshed.
  std::string oauth_token_url = "https://console.anthropic.com/v1/oauth/token";
  std::string oauth_client_id = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
  std::chrono::milliseconds oauth_refresh_margin{300'000};
  // How long a key's policy (budgets, models, limits) is cached.
  std::chrono::milliseconds key_cache_ttl{10'000};
};

// Declares the relay.* configuration keys.
void DefineRelayConfig(ConfigSchema& schema);
Result<RelayOptions> RelayOptionsFromConfig(const Config& config);

// Resolves the credentials of a request (AuthService::Authenticate in the composition root).
using Authenticator = std::function<Result<auth::Principal>(const http::Request&)>;
// The same from memory only (AuthService::AuthenticateCached): nullopt when the answer needs
// I/O. With it, model requests whose key and key policy are cached run on the I/O thread.
using CachedAuthenticator =
    std::function<std::optional<Result<auth::Principal>>(const http::Request&)>;

// Progress of the usage aggregator.
struct AggregatorState {
  uint64_t applied_offset = 0;  // records below this offset are in SQL
  uint64_t topic_end = 0;       // the topic's next offset
};

class RelayService {
 public:
  static Result<std::unique_ptr<RelayService>> Create(
      RelayOptions options, store::Database& db, bus::Bus& bus, auth::IdentityStore& identities,
      Env& env, Authenticator authenticator, MetricsRegistry* metrics = nullptr,
      std::shared_ptr<spdlog::logger> logger = nullptr);
  ~RelayService();
  RelayService(const RelayService&) = delete;
  RelayService& operator=(const RelayService&) = delete;

  // Binds `local` accounts to the embed engine (null: local accounts answer 503). Call before
  // serving; the provider must outlive the service.
  void SetEmbeddingProvider(infer::EmbeddingProvider* provider);
  // Lets cached requests skip the blocking pool (see CachedAuthenticator). Call before AddRoutes.
  void SetCachedAuthenticator(CachedAuthenticator authenticator);
  Status AddRoutes(http::Router& router);
  // Stops the aggregator and cancels upstream requests in flight. Idempotent.
  void Stop();

  Scheduler& scheduler();
  AggregatorState aggregator_state();

  class Impl;

 private:
  explicit RelayService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::relay
