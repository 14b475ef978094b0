// The HTTP test fixture of the track service: a real http::Server (port 0) with the auth and
// track routes on a fresh SQLite or PostgreSQL (fixture `pg`) database, an embedded bus for live
// updates (as `atrium serve` has), two users in two workspaces, and helpers to call the API and
// read SSE streams.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "atrium/auth/auth_service.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/core/env.h"
#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "atrium/store/database.h"
#include "atrium/store/fs_blob_store.h"
#include "atrium/store/migrations.h"
#include "atrium/track/track_service.h"

namespace atrium::track::testing {

namespace json = boost::json;

enum class Backend { kSqlite, kPostgres };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

inline std::string WithDatabase(const std::string& url, const std::string& name) {
  size_t scheme = url.find("://");
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  size_t query = url.find('?');
  std::string base = url.substr(0, slash == std::string::npos ? query : slash);
  std::string rest = query == std::string::npos ? "" : url.substr(query);
  return base + "/" + name + rest;
}

// A migrated database; null (test skipped) when PostgreSQL is not configured.
inline std::unique_ptr<store::Database> OpenTrackTestDatabase(Backend backend,
                                                              const atrium::testing::TempDir& tmp) {
  std::string url;
  if (backend == Backend::kPostgres) {
    std::string server = atrium::testing::FixtureUrl("pg", "ATRIUM_TEST_PG_URL");
    if (server.empty()) return nullptr;
    std::string name = "track_test_" + std::to_string(::getpid());
    static std::string created;  // test-only memo: one database per process
    if (created != name) {
      auto admin = store::OpenDatabase(server, {.pool_size = 1});
      EXPECT_TRUE(admin.ok()) << admin.status().ToString();
      if (!admin.ok()) return nullptr;
      EXPECT_TRUE((*admin)->ExecScript("DROP DATABASE IF EXISTS " + name).ok());
      EXPECT_TRUE((*admin)->ExecScript("CREATE DATABASE " + name).ok());
      created = name;
    }
    url = WithDatabase(server, name);
  } else {
    url = "sqlite://" + tmp.path() + "/track.db";
  }
  auto db = store::OpenDatabase(url, {.pool_size = 4});
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  if (!db.ok()) return nullptr;
  if (backend == Backend::kPostgres) {
    EXPECT_TRUE((*db)->ExecScript("DROP SCHEMA public CASCADE; CREATE SCHEMA public").ok());
  }
  store::MigrationSet set;
  EXPECT_TRUE(set.Add(store::FoundationMigrations()).ok());
  EXPECT_TRUE(set.Add(auth::AuthMigrations()).ok());
  EXPECT_TRUE(set.Add(TrackMigrations()).ok());
  store::Migrator migrator(**db, set, Env::Default());
  auto n = migrator.Up();
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return std::move(*db);
}

struct Reply {
  int status = 0;
  json::value body;
  std::string raw;
  http::Headers headers;
  // body[field] as a string ("" when absent or not a string).
  std::string Str(std::string_view field) const {
    if (!body.is_object()) return "";
    const auto* v = body.as_object().if_contains(field);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : "";
  }
};

struct User {
  std::string token, workspace_id, user_id;
};

// An SSE stream read in the background; the text received so far can be waited on.
class SseStream {
 public:
  SseStream(http::HttpClient& client, const std::string& url, const std::string& token) {
    http::ClientRequest req;
    req.url = url;
    req.headers.Set("authorization", "Bearer " + token);
    req.cancel = cancel_;
    req.on_data = [this](std::string_view chunk) {
      std::lock_guard lock(mu_);
      text_ += chunk;
      cv_.notify_all();
      return true;
    };
    client.Send(std::move(req), [this](Result<http::ClientResponse>) {
      std::lock_guard lock(mu_);
      done_ = true;
      cv_.notify_all();
    });
  }
  ~SseStream() {
    cancel_->Cancel();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [this] { return done_; });
  }
  SseStream(const SseStream&) = delete;
  SseStream& operator=(const SseStream&) = delete;

  // Whether `needle` arrived within `timeout`.
  bool WaitFor(const std::string& needle,
               std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return text_.find(needle) != std::string::npos; });
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }
  // Occurrences of `needle` so far.
  size_t Count(const std::string& needle) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (size_t pos = text_.find(needle); pos != std::string::npos;
         pos = text_.find(needle, pos + needle.size())) {
      ++n;
    }
    return n;
  }

 private:
  std::shared_ptr<http::CancelToken> cancel_ = std::make_shared<http::CancelToken>();
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;   // guarded by mu_
  bool done_ = false;  // guarded by mu_
};

class TrackHttpTest : public ::testing::TestWithParam<Backend> {
 protected:
  // Options tests may change before SetUp runs (override ConfigureOptions).
  virtual void ConfigureOptions(TrackOptions& o) {}

