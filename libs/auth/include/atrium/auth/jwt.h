// JwtCodec: Atrium's access tokens, JWT (RFC 7519) signed with HS256.
//
// Claims: sub (user id), ws (workspace id), role (role in that workspace), jti (random id, the
// handle for revocation), iat, exp, iss, and optionally nbf. Verification accepts exactly
// {"alg":"HS256"} (typ "JWT" optional) and rejects every other algorithm including "none",
// signatures that do not match (compared in constant time), tokens past exp or before nbf (with
// a small leeway for clock skew), and other issuers. Every rejection is Unauthenticated with a
// short reason that is safe to show. Thread-safe (immutable).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "atrium/core/status.h"

namespace atrium::auth {

struct JwtClaims {
  std::string sub;
  std::string ws;
  std::string role;
  std::string jti;
  std::string iss;
  std::string sid;  // the refresh-token family (session) the token belongs to; may be empty
  int64_t iat = 0;  // seconds since the epoch
  int64_t exp = 0;
  int64_t nbf = 0;  // 0 = absent
};

class JwtCodec {
 public:
  static constexpr size_t kMinSecretBytes = 32;
  static constexpr int64_t kLeewaySeconds = 30;

  // `secret` must have at least kMinSecretBytes (checked by Create).
  static Result<JwtCodec> Create(std::string secret, std::string issuer);

  // Signs `claims`; claims.iss is replaced by the codec's issuer.
  std::string Sign(JwtClaims claims) const;
  // Checks signature, algorithm, issuer and time window at `now_seconds`.
  Result<JwtClaims> Verify(std::string_view token, int64_t now_seconds) const;

  const std::string& issuer() const { return issuer_; }

 private:
  JwtCodec(std::string secret, std::string issuer)
      : secret_(std::move(secret)), issuer_(std::move(issuer)) {}
  std::string secret_;
  std::string issuer_;
};

}  // namespace atrium::auth
