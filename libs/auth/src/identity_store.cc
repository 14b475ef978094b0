#include "atrium/auth/identity_store.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>

namespace atrium::auth {
namespace json = boost::json;
using store::Params;
using store::Row;
using store::Value;

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Value OptInt(int64_t v) { return v == 0 ? Value() : Value(v); }

std::string ToJsonList(const std::vector<std::string>& items) {
  json::array a;
  for (const auto& s : items) a.emplace_back(s);
  return json::serialize(a);
}

std::vector<std::string> FromJsonList(const std::string& text) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& e : v.as_array()) {
    if (e.is_string()) out.emplace_back(e.as_string());
  }
  return out;
}

constexpr const char* kUserColumns =
    "id, email, name, password_hash, status, platform_role, created_at, last_login_at";

User UserFromRow(const Row& r) {
  return User{.id = r.Text(0),
              .email = r.Text(1),
              .name = r.Text(2),
              .password_hash = r.Text(3),
              .status = r.Text(4),
              .platform_role = r.Text(5),
              .created_at = r.Int(6),
              .last_login_at = r.Int(7)};
}

constexpr const char* kKeyColumns =
    "id, key_hash, prefix, workspace_id, owner_id, name, scopes, models, tags, rpm, tpm, "
    "budget_daily, budget_weekly, budget_monthly, budget_total, max_concurrency, tier, enabled, "
    "expires_at, created_at, last_used_at";

ApiKey KeyFromRow(const Row& r) {
  ApiKey k;
  k.id = r.Text(0);
  k.key_hash = r.Text(1);
  k.prefix = r.Text(2);
  k.workspace_id = r.Text(3);
  k.owner_id = r.Text(4);
  k.name = r.Text(5);
  k.scopes = FromJsonList(r.Text(6));
  k.models = FromJsonList(r.Text(7));
  k.tags = FromJsonList(r.Text(8));
  k.rpm = r.Int(9);
  k.tpm = r.Int(10);
  k.budget_daily = r.Double(11);
  k.budget_weekly = r.Double(12);
  k.budget_monthly = r.Double(13);
  k.budget_total = r.Double(14);
  k.max_concurrency = r.Int(15);
  k.tier = r.Text(16);
  k.enabled = r.Int(17) != 0;
  k.expires_at = r.Int(18);
  k.created_at = r.Int(19);
  k.last_used_at = r.Int(20);
  return k;
}

constexpr const char* kRefreshColumns =
    "token_hash, family_id, user_id, workspace_id, created_at, expires_at, family_expires_at, "
    "rotated_at, revoked_at";

Status InsertUser(store::Executor& ex, const User& u) {
  auto r = ex.Exec(
      "INSERT INTO auth_users (id, email, email_lower, name, password_hash, status, "
      "platform_role, created_at, last_login_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {u.id, u.email, Lower(u.email), u.name, u.password_hash, u.status, u.platform_role,
       u.created_at, OptInt(u.last_login_at)});
  if (!r.ok() && r.status().code() == StatusCode::kConflict) {
    return Conflict("an account with this email already exists");
  }
  return r.status();
}

Status InsertWorkspace(store::Executor& ex, const Workspace& w) {
  RETURN_IF_ERROR(ex.Exec("INSERT INTO auth_workspaces (id, name, owner_id, created_at) "
                          "VALUES (?, ?, ?, ?)",
                          {w.id, w.name, w.owner_id, w.created_at})
                      .status());
  return ex
      .Exec(
          "INSERT INTO auth_memberships (workspace_id, user_id, role, created_at) "
          "VALUES (?, ?, 'owner', ?)",
          {w.id, w.owner_id, w.created_at})
      .status();
}

