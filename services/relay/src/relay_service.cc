// Set-up of the relay: configuration, the credentials key, accounts and pricing, key policies,
// usage publishing and the usage aggregator.
#include "atrium/relay/relay_service.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "atrium/auth/crypto.h"
#include "atrium/core/thread_name.h"
#include "relay_impl.h"

namespace atrium::relay {
namespace json = boost::json;

void DefineRelayConfig(ConfigSchema& schema) {
  schema.DefineString("relay.strategy", "priority",
                      "Account selection: priority (then least recently used), weighted, "
                      "least_busy or latency (EWMA of time to first byte)",
                      {.one_of = {"priority", "weighted", "least_busy", "latency"}});
  schema.DefineInt("relay.max_attempts", 3,
                   "Upstream attempts per request (failover before the first byte)",
                   {.min = 1, .max = 10});
  schema.DefineInt("relay.sticky_ttl_seconds", 3600, "Sticky session lifetime (renewed on use)",
                   {.min = 0, .max = 30 * 86400});
  schema.DefineInt("relay.overloaded_seconds", 300, "How long a 529 takes an account out",
                   {.min = 1, .max = 86400});
  schema.DefineInt("relay.error_threshold", 3,
                   "5xx/connect errors within relay.error_window_seconds before error_cooldown",
                   {.min = 1, .max = 1000});
  schema.DefineInt("relay.error_window_seconds", 60, "Window of relay.error_threshold",
                   {.min = 1, .max = 86400});
  schema.DefineInt("relay.error_cooldown_seconds", 300, "Length of error_cooldown",
                   {.min = 1, .max = 86400});
  schema.DefineInt("relay.connect_timeout_ms", 10000, "Upstream connect timeout",
                   {.min = 1, .max = 600000});
  schema.DefineInt("relay.read_timeout_ms", 120000,
                   "Longest upstream silence (first byte, between stream chunks)",
                   {.min = 1, .max = 3600000});
  schema.DefineSecret("relay.credentials_key", "",
                      "Key ring kid:base64url32[,...] sealing upstream credentials; empty: the "
                      "auth master key ring, else a generated key kept in the database");
  schema.DefineString("relay.pricing_file", "",
                      "JSON pricing overrides {\"models\":{\"glob\":{\"input\",\"output\","
                      "\"cache_write\",\"cache_read\"}}} in $ per million tokens");
  schema.DefineString("relay.aggregator", "relay-usage-aggregator",
                      "Durable bus consumer aggregating usage into SQL; empty: none on this node");
  schema.DefineInt("relay.aggregator_linger_ms", 100,
                   "Under steady traffic, how long the usage aggregator gathers records into "
                   "one transaction (a lone request after a quiet spell is counted at once)",
                   {.min = 0, .max = 10000});
  schema.DefineInt("relay.usage_commit_delay_ms", 5,
                   "Group commit window of the usage topic (bus commit_delay) when the relay "
                   "creates it: at most one fdatasync per window; no request waits for it",
                   {.min = 0, .max = 1000});
  schema.DefineInt("relay.probe_interval_seconds", 60,
                   "First recovery probe of an unauthorized/errored account after this long, "
                   "doubling after each failed probe; 0: no probes",
                   {.min = 0, .max = 86400});
  schema.DefineInt("relay.probe_max_interval_seconds", 3600, "Longest delay between probes",
                   {.min = 1, .max = 7 * 86400});
  schema.DefineString("relay.oauth_token_url", "https://console.anthropic.com/v1/oauth/token",
                      "Token endpoint refreshing Anthropic OAuth accounts");
  schema.DefineInt("relay.oauth_refresh_margin_seconds", 300,
                   "Refresh an OAuth access token this long before it expires",
                   {.min = 0, .max = 86400});
  schema.DefineString("relay.ca_file", "", "Extra trusted CA certificates (PEM) for upstreams");
}

Result<RelayOptions> RelayOptionsFromConfig(const Config& config) {
  RelayOptions o;
  ASSIGN_OR_RETURN(o.scheduler.strategy, ParseStrategy(config.GetString("relay.strategy")));
  o.max_attempts = static_cast<int>(config.GetInt("relay.max_attempts"));
  o.scheduler.sticky_ttl = std::chrono::seconds(config.GetInt("relay.sticky_ttl_seconds"));
  o.scheduler.overloaded_for = std::chrono::seconds(config.GetInt("relay.overloaded_seconds"));
  o.scheduler.error_threshold = static_cast<int>(config.GetInt("relay.error_threshold"));
  o.scheduler.error_window = std::chrono::seconds(config.GetInt("relay.error_window_seconds"));
  o.scheduler.error_cooldown = std::chrono::seconds(config.GetInt("relay.error_cooldown_seconds"));
  o.connect_timeout = std::chrono::milliseconds(config.GetInt("relay.connect_timeout_ms"));
  o.read_timeout = std::chrono::milliseconds(config.GetInt("relay.read_timeout_ms"));
  o.credentials_key_ring = config.GetString("relay.credentials_key");
  o.pricing_file = config.GetString("relay.pricing_file");
  o.aggregator_name = config.GetString("relay.aggregator");
  o.aggregator_linger = std::chrono::milliseconds(config.GetInt("relay.aggregator_linger_ms"));
  o.usage_commit_delay = std::chrono::milliseconds(config.GetInt("relay.usage_commit_delay_ms"));
  o.ca_file = config.GetString("relay.ca_file");
  o.oauth_token_url = config.GetString("relay.oauth_token_url");
  o.oauth_refresh_margin =
      std::chrono::seconds(config.GetInt("relay.oauth_refresh_margin_seconds"));
  o.probe_interval = std::chrono::seconds(config.GetInt("relay.probe_interval_seconds"));
  o.probe_max_interval = std::chrono::seconds(config.GetInt("relay.probe_max_interval_seconds"));
  o.probe_max_interval = std::max(o.probe_max_interval, o.probe_interval);
  return o;
}

namespace {

// The key ring for credentials: configured, or generated once and kept in kv_settings.
Result<auth::SecretBox> CredentialsBox(const RelayOptions& o, auth::IdentityStore& ids, Env& env) {
  if (!o.credentials_key_ring.empty()) return auth::SecretBox::FromKeyRing(o.credentials_key_ring);
  std::string fresh = "relay1:" + auth::Base64UrlEncode(auth::RandomBytes(env, 32));
  ASSIGN_OR_RETURN(std::string ring,
                   ids.PutSettingIfAbsent("relay.credentials_key", fresh, env.NowMicros()));
  return auth::SecretBox::FromKeyRing(ring);
}

}  // namespace

RelayService::Impl::Impl(RelayOptions o, store::Database& d, bus::Bus& b, auth::IdentityStore& ids,
                         Env& e, Authenticator a, MetricsRegistry* m,
                         std::shared_ptr<spdlog::logger> l, auth::SecretBox box)
    : options(std::move(o)),
      db(d),
      bus(b),
      identities(ids),
      env(e),
      authenticate(std::move(a)),
      metrics(m),
      log(std::move(l)),
      accounts(d, e, std::move(box)),
      scheduler(e, options.scheduler, [this](const StatusChange& c) { OnStatusChange(c); }),
      ledger(e, [this](const std::string& key, int64_t since) {
        return accounts.SpentSince(key, since);
      }) {}

Status RelayService::Impl::Init() {
  ASSIGN_OR_RETURN(client, http::HttpClient::Create(http::ClientOptions{
                               .threads = options.client_threads,
                               .ca_file = options.ca_file,
                               .insecure_skip_verify = options.insecure_skip_verify,
                               .max_idle_per_origin = 64,
                               .user_agent = "atrium-relay",
                               // A model request's upstream call stays on its I/O thread.
                               .run_on_server_threads = true}));
  RETURN_IF_ERROR(bus.CreateTopic(options.usage_topic,
                                  bus::TopicOptions{.durability = bus::Durability::kSync,
                                                    .commit_delay = options.usage_commit_delay}));
  RETURN_IF_ERROR(bus.CreateTopic(options.events_topic,
                                  bus::TopicOptions{.durability = bus::Durability::kSync}));
  RETURN_IF_ERROR(ReloadAccounts());
  RETURN_IF_ERROR(ReloadPricing());
  if (metrics != nullptr) {
    usage_publish_failures = &metrics
                                  ->Counter("relay_usage_publish_failures_total",
                                            "Usage records that could not be published on the bus")
                                  .Get();
    requests_total = &metrics->Counter(
        "relay_requests_total", "Relay requests by provider and outcome", {"provider", "outcome"});
    oauth_refreshes =
        &metrics
             ->Counter("relay_oauth_refreshes_total",
                       "OAuth access token refreshes started (one per account at a time)")
             .Get();
    failovers_total = &metrics->Counter("relay_failovers_total",
                                        "Upstream attempts retried on another account", {"reason"});
  }
  return Status::Ok();
}

Status RelayService::Impl::ReloadAccounts() {
  ASSIGN_OR_RETURN(auto all, accounts.All());
  scheduler.SetAccounts(std::move(all));
  return Status::Ok();
}

Status RelayService::Impl::ReloadPricing() {
  ASSIGN_OR_RETURN(PriceTable table, PriceTable::FromJson(BundledPricingJson()));
  if (!options.pricing_file.empty()) {
    ASSIGN_OR_RETURN(std::string text, env.ReadFile(options.pricing_file));
    auto overrides = PriceTable::FromJson(text);
    if (!overrides.ok()) return overrides.status().WithContext("relay.pricing_file");
    table.Merge(*overrides);
  }
  ASSIGN_OR_RETURN(auto stored, accounts.PricingOverrides());
  for (auto& p : stored) table.Set(std::move(p));
  std::lock_guard lock(prices_mu_);
  prices_ = std::make_shared<const PriceTable>(std::move(table));
  return Status::Ok();
}

std::shared_ptr<const PriceTable> RelayService::Impl::prices() const {
  std::lock_guard lock(prices_mu_);
  return prices_;
}

std::shared_ptr<const KeyPolicy> RelayService::Impl::CachedPolicyFor(const auth::Principal& p) {
  static const auto* const kNoLimits = new std::shared_ptr<const KeyPolicy>(
      std::make_shared<const KeyPolicy>());  // sessions (not keys): no key limits
  if (!p.is_api_key()) return *kNoLimits;
  auto now = env.SteadyNow();
  std::lock_guard lock(policy_mu_);
  auto it = policies_.find(p.key_id);
  if (it != policies_.end() && now - it->second.fetched < options.key_cache_ttl) {
    return it->second.policy;
  }
  return nullptr;
}

bool RelayService::Impl::PrepareInline(http::Request& req) {
  if (!authenticate_cached) return false;
  auto principal = authenticate_cached(req);
  // Refused credentials are answered on the pool: the full check may read the database.
  if (!principal || !principal->ok()) return false;
  auto policy = CachedPolicyFor(**principal);
  if (!policy || ledger.NeedsLoad(policy->key_id, policy->budget)) return false;
  req.principal = std::move(**principal);
  return true;
}

Result<std::shared_ptr<const KeyPolicy>> RelayService::Impl::PolicyFor(const auth::Principal& p) {
  if (auto cached = CachedPolicyFor(p)) return cached;
  auto now = env.SteadyNow();
  auto key = identities.FindApiKey(p.workspace_id, p.key_id);
  if (!key.ok()) return Unavailable("the key's limits cannot be read: " + key.status().message());
  KeyPolicy policy;
  policy.key_id = key->id;
  policy.models = key->models;
  policy.rpm = key->rpm;
  policy.tpm = key->tpm;
  policy.budget = KeyBudget{key->budget_daily, key->budget_weekly, key->budget_monthly,
                            key->budget_total, key->max_concurrency};
  ASSIGN_OR_RETURN(auto settings, accounts.GetKeySettings(key->id));
  if (settings) {
    policy.cost_multiplier = settings->cost_multiplier;
    policy.account_group = settings->account_group;
    policy.account_id = settings->account_id;
  }
  auto shared = std::make_shared<const KeyPolicy>(std::move(policy));
  std::lock_guard lock(policy_mu_);
  if (policies_.size() > 100'000) policies_.clear();
  policies_[p.key_id] = CachedPolicy{shared, now};
  return shared;
}

void RelayService::Impl::PublishUsage(const UsageRecord& record) {
  bus::Message m;
  m.key = record.key_id;
  m.headers = {{"account_id", record.account_id}, {"model", record.client_model}};
  m.payload = record.ToJson();
  std::vector<bus::Message> batch;
  batch.push_back(std::move(m));
  auto logger = log;
  Counter* failures = usage_publish_failures;
  bus.PublishBatchAsync(options.usage_topic, std::move(batch),
                        [logger, failures](Result<bus::OffsetRange> r) {
                          if (r.ok()) return;
                          if (failures != nullptr) failures->Inc();
                          if (logger) logger->error("usage record lost: {}", r.status().ToString());
                        });
}

void RelayService::Impl::OnStatusChange(const StatusChange& c) {
  if (Status s = accounts.SetStatus(c.account_id, c.status, c.reason, c.until_micros);
      !s.ok() && log) {
    log->error("relay: account {} status not saved: {}", c.account_id, s.ToString());
  }
  if (log) {
    log->warn("relay: account {} {} -> {} ({})", c.account_id, c.old_status, c.status, c.reason);
  }
  auto account = scheduler.Find(c.account_id);
  if (account == nullptr) return;
  std::string type = c.status == kStatusActive ? "account.recovered" : "account." + c.status;
  PublishEvent(type, account->workspace_id, c.account_id, "",
               "account " + account->name + " (" + account->provider + ") is " + c.status +
                   (c.reason.empty() ? "" : ": " + c.reason));
}

void RelayService::Impl::StartAggregator() {
  if (options.aggregator_name.empty()) return;
  aggregator_ = std::thread([this] {
    SetThreadName("relay-usage");
    AggregatorLoop();
  });
}

void RelayService::Impl::StopAggregator() {
  aggregator_stop_ = true;
  if (aggregator_.joinable()) aggregator_.join();
}

void RelayService::Impl::AggregatorLoop() {
  constexpr size_t kMaxAggregatorBatch = 4096;
  std::unique_ptr<bus::Consumer> consumer;
  // When the previous batch ended: records arriving within the linger of it mean steady traffic.
  auto last_batch = env.SteadyNow() - std::chrono::hours(1);
  while (!aggregator_stop_) {
    if (consumer == nullptr) {
      auto opened = bus.OpenConsumer(
          bus::ConsumerOptions{.name = options.aggregator_name, .topic = options.usage_topic});
      if (!opened.ok()) {
        if (log) log->error("relay aggregator: {}", opened.status().ToString());
        env.SleepFor(std::chrono::seconds(1));
        continue;
      }
      consumer = std::move(*opened);
    }
    // A batch: the first record waits, then what is already there; under steady traffic (the
    // previous batch ended less than a linger ago) also what arrives within the linger, so that
    // a busy relay commits one transaction per batch, and a quiet one counts a lone request at
    // once (up to kMaxAggregatorBatch records: at tens of thousands of requests per second a
    // linger's worth, so that the transaction and the consumer's persisted position, each with
    // its fsync, come a few times per second rather than hundreds).
    std::vector<bus::Delivery> batch;
    auto d = consumer->Next(std::chrono::milliseconds(200));
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kDeadlineExceeded) continue;
      if (d.status().code() == StatusCode::kCancelled) break;
      if (log) log->error("relay aggregator: {}", d.status().ToString());
      consumer.reset();
      continue;
    }
    batch.push_back(std::move(*d));
    const auto first_at = env.SteadyNow();
    const bool steady = first_at - last_batch < options.aggregator_linger;
    const auto linger_end = steady ? first_at + options.aggregator_linger : first_at;
    while (batch.size() < kMaxAggregatorBatch && !aggregator_stop_) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(linger_end - env.SteadyNow());
      auto more = consumer->Next(std::max(left, std::chrono::milliseconds(0)));
      if (!more.ok()) break;
      batch.push_back(std::move(*more));
    }
    std::vector<std::pair<uint64_t, UsageRecord>> records;
    for (const auto& del : batch) {
      if (del.kind != bus::Delivery::Kind::kRecord) continue;
      auto record = UsageRecord::FromJson(del.record->payload);
      if (record.ok()) records.emplace_back(del.record->offset, std::move(*record));
      // Malformed records are skipped (acked below).
    }
    if (Status s = accounts.AggregateBatch(options.aggregator_name, records); !s.ok()) {
      if (log) log->error("relay aggregator: {} records: {}", records.size(), s.ToString());
      env.SleepFor(std::chrono::milliseconds(200));
      // Reopen from the persisted position so that the batch comes again before newer records
      // (the cursor must only move past counted records).
      consumer->Close();
      consumer.reset();
      continue;
    }
    // Highest offsets first: the consumer's persisted position then moves once per batch.
    uint64_t end = aggregated_offset;
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
      if (it->kind != bus::Delivery::Kind::kRecord) continue;
      (void)consumer->Ack(it->record->offset);
      end = std::max<uint64_t>(end, it->record->offset + 1);
    }
    aggregated_offset = end;
    last_batch = env.SteadyNow();
  }
  if (consumer) consumer->Close();
}

