#include "server_main.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "atrium/auth/auth_service.h"
#include "atrium/auth/bus_audit.h"
#include "atrium/auth/redis_rate_limiter.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/bus/http_api.h"
#include "atrium/bus/nats_bus.h"
#include "atrium/chat/chat_service.h"
#include "atrium/core/env.h"
#include "atrium/core/health.h"
#include "atrium/core/log.h"
#include "atrium/core/metrics.h"
#include "atrium/core/version.h"
#include "atrium/embed/embed_service.h"
#include "atrium/embed/redis_tier.h"
#include "atrium/http/server.h"
#include "atrium/http/server_config.h"
#include "atrium/http/static_files.h"
#include "atrium/relay/relay_service.h"
#include "atrium/store/database.h"
#include "atrium/store/fs_blob_store.h"
#include "atrium/store/migrations.h"
#include "atrium/store/redis_client.h"
#include "atrium/track/track_service.h"

namespace atrium::app {
namespace {

#ifdef ATRIUM_HAVE_JEMALLOC
constexpr char kAllocator[] = "jemalloc";
#else
constexpr char kAllocator[] = "libc";
#endif

// Raises the soft RLIMIT_NOFILE to the hard limit (every SSE stream holds a socket; the common
// default soft limit of 1024 would cap the connections far below the 10k the chat service aims
// at). Logs the limit in force.
void RaiseFileLimit(spdlog::logger& log) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    log.warn("getrlimit(RLIMIT_NOFILE) failed; open file limit unknown");
    return;
  }
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      log.warn("could not raise the open file limit from {} to {}", before, lim.rlim_max);
      return;
    }
  }
  log.info("open file limit {} (soft, was {}; hard {})", lim.rlim_cur, before, lim.rlim_max);
}

std::vector<std::string> AllServices() {
  return std::vector<std::string>(std::begin(kServiceNames), std::end(kServiceNames));
}

std::string StoreUrl(const Config& config) {
  const std::string& url = config.GetString("store.url");
  if (!url.empty()) return url;
  return JoinPath(config.GetString("data_dir"), "atrium.db");
}

// Every migration the binary knows (the composition root collects them from the modules).
Result<store::MigrationSet> AllMigrations() {
  store::MigrationSet set;
  RETURN_IF_ERROR(set.Add(store::FoundationMigrations()));
  RETURN_IF_ERROR(set.Add(auth::AuthMigrations()));
  RETURN_IF_ERROR(set.Add(chat::ChatMigrations()));
  RETURN_IF_ERROR(set.Add(relay::RelayMigrations()));
  RETURN_IF_ERROR(set.Add(track::TrackMigrations()));
  return set;
}

// Creates the data directory with owner-only permissions (and tightens an existing one).
Status PrepareDataDir(Env& env, const std::string& dir) {
  RETURN_IF_ERROR(env.CreateDirs(dir, 0700));
  return env.SetPermissions(dir, 0700);
}

Result<std::unique_ptr<store::Database>> OpenStore(const Config& config) {
  store::DatabaseOptions opts;
  opts.pool_size = static_cast<int>(config.GetInt("store.pool_size"));
  auto db = store::OpenDatabase(StoreUrl(config), opts);
  if (!db.ok()) return db.status().WithContext("opening the database (store.url)");
  return db;
}