// Consumes an invite inside a transaction and adds the membership.
Result<Membership> ConsumeInvite(store::Executor& ex, const std::string& code_hash,
                                 std::string_view user_id, std::string_view email, int64_t now) {
  ASSIGN_OR_RETURN(auto rows,
                   ex.Query("SELECT workspace_id, email_lower, role, expires_at, used_at "
                            "FROM auth_invites WHERE code_hash = ?",
                            {code_hash}));
  // One message for every failure so codes cannot be probed for existence.
  Status invalid = NotFound("invite code is invalid, used or expired");
  if (rows.empty()) return invalid;
  const Row& r = rows[0];
  if (!r.IsNull(4) || r.Int(3) <= now) return invalid;
  if (!r.IsNull(1) && !r.Text(1).empty() && r.Text(1) != Lower(email)) return invalid;
  ASSIGN_OR_RETURN(int64_t n, ex.Exec("UPDATE auth_invites SET used_at = ?, used_by = ? "
                                      "WHERE code_hash = ? AND used_at IS NULL",
                                      {now, user_id, code_hash}));
  if (n != 1) return invalid;
  Membership m{.workspace_id = r.Text(0),
               .user_id = std::string(user_id),
               .role = r.Text(2),
               .created_at = now};
  auto ins = ex.Exec(
      "INSERT INTO auth_memberships (workspace_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
      {m.workspace_id, m.user_id, m.role, now});
  if (!ins.ok()) {
    if (ins.status().code() == StatusCode::kConflict) {
      return Conflict("already a member of this workspace");
    }
    return ins.status();
  }
  return m;
}

}  // namespace

std::vector<store::Migration> AuthMigrations() {
  std::string identity =
      "CREATE TABLE auth_users ("
      " id TEXT PRIMARY KEY, email TEXT NOT NULL, email_lower TEXT NOT NULL UNIQUE,"
      " name TEXT NOT NULL, password_hash TEXT NOT NULL, status TEXT NOT NULL,"
      " platform_role TEXT NOT NULL, created_at BIGINT NOT NULL, last_login_at BIGINT);"
      "CREATE TABLE auth_workspaces ("
      " id TEXT PRIMARY KEY, name TEXT NOT NULL,"
      " owner_id TEXT NOT NULL REFERENCES auth_users(id), created_at BIGINT NOT NULL);"
      "CREATE TABLE auth_memberships ("
      " workspace_id TEXT NOT NULL REFERENCES auth_workspaces(id) ON DELETE CASCADE,"
      " user_id TEXT NOT NULL REFERENCES auth_users(id) ON DELETE CASCADE,"
      " role TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (workspace_id, user_id));"
      "CREATE INDEX auth_memberships_user ON auth_memberships(user_id);"
      "CREATE TABLE auth_invites ("
      " code_hash TEXT PRIMARY KEY,"
      " workspace_id TEXT NOT NULL REFERENCES auth_workspaces(id) ON DELETE CASCADE,"
      " email_lower TEXT, role TEXT NOT NULL, created_by TEXT NOT NULL,"
      " created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT, used_by TEXT);"
      "CREATE TABLE auth_refresh_tokens ("
      " token_hash TEXT PRIMARY KEY, family_id TEXT NOT NULL, user_id TEXT NOT NULL,"
      " workspace_id TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,"
      " family_expires_at BIGINT NOT NULL, rotated_at BIGINT, revoked_at BIGINT);"
      "CREATE INDEX auth_refresh_family ON auth_refresh_tokens(family_id);"
      "CREATE INDEX auth_refresh_user ON auth_refresh_tokens(user_id);"
      "CREATE TABLE auth_revocations ("
      " id TEXT PRIMARY KEY, not_before BIGINT NOT NULL, expires_at BIGINT NOT NULL,"
      " created_at BIGINT NOT NULL);"
      "CREATE INDEX auth_revocations_created ON auth_revocations(created_at);"
      "CREATE TABLE auth_api_keys ("
      " id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,"
      " workspace_id TEXT NOT NULL REFERENCES auth_workspaces(id) ON DELETE CASCADE,"
      " owner_id TEXT NOT NULL, name TEXT NOT NULL, scopes TEXT NOT NULL, models TEXT NOT NULL,"
      " tags TEXT NOT NULL, rpm BIGINT NOT NULL, tpm BIGINT NOT NULL,"
      " budget_daily DOUBLE PRECISION NOT NULL, budget_weekly DOUBLE PRECISION NOT NULL,"
      " budget_monthly DOUBLE PRECISION NOT NULL, budget_total DOUBLE PRECISION NOT NULL,"
      " max_concurrency BIGINT NOT NULL, tier TEXT NOT NULL, enabled INTEGER NOT NULL,"
      " expires_at BIGINT, created_at BIGINT NOT NULL, last_used_at BIGINT);"
      "CREATE INDEX auth_api_keys_workspace ON auth_api_keys(workspace_id);";
  std::string audit_cols =
      " at BIGINT NOT NULL, workspace_id TEXT NOT NULL, actor_type TEXT NOT NULL,"
      " actor_id TEXT NOT NULL, action TEXT NOT NULL, resource_type TEXT NOT NULL,"
      " resource_id TEXT NOT NULL, ip TEXT NOT NULL, user_agent TEXT NOT NULL,"
      " outcome TEXT NOT NULL, details TEXT NOT NULL);"
      "CREATE INDEX auth_audit_ws ON auth_audit_log(workspace_id, id);";
  return {
      store::Migration{100, "auth_identity", identity, ""},
      store::Migration{
          101, "auth_audit_log",
          "CREATE TABLE auth_audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT," + audit_cols,
          "CREATE TABLE auth_audit_log (id BIGSERIAL PRIMARY KEY," + audit_cols},
      store::Migration{102, "auth_audit_event_id",
                       "ALTER TABLE auth_audit_log ADD COLUMN event_id TEXT;"
                       "CREATE UNIQUE INDEX auth_audit_event ON auth_audit_log(event_id);",
                       ""},
  };
}

