#include "atrium/auth/jwt.h"

#include <boost/json.hpp>

#include "atrium/auth/crypto.h"

namespace atrium::auth {
namespace json = boost::json;

namespace {

constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";

Status Reject(std::string why) { return Unauthenticated("invalid access token: " + why); }

}  // namespace

Result<JwtCodec> JwtCodec::Create(std::string secret, std::string issuer) {
  if (secret.size() < kMinSecretBytes) {
    return InvalidArgument("the JWT secret must have at least 32 bytes");
  }
  if (issuer.empty()) return InvalidArgument("the JWT issuer must not be empty");
  return JwtCodec(std::move(secret), std::move(issuer));
}

std::string JwtCodec::Sign(JwtClaims c) const {
  json::object payload;
  payload["sub"] = c.sub;
  payload["ws"] = c.ws;
  payload["role"] = c.role;
  payload["jti"] = c.jti;
  payload["iat"] = c.iat;
  payload["exp"] = c.exp;
  if (c.nbf != 0) payload["nbf"] = c.nbf;
  if (!c.sid.empty()) payload["sid"] = c.sid;
  payload["iss"] = issuer_;
  std::string signing_input =
      Base64UrlEncode(kHeader) + "." + Base64UrlEncode(json::serialize(payload));
  return signing_input + "." + Base64UrlEncode(HmacSha256(secret_, signing_input));
}

Result<JwtClaims> JwtCodec::Verify(std::string_view token, int64_t now) const {
  if (token.size() > 8192) return Reject("too long");
  size_t d1 = token.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return Reject("malformed");
  }
  auto header_raw = Base64UrlDecode(token.substr(0, d1));
  auto payload_raw = Base64UrlDecode(token.substr(d1 + 1, d2 - d1 - 1));
  auto sig = Base64UrlDecode(token.substr(d2 + 1));
  if (!header_raw.ok() || !payload_raw.ok() || !sig.ok()) return Reject("malformed");

  // The header is checked before the signature: only HS256 is ever computed, so "none" or
  // RS/HS confusion cannot select another verification path.
  boost::system::error_code ec;
  json::value header = json::parse(*header_raw, ec);
  if (ec || !header.is_object()) return Reject("malformed header");
  const auto& ho = header.as_object();
  const auto* alg = ho.if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->as_string() != "HS256") {
    return Reject("unsupported algorithm");
  }
  if (const auto* crit = ho.if_contains("crit"); crit != nullptr) {
    return Reject("unsupported critical header");
  }
  std::string expected = HmacSha256(secret_, token.substr(0, d2));
  if (!ConstantTimeEquals(expected, *sig)) return Reject("bad signature");

  json::value payload = json::parse(*payload_raw, ec);
  if (ec || !payload.is_object()) return Reject("malformed payload");
  const auto& po = payload.as_object();
  JwtClaims c;
  auto str = [&](const char* name, std::string& out) {
    const auto* v = po.if_contains(name);
    if (v == nullptr || !v->is_string()) return false;
    out = std::string(v->as_string());
    return true;
  };
  auto num = [&](const char* name, int64_t& out) {
    const auto* v = po.if_contains(name);
    if (v == nullptr) return false;
    if (v->is_int64()) {
      out = v->as_int64();
    } else if (v->is_uint64()) {
      out = static_cast<int64_t>(std::min<uint64_t>(v->as_uint64(), INT64_MAX));
    } else {
      return false;
    }
    return true;
  };
  if (!str("sub", c.sub) || !str("ws", c.ws) || !str("role", c.role) || !str("jti", c.jti) ||
      !str("iss", c.iss) || !num("iat", c.iat) || !num("exp", c.exp)) {
    return Reject("missing claims");
  }
  if (po.contains("nbf") && !num("nbf", c.nbf)) return Reject("malformed nbf");
  if (po.contains("sid") && !str("sid", c.sid)) return Reject("malformed sid");
  if (c.iss != issuer_) return Reject("wrong issuer");
  if (now >= c.exp + kLeewaySeconds) return Reject("expired");
  if (c.nbf != 0 && now + kLeewaySeconds < c.nbf) return Reject("not yet valid");
  if (c.iat > now + kLeewaySeconds) return Reject("issued in the future");
  return c;
}

}  // namespace atrium::auth