// /health, /health/live, /health/ready, /info, /metrics.
// `extra_info`: members other modules add to /info (TEI's model description from embed).
Status AddSystemRoutes(http::Router& router, std::shared_ptr<const Config> config,
                       HealthRegistry& health, MetricsRegistry& metrics, int64_t started_micros,
                       std::string extra_info) {
  using http::Request;
  using http::Response;
  using http::SyncHandler;
  RETURN_IF_ERROR(
      router.Add("GET", "/health/live", SyncHandler([](Request&) { return http::OkJson(); })));
  // Both answer 503 when a required component is down; /health is for people, /health/ready
  // for load balancers.
  auto health_handler = SyncHandler([&health](Request&) {
    auto results = health.RunAll();
    return Response::Json(HealthRegistry::Ready(results) ? 200 : 503,
                          HealthRegistry::ToJson(results));
  });
  http::RouteOptions blocking{.blocking = true};
  RETURN_IF_ERROR(router.Add("GET", "/health", health_handler, blocking));
  RETURN_IF_ERROR(router.Add("GET", "/health/ready", health_handler, blocking));
  RETURN_IF_ERROR(
      router.Add("GET", "/info", SyncHandler([config, started_micros, extra_info](Request&) {
                   std::string services;
                   for (const auto& s : config->GetStringList("services")) {
                     services += (services.empty() ? "\"" : ",\"") + s + "\"";
                   }
                   int64_t uptime = (Env::Default().NowMicros() - started_micros) / 1000000;
                   return Response::Json(
                       200, fmt::format(R"({{"name":"atrium","version":"{}","git_revision":"{}",)"
                                        R"("build_type":"{}","allocator":"{}","services":[{}],)"
                                        R"("uptime_seconds":{}{}}})",
                                        kVersion, kGitRevision, kBuildType, kAllocator, services,
                                        uptime, extra_info.empty() ? "" : "," + extra_info));
                 })));
  if (config->GetBool("http.echo_route")) {
    // Echoes a JSON body: for load-balancer checks and bench/http.
    RETURN_IF_ERROR(router.Add("POST", "/echo", SyncHandler([](Request& req) {
                                 return Response::Json(200, std::move(req.body));
                               })));
  }
  RETURN_IF_ERROR(router.Add("GET", "/metrics", SyncHandler([&metrics](Request&) {
                               return Response::Text(200, metrics.ExpositionText(),
                                                     kPrometheusTextContentType);
                             })));
  return Status::Ok();
}

bool ServiceEnabled(const Config& config, std::string_view service) {
  const auto& services = config.GetStringList("services");
  return std::find(services.begin(), services.end(), service) != services.end();
}

// Opens the bus selected by bus.backend: the one place that knows the backends (embedded WALs,
// or NATS JetStream for scale-out).
Result<std::unique_ptr<bus::Bus>> OpenBus(const Config& config, Env& env,
                                          MetricsRegistry& metrics) {
  const std::string& backend = config.GetString("bus.backend");
  if (backend == "embedded") {
    std::string dir = JoinPath(config.GetString("data_dir"), "bus");
    RETURN_IF_ERROR(env.CreateDirs(dir, 0700));
    auto opened = bus::OpenEmbeddedBus(
        env, {.data_dir = dir, .repair = config.GetBool("bus.repair"), .metrics = &metrics});
    if (!opened.ok()) return opened.status().WithContext("opening the bus in " + dir);
    return opened;
  }
  if (backend == "nats") {
    const std::string& url = config.GetString("bus.nats_url");
    if (url.empty()) return InvalidArgument("bus.nats_url: required when bus.backend = \"nats\"");
    auto opened = bus::OpenNatsBus({.url = url, .metrics = &metrics});
    if (!opened.ok()) return opened.status().WithContext("opening the NATS bus");
    return opened;
  }
  return InvalidArgument("bus.backend: unknown backend '" + backend + "'");
}

// Healthy while every topic is (its WAL, or the NATS server answering).
Status BusHealth(bus::Bus& b) {
  for (const auto& name : b.ListTopics()) {
    auto stats = b.GetTopicStats(name);
    if (!stats.ok()) {
      if (stats.status().code() == StatusCode::kUnavailable) {
        return stats.status().WithContext("topic " + name);
      }
      continue;  // deleted meanwhile
    }
    if (!stats->health.ok()) return stats->health.WithContext("topic " + name);
  }
  return Status::Ok();
}

// The auth module's options; ATRIUM_MASTER_KEY stands in for an empty auth.master_key.
Result<auth::AuthOptions> AuthOptions(const Config& config) {
  const char* master = std::getenv("ATRIUM_MASTER_KEY");
  return auth::AuthOptionsFromConfig(config, master == nullptr ? "" : master);
}

// Opens and migrates the database and builds the AuthService on it (admin commands).
Status OpenAuth(const Config& config, std::unique_ptr<store::Database>& db,
                std::unique_ptr<auth::AuthService>& service) {
  Env& env = Env::Default();
  RETURN_IF_ERROR(PrepareDataDir(env, config.GetString("data_dir")));
  ASSIGN_OR_RETURN(db, OpenStore(config));
  ASSIGN_OR_RETURN(auto migrations, AllMigrations());
  store::Migrator migrator(*db, migrations, env);
  RETURN_IF_ERROR(migrator.Up().status());
  ASSIGN_OR_RETURN(auto options, AuthOptions(config));
  ASSIGN_OR_RETURN(service, auth::AuthService::Create(std::move(options), *db, env));
  return Status::Ok();
}

}  // namespace