Status IdentityStore::CreateUserWithWorkspace(const User& user, const Workspace& workspace) {
  return db_.Transaction([&](store::Transaction& tx) {
    RETURN_IF_ERROR(InsertUser(tx, user));
    return InsertWorkspace(tx, workspace);
  });
}

Result<Membership> IdentityStore::CreateUserWithInvite(const User& user,
                                                       const std::string& code_hash, int64_t now) {
  Membership m;
  RETURN_IF_ERROR(db_.Transaction([&](store::Transaction& tx) {
    RETURN_IF_ERROR(InsertUser(tx, user));
    ASSIGN_OR_RETURN(m, ConsumeInvite(tx, code_hash, user.id, user.email, now));
    return Status::Ok();
  }));
  return m;
}

Status IdentityStore::CreateUser(const User& user) { return InsertUser(db_, user); }

Status IdentityStore::CreateWorkspace(const Workspace& workspace) {
  return db_.Transaction([&](store::Transaction& tx) { return InsertWorkspace(tx, workspace); });
}

Result<User> IdentityStore::FindUserByEmail(std::string_view email) {
  ASSIGN_OR_RETURN(auto rows, db_.Query(std::string("SELECT ") + kUserColumns +
                                            " FROM auth_users WHERE email_lower = ?",
                                        {Lower(email)}));
  if (rows.empty()) return NotFound("no such user");
  return UserFromRow(rows[0]);
}

Result<User> IdentityStore::FindUser(std::string_view id) {
  ASSIGN_OR_RETURN(
      auto rows,
      db_.Query(std::string("SELECT ") + kUserColumns + " FROM auth_users WHERE id = ?", {id}));
  if (rows.empty()) return NotFound("no such user");
  return UserFromRow(rows[0]);
}

Status IdentityStore::SetPassword(std::string_view user_id, std::string_view hash) {
  ASSIGN_OR_RETURN(
      int64_t n, db_.Exec("UPDATE auth_users SET password_hash = ? WHERE id = ?", {hash, user_id}));
  return n == 1 ? Status::Ok() : NotFound("no such user");
}

Status IdentityStore::SetPlatformRole(std::string_view user_id, std::string_view role) {
  ASSIGN_OR_RETURN(
      int64_t n, db_.Exec("UPDATE auth_users SET platform_role = ? WHERE id = ?", {role, user_id}));
  return n == 1 ? Status::Ok() : NotFound("no such user");
}

