// Repository tests of IdentityStore and SqlAuditSink; every case runs on SQLite and PostgreSQL.
#include "atrium/auth/identity_store.h"

#include <gtest/gtest.h>

#include "atrium/auth/audit.h"
#include "test_db.h"

namespace atrium::auth {
namespace {
using testing::Backend;

class IdentityStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    db_ = testing::OpenTestDatabase(GetParam(), tmp_, "auth_store_test");
    if (db_ == nullptr) GTEST_SKIP() << "PostgreSQL not configured (run through ctest, fixture pg)";
    store_ = std::make_unique<IdentityStore>(*db_);
  }

  User MakeUser(const std::string& id, const std::string& email) {
    return User{
        .id = id, .email = email, .name = id, .password_hash = "$argon2id$x", .created_at = 1};
  }

  // A user owning workspace "ws_<id>".
  void AddOwner(const std::string& id, const std::string& email) {
    ASSERT_TRUE(
        store_
            ->CreateUserWithWorkspace(MakeUser(id, email), Workspace{"ws_" + id, "W " + id, id, 1})
            .ok());
  }

  atrium::testing::TempDir tmp_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<IdentityStore> store_;
};

TEST_P(IdentityStoreTest, EmailIsUniqueCaseInsensitively) {
  AddOwner("u1", "Alice@Example.com");
  Status s = store_->CreateUserWithWorkspace(MakeUser("u2", "alice@example.COM"),
                                             Workspace{"ws_u2", "W", "u2", 1});
  EXPECT_EQ(s.code(), StatusCode::kConflict);
  // The failed registration left no workspace behind.
  EXPECT_EQ(store_->FindWorkspace("ws_u2").status().code(), StatusCode::kNotFound);
  auto found = store_->FindUserByEmail("ALICE@example.com");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->id, "u1");
  EXPECT_EQ(found->email, "Alice@Example.com");
  EXPECT_EQ(*store_->CountUsers(), 1);
}

TEST_P(IdentityStoreTest, OwnerMembershipIsCreatedWithWorkspace) {
  AddOwner("u1", "a@x.io");
  auto m = store_->FindMembership("ws_u1", "u1");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->role, "owner");
  EXPECT_EQ(store_->FindMembership("ws_u1", "nobody").status().code(), StatusCode::kNotFound);
  auto list = store_->ListWorkspaces("u1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].workspace_name, "W u1");
}

TEST_P(IdentityStoreTest, InvitesAreSingleUseAndExpire) {
  AddOwner("u1", "a@x.io");
  ASSERT_TRUE(store_->CreateInvite(Invite{"h1", "ws_u1", "", "member", "u1", 1, 1000}).ok());
  ASSERT_TRUE(store_->CreateInvite(Invite{"h2", "ws_u1", "", "admin", "u1", 1, 10}).ok());
  ASSERT_TRUE(store_->CreateInvite(Invite{"h3", "ws_u1", "Bob@x.io", "admin", "u1", 1, 1000}).ok());
  auto m = store_->CreateUserWithInvite(MakeUser("u2", "b@x.io"), "h1", 5);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->workspace_id, "ws_u1");
  EXPECT_EQ(m->role, "member");
  // Used.
  EXPECT_EQ(store_->CreateUserWithInvite(MakeUser("u3", "c@x.io"), "h1", 5).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->FindUser("u3").status().code(), StatusCode::kNotFound);  // rolled back
  // Expired.
  EXPECT_EQ(store_->CreateUserWithInvite(MakeUser("u3", "c@x.io"), "h2", 50).status().code(),
            StatusCode::kNotFound);
  // Bound to another email, then to the right one (case-insensitive).
  EXPECT_EQ(store_->AcceptInvite("h3", "u2", "b@x.io", 5).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->CreateUser(MakeUser("u4", "bob@X.io")).ok());
  auto joined = store_->AcceptInvite("h3", "u4", "bob@X.io", 5);
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  EXPECT_EQ(joined->role, "admin");
  auto members = store_->ListMembers("ws_u1");
  ASSERT_TRUE(members.ok());
  EXPECT_EQ(members->size(), 3u);
}

TEST_P(IdentityStoreTest, RefreshTokensRotateOnceAndFamiliesRevoke) {
  AddOwner("u1", "a@x.io");
  RefreshToken t{"hash1", "fam1", "u1", "ws_u1", 1, 100, 200, 0, 0};
  ASSERT_TRUE(store_->InsertRefreshToken(t).ok());
  ASSERT_TRUE(store_->InsertRefreshToken({"hash2", "fam1", "u1", "ws_u1", 2, 100, 200, 0, 0}).ok());
  EXPECT_TRUE(*store_->MarkRotated("hash1", 5));
  EXPECT_FALSE(*store_->MarkRotated("hash1", 6));  // a second use loses
  EXPECT_EQ(store_->FindRefreshToken("hash1")->rotated_at, 5);
  ASSERT_TRUE(store_->RevokeFamily("fam1", 7).ok());
  EXPECT_EQ(store_->FindRefreshToken("hash2")->revoked_at, 7);
  EXPECT_FALSE(*store_->MarkRotated("hash2", 8));
  EXPECT_EQ(store_->FindRefreshToken("nope").status().code(), StatusCode::kNotFound);
}