ConfigSchema BuildSchema() {
  ConfigSchema schema;
  schema.DefineString("data_dir", "./atrium-data",
                      "Data directory: SQLite file, blobs, bus WAL, model cache",
                      {.non_empty = true});
  schema.DefineStringList("services", AllServices(), "Services to run", {.one_of = AllServices()});
  schema.DefineSecret("store.url", "",
                      "Database URL: a SQLite path or sqlite:// URL, or postgres://... "
                      "(empty = <data_dir>/atrium.db)");
  schema.DefineSecret(
      "redis.url", "",
      "Redis for scale-out shared state (rate limits): redis://[:password@]host:port[/db]; "
      "empty = in-process");
  schema.DefineInt("store.pool_size", 4, "Database connections (readers for SQLite)",
                   {.min = 1, .max = 256});
  schema.DefineString("web.root", "web/dist", "Directory of the built web UI served at /");
  schema.DefineBool("http.echo_route", false,
                    "Serve POST /echo, which returns the request body (benchmarks, LB checks)");
  schema.DefineString("bus.backend", "embedded",
                      "Bus implementation: embedded (WALs under <data_dir>/bus) or nats "
                      "(JetStream at bus.nats_url, for several nodes)",
                      {.one_of = {"embedded", "nats"}});
  schema.DefineSecret("bus.nats_url", "",
                      "NATS server with JetStream for bus.backend = nats, e.g. "
                      "nats://127.0.0.1:4222");
  schema.DefineBool("bus.repair", false,
                    "Open damaged bus WALs by cutting them at the first bad record (data loss!) "
                    "instead of refusing to start");
  http::DefineHttpConfig(schema);
  DefineLogConfig(schema);
  auth::DefineAuthConfig(schema);
  embed::DefineEmbedConfig(schema);
  relay::DefineRelayConfig(schema);
  track::DefineTrackConfig(schema);
  chat::DefineChatConfig(schema);
  return schema;
}