Status IdentityStore::TouchLogin(std::string_view user_id, int64_t now) {
  return db_.Exec("UPDATE auth_users SET last_login_at = ? WHERE id = ?", {now, user_id}).status();
}

Result<int64_t> IdentityStore::CountUsers() {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT COUNT(*) FROM auth_users"));
  return rows[0].Int(0);
}

Result<Workspace> IdentityStore::FindWorkspace(std::string_view id) {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id, name, owner_id, created_at FROM "
                                        "auth_workspaces WHERE id = ?",
                                        {id}));
  if (rows.empty()) return NotFound("no such workspace");
  return Workspace{rows[0].Text(0), rows[0].Text(1), rows[0].Text(2), rows[0].Int(3)};
}

Result<Membership> IdentityStore::FindMembership(std::string_view workspace_id,
                                                 std::string_view user_id) {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT role, created_at FROM auth_memberships "
                                        "WHERE workspace_id = ? AND user_id = ?",
                                        {workspace_id, user_id}));
  if (rows.empty()) return NotFound("no such workspace");
  return Membership{.workspace_id = std::string(workspace_id),
                    .user_id = std::string(user_id),
                    .role = rows[0].Text(0),
                    .created_at = rows[0].Int(1)};
}

Status IdentityStore::SetMemberRole(std::string_view workspace_id, std::string_view user_id,
                                    std::string_view role) {
  ASSIGN_OR_RETURN(int64_t n, db_.Exec("UPDATE auth_memberships SET role = ? "
                                       "WHERE workspace_id = ? AND user_id = ?",
                                       {role, workspace_id, user_id}));
  if (n == 0) return NotFound("no such member");
  return Status::Ok();
}

Status IdentityStore::RemoveMember(std::string_view workspace_id, std::string_view user_id) {
  ASSIGN_OR_RETURN(int64_t n, db_.Exec("DELETE FROM auth_memberships "
                                       "WHERE workspace_id = ? AND user_id = ?",
                                       {workspace_id, user_id}));
  if (n == 0) return NotFound("no such member");
  return Status::Ok();
}

Result<std::vector<Membership>> IdentityStore::ListMembers(std::string_view workspace_id) {
  ASSIGN_OR_RETURN(auto rows,
                   db_.Query("SELECT m.user_id, m.role, m.created_at, u.email, u.name "
                             "FROM auth_memberships m JOIN auth_users u ON u.id = m.user_id "
                             "WHERE m.workspace_id = ? ORDER BY m.created_at, m.user_id",
                             {workspace_id}));
  std::vector<Membership> out;
  for (const auto& r : rows) {
    out.push_back(Membership{.workspace_id = std::string(workspace_id),
                             .user_id = r.Text(0),
                             .role = r.Text(1),
                             .created_at = r.Int(2),
                             .email = r.Text(3),
                             .name = r.Text(4)});
  }
  return out;
}

Result<std::vector<Membership>> IdentityStore::ListWorkspaces(std::string_view user_id) {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT m.workspace_id, m.role, m.created_at, w.name "
                                        "FROM auth_memberships m JOIN auth_workspaces w "
                                        "ON w.id = m.workspace_id WHERE m.user_id = ? "
                                        "ORDER BY m.created_at, m.workspace_id",
                                        {user_id}));
  std::vector<Membership> out;
  for (const auto& r : rows) {
    out.push_back(Membership{.workspace_id = r.Text(0),
                             .user_id = std::string(user_id),
                             .role = r.Text(1),
                             .created_at = r.Int(2),
                             .workspace_name = r.Text(3)});
  }
  return out;
}

Status IdentityStore::CreateInvite(const Invite& i) {
  return db_
      .Exec(
          "INSERT INTO auth_invites (code_hash, workspace_id, email_lower, role, created_by, "
          "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
          {i.code_hash, i.workspace_id, i.email.empty() ? Value() : Value(Lower(i.email)), i.role,
           i.created_by, i.created_at, i.expires_at})
      .status();
}

