// The relay's HTTP test fixture, shared by relay_http_test and relay_bedrock_test: an in-process
// Atrium server (auth + relay, embedded bus) on SQLite or (fixture `pg`) PostgreSQL, an owner
// with a relay key, the usage topic subscribed, and request helpers.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include <boost/json.hpp>

#include "atrium/auth/auth_service.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "atrium/infer/embedding_provider.h"
#include "atrium/relay/relay_service.h"
#include "atrium/relay/usage.h"

namespace atrium::relay::testing {

namespace json = boost::json;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  http::Headers headers;
  std::string raw;
  json::value body;
  std::string Str(std::string_view f) const {
    if (!body.is_object() || !body.as_object().contains(f)) return "";
    const auto& v = body.at(f);
    return v.is_string() ? std::string(v.as_string()) : json::serialize(v);
  }
};

class FakeEmbeddings : public infer::EmbeddingProvider {
 public:
  void Embed(infer::EmbeddingRequest request,
             std::function<void(Result<infer::EmbeddingResponse>)> done) override {
    infer::EmbeddingResponse r;
    r.model = "mini-embed";
    for (size_t i = 0; i < request.texts.size(); ++i) {
      r.vectors.push_back({0.5f, -0.25f, static_cast<float>(i)});
      r.prompt_tokens += request.texts[i].size();
    }
    done(std::move(r));
  }
  std::vector<std::string> ModelNames() const override { return {"mini-embed"}; }
};

enum class Backend { kSqlite, kPostgres };

// The database of a test: a fresh SQLite file, or (fixture `pg`) a PostgreSQL database of this
// process whose schema is reset per test (the pattern of libs/auth/test/test_db.h).
inline std::unique_ptr<store::Database> OpenTestDatabase(Backend backend, const std::string& dir) {
  std::string url = "sqlite://" + dir + "/relay.db";
  if (backend == Backend::kPostgres) {
    std::string server = atrium::testing::FixtureUrl("pg", "ATRIUM_TEST_PG_URL");
    if (server.empty()) return nullptr;
    std::string name = "relay_http_test_" + std::to_string(::getpid());
    static std::string created;  // test-only memo: one database per process
    if (created != name) {
      auto admin = store::OpenDatabase(server, {.pool_size = 1});
      if (!admin.ok()) return nullptr;
      (void)(*admin)->ExecScript("DROP DATABASE IF EXISTS " + name);
      if (!(*admin)->ExecScript("CREATE DATABASE " + name).ok()) return nullptr;
      created = name;
    }
    size_t scheme = server.find("://");
    size_t slash = server.find('/', scheme + 3);
    size_t query = server.find('?');
    url = server.substr(0, slash == std::string::npos ? query : slash) + "/" + name +
          (query == std::string::npos ? "" : server.substr(query));
  }
  auto db = store::OpenDatabase(url, {.pool_size = 8});
  if (!db.ok()) return nullptr;
  if (backend == Backend::kPostgres &&
      !(*db)->ExecScript("DROP SCHEMA public CASCADE; CREATE SCHEMA public").ok()) {
    return nullptr;
  }
  return std::move(*db);
}

class RelayHttpTest : public ::testing::TestWithParam<Backend> {
 protected:
  virtual RelayOptions Options() {
    RelayOptions o;
    o.read_timeout = 1500ms;
    o.connect_timeout = 1000ms;
    o.max_attempts = 3;
    o.credentials_key_ring = "k1:" + std::string(43, 'A');
    o.scheduler.overloaded_for = std::chrono::seconds(300);
    o.webhook_backoff = 50ms;
    o.webhook_max_attempts = 4;
    return o;
  }

