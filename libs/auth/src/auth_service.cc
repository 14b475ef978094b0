// AuthService: construction, configuration, credentials, revocation list and middleware.
// The HTTP handlers are in auth_routes.cc.
#include "atrium/auth/auth_service.h"

#include <spdlog/spdlog.h>

#include "atrium/auth/crypto.h"
#include "auth_impl.h"

namespace atrium::auth {

// ---------------------------------------------------------------------------------------------
// Configuration

void DefineAuthConfig(ConfigSchema& schema) {
  schema.DefineSecret(
      "auth.jwt_secret", "",
      "HS256 key of access tokens (>= 32 bytes); empty = generated once and kept in the database",
      {.validator = [](const ConfigValue& v) {
        const auto& s = std::get<std::string>(v);
        return s.empty() || s.size() >= JwtCodec::kMinSecretBytes
                   ? Status::Ok()
                   : InvalidArgument("must be empty or at least 32 bytes");
      }});
  schema.DefineString("auth.issuer", "atrium", "The iss claim of access tokens",
                      {.non_empty = true});
  schema.DefineDuration("auth.access_token_ttl", std::chrono::minutes(15),
                        "Lifetime of access tokens", {.min = 10'000, .max = 86'400'000});
  schema.DefineDuration("auth.refresh_token_ttl", std::chrono::hours(14 * 24),
                        "Sliding lifetime of refresh tokens", {.min = 60'000});
  schema.DefineDuration("auth.refresh_token_max_age", std::chrono::hours(30 * 24),
                        "Absolute lifetime of a refresh-token family (session)", {.min = 60'000});
  schema.DefineDuration("auth.invite_ttl", std::chrono::hours(7 * 24), "Lifetime of invites",
                        {.min = 60'000});
  schema.DefineString("auth.password_hash_cost", "interactive",
                      "argon2id cost: interactive (production) or test (INSECURE, tests only)",
                      {.one_of = {"interactive", "test"}});
  schema.DefineSecret("auth.master_key", "",
                      "Master key ring for secrets at rest, kid:base64url(32 bytes)[,kid:key...], "
                      "first = current (also ATRIUM_MASTER_KEY)");
  schema.DefineDuration("auth.revocation_sync", std::chrono::seconds(1),
                        "Longest staleness of the in-memory revocation list", {.min = 0});
  schema.DefineDuration("auth.api_key_cache_ttl", std::chrono::seconds(30),
                        "How long API key lookups are cached", {.min = 0});
  schema.DefineStringList(
      "auth.rate_limits", {"auth=30/1m", "login=20/1m", "api=600/1m"},
      "Rate-limit classes as class=limit/period[:burst]", {.validator = [](const ConfigValue& v) {
        for (const auto& item : std::get<std::vector<std::string>>(v)) {
          size_t eq = item.find('=');
          if (eq == std::string::npos || eq == 0 || !ParseRateLimit(item.substr(eq + 1)).ok()) {
            return InvalidArgument("entries must read class=limit/period[:burst], e.g. api=600/1m");
          }
        }
        return Status::Ok();
      }});
  schema.DefineString("auth.login_attempts", "10/15m",
                      "Login attempts allowed per account (limit/period[:burst])",
                      {.validator = [](const ConfigValue& v) {
                        return ParseRateLimit(std::get<std::string>(v)).status();
                      }});
  schema.DefineString("bootstrap_admin_email", "",
                      "Creates this platform admin on first start (ATRIUM_BOOTSTRAP_ADMIN_EMAIL)");
  schema.DefineSecret("bootstrap_admin_password", "",
                      "Password of the bootstrap admin (ATRIUM_BOOTSTRAP_ADMIN_PASSWORD)");
}

Result<AuthOptions> AuthOptionsFromConfig(const Config& c, const std::string& master_key_env) {
  AuthOptions o;
  o.jwt_secret = c.GetString("auth.jwt_secret");
  o.issuer = c.GetString("auth.issuer");
  auto secs = [](std::chrono::milliseconds ms) {
    return std::chrono::duration_cast<std::chrono::seconds>(ms);
  };
  o.access_ttl = secs(c.GetDuration("auth.access_token_ttl"));
  o.refresh_ttl = secs(c.GetDuration("auth.refresh_token_ttl"));
  o.refresh_max_age = secs(c.GetDuration("auth.refresh_token_max_age"));
  o.invite_ttl = secs(c.GetDuration("auth.invite_ttl"));
  ASSIGN_OR_RETURN(o.password_cost, ParsePasswordCost(c.GetString("auth.password_hash_cost")));
  o.master_key = c.GetString("auth.master_key");
  if (o.master_key.empty()) o.master_key = master_key_env;
  o.revocation_sync = c.GetDuration("auth.revocation_sync");
  o.api_key_cache_ttl = c.GetDuration("auth.api_key_cache_ttl");
  for (const auto& item : c.GetStringList("auth.rate_limits")) {
    size_t eq = item.find('=');
    ASSIGN_OR_RETURN(auto limit, ParseRateLimit(item.substr(eq + 1)));
    o.rate_limits[item.substr(0, eq)] = limit;
  }
  ASSIGN_OR_RETURN(o.login_attempts, ParseRateLimit(c.GetString("auth.login_attempts")));
  return o;
}

// ---------------------------------------------------------------------------------------------
// Revocation list

namespace {
constexpr std::string_view kRedisRevocationPrefix = "atrium:revoked:";
}  // namespace

Result<bool> RevocationList::IsRevoked(const std::string& jti, const std::string& user_id,
                                       int64_t issued_at_micros) {
  RETURN_IF_ERROR(SyncIfDue());
  {
    std::lock_guard lock(mu_);
    if (entries_.count("jti:" + jti)) return true;
    auto it = entries_.find("user:" + user_id);
    if (it != entries_.end() && issued_at_micros < it->second.not_before) return true;
  }
  if (!redis_) return false;
  std::string prefix(kRedisRevocationPrefix);
  auto r = redis_->Command({"MGET", prefix + "jti:" + jti, prefix + "user:" + user_id});
  if (!r.ok() || r->elements.size() != 2) {
    return Unavailable("the revocation list cannot be checked: " +
                       (r.ok() ? std::string("unexpected reply") : r.status().message()));
  }
  if (r->elements[0].type != store::RedisReply::Type::kNil) return true;
  const auto& user = r->elements[1];
  if (user.type == store::RedisReply::Type::kString) {
    int64_t not_before = std::strtoll(user.str.c_str(), nullptr, 10);
    if (issued_at_micros < not_before) return true;
  }
  return false;
}

int64_t RevocationList::UserNotBefore(const std::string& user_id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find("user:" + user_id);
  return it == entries_.end() ? 0 : it->second.not_before;
}

Status RevocationList::Revoke(Revocation r) {
  RETURN_IF_ERROR(store_.PutRevocation(r));
  {
    std::lock_guard lock(mu_);
    entries_[r.id] = r;
  }
  if (redis_) {
    // Expires with the entry; the database copy reaches other nodes anyway within sync_interval.
    int64_t expires_ms = std::max<int64_t>(r.expires_at / 1000, env_.NowMicros() / 1000 + 1);
    auto set = redis_->Command({"SET", std::string(kRedisRevocationPrefix) + r.id,
                                std::to_string(r.not_before), "PXAT", std::to_string(expires_ms)});
    if (!set.ok())
      return Unavailable("revocation not shared with redis: " + set.status().message());
  }
  return Status::Ok();
}

Status RevocationList::SyncIfDue() {
  auto steady = env_.SteadyNow();
  std::lock_guard sync_lock(sync_mu_);
  {
    std::lock_guard lock(mu_);
    if (synced_once_ && steady - last_sync_ < sync_interval_) return Status::Ok();
  }
  int64_t now = env_.NowMicros();
  // Overlap the window so entries written by other nodes with slightly skewed clocks are seen.
  int64_t since = synced_once_ ? synced_from_ - 10'000'000 : 0;
  auto rows = store_.RevocationsSince(since);
  if (!rows.ok()) {
    return Unavailable("the revocation list cannot be checked: " + rows.status().message());
  }
  if (now - last_purge_ > 3'600'000'000) {
    // Entries past their expiry protect nothing (the tokens they name are expired too); the same
    // holds for refresh tokens of families past their absolute limit.
    if (store_.PurgeRevocations(now).ok() && store_.PurgeExpiredRefreshTokens(now).ok()) {
      last_purge_ = now;
    }
  }
  std::lock_guard lock(mu_);
  for (auto& r : *rows) entries_[r.id] = std::move(r);
  std::erase_if(entries_, [now](const auto& kv) { return kv.second.expires_at < now; });
  synced_from_ = now;
  last_sync_ = steady;
  synced_once_ = true;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Credentials

namespace {

// The credential a request carries: a JWT or an API key, and where it came from.
struct Credential {
  std::string value;
  bool is_key = false;
};

std::optional<Credential> ExtractCredential(const http::Request& req) {
  if (auto auth = req.headers.Get("authorization")) {
    std::string_view v = *auth;
    if (v.size() > 7 && http::EqualsIgnoreCase(v.substr(0, 7), "bearer ")) {
      std::string token(v.substr(7));
      while (!token.empty() && token.front() == ' ') token.erase(0, 1);
      while (!token.empty() && token.back() == ' ') token.pop_back();
      bool is_key = token.starts_with(kApiKeyPrefix);
      return Credential{std::move(token), is_key};
    }
  }
  for (const char* name : {"x-api-key", "x-goog-api-key", "api-key"}) {
    if (auto v = req.headers.Get(name); v && !v->empty()) return Credential{std::string(*v), true};
  }
  if (auto key = req.Query("key"); key && !key->empty()) return Credential{*key, true};
  return std::nullopt;
}

}  // namespace

AuthService::Impl::Impl(AuthOptions o, store::Database& db, Env& e, JwtCodec j,
                        std::shared_ptr<AuditSink> a, std::shared_ptr<RateLimiter> l,
                        std::shared_ptr<spdlog::logger> lg, std::optional<SecretBox> b,
                        std::shared_ptr<store::RedisClient> redis)
    : options(std::move(o)),
      env(e),
      store(db),
      jwt(std::move(j)),
      hasher(options.password_cost),
      revocations(store, e, options.revocation_sync, std::move(redis)),
      audit(std::move(a)),
      limiter(std::move(l)),
      log(std::move(lg)),
      box(std::move(b)) {}

void AuthService::Impl::Audit(const http::Request* req, const Principal* p, AuditRecord r) {
  if (r.at == 0) r.at = env.NowMicros();
  if (p != nullptr) {
    if (r.workspace_id.empty()) r.workspace_id = p->workspace_id;
    if (r.actor_id.empty()) {
      r.actor_type = p->is_api_key() ? "key" : "user";
      r.actor_id = p->is_api_key() ? p->key_id : p->user_id;
    }
  }
  if (r.actor_type.empty()) r.actor_type = r.actor_id.empty() ? "anonymous" : "user";
  if (req != nullptr) {
    std::string_view addr = req->remote_addr;
    size_t colon = addr.rfind(':');
    r.ip = std::string(colon == std::string_view::npos ? addr : addr.substr(0, colon));
    r.user_agent = std::string(req->headers.GetOr("user-agent", ""));
  }
  if (Status s = audit->Record(std::move(r)); !s.ok() && log) {
    log->error("audit record lost: {}", s.ToString());
  }
}

const ApiKey* AuthService::Impl::FreshCachedKeyLocked(
    const std::string& hash, std::chrono::steady_clock::time_point steady) const {
  auto it = key_cache.find(hash);
  if (it != key_cache.end() && steady - it->second.fetched < options.api_key_cache_ttl) {
    return &it->second.key;
  }
  return nullptr;
}

std::optional<ApiKey> AuthService::Impl::CachedKeyByHash(const std::string& hash) {
  auto steady = env.SteadyNow();
  std::lock_guard lock(key_cache_mu);
  if (const ApiKey* key = FreshCachedKeyLocked(hash, steady)) return *key;
  return std::nullopt;
}

Result<ApiKey> AuthService::Impl::LookupKey(const std::string& secret) {
  std::string hash = Sha256Hex(secret);
  if (auto cached = CachedKeyByHash(hash)) return *std::move(cached);
  auto steady = env.SteadyNow();
  auto key = store.FindApiKeyByHash(hash);
  if (!key.ok()) {
    if (key.status().code() == StatusCode::kNotFound) return Unauthenticated("invalid API key");
    return Unavailable("API keys cannot be checked: " + key.status().message());
  }
  std::lock_guard lock(key_cache_mu);
  if (key_cache.size() > 100'000) key_cache.clear();  // bounded; refills on demand
  key_cache[hash] = CachedKey{*key, steady};
  return key;
}

void AuthService::Impl::ForgetKey(const std::string& key_id) {
  std::lock_guard lock(key_cache_mu);
  std::erase_if(key_cache, [&](const auto& kv) { return kv.second.key.id == key_id; });
}

namespace {

// Whether the key's last-used time is due for its (throttled) update.
bool TouchDue(const ApiKey& key, int64_t now) { return now - key.last_used_at > 60'000'000; }

// The principal of a valid key, or why the key is refused.
Result<Principal> KeyPrincipal(const ApiKey& key, int64_t now) {
  if (!key.enabled) return Unauthenticated("API key is disabled");
  if (key.expires_at != 0 && key.expires_at <= now) return Unauthenticated("API key expired");
  return Principal{.user_id = key.owner_id,
                   .workspace_id = key.workspace_id,
                   .role = "key",
                   .key_id = key.id,
                   .scopes = key.scopes,
                   .key_rpm = key.rpm,
                   .tier = key.tier};
}

}  // namespace

std::optional<Result<Principal>> AuthService::Impl::AuthenticateCached(const http::Request& req) {
  auto cred = ExtractCredential(req);
  if (!cred) return Result<Principal>(Unauthenticated("authentication required"));
  if (!cred->is_key) return std::nullopt;  // access tokens consult the revocation list
  const std::string hash = Sha256Hex(cred->value);
  const int64_t now = env.NowMicros();
  const auto steady = env.SteadyNow();
  // The principal is built from the cached key in place (CachedKeyByHash would copy the key).
  std::lock_guard lock(key_cache_mu);
  const ApiKey* key = FreshCachedKeyLocked(hash, steady);
  if (key == nullptr || TouchDue(*key, now)) return std::nullopt;
  return KeyPrincipal(*key, now);
}

Result<Principal> AuthService::Impl::Authenticate(const http::Request& req) {
  auto cred = ExtractCredential(req);
  if (!cred) return Unauthenticated("authentication required");
  int64_t now = env.NowMicros();
  if (cred->is_key) {
    ASSIGN_OR_RETURN(ApiKey key, LookupKey(cred->value));
    auto principal = KeyPrincipal(key, now);
    if (principal.ok() && TouchDue(key, now)) {
      // Throttled to once a minute per key and node; best effort.
      if (store.TouchApiKey(key.id, now).ok()) {
        std::lock_guard lock(key_cache_mu);
        auto it = key_cache.find(key.key_hash);
        if (it != key_cache.end()) it->second.key.last_used_at = now;
      }
    }
    return principal;
  }
  ASSIGN_OR_RETURN(JwtClaims claims, jwt.Verify(cred->value, now / 1'000'000));
  ASSIGN_OR_RETURN(bool revoked,
                   revocations.IsRevoked(claims.jti, claims.sub, claims.iat * 1'000'000));
  if (revoked) return Unauthenticated("access token has been revoked");
  return Principal{.user_id = claims.sub,
                   .workspace_id = claims.ws,
                   .role = claims.role,
                   .jti = claims.jti,
                   .session_id = claims.sid,
                   .token_expires_at = claims.exp};
}

namespace {

class AuthMiddleware : public http::Middleware {
 public:
  explicit AuthMiddleware(AuthService::Impl& impl) : impl_(impl) {}

  std::optional<http::Response> OnRequest(http::Request& req) override {
    if (req.route == nullptr || req.route->options.auth_scope.empty()) return std::nullopt;
    const std::string& scope = req.route->options.auth_scope;
    auto p = impl_.Authenticate(req);
    if (!p.ok()) {
      http::Response r = http::Response::FromStatus(p.status());
      if (p.status().code() == StatusCode::kUnauthenticated) {
        r.headers.Set("www-authenticate", "Bearer realm=\"atrium\"");
      }
      return r;
    }
    if (!p->Allows(scope)) {
      impl_.Audit(&req, &*p,
                  AuditRecord{.action = "auth.permission_denied",
                              .resource_type = "route",
                              .resource_id = req.method + " " + req.route->pattern,
                              .outcome = "denied"});
      return http::Response::FromStatus(
          PermissionDenied("this credential lacks the '" + scope + "' scope"));
    }
    std::string_view ws = req.Param("workspace_id");
    if (!ws.empty() && ws != p->workspace_id) {
      if (p->is_api_key()) return http::Response::FromStatus(NotFound("no such workspace"));
      auto m = impl_.store.FindMembership(ws, p->user_id);
      if (!m.ok()) {
        if (m.status().code() == StatusCode::kNotFound) {
          return http::Response::FromStatus(NotFound("no such workspace"));
        }
        return http::Response::FromStatus(Unavailable("membership cannot be checked"));
      }
      p->workspace_id = std::string(ws);
      p->role = m->role;
    }
    req.principal = std::move(*p);
    return std::nullopt;
  }

  void OnResponse(const http::Request& req, http::Response& res) override {
    if (req.route == nullptr || !req.route->options.audit) return;
    const auto* p = std::any_cast<Principal>(&req.principal);
    impl_.Audit(&req, p,
                AuditRecord{.action = req.method + " " + req.route->pattern,
                            .resource_type = "route",
                            .resource_id = req.path,
                            .outcome = res.status < 400                         ? "success"
                                       : res.status == 401 || res.status == 403 ? "denied"
                                                                                : "failure",
                            .details = "{\"status\":" + std::to_string(res.status) + "}"});
  }

 private:
  AuthService::Impl& impl_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// AuthService

AuthService::AuthService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AuthService::~AuthService() = default;

Result<std::unique_ptr<AuthService>> AuthService::Create(
    AuthOptions options, store::Database& db, Env& env, std::shared_ptr<AuditSink> audit,
    std::shared_ptr<RateLimiter> limiter, std::shared_ptr<spdlog::logger> log,
    std::shared_ptr<store::RedisClient> redis) {
  std::optional<SecretBox> box;
  if (!options.master_key.empty()) {
    ASSIGN_OR_RETURN(auto b, SecretBox::FromKeyRing(options.master_key));
    box = std::move(b);
  }
  IdentityStore store(db);
  std::string secret = options.jwt_secret;
  if (secret.empty()) {
    // Generated once; sealed when a master key is configured. The first writer wins so that
    // several nodes starting together agree.
    std::string fresh = Base64UrlEncode(RandomBytes(env, 32));
    std::string stored_form = fresh;
    if (box) {
      ASSIGN_OR_RETURN(stored_form, box->Seal(env, fresh, kJwtSecretSetting));
    }
    ASSIGN_OR_RETURN(std::string stored,
                     store.PutSettingIfAbsent(kJwtSecretSetting, stored_form, env.NowMicros()));
    if (SecretBox::IsSealed(stored)) {
      if (!box) {
        return InvalidArgument(
            "the stored JWT secret is sealed but no master key is configured "
            "(auth.master_key / ATRIUM_MASTER_KEY)");
      }
      ASSIGN_OR_RETURN(secret, box->Open(stored, kJwtSecretSetting));
    } else {
      secret = stored;
    }
  }
  ASSIGN_OR_RETURN(JwtCodec jwt, JwtCodec::Create(secret, options.issuer));
  if (!audit) audit = std::make_shared<SqlAuditSink>(db);
  if (!limiter) limiter = std::make_shared<InMemoryRateLimiter>();
  auto impl =
      std::make_unique<Impl>(std::move(options), db, env, std::move(jwt), std::move(audit),
                             std::move(limiter), std::move(log), std::move(box), std::move(redis));
  impl->sql_audit = std::make_shared<SqlAuditSink>(db);
  return std::unique_ptr<AuthService>(new AuthService(std::move(impl)));
}

std::shared_ptr<http::Middleware> AuthService::auth_middleware() {
  return std::make_shared<AuthMiddleware>(*impl_);
}

std::shared_ptr<http::Middleware> AuthService::rate_limit_middleware() {
  return std::make_shared<RateLimitMiddleware>(impl_->limiter, impl_->options.rate_limits);
}

Result<Principal> AuthService::Authenticate(const http::Request& request) {
  return impl_->Authenticate(request);
}

std::optional<Result<Principal>> AuthService::AuthenticateCached(const http::Request& request) {
  return impl_->AuthenticateCached(request);
}

Status AuthService::RevokeAccessToken(const std::string& jti, int64_t expires_at_micros) {
  int64_t now = impl_->env.NowMicros();
  return impl_->revocations.Revoke(Revocation{
      .id = "jti:" + jti, .not_before = now, .expires_at = expires_at_micros, .created_at = now});
}

IdentityStore& AuthService::store() { return impl_->store; }
const JwtCodec& AuthService::jwt() const { return impl_->jwt; }
SqlAuditSink* AuthService::sql_audit() { return impl_->sql_audit.get(); }

Result<User> AuthService::CreateUser(const std::string& email, const std::string& password,
                                     const std::string& name, bool platform_admin) {
  RETURN_IF_ERROR(ValidateEmail(email));
  ASSIGN_OR_RETURN(std::string hash, impl_->hasher.Hash(password));
  int64_t now = impl_->env.NowMicros();
  User user{.id = NewId(impl_->env, "usr_"),
            .email = email,
            .name = name.empty() ? email.substr(0, email.find('@')) : name,
            .password_hash = std::move(hash),
            .platform_role = platform_admin ? "admin" : "user",
            .created_at = now};
  Workspace ws{.id = NewId(impl_->env, "ws_"),
               .name = user.name + "'s workspace",
               .owner_id = user.id,
               .created_at = now};
  RETURN_IF_ERROR(impl_->store.CreateUserWithWorkspace(user, ws));
  impl_->Audit(nullptr, nullptr,
               AuditRecord{.workspace_id = ws.id,
                           .actor_type = "system",
                           .actor_id = "cli",
                           .action = "user.create",
                           .resource_type = "user",
                           .resource_id = user.id,
                           .outcome = "success"});
  return user;
}

Result<bool> AuthService::BootstrapAdmin(const std::string& email, const std::string& password) {
  if (email.empty()) return false;
  ASSIGN_OR_RETURN(int64_t users, impl_->store.CountUsers());
  if (users > 0) return false;
  auto user = CreateUser(email, password, "", true);
  if (!user.ok()) {
    if (user.status().code() == StatusCode::kConflict) return false;  // another node won
    return user.status();
  }
  return true;
}

Result<int> AuthService::RotateMasterKey() {
  if (!impl_->box) return InvalidArgument("no master key is configured (auth.master_key)");
  const SecretBox& box = *impl_->box;
  ASSIGN_OR_RETURN(auto sealed, impl_->store.SettingsWithPrefix("aes1."));
  int changed = 0;
  // A JWT secret generated before a master key was configured gets sealed now.
  ASSIGN_OR_RETURN(auto jwt_secret, impl_->store.GetSetting(kJwtSecretSetting));
  if (jwt_secret && !SecretBox::IsSealed(*jwt_secret)) {
    ASSIGN_OR_RETURN(std::string s, box.Seal(impl_->env, *jwt_secret, kJwtSecretSetting));
    RETURN_IF_ERROR(impl_->store.PutSetting(kJwtSecretSetting, s, impl_->env.NowMicros()));
    ++changed;
  }
  for (const auto& [key, value] : sealed) {
    if (SecretBox::KeyIdOf(value) == box.current_key_id()) continue;
    ASSIGN_OR_RETURN(std::string plain, box.Open(value, key));
    ASSIGN_OR_RETURN(std::string resealed, box.Seal(impl_->env, plain, key));
    RETURN_IF_ERROR(impl_->store.PutSetting(key, resealed, impl_->env.NowMicros()));
    ++changed;
  }
  return changed;
}

}  // namespace atrium::auth