Result<Membership> IdentityStore::AcceptInvite(const std::string& code_hash,
                                               std::string_view user_id, std::string_view email,
                                               int64_t now) {
  Membership m;
  RETURN_IF_ERROR(db_.Transaction([&](store::Transaction& tx) {
    ASSIGN_OR_RETURN(m, ConsumeInvite(tx, code_hash, user_id, email, now));
    return Status::Ok();
  }));
  return m;
}

Status IdentityStore::InsertRefreshToken(const RefreshToken& t) {
  return db_
      .Exec(std::string("INSERT INTO auth_refresh_tokens (") + kRefreshColumns +
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {t.token_hash, t.family_id, t.user_id, t.workspace_id, t.created_at, t.expires_at,
             t.family_expires_at, OptInt(t.rotated_at), OptInt(t.revoked_at)})
      .status();
}

Result<RefreshToken> IdentityStore::FindRefreshToken(std::string_view token_hash) {
  ASSIGN_OR_RETURN(auto rows, db_.Query(std::string("SELECT ") + kRefreshColumns +
                                            " FROM auth_refresh_tokens WHERE token_hash = ?",
                                        {token_hash}));
  if (rows.empty()) return NotFound("no such refresh token");
  const Row& r = rows[0];
  return RefreshToken{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Int(4),
                      r.Int(5),  r.Int(6),  r.Int(7),  r.Int(8)};
}

Result<bool> IdentityStore::MarkRotated(std::string_view token_hash, int64_t now) {
  ASSIGN_OR_RETURN(int64_t n, db_.Exec("UPDATE auth_refresh_tokens SET rotated_at = ? WHERE "
                                       "token_hash = ? AND rotated_at IS NULL AND "
                                       "revoked_at IS NULL",
                                       {now, token_hash}));
  return n == 1;
}

Status IdentityStore::RevokeFamily(std::string_view family_id, int64_t now) {
  return db_
      .Exec(
          "UPDATE auth_refresh_tokens SET revoked_at = ? WHERE family_id = ? AND "
          "revoked_at IS NULL",
          {now, family_id})
      .status();
}

Status IdentityStore::RevokeUserRefreshTokens(std::string_view user_id, int64_t now) {
  return db_
      .Exec(
          "UPDATE auth_refresh_tokens SET revoked_at = ? WHERE user_id = ? AND "
          "revoked_at IS NULL",
          {now, user_id})
      .status();
}

Status IdentityStore::PutRevocation(const Revocation& r) {
  return db_
      .Exec(
          "INSERT INTO auth_revocations (id, not_before, expires_at, created_at) "
          "VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET not_before = excluded.not_before, "
          "expires_at = excluded.expires_at, created_at = excluded.created_at",
          {r.id, r.not_before, r.expires_at, r.created_at})
      .status();
}

Result<std::vector<Revocation>> IdentityStore::RevocationsSince(int64_t since) {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id, not_before, expires_at, created_at FROM "
                                        "auth_revocations WHERE created_at >= ? "
                                        "ORDER BY created_at",
                                        {since}));
  std::vector<Revocation> out;
  for (const auto& r : rows) out.push_back({r.Text(0), r.Int(1), r.Int(2), r.Int(3)});
  return out;
}

Result<int64_t> IdentityStore::PurgeExpiredRefreshTokens(int64_t now) {
  return db_.Exec("DELETE FROM auth_refresh_tokens WHERE family_expires_at < ?", {now});
}

Status IdentityStore::PurgeRevocations(int64_t now) {
  return db_.Exec("DELETE FROM auth_revocations WHERE expires_at < ?", {now}).status();
}