TEST_P(IdentityStoreTest, RefreshTokensOfExpiredFamiliesArePurged) {
  AddOwner("u1", "a@x.io");
  ASSERT_TRUE(store_->InsertRefreshToken({"old", "fam1", "u1", "ws_u1", 1, 100, 200, 0, 0}).ok());
  ASSERT_TRUE(store_->InsertRefreshToken({"new", "fam2", "u1", "ws_u1", 1, 100, 900, 0, 0}).ok());
  auto n = store_->PurgeExpiredRefreshTokens(500);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(store_->FindRefreshToken("old").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->FindRefreshToken("new").ok());
}

TEST_P(IdentityStoreTest, RevocationsAreListedSinceAndPurged) {
  ASSERT_TRUE(store_->PutRevocation({"jti:a", 1, 100, 10}).ok());
  ASSERT_TRUE(store_->PutRevocation({"user:u", 5, 300, 20}).ok());
  ASSERT_TRUE(store_->PutRevocation({"user:u", 6, 300, 30}).ok());  // replaces
  auto since = store_->RevocationsSince(15);
  ASSERT_TRUE(since.ok());
  ASSERT_EQ(since->size(), 1u);
  EXPECT_EQ((*since)[0].not_before, 6);
  ASSERT_TRUE(store_->PurgeRevocations(200).ok());
  EXPECT_EQ(store_->RevocationsSince(0)->size(), 1u);
}

TEST_P(IdentityStoreTest, ApiKeysRoundTripAndAreScopedByWorkspace) {
  AddOwner("u1", "a@x.io");
  AddOwner("u2", "b@x.io");
  ApiKey k{.id = "key_1",
           .key_hash = "h",
           .prefix = "atr_abc",
           .workspace_id = "ws_u1",
           .owner_id = "u1",
           .name = "ci",
           .scopes = {"embed", "track:read"},
           .models = {"gpt-*"},
           .tags = {"ci"},
           .rpm = 60,
           .budget_monthly = 12.5,
           .tier = "pro",
           .expires_at = 99,
           .created_at = 3};
  ASSERT_TRUE(store_->InsertApiKey(k).ok());
  auto got = store_->FindApiKeyByHash("h");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->scopes, k.scopes);
  EXPECT_EQ(got->models, k.models);
  EXPECT_EQ(got->rpm, 60);
  EXPECT_DOUBLE_EQ(got->budget_monthly, 12.5);
  EXPECT_EQ(got->tier, "pro");
  EXPECT_TRUE(got->enabled);
  EXPECT_EQ(got->expires_at, 99);
  EXPECT_EQ(got->last_used_at, 0);
  EXPECT_EQ(store_->FindApiKey("ws_u2", "key_1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteApiKey("ws_u2", "key_1").code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListApiKeys("ws_u2")->empty());
  ASSERT_TRUE(store_->TouchApiKey("key_1", 77).ok());
  EXPECT_EQ(store_->FindApiKey("ws_u1", "key_1")->last_used_at, 77);
  ASSERT_TRUE(store_->DeleteApiKey("ws_u1", "key_1").ok());
  EXPECT_EQ(store_->FindApiKeyByHash("h").status().code(), StatusCode::kNotFound);
}

TEST_P(IdentityStoreTest, SettingsPutIfAbsentKeepsTheFirstValue) {
  EXPECT_EQ(*store_->PutSettingIfAbsent("auth.jwt_secret", "first", 1), "first");
  EXPECT_EQ(*store_->PutSettingIfAbsent("auth.jwt_secret", "second", 2), "first");
  ASSERT_TRUE(store_->PutSetting("other", "aes1.k.x", 3).ok());
  auto sealed = store_->SettingsWithPrefix("aes1.");
  ASSERT_TRUE(sealed.ok());
  ASSERT_EQ(sealed->size(), 1u);
  EXPECT_EQ((*sealed)[0].first, "other");
}

TEST_P(IdentityStoreTest, AuditQueryFiltersAndPaginates) {
  SqlAuditSink audit(*db_);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(audit
                    .Record(AuditRecord{.at = 100 + i,
                                        .workspace_id = "w1",
                                        .actor_type = "user",
                                        .actor_id = "u1",
                                        .action = i % 2 ? "key.create" : "auth.login",
                                        .outcome = i == 4 ? "failure" : "success"})
                    .ok());
  }
  ASSERT_TRUE(
      audit.Record(AuditRecord{.at = 1, .workspace_id = "w2", .action = "auth.login"}).ok());
  auto page = audit.Query(AuditQuery{.workspace_id = "w1", .limit = 2});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->records.size(), 2u);
  EXPECT_EQ(page->records[0].at, 104);  // newest first
  ASSERT_NE(page->next_cursor, 0);
  auto next =
      audit.Query(AuditQuery{.workspace_id = "w1", .before_id = page->next_cursor, .limit = 10});
  EXPECT_EQ(next->records.size(), 3u);
  EXPECT_EQ(next->next_cursor, 0);
  EXPECT_EQ(audit.Query(AuditQuery{.workspace_id = "w1", .action = "key.create"})->records.size(),
            2u);
  EXPECT_EQ(audit.Query(AuditQuery{.workspace_id = "w1", .since = 103})->records.size(), 2u);
  auto stats = audit.Stats("w1", 0, 0);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->total, 5);
  EXPECT_EQ(stats->by_action["auth.login"], 3);
  EXPECT_EQ(stats->by_outcome["failure"], 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, IdentityStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

}  // namespace
}  // namespace atrium::auth