  void SetUp() override {
    db_ = OpenTestDatabase(GetParam(), tmp_.path());
    if (db_ == nullptr) {
      if (GetParam() == Backend::kPostgres) {
        GTEST_SKIP() << "PostgreSQL not configured (run through ctest, fixture pg)";
      }
      FAIL() << "cannot open the SQLite database";
    }
    store::MigrationSet set;
    ASSERT_TRUE(set.Add(store::FoundationMigrations()).ok());
    ASSERT_TRUE(set.Add(auth::AuthMigrations()).ok());
    ASSERT_TRUE(set.Add(RelayMigrations()).ok());
    store::Migrator migrator(*db_, set, Env::Default());
    ASSERT_TRUE(migrator.Up().ok());
    auto b = bus::OpenEmbeddedBus(Env::Default(), {.data_dir = tmp_.path() + "/bus"});
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bus_ = std::move(*b);
    auth::AuthOptions ao;
    ao.jwt_secret = std::string(40, 's');
    ao.password_cost = auth::PasswordCost::kTest;
    ao.revocation_sync = 0ms;
    ao.rate_limits = {{"auth", *auth::ParseRateLimit("100000/1m")},
                      {"login", *auth::ParseRateLimit("100000/1m")},
                      {"api", *auth::ParseRateLimit("100000/1m")}};
    auto a = auth::AuthService::Create(ao, *db_, Env::Default());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    auth_ = std::move(*a);
    auth::AuthService* authp = auth_.get();
    auto r = RelayService::Create(
        Options(), *db_, *bus_, auth_->store(), Env::Default(),
        [authp](const http::Request& req) { return authp->Authenticate(req); }, &metrics_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    relay_ = std::move(*r);
    relay_->SetEmbeddingProvider(&embeddings_);
    // As in atrium serve: requests whose key and policy are cached stay on the I/O thread.
    relay_->SetCachedAuthenticator(
        [authp](const http::Request& req) { return authp->AuthenticateCached(req); });
    http::Router router;
    ASSERT_TRUE(auth_->AddRoutes(router).ok());
    ASSERT_TRUE(relay_->AddRoutes(router).ok());
    server_ = std::make_unique<http::Server>(
        http::ServerOptions{.port = 0, .io_threads = 2, .blocking_threads = 16}, std::move(router),
        nullptr, &metrics_);
    server_->Use(auth_->auth_middleware());
    server_->Use(auth_->rate_limit_middleware());
    ASSERT_TRUE(server_->Start().ok());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    usage_sub_ =
        *bus_->Subscribe({.pattern = "relay.usage", .start = bus::StartPosition::Earliest()});

    Reply reg = Send("POST", "/api/v1/auth/register",
                     R"({"email":"owner@example.com","password":"password-123","name":"O"})");
    ASSERT_EQ(reg.status, 201) << reg.raw;
    admin_token_ = std::string(reg.body.at("access_token").as_string());
    key_ = CreateKey(R"({"name":"k","scopes":["relay"]})");
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    if (relay_) relay_->Stop();
    usage_sub_.reset();
    relay_.reset();
    auth_.reset();
    bus_.reset();
  }

  Reply Send(const std::string& method, const std::string& path, const std::string& body = "",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::ClientRequest req;
    req.method = method;
    req.url = base_ + path;
    req.body = body;
    req.read_timeout = 20s;
    if (!body.empty()) req.headers.Set("content-type", "application/json");
    for (auto& [k, v] : headers) req.headers.Set(k, v);
    auto r = client_.SendSync(std::move(req));
    Reply out;
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return out;
    out.status = r->status;
    out.headers = r->headers;
    out.raw = r->body;
    boost::system::error_code ec;
    out.body = json::parse(r->body, ec);
    return out;
  }
  Reply Admin(const std::string& method, const std::string& path, const std::string& body = "") {
    return Send(method, path, body, {{"authorization", "Bearer " + admin_token_}});
  }
  std::string CreateKey(const std::string& body) {
    Reply k = Admin("POST", "/api/v1/keys", body);
    EXPECT_EQ(k.status, 201) << k.raw;
    return k.Str("key");
  }
  std::string Account(const std::string& name, const std::string& provider,
                      const std::string& base_url, const std::string& extra = "") {
    std::string body = R"({"name":")" + name + R"(","provider":")" + provider +
                       R"(","base_url":")" + base_url +
                       R"(","credentials":{"api_key":"sk-upstream-)" + name + "\"}" + extra + "}";
    Reply r = Admin("POST", "/api/v1/relay/accounts", body);
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.Str("id");
  }
  Reply Messages(const std::string& body, const std::string& key = "") {
    return Send("POST", "/v1/messages", body,
                {{"x-api-key", key.empty() ? key_ : key}, {"anthropic-version", "2023-06-01"}});
  }
  Reply Chat(const std::string& body) {
    return Send("POST", "/v1/chat/completions", body, {{"authorization", "Bearer " + key_}});
  }
  std::vector<UsageRecord> WaitUsage(size_t n, std::chrono::milliseconds timeout = 10s) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (usage_.size() < n && std::chrono::steady_clock::now() < end) {
      auto d = usage_sub_->Next(100ms);
      if (d.ok() && d->kind == bus::Delivery::Kind::kRecord) {
        auto r = UsageRecord::FromJson(d->record->payload);
        if (r.ok()) usage_.push_back(*r);
      }
    }
    return usage_;
  }
  void WaitAggregated() {
    for (int i = 0; i < 300; ++i) {
      auto s = relay_->aggregator_state();
      if (s.applied_offset >= s.topic_end) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "aggregator did not catch up";
  }
  // A session of the owner of another workspace.
  std::string OtherWorkspaceToken() {
    Reply reg = Send("POST", "/api/v1/auth/register",
                     R"({"email":"other@example.com","password":"password-123","name":"X"})");
    EXPECT_EQ(reg.status, 201) << reg.raw;
    return reg.Str("access_token");
  }
  std::string AccountStatus(const std::string& id) {
    Reply r = Admin("GET", "/api/v1/relay/accounts/" + id);
    return r.Str("status");
  }

  atrium::testing::TempDir tmp_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<bus::Bus> bus_;
  MetricsRegistry metrics_;
  FakeEmbeddings embeddings_;
  std::unique_ptr<auth::AuthService> auth_;
  std::unique_ptr<RelayService> relay_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<bus::Subscription> usage_sub_;
  std::vector<UsageRecord> usage_;
  http::HttpClient client_{http::ClientOptions{.threads = 2}};
  std::string base_, admin_token_, key_;
};

// The name of a backend instance of a suite (…/Sqlite, …/Postgres).
inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

}  // namespace atrium::relay::testing