Status IdentityStore::InsertApiKey(const ApiKey& k) {
  return db_
      .Exec(std::string("INSERT INTO auth_api_keys (") + kKeyColumns +
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {k.id,
             k.key_hash,
             k.prefix,
             k.workspace_id,
             k.owner_id,
             k.name,
             ToJsonList(k.scopes),
             ToJsonList(k.models),
             ToJsonList(k.tags),
             k.rpm,
             k.tpm,
             k.budget_daily,
             k.budget_weekly,
             k.budget_monthly,
             k.budget_total,
             k.max_concurrency,
             k.tier,
             k.enabled ? 1 : 0,
             OptInt(k.expires_at),
             k.created_at,
             OptInt(k.last_used_at)})
      .status();
}

Result<ApiKey> IdentityStore::FindApiKeyByHash(std::string_view key_hash) {
  ASSIGN_OR_RETURN(auto rows, db_.Query(std::string("SELECT ") + kKeyColumns +
                                            " FROM auth_api_keys WHERE key_hash = ?",
                                        {key_hash}));
  if (rows.empty()) return NotFound("no such API key");
  return KeyFromRow(rows[0]);
}

Result<ApiKey> IdentityStore::FindApiKey(std::string_view workspace_id, std::string_view id) {
  ASSIGN_OR_RETURN(auto rows, db_.Query(std::string("SELECT ") + kKeyColumns +
                                            " FROM auth_api_keys WHERE workspace_id = ? AND id = ?",
                                        {workspace_id, id}));
  if (rows.empty()) return NotFound("no such API key");
  return KeyFromRow(rows[0]);
}

Result<std::vector<ApiKey>> IdentityStore::ListApiKeys(std::string_view workspace_id) {
  ASSIGN_OR_RETURN(auto rows, db_.Query(std::string("SELECT ") + kKeyColumns +
                                            " FROM auth_api_keys WHERE workspace_id = ? "
                                            "ORDER BY created_at, id",
                                        {workspace_id}));
  std::vector<ApiKey> out;
  for (const auto& r : rows) out.push_back(KeyFromRow(r));
  return out;
}

Status IdentityStore::DeleteApiKey(std::string_view workspace_id, std::string_view id) {
  ASSIGN_OR_RETURN(int64_t n, db_.Exec("DELETE FROM auth_api_keys WHERE workspace_id = ? AND "
                                       "id = ?",
                                       {workspace_id, id}));
  return n == 1 ? Status::Ok() : NotFound("no such API key");
}

Status IdentityStore::TouchApiKey(std::string_view id, int64_t now) {
  return db_.Exec("UPDATE auth_api_keys SET last_used_at = ? WHERE id = ?", {now, id}).status();
}

Result<std::optional<std::string>> IdentityStore::GetSetting(std::string_view key) {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT value FROM kv_settings WHERE key = ?", {key}));
  if (rows.empty()) return std::optional<std::string>();
  return std::optional<std::string>(rows[0].Text(0));
}

Status IdentityStore::PutSetting(std::string_view key, std::string_view value, int64_t now) {
  return db_
      .Exec(
          "INSERT INTO kv_settings (key, value, updated_at) VALUES (?, ?, ?) "
          "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
          "updated_at = excluded.updated_at",
          {key, value, now})
      .status();
}

Result<std::string> IdentityStore::PutSettingIfAbsent(std::string_view key, std::string_view value,
                                                      int64_t now) {
  RETURN_IF_ERROR(db_.Exec("INSERT INTO kv_settings (key, value, updated_at) VALUES (?, ?, ?) "
                           "ON CONFLICT (key) DO NOTHING",
                           {key, value, now})
                      .status());
  ASSIGN_OR_RETURN(auto v, GetSetting(key));
  if (!v) return Internal("setting " + std::string(key) + " vanished");
  return *v;
}

Result<std::vector<std::pair<std::string, std::string>>> IdentityStore::SettingsWithPrefix(
    std::string_view value_prefix) {
  ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT key, value FROM kv_settings WHERE "
                                        "substr(value, 1, ?) = ? ORDER BY key",
                                        {static_cast<int64_t>(value_prefix.size()), value_prefix}));
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : rows) out.emplace_back(r.Text(0), r.Text(1));
  return out;
}

}  // namespace atrium::auth