  void SetUp() override {
    db_ = OpenTrackTestDatabase(GetParam(), tmp_);
    if (db_ == nullptr) GTEST_SKIP() << "PostgreSQL not configured (run through ctest, fixture pg)";
    auto logger =
        std::make_shared<spdlog::logger>("track", std::make_shared<spdlog::sinks::null_sink_mt>());
    auth::AuthOptions ao;
    ao.jwt_secret = std::string(40, 's');
    ao.password_cost = auth::PasswordCost::kTest;
    ao.revocation_sync = std::chrono::milliseconds(0);
    auto a = auth::AuthService::Create(ao, *db_, Env::Default(), nullptr, nullptr, logger);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    auth_ = std::move(*a);
    auto blobs = store::FsBlobStore::Create(Env::Default(), tmp_.path() + "/blobs");
    ASSERT_TRUE(blobs.ok());
    blobs_ = std::move(*blobs);
    auto bus = bus::OpenEmbeddedBus(Env::Default(), {.data_dir = tmp_.path() + "/bus"});
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    bus_ = std::move(*bus);
    TrackOptions o;
    ConfigureOptions(o);
    auto t = TrackService::Create(o, *db_, *blobs_, Env::Default(), auth_->sql_audit(), bus_.get(),
                                  logger);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    track_ = std::move(*t);
    http::Router router;
    ASSERT_TRUE(auth_->AddRoutes(router).ok());
    ASSERT_TRUE(track_->AddRoutes(router).ok());
    server_ = StartServer(std::move(router));
    ASSERT_NE(server_, nullptr);
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    alice_ = Register("alice@example.com");
    bob_ = Register("bob@example.com");
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    track_.reset();
  }

  // A server on port 0 with the fixture's auth middleware; null when it does not start.
  std::unique_ptr<http::Server> StartServer(http::Router router) {
    auto logger =
        std::make_shared<spdlog::logger>("http", std::make_shared<spdlog::sinks::null_sink_mt>());
    auto server = std::make_unique<http::Server>(
        http::ServerOptions{
            .port = 0, .io_threads = 2, .blocking_threads = 4, .max_body_bytes = 64 << 20},
        std::move(router), logger);
    server->Use(auth_->auth_middleware());
    if (!server->Start().ok()) return nullptr;
    return server;
  }

  Reply Send(const std::string& method, const std::string& path, const std::string& body = "",
             const User* user = nullptr, std::string content_type = "application/json") {
    return SendTo(base_, method, path, body, user, std::move(content_type));
  }
  // The same against another server (`base`: "http://127.0.0.1:port").
  Reply SendTo(const std::string& base, const std::string& method, const std::string& path,
               const std::string& body = "", const User* user = nullptr,
               std::string content_type = "application/json") {
    http::ClientRequest req;
    req.method = method;
    req.url = base + path;
    req.body = body;
    req.max_response_bytes = 64 << 20;
    if (!body.empty()) req.headers.Set("content-type", content_type);
    const User* u = user != nullptr ? user : &alice_;
    if (!u->token.empty()) req.headers.Set("authorization", "Bearer " + u->token);
    auto r = client_.SendSync(std::move(req));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Reply out;
    if (!r.ok()) return out;
    out.status = r->status;
    out.raw = r->body;
    out.headers = r->headers;
    boost::system::error_code ec;
    out.body = json::parse(r->body, ec);
    return out;
  }
  Reply Post(const std::string& path, const json::value& body, const User* user = nullptr) {
    return Send("POST", path, json::serialize(body), user);
  }
  Reply Get(const std::string& path, const User* user = nullptr) {
    return Send("GET", path, "", user);
  }

  User Register(const std::string& email) {
    Reply r = Send("POST", "/api/v1/auth/register",
                   json::serialize(json::object{{"email", email}, {"password", "password-123"}}),
                   &anonymous_);
    EXPECT_EQ(r.status, 201) << r.raw;
    User u;
    if (r.status != 201) return u;
    u.token = json::value_to<std::string>(r.body.at("access_token"));
    u.workspace_id = json::value_to<std::string>(r.body.at("workspace").at("id"));
    u.user_id = json::value_to<std::string>(r.body.at("user").at("id"));
    return u;
  }

  // A new user who joins `admin`'s workspace as a member (invite, then register with the code).
  User JoinWorkspace(const User& admin, const std::string& email) {
    Reply inv = Send("POST", "/api/v1/workspaces/" + admin.workspace_id + "/invites",
                     json::serialize(json::object{{"role", "member"}}), &admin);
    EXPECT_EQ(inv.status, 201) << inv.raw;
    Reply r = Send(
        "POST", "/api/v1/auth/register",
        json::serialize(json::object{
            {"email", email}, {"password", "password-123"}, {"invite_code", inv.body.at("code")}}),
        &anonymous_);
    EXPECT_EQ(r.status, 201) << r.raw;
    User u;
    if (r.status != 201) return u;
    u.token = json::value_to<std::string>(r.body.at("access_token"));
    u.workspace_id = json::value_to<std::string>(r.body.at("workspace").at("id"));
    u.user_id = json::value_to<std::string>(r.body.at("user").at("id"));
    EXPECT_EQ(u.workspace_id, admin.workspace_id);
    return u;
  }

  std::string CreateProject(const std::string& name, const User* user = nullptr) {
    Reply r = Post("/api/v1/projects", json::object{{"name", name}}, user);
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.Str("id");
  }
  std::string CreateRun(const std::string& project_id, json::object extra = {},
                        const User* user = nullptr) {
    extra["project_id"] = project_id;
    Reply r = Post("/api/v1/runs", extra, user);
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.Str("id");
  }
  Reply LogPoints(const std::string& run, json::array points, const User* user = nullptr) {
    return Post("/api/v1/runs/" + run + "/metrics", json::object{{"points", std::move(points)}},
                user);
  }

  atrium::testing::TempDir tmp_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<auth::AuthService> auth_;
  std::unique_ptr<store::FsBlobStore> blobs_;
  std::unique_ptr<bus::Bus> bus_;  // outlives track_
  std::unique_ptr<TrackService> track_;
  std::unique_ptr<http::Server> server_;
  http::HttpClient client_;
  std::string base_;
  User anonymous_, alice_, bob_;
};

}  // namespace atrium::track::testing
