// IdentityStore: the repository of the identity module on store::Database (SQLite or
// PostgreSQL): users, workspaces, memberships, invites, refresh tokens, the revocation list,
// API keys and persisted settings. Schema: AuthMigrations() (versions 100-199).
//
// Secrets never reach the database in clear: passwords are argon2id hashes, refresh tokens,
// invite codes and API keys are stored as SHA-256 hex digests. Timestamps are microseconds since
// the epoch. Errors follow store::Database (Conflict for duplicates, Unavailable when the
// database is unreachable); lookups that find nothing are NotFound. Thread-safe (stateless over
// a thread-safe Database).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/store/database.h"
#include "atrium/store/migrations.h"

namespace atrium::auth {

// The identity module's migrations (versions 100-199).
std::vector<store::Migration> AuthMigrations();

struct User {
  std::string id;
  std::string email;
  std::string name;
  std::string password_hash;
  std::string status = "active";       // active, disabled
  std::string platform_role = "user";  // admin, user
  int64_t created_at = 0;
  int64_t last_login_at = 0;  // 0 = never
};

struct Workspace {
  std::string id;
  std::string name;
  std::string owner_id;
  int64_t created_at = 0;
};

struct Membership {
  std::string workspace_id;
  std::string user_id;
  std::string role;  // owner, admin, member
  int64_t created_at = 0;
  // Filled by ListMembers / ListWorkspaces for display.
  std::string email;
  std::string name;
  std::string workspace_name;
};

struct Invite {
  std::string code_hash;
  std::string workspace_id;
  std::string email;  // lower-case; empty = anyone holding the code
  std::string role;
  std::string created_by;
  int64_t created_at = 0;
  int64_t expires_at = 0;
};

struct RefreshToken {
  std::string token_hash;
  std::string family_id;
  std::string user_id;
  std::string workspace_id;
  int64_t created_at = 0;
  int64_t expires_at = 0;         // sliding
  int64_t family_expires_at = 0;  // absolute
  int64_t rotated_at = 0;         // 0 = current
  int64_t revoked_at = 0;         // 0 = live
};

struct Revocation {
  std::string id;          // "jti:<jti>" or "user:<user id>"
  int64_t not_before = 0;  // kind user: tokens issued before this (micros) are revoked
  int64_t expires_at = 0;  // the entry can be dropped after this (micros)
  int64_t created_at = 0;
};

struct ApiKey {
  std::string id;
  std::string key_hash;
  std::string prefix;  // first characters of the key, for display ("atr_AbC1")
  std::string workspace_id;
  std::string owner_id;
  std::string name;
  std::vector<std::string> scopes;
  std::vector<std::string> models;  // glob patterns; empty = all
  std::vector<std::string> tags;
  int64_t rpm = 0;  // requests per minute; 0 = the route class default
  int64_t tpm = 0;  // tokens per minute; 0 = unlimited
  double budget_daily = 0, budget_weekly = 0, budget_monthly = 0, budget_total = 0;  // 0 = none
  int64_t max_concurrency = 0;  // 0 = unlimited
  std::string tier = "free";    // free, basic, pro, enterprise
  bool enabled = true;
  int64_t expires_at = 0;  // 0 = never
  int64_t created_at = 0;
  int64_t last_used_at = 0;
};

class IdentityStore {
 public:
  // `db` must outlive the store.
  explicit IdentityStore(store::Database& db) : db_(db) {}

  store::Database& db() { return db_; }

  // --- users and workspaces ---
  // Creates the user and a workspace it owns, atomically. Conflict when the email is taken.
  Status CreateUserWithWorkspace(const User& user, const Workspace& workspace);
  // Creates the user and joins it to the workspace of an invite, atomically, consuming the
  // invite. NotFound for an unknown, used or expired code or another email; Conflict when the
  // email is taken.
  Result<Membership> CreateUserWithInvite(const User& user, const std::string& code_hash,
                                          int64_t now);
  Status CreateUser(const User& user);
  Status CreateWorkspace(const Workspace& workspace);
  Result<User> FindUserByEmail(std::string_view email);
  Result<User> FindUser(std::string_view id);
  Status SetPassword(std::string_view user_id, std::string_view hash);
  Status SetPlatformRole(std::string_view user_id, std::string_view role);
  Status TouchLogin(std::string_view user_id, int64_t now);
  Result<int64_t> CountUsers();
  Result<Workspace> FindWorkspace(std::string_view id);

  // --- memberships and invites ---
  Result<Membership> FindMembership(std::string_view workspace_id, std::string_view user_id);
  Result<std::vector<Membership>> ListMembers(std::string_view workspace_id);
  // Sets a member's role. NotFound when `user_id` is not a member.
  Status SetMemberRole(std::string_view workspace_id, std::string_view user_id,
                       std::string_view role);
  // Removes a membership. NotFound when `user_id` is not a member.
  Status RemoveMember(std::string_view workspace_id, std::string_view user_id);
  // The user's workspaces, oldest membership first.
  Result<std::vector<Membership>> ListWorkspaces(std::string_view user_id);
  Status CreateInvite(const Invite& invite);
  // Consumes the invite for an existing user (see CreateUserWithInvite for the errors).
  // Conflict when the user already is a member.
  Result<Membership> AcceptInvite(const std::string& code_hash, std::string_view user_id,
                                  std::string_view email, int64_t now);

  // --- refresh tokens ---
  Status InsertRefreshToken(const RefreshToken& token);
  Result<RefreshToken> FindRefreshToken(std::string_view token_hash);
  // Marks a current token rotated; false when it was not current any more (a concurrent use).
  Result<bool> MarkRotated(std::string_view token_hash, int64_t now);
  Status RevokeFamily(std::string_view family_id, int64_t now);
  Status RevokeUserRefreshTokens(std::string_view user_id, int64_t now);
  // Deletes refresh tokens whose family is past its absolute limit (nothing can use them, and
  // reuse detection has nothing left to protect). Returns how many rows went.
  Result<int64_t> PurgeExpiredRefreshTokens(int64_t now);

  // --- revocation list ---
  // Inserts or replaces an entry.
  Status PutRevocation(const Revocation& r);
  // Entries created at or after `since` (micros), oldest first.
  Result<std::vector<Revocation>> RevocationsSince(int64_t since);
  Status PurgeRevocations(int64_t now);

  // --- API keys ---
  Status InsertApiKey(const ApiKey& key);
  // Enabled or not; NotFound when no key has this hash.
  Result<ApiKey> FindApiKeyByHash(std::string_view key_hash);
  Result<ApiKey> FindApiKey(std::string_view workspace_id, std::string_view id);
  Result<std::vector<ApiKey>> ListApiKeys(std::string_view workspace_id);
  // NotFound when the key does not exist in this workspace.
  Status DeleteApiKey(std::string_view workspace_id, std::string_view id);
  Status TouchApiKey(std::string_view id, int64_t now);

  // --- settings (kv_settings) ---
  Result<std::optional<std::string>> GetSetting(std::string_view key);
  Status PutSetting(std::string_view key, std::string_view value, int64_t now);
  // Stores `value` unless the key exists; returns the value stored (race-safe across processes).
  Result<std::string> PutSettingIfAbsent(std::string_view key, std::string_view value, int64_t now);
  // Every setting whose value starts with `prefix`.
  Result<std::vector<std::pair<std::string, std::string>>> SettingsWithPrefix(
      std::string_view value_prefix);

 private:
  store::Database& db_;
};

}  // namespace atrium::auth