http::Response JsonResponse(int status, std::string body) {
  return http::Response::Json(status, std::move(body));
}

Result<auth::Principal> RequireAdmin(RelayService::Impl& s, const http::Request& req) {
  const auto* p = std::any_cast<auth::Principal>(&req.principal);
  if (p == nullptr) return Unauthenticated("authentication required");
  bool admin_key = p->is_api_key() && p->Allows("admin") &&
                   std::find(p->scopes.begin(), p->scopes.end(), "admin") != p->scopes.end();
  if (!admin_key && !p->is_workspace_admin()) {
    return PermissionDenied("relay administration needs a workspace owner or admin");
  }
  return *p;
}

// ---- RelayService ----

RelayService::RelayService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RelayService::~RelayService() { Stop(); }

Result<std::unique_ptr<RelayService>> RelayService::Create(RelayOptions options,
                                                           store::Database& db, bus::Bus& bus,
                                                           auth::IdentityStore& identities,
                                                           Env& env, Authenticator authenticator,
                                                           MetricsRegistry* metrics,
                                                           std::shared_ptr<spdlog::logger> logger) {
  if (options.max_attempts < 1) return InvalidArgument("relay.max_attempts must be at least 1");
  ASSIGN_OR_RETURN(auth::SecretBox box, CredentialsBox(options, identities, env));
  auto impl =
      std::make_unique<Impl>(std::move(options), db, bus, identities, env, std::move(authenticator),
                             metrics, std::move(logger), std::move(box));
  RETURN_IF_ERROR(impl->Init());
  impl->StartAggregator();
  impl->StartWebhooks();
  impl->StartMaintenance();
  return std::unique_ptr<RelayService>(new RelayService(std::move(impl)));
}

void RelayService::SetEmbeddingProvider(infer::EmbeddingProvider* provider) {
  impl_->embeddings = provider;
}

void RelayService::SetCachedAuthenticator(CachedAuthenticator authenticator) {
  impl_->authenticate_cached = std::move(authenticator);
}

Status RelayService::AddRoutes(http::Router& router) {
  RETURN_IF_ERROR(impl_->AddProxyRoutes(router));
  RETURN_IF_ERROR(impl_->AddWebhookRoutes(router));
  return impl_->AddAdminRoutes(router);
}

void RelayService::Stop() {
  if (impl_->stopping.exchange(true)) return;
  impl_->StopMaintenance();
  impl_->StopAggregator();
  impl_->StopWebhooks();
  impl_->client.reset();  // cancels upstream requests in flight; their callbacks finish them
}

Scheduler& RelayService::scheduler() { return impl_->scheduler; }

AggregatorState RelayService::aggregator_state() {
  AggregatorState s;
  s.applied_offset = impl_->aggregated_offset;
  auto stats = impl_->bus.GetTopicStats(impl_->options.usage_topic);
  if (stats.ok()) s.topic_end = stats->next_offset;
  return s;
}

}  // namespace atrium::relay