int Serve(std::shared_ptr<const Config> config) {
  Env& env = Env::Default();
  int64_t started = env.NowMicros();
  auto log_options = LogOptionsFromConfig(*config);
  if (!log_options.ok()) {
    std::fprintf(stderr, "atrium: %s\n", log_options.status().message().c_str());
    return 1;
  }
  auto logging_or = Logging::Open(*log_options);
  if (!logging_or.ok()) {
    std::fprintf(stderr, "atrium: %s\n", logging_or.status().message().c_str());
    return 1;
  }
  std::unique_ptr<Logging> logging = std::move(*logging_or);
  auto log = logging->Get("atrium");
  auto fail = [&log](const Status& s) {
    log->error("{}", s.message().empty() ? s.ToString() : s.message());
    return 1;
  };
  RaiseFileLimit(*log);

  const std::string& data_dir = config->GetString("data_dir");
  if (Status s = PrepareDataDir(env, data_dir); !s.ok()) return fail(s.WithContext("data_dir"));

  auto db_or = OpenStore(*config);
  if (!db_or.ok()) return fail(db_or.status());
  std::unique_ptr<store::Database> db = std::move(*db_or);
  auto migrations = AllMigrations();
  if (!migrations.ok()) return fail(migrations.status());
  store::Migrator migrator(*db, *migrations, env);
  auto applied = migrator.Up();
  if (!applied.ok()) return fail(applied.status().WithContext("applying migrations"));
  if (*applied > 0) log->info("applied {} database migration(s)", *applied);

  auto blobs_or = store::FsBlobStore::Create(env, JoinPath(data_dir, "blobs"));
  if (!blobs_or.ok()) return fail(blobs_or.status().WithContext("blob store"));
  std::unique_ptr<store::FsBlobStore> blobs = std::move(*blobs_or);

  MetricsRegistry metrics;
  metrics.Gauge("atrium_build_info", "Build information", {"version", "revision"})
      .WithLabels({kVersion, kGitRevision})
      .Set(1);
  metrics.Gauge("process_start_time_seconds", "Start time of the process (Unix seconds)")
      .Get()
      .Set(static_cast<double>(started) / 1e6);

  HealthRegistry health;
  health.Register("database", [&db] { return db->Ping(); });
  std::string blob_root = JoinPath(data_dir, "blobs");
  health.Register("blob_store", [&env, blob_root] {
    return env.FileExists(blob_root) ? Status::Ok() : Unavailable(blob_root + " is missing");
  });

  // The bus (service "bus"). Closed after the HTTP server stopped: see the end of Serve.
  std::unique_ptr<bus::Bus> message_bus;
  std::unique_ptr<bus::BusHttpApi> bus_api;
  if (ServiceEnabled(*config, "bus")) {
    auto bus_or = OpenBus(*config, env, metrics);
    if (!bus_or.ok()) return fail(bus_or.status());
    message_bus = std::move(*bus_or);
    bus_api =
        std::make_unique<bus::BusHttpApi>(*message_bus, bus::BusHttpOptions{.metrics = &metrics});
    health.Register("bus", [b = message_bus.get()] { return BusHealth(*b); });
  }
  // Chat, relay and track need the bus even when the "bus" service (its HTTP API) is off: the
  // first of them opens it.
  auto need_bus = [&](const char* service) -> Status {
    if (message_bus) return Status::Ok();
    auto bus_or = OpenBus(*config, env, metrics);
    if (!bus_or.ok()) return bus_or.status().WithContext(std::string(service) + " needs the bus");
    message_bus = std::move(*bus_or);
    health.Register("bus", [b = message_bus.get()] { return BusHealth(*b); });
    return Status::Ok();
  };

  // Scale-out: shared rate-limit buckets in Redis when redis.url is set.
  std::shared_ptr<auth::RateLimiter> limiter;
  std::shared_ptr<store::RedisClient> redis;
  if (const std::string& redis_url = config->GetString("redis.url"); !redis_url.empty()) {
    auto redis_or = store::RedisClient::Connect({.url = redis_url});
    if (!redis_or.ok()) return fail(redis_or.status().WithContext("redis.url"));
    redis = std::move(*redis_or);
    health.Register("redis", [redis] { return redis->Ping(); });
    limiter = std::make_shared<auth::RedisRateLimiter>(redis);
  }
  auto auth_options = AuthOptions(*config);
  if (!auth_options.ok()) return fail(auth_options.status().WithContext("auth"));
  // With the bus, audit records go through it (one audit log for the platform) and the
  // indexer consumer writes them into the SQL audit log.
  std::shared_ptr<auth::AuditSink> audit_sink;
  if (message_bus) {
    auto sink = auth::BusAuditSink::Create(*message_bus);
    if (!sink.ok()) return fail(sink.status());
    audit_sink = std::move(*sink);
  }
  auto auth_or = auth::AuthService::Create(std::move(*auth_options), *db, env, audit_sink,
                                           std::move(limiter), logging->Get("auth"), redis);
  if (!auth_or.ok()) return fail(auth_or.status().WithContext("auth"));
  std::unique_ptr<auth::AuthService> auth = std::move(*auth_or);
  if (const std::string& email = config->GetString("bootstrap_admin_email"); !email.empty()) {
    auto created = auth->BootstrapAdmin(email, config->GetString("bootstrap_admin_password"));
    if (!created.ok()) return fail(created.status().WithContext("bootstrap admin"));
    if (*created) log->info("created the bootstrap platform admin");
  }

  std::unique_ptr<auth::AuditIndexer> audit_indexer;
  if (message_bus) {
    auto indexer = auth::AuditIndexer::Create(*message_bus, *auth->sql_audit());
    if (!indexer.ok()) return fail(indexer.status().WithContext("audit indexer"));
    audit_indexer = std::move(*indexer);
    audit_indexer->Start();
  }

  // Embeddings (service "embed"): the models of embed.models, loaded (or downloaded) now.
  std::unique_ptr<embed::EmbedService> embeddings;
  if (ServiceEnabled(*config, "embed")) {
    auto embed_options = embed::EmbedOptionsFromConfig(*config);
    if (!embed_options.ok()) return fail(embed_options.status());
    if (embed_options->use_redis) {
      if (!redis) return fail(InvalidArgument("embed.cache.redis: needs redis.url"));
      embed_options->second_tier = std::make_shared<embed::RedisTier>(
          redis, embed_options->redis_ttl, "atrium:embed:", &metrics);
    }
    if (embed_options->models.empty()) {
      log->info("embed: no models configured (embed.models); the embedding APIs answer 404");
    }
    auto service =
        embed::EmbedService::Create(std::move(*embed_options), &metrics, logging->Get("embed"));
    if (!service.ok()) return fail(service.status());
    embeddings = std::move(*service);
  }

  // ---- chat (service "chat"): needs the bus for its events, opened here when "bus" is off ----
  std::unique_ptr<chat::ChatService> chat_service;
  if (ServiceEnabled(*config, "chat")) {
    if (Status s = need_bus("chat"); !s.ok()) return fail(s);
    auth::AuthService* authenticator = auth.get();
    chat::ChatOptions chat_options = chat::ChatOptionsFromConfig(*config);
    chat_options.blobs = blobs.get();  // attachments share the content-addressed blob store
    auto service = chat::ChatService::Create(
        chat_options, *db, *message_bus, env,
        [authenticator](const http::Request& req) { return authenticator->Authenticate(req); },
        &metrics, logging->Get("chat"));
    if (!service.ok()) return fail(service.status().WithContext("chat"));
    chat_service = std::move(*service);
    chat_service->RegisterHealth(health);
  }
  // ---- end chat ----

  // ---- relay (service "relay"): LLM API gateway; usage records go through the bus ----
  std::unique_ptr<relay::RelayService> relay_service;
  if (ServiceEnabled(*config, "relay")) {
    if (Status s = need_bus("relay"); !s.ok()) return fail(s);
    auto relay_options = relay::RelayOptionsFromConfig(*config);
    if (!relay_options.ok()) return fail(relay_options.status().WithContext("relay"));
    // Without relay.credentials_key the auth master key ring seals upstream credentials (else
    // the relay generates a key kept in the database).
    if (relay_options->credentials_key_ring.empty()) {
      if (auto ring = AuthOptions(*config); ring.ok()) {
        relay_options->credentials_key_ring = ring->master_key;
      }
    }
    auth::AuthService* authenticator = auth.get();
    auto service = relay::RelayService::Create(
        std::move(*relay_options), *db, *message_bus, auth->store(), env,
        [authenticator](const http::Request& req) { return authenticator->Authenticate(req); },
        &metrics, logging->Get("relay"));
    if (!service.ok()) return fail(service.status().WithContext("relay"));
    relay_service = std::move(*service);
    relay_service->SetCachedAuthenticator([authenticator](const http::Request& req) {
      return authenticator->AuthenticateCached(req);
    });
    // `local` relay accounts serve /v1/embeddings from the embed engine when it runs.
    if (embeddings) relay_service->SetEmbeddingProvider(embeddings.get());
  }
  // ---- end relay ----

  // ---- track (service "track"): experiment tracking on the database and the blob store ----
  std::unique_ptr<track::TrackService> track_service;
  if (ServiceEnabled(*config, "track")) {
    // Live updates go through the bus (opened here when "bus" is off), so every node's SSE
    // viewers see what any node ingested.
    if (Status s = need_bus("track"); !s.ok()) return fail(s);
    auth::AuditSink* track_audit = audit_sink ? audit_sink.get() : auth->sql_audit();
    auto service =
        track::TrackService::Create(track::TrackOptionsFromConfig(*config), *db, *blobs, env,
                                    track_audit, message_bus.get(), logging->Get("track"));
    if (!service.ok()) return fail(service.status().WithContext("track"));
    track_service = std::move(*service);
    track_service->Start();
  }
  // ---- end track ----

  http::Router router;
  std::string extra_info = embeddings ? embeddings->InfoJsonMembers() : "";
  if (Status s = AddSystemRoutes(router, config, health, metrics, started, extra_info); !s.ok()) {
    return fail(s);
  }
  if (embeddings) {
    // Small requests whose key is cached skip the blocking pool; not with Redis rate limits,
    // whose check is a network round trip in the middleware chain.
    if (!redis) {
      auth::AuthService* authenticator = auth.get();
      embeddings->SetInlineAdmission([authenticator](const http::Request& req) {
        auto principal = authenticator->AuthenticateCached(req);
        return principal.has_value() && principal->ok();
      });
    }
    // With the relay enabled, the relay owns POST /v1/embeddings (same keys, quotas and usage as
    // remote providers; `local` accounts reach this engine through EmbeddingProvider).
    if (Status s = embeddings->AddRoutes(router, /*openai_route=*/relay_service == nullptr);
        !s.ok()) {
      return fail(s);
    }
  }
  if (Status s = auth->AddRoutes(router); !s.ok()) return fail(s);
  if (chat_service) {
    if (Status s = chat_service->AddRoutes(router); !s.ok()) return fail(s);
  }
  if (track_service) {
    if (Status s = track_service->AddRoutes(router); !s.ok()) return fail(s);
  }
  if (relay_service) {
    if (Status s = relay_service->AddRoutes(router); !s.ok()) return fail(s);
  }
  if (bus_api) {
    if (Status s = bus_api->AddRoutes(router); !s.ok()) return fail(s);
  }
  const std::string& web_root = config->GetString("web.root");
  if (env.FileExists(JoinPath(web_root, "index.html"))) {
    auto files = std::make_shared<http::StaticFiles>(http::StaticOptions{.root = web_root});
    if (Status s = http::StaticFiles::Mount(router, files, "/"); !s.ok()) return fail(s);
  } else {
    log->info("web UI not found in {} (web.root); serving the APIs only", web_root);
  }

  http::Server server(http::ServerOptionsFromConfig(*config), std::move(router),
                      logging->Get("http"), &metrics);
  auto cors = http::CorsOptionsFromConfig(*config);
  if (!cors.allowed_origins.empty()) server.Use(std::make_shared<http::CorsMiddleware>(cors));
  server.Use(auth->auth_middleware());
  server.Use(auth->rate_limit_middleware());
  if (Status s = server.Start(); !s.ok()) return fail(s);
  server.ShutdownOnSignals();

  std::string services;
  for (const auto& s : config->GetStringList("services"))
    services += (services.empty() ? "" : ",") + s;
  log->info("atrium {} serving [{}] with data in {}", kVersion, services, data_dir);
  std::printf("listening on http://%s:%u\n", server.host().c_str(), server.port());
  std::fflush(stdout);

  server.Wait();
  // Order matters: no request may reach the bus once it is closing.
  server.Shutdown();
  if (audit_indexer) audit_indexer->Stop();
  chat_service.reset();   // ends the chat streams, the hub and the search indexer
  relay_service.reset();  // stops the usage aggregator, cancels upstream calls
  track_service.reset();  // stops the crash check and the live-update reader
  embeddings.reset();     // stops the encoder workers (no request can reach them any more)
  bus_api.reset();        // ends the SSE reader threads
  message_bus.reset();    // flushes and closes the WALs
  log->info("shut down cleanly");
  logging->Flush();
  return 0;
}

