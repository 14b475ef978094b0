// Private parts of AuthService shared by auth_service.cc and auth_routes.cc.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "atrium/auth/auth_service.h"
#include "atrium/auth/crypto.h"
#include "atrium/store/redis_client.h"

namespace atrium::auth {

inline constexpr std::string_view kApiKeyPrefix = "atr_";
inline constexpr std::string_view kJwtSecretSetting = "auth.jwt_secret";

// InvalidArgument unless `email` looks like an address (one '@', no spaces, ≤ 254 bytes).
Status ValidateEmail(std::string_view email);

// Revoked access tokens (by jti) and users whose earlier tokens are all revoked (logout-all),
// kept in memory and re-read from auth_revocations at most every `sync_interval`. When the
// re-read fails the check fails (Unavailable) instead of trusting a stale list. Thread-safe.
class RevocationList {
 public:
  // With `redis`, every entry is also written to Redis and every check asks Redis too, so a
  // revocation on one node takes effect on all nodes at once (not after the next re-read);
  // Redis being unreachable fails the check (Unavailable).
  RevocationList(IdentityStore& store, Env& env, std::chrono::milliseconds sync_interval,
                 std::shared_ptr<store::RedisClient> redis = nullptr)
      : store_(store), env_(env), sync_interval_(sync_interval), redis_(std::move(redis)) {}
  Result<bool> IsRevoked(const std::string& jti, const std::string& user_id,
                         int64_t issued_at_micros);
  // Writes the entry to the database, then to memory (so it takes effect at once on this node).
  Status Revoke(Revocation r);
  // The logout-all time of the user (micros), 0 when none is known.
  int64_t UserNotBefore(const std::string& user_id);

 private:
  Status SyncIfDue();

  IdentityStore& store_;
  Env& env_;
  std::chrono::milliseconds sync_interval_;
  std::shared_ptr<store::RedisClient> redis_;  // null: database + memory only
  std::mutex sync_mu_;                         // one re-read at a time
  std::mutex mu_;
  std::unordered_map<std::string, Revocation> entries_;  // guarded by mu_
  int64_t synced_from_ = 0;                              // guarded by mu_ (and sync_mu_)
  std::chrono::steady_clock::time_point last_sync_;      // guarded by mu_
  bool synced_once_ = false;                             // guarded by mu_
  int64_t last_purge_ = 0;                               // guarded by sync_mu_
};

class AuthService::Impl {
 public:
  Impl(AuthOptions options, store::Database& db, Env& env, JwtCodec jwt,
       std::shared_ptr<AuditSink> audit, std::shared_ptr<RateLimiter> limiter,
       std::shared_ptr<spdlog::logger> log, std::optional<SecretBox> box,
       std::shared_ptr<store::RedisClient> redis);

  Result<Principal> Authenticate(const http::Request& req);
  // Authenticate from memory only (see AuthService::AuthenticateCached).
  std::optional<Result<Principal>> AuthenticateCached(const http::Request& req);
  // Records an audit event; failures are logged, never returned (the request already happened).
  void Audit(const http::Request* req, const Principal* p, AuditRecord r);
  Result<ApiKey> LookupKey(const std::string& secret);
  // The cached key of this hash while fresh, else nullopt.
  std::optional<ApiKey> CachedKeyByHash(const std::string& hash);
  // The cached key with this hash while it is fresh, else null. Requires key_cache_mu.
  const ApiKey* FreshCachedKeyLocked(const std::string& hash,
                                     std::chrono::steady_clock::time_point steady) const;
  void ForgetKey(const std::string& key_id);

  AuthOptions options;
  Env& env;
  IdentityStore store;
  JwtCodec jwt;
  PasswordHasher hasher;
  RevocationList revocations;
  std::shared_ptr<AuditSink> audit;
  std::shared_ptr<SqlAuditSink> sql_audit;  // for the query API
  std::shared_ptr<RateLimiter> limiter;
  std::shared_ptr<spdlog::logger> log;
  std::optional<SecretBox> box;

  struct CachedKey {
    ApiKey key;
    std::chrono::steady_clock::time_point fetched;
  };
  std::mutex key_cache_mu;
  std::unordered_map<std::string, CachedKey> key_cache;  // guarded by key_cache_mu; by hash
};

}  // namespace atrium::auth
