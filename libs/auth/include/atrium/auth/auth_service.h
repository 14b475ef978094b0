// AuthService: Atrium's identity and security module put together — users, workspaces, sessions
// (JWT access tokens + rotating refresh tokens), API keys, the revocation list, audit — plus its
// HTTP surface (/api/v1/auth/*, /api/v1/workspaces/*, /api/v1/invites/*, /api/v1/keys,
// /api/v1/audit/*) and the AuthMiddleware that other services rely on declaratively through
// RouteOptions::auth_scope (see principal.h for the scope rules).
//
// The AuthMiddleware:
//   - public routes (empty auth_scope) pass untouched;
//   - otherwise it reads credentials: `Authorization: Bearer <JWT | atr_ key>`, `x-api-key`,
//     `x-goog-api-key`, `api-key` or `?key=`; none or invalid → 401 (with WWW-Authenticate);
//   - checks the revocation list (memory, synchronised with the database); when the database
//     cannot be read the request fails closed with 503;
//   - checks the route's scope → 403 (and an audit record);
//   - when the route has a `{workspace_id}` parameter, the principal must belong to that
//     workspace (else 404, never 403, so other workspaces cannot be discovered) and the
//     principal's workspace and role become that workspace's;
//   - stores the Principal in Request::principal.
// Routes with RouteOptions::audit get an audit record of their outcome in OnResponse.
//
// The middleware may read the database (API key cache misses, revocation-list refreshes, foreign
// {workspace_id} memberships), so protected routes should be `blocking`; on I/O-thread routes such
// a read briefly blocks that thread.
//
// Thread-safe. The service must outlive the Router/Server it registered routes on.
// See docs/identity.md.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "atrium/auth/audit.h"
#include "atrium/auth/identity_store.h"
#include "atrium/auth/jwt.h"
#include "atrium/auth/password.h"
#include "atrium/auth/principal.h"
#include "atrium/auth/rate_limiter.h"
#include "atrium/core/config.h"
#include "atrium/core/env.h"
#include "atrium/http/router.h"
#include "atrium/http/server.h"

namespace spdlog {
class logger;
}

namespace atrium::store {
class RedisClient;
}

namespace atrium::auth {

struct AuthOptions {
  // ≥ 32 bytes; empty: generated at first start and persisted in kv_settings (sealed with the
  // master key when one is configured).
  std::string jwt_secret;
  std::string issuer = "atrium";
  std::chrono::seconds access_ttl{15 * 60};
  std::chrono::seconds refresh_ttl{14 * 24 * 3600};      // sliding
  std::chrono::seconds refresh_max_age{30 * 24 * 3600};  // absolute
  std::chrono::seconds invite_ttl{7 * 24 * 3600};
  PasswordCost password_cost = PasswordCost::kInteractive;
  // Key ring "kid:base64url32[,kid:key...]" for secrets at rest; empty = none.
  std::string master_key;
  // How stale the in-memory revocation list may get before it is re-read (scale-out).
  std::chrono::milliseconds revocation_sync{1000};
  std::chrono::milliseconds api_key_cache_ttl{30000};
  // Route classes of the RateLimitMiddleware ("auth", "login", "api", ...).
  std::map<std::string, RateLimit, std::less<>> rate_limits;
  // Login attempts per account (email) before 429.
  RateLimit login_attempts{.limit = 10, .period = std::chrono::minutes(15)};
};

// Declares the auth.* keys (see docs/identity.md).
void DefineAuthConfig(ConfigSchema& schema);
// Reads them; `master_key_env` is the value of ATRIUM_MASTER_KEY, used when auth.master_key is
// empty.
Result<AuthOptions> AuthOptionsFromConfig(const Config& config,
                                          const std::string& master_key_env = "");

class AuthService {
 public:
  // Loads or creates the JWT secret. `db` (migrated), `env` and the shared parts must outlive
  // the service; `audit` and `limiter` may be null (then a SqlAuditSink / InMemoryRateLimiter is
  // made); `log` may be null; `redis` (scale-out) shares the revocation list across nodes.
  static Result<std::unique_ptr<AuthService>> Create(
      AuthOptions options, store::Database& db, Env& env,
      std::shared_ptr<AuditSink> audit = nullptr, std::shared_ptr<RateLimiter> limiter = nullptr,
      std::shared_ptr<spdlog::logger> log = nullptr,
      std::shared_ptr<store::RedisClient> redis = nullptr);
  ~AuthService();
  AuthService(const AuthService&) = delete;
  AuthService& operator=(const AuthService&) = delete;

  // Registers every route of the module (all blocking).
  Status AddRoutes(http::Router& router);
  // The AuthMiddleware (see the file comment) and the RateLimitMiddleware for the configured
  // classes; install both, in this order, on the Server.
  std::shared_ptr<http::Middleware> auth_middleware();
  std::shared_ptr<http::Middleware> rate_limit_middleware();

  // Resolves the credentials of a request (no scope check). Unauthenticated (401) for missing or
  // invalid credentials, Unavailable (503) when revocation cannot be checked.
  Result<Principal> Authenticate(const http::Request& request);
  // The same answer from memory only, for handlers on an I/O thread: nullopt when it needs the
  // database or Redis (an API key not cached or due for its last-used update, an access token,
  // whose revocation is checked). Never blocks.
  std::optional<Result<Principal>> AuthenticateCached(const http::Request& request);
  // Revokes one access token (by its jti) until `expires_at_micros`, on every node: through the
  // database and, when the service was given Redis, through Redis at once.
  Status RevokeAccessToken(const std::string& jti, int64_t expires_at_micros);

  // Creates a user with its own workspace (admin tooling, bootstrap). Conflict when the email
  // exists.
  Result<User> CreateUser(const std::string& email, const std::string& password,
                          const std::string& name, bool platform_admin);
  // Creates the admin on first start: only when no user exists yet. Returns whether it did.
  Result<bool> BootstrapAdmin(const std::string& email, const std::string& password);
  // Re-seals every sealed setting under the master ring's current key; returns how many changed.
  Result<int> RotateMasterKey();

  IdentityStore& store();
  const JwtCodec& jwt() const;
  SqlAuditSink* sql_audit();

  class Impl;

 private:
  explicit AuthService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::auth