int Migrate(const Config& config, bool apply) {
  Env& env = Env::Default();
  if (Status s = PrepareDataDir(env, config.GetString("data_dir")); !s.ok()) {
    std::fprintf(stderr, "atrium: data_dir: %s\n", s.message().c_str());
    return 1;
  }
  auto db = OpenStore(config);
  if (!db.ok()) {
    std::fprintf(stderr, "atrium: %s\n", db.status().message().c_str());
    return 1;
  }
  auto migrations = AllMigrations();
  if (!migrations.ok()) {
    std::fprintf(stderr, "atrium: %s\n", migrations.status().message().c_str());
    return 1;
  }
  store::Migrator migrator(**db, *migrations, env);
  if (apply) {
    auto n = migrator.Up();
    if (!n.ok()) {
      std::fprintf(stderr, "atrium: %s\n", n.status().message().c_str());
      return 1;
    }
    std::printf("applied %d migration(s)\n", *n);
  }
  auto state = migrator.GetStatus();
  if (!state.ok()) {
    std::fprintf(stderr, "atrium: %s\n", state.status().message().c_str());
    return 1;
  }
  std::printf("%s", state->ToString().c_str());
  return 0;
}

int AdminCreateUser(const Config& config, const std::string& email, const std::string& password,
                    const std::string& name, bool admin) {
  std::unique_ptr<store::Database> db;
  std::unique_ptr<auth::AuthService> service;
  if (Status s = OpenAuth(config, db, service); !s.ok()) {
    std::fprintf(stderr, "atrium: %s\n", s.message().c_str());
    return 1;
  }
  auto user = service->CreateUser(email, password, name, admin);
  if (!user.ok()) {
    std::fprintf(stderr, "atrium: %s\n", user.status().message().c_str());
    return 1;
  }
  std::printf("created %s%s (%s)\n", admin ? "platform admin " : "user ", user->email.c_str(),
              user->id.c_str());
  return 0;
}

int AdminRotateMasterKey(const Config& config) {
  std::unique_ptr<store::Database> db;
  std::unique_ptr<auth::AuthService> service;
  if (Status s = OpenAuth(config, db, service); !s.ok()) {
    std::fprintf(stderr, "atrium: %s\n", s.message().c_str());
    return 1;
  }
  auto n = service->RotateMasterKey();
  if (!n.ok()) {
    std::fprintf(stderr, "atrium: %s\n", n.status().message().c_str());
    return 1;
  }
  std::printf("re-encrypted %d secret(s) under the current master key\n", *n);
  return 0;
}

}  // namespace atrium::app
