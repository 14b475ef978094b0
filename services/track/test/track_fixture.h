// The HTTP test fixture of the track service: a real http::Server (port 0) with the auth and
// track routes on a fresh SQLite or PostgreSQL (fixture `pg`) database, two users in two
// workspaces, and helpers to call the API.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <memory>
#include <string>

#include "atrium/auth/auth_service.h"
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
    TrackOptions o;
    ConfigureOptions(o);
    auto t = TrackService::Create(o, *db_, *blobs_, Env::Default(), auth_->sql_audit(), logger);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    track_ = std::move(*t);
    http::Router router;
    ASSERT_TRUE(auth_->AddRoutes(router).ok());
    ASSERT_TRUE(track_->AddRoutes(router).ok());
    server_ = std::make_unique<http::Server>(
        http::ServerOptions{
            .port = 0, .io_threads = 2, .blocking_threads = 4, .max_body_bytes = 64 << 20},
        std::move(router), logger);
    server_->Use(auth_->auth_middleware());
    ASSERT_TRUE(server_->Start().ok());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    alice_ = Register("alice@example.com");
    bob_ = Register("bob@example.com");
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    track_.reset();
  }

  Reply Send(const std::string& method, const std::string& path, const std::string& body = "",
             const User* user = nullptr, std::string content_type = "application/json") {
    http::ClientRequest req;
    req.method = method;
    req.url = base_ + path;
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
  std::unique_ptr<TrackService> track_;
  std::unique_ptr<http::Server> server_;
  http::HttpClient client_;
  std::string base_;
  User anonymous_, alice_, bob_;
};

}  // namespace atrium::track::testing
