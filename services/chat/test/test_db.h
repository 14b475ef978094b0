// Databases for the chat tests (the pattern of libs/auth/test/test_db.h): a fresh migrated SQLite
// file or a PostgreSQL database of this process (fixture `pg`), emptied before each test.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "atrium/auth/identity_store.h"
#include "atrium/chat/chat_service.h"
#include "atrium/core/env.h"
#include "atrium/core/testing.h"
#include "atrium/store/database.h"
#include "atrium/store/migrations.h"

namespace atrium::chat::testing {

enum class Backend { kSqlite, kPostgres };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

inline std::string PostgresServerUrl() {
  return atrium::testing::FixtureUrl("pg", "ATRIUM_TEST_PG_URL");
}

inline std::string WithDatabase(const std::string& url, const std::string& name) {
  size_t scheme = url.find("://");
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  size_t query = url.find('?');
  std::string base = url.substr(0, slash == std::string::npos ? query : slash);
  std::string rest = query == std::string::npos ? "" : url.substr(query);
  return base + "/" + name + rest;
}

// Opens a migrated database for `backend`; skips the test when PostgreSQL is not configured.
// The PostgreSQL database is per process and test binary (`tag`), its schema reset per call.
// `url_out`, when given, receives the database's URL (to open more connections to it).
inline std::unique_ptr<store::Database> OpenTestDatabase(Backend backend,
                                                         const atrium::testing::TempDir& tmp,
                                                         const std::string& tag,
                                                         std::string* url_out = nullptr) {
  std::string url;
  if (backend == Backend::kPostgres) {
    std::string server = PostgresServerUrl();
    if (server.empty()) return nullptr;
    std::string name = tag + "_" + std::to_string(::getpid());
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
    url = "sqlite://" + tmp.path() + "/chat.db";
  }
  if (url_out != nullptr) *url_out = url;
  auto db = store::OpenDatabase(url, {.pool_size = 4});
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  if (!db.ok()) return nullptr;
  if (backend == Backend::kPostgres) {
    EXPECT_TRUE((*db)->ExecScript("DROP SCHEMA public CASCADE; CREATE SCHEMA public").ok());
  }
  static store::MigrationSet* set = [] {
    auto* s = new store::MigrationSet();  // test-only, lives for the process
    (void)s->Add(store::FoundationMigrations());
    (void)s->Add(auth::AuthMigrations());
    (void)s->Add(ChatMigrations());
    return s;
  }();
  store::Migrator migrator(**db, *set, Env::Default());
  auto n = migrator.Up();
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return std::move(*db);
}

}  // namespace atrium::chat::testing
