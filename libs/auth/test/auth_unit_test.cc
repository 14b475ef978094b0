// Unit tests of the identity module's building blocks: JWT, passwords, encodings, API key format,
// GCRA with an injected clock, AES-256-GCM sealing.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <vector>

#include "atrium/auth/crypto.h"
#include "atrium/auth/jwt.h"
#include "atrium/auth/password.h"
#include "atrium/auth/principal.h"
#include "atrium/auth/rate_limiter.h"
#include "atrium/core/env.h"

namespace atrium::auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;
const std::string kSecret(32, 'k');

JwtClaims Claims() {
  return JwtClaims{.sub = "usr_1",
                   .ws = "ws_1",
                   .role = "owner",
                   .jti = "jti_1",
                   .iat = kNow,
                   .exp = kNow + 900};
}

JwtCodec Codec(std::string secret = kSecret, std::string issuer = "atrium") {
  return *JwtCodec::Create(std::move(secret), std::move(issuer));
}

// A token with an arbitrary header and payload, signed with `key` (or unsigned when empty).
std::string Forge(std::string_view header, std::string_view payload, std::string_view key) {
  std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
  return input + "." + (key.empty() ? "" : Base64UrlEncode(HmacSha256(key, input)));
}

TEST(Jwt, SignedTokenVerifiesWithItsClaims) {
  JwtCodec codec = Codec();
  auto c = codec.Verify(codec.Sign(Claims()), kNow + 10);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->sub, "usr_1");
  EXPECT_EQ(c->ws, "ws_1");
  EXPECT_EQ(c->role, "owner");
  EXPECT_EQ(c->jti, "jti_1");
  EXPECT_EQ(c->iss, "atrium");
  EXPECT_EQ(c->exp, kNow + 900);
}

TEST(Jwt, ShortSecretIsRefused) {
  EXPECT_EQ(JwtCodec::Create(std::string(31, 'x'), "atrium").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Jwt, AlgNoneIsRejected) {
  std::string payload = R"({"sub":"usr_1","ws":"ws_1","role":"owner","jti":"j","iat":)" +
                        std::to_string(kNow) + R"(,"exp":)" + std::to_string(kNow + 900) +
                        R"(,"iss":"atrium"})";
  auto r = Codec().Verify(Forge(R"({"alg":"none","typ":"JWT"})", payload, ""), kNow);
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  // "none" header with a valid HS256 signature (HS/none confusion) is rejected too.
  r = Codec().Verify(Forge(R"({"alg":"none"})", payload, kSecret), kNow);
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  r = Codec().Verify(Forge(R"({"alg":"NONE"})", payload, ""), kNow);
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
}

TEST(Jwt, OtherAlgorithmsAreRejected) {
  std::string payload = R"({"sub":"u","ws":"w","role":"r","jti":"j","iat":1,"exp":9999999999,)"
                        R"("iss":"atrium"})";
  for (const char* alg : {"HS384", "HS512", "RS256", "ES256", "hs256"}) {
    std::string header = std::string(R"({"alg":")") + alg + "\"}";
    EXPECT_EQ(Codec().Verify(Forge(header, payload, kSecret), kNow).status().code(),
              StatusCode::kUnauthenticated)
        << alg;
  }
  EXPECT_EQ(Codec().Verify(Forge(R"({"typ":"JWT"})", payload, kSecret), kNow).status().code(),
            StatusCode::kUnauthenticated);
}

TEST(Jwt, WrongKeyIsRejected) {
  std::string token = Codec(std::string(32, 'z')).Sign(Claims());
  EXPECT_EQ(Codec().Verify(token, kNow).status().code(), StatusCode::kUnauthenticated);
}

TEST(Jwt, ExpiredTokenIsRejected) {
  JwtCodec codec = Codec();
  std::string token = codec.Sign(Claims());
  EXPECT_TRUE(codec.Verify(token, kNow + 899).ok());
  EXPECT_EQ(codec.Verify(token, kNow + 900 + JwtCodec::kLeewaySeconds).status().code(),
            StatusCode::kUnauthenticated);
}

TEST(Jwt, NotYetValidTokenIsRejected) {
  JwtClaims c = Claims();
  c.nbf = kNow + 600;
  JwtCodec codec = Codec();
  EXPECT_EQ(codec.Verify(codec.Sign(c), kNow).status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(codec.Verify(codec.Sign(c), kNow + 600).ok());
}

TEST(Jwt, WrongIssuerIsRejected) {
  std::string token = Codec(kSecret, "someone-else").Sign(Claims());
  EXPECT_EQ(Codec().Verify(token, kNow).status().code(), StatusCode::kUnauthenticated);
}

TEST(Jwt, TruncatedOrAlteredTokensAreRejected) {
  JwtCodec codec = Codec();
  std::string token = codec.Sign(Claims());
  for (size_t n : {size_t{0}, size_t{10}, token.rfind('.'), token.size() - 1}) {
    EXPECT_FALSE(codec.Verify(token.substr(0, n), kNow).ok()) << n;
  }
  // Swap the payload for one claiming another workspace, keeping the signature.
  size_t d1 = token.find('.'), d2 = token.rfind('.');
  std::string payload = *Base64UrlDecode(token.substr(d1 + 1, d2 - d1 - 1));
  payload.replace(payload.find("ws_1"), 4, "ws_2");
  std::string altered = token.substr(0, d1 + 1) + Base64UrlEncode(payload) + token.substr(d2);
  EXPECT_EQ(codec.Verify(altered, kNow).status().code(), StatusCode::kUnauthenticated);
  EXPECT_FALSE(codec.Verify(token + ".x", kNow).ok());
  EXPECT_FALSE(codec.Verify("a.b.c", kNow).ok());
}

TEST(Password, HashVerifiesAndRejectsWrongPassword) {
  PasswordHasher hasher(PasswordCost::kTest);
  auto hash = hasher.Hash("correct horse battery");
  ASSERT_TRUE(hash.ok());
  EXPECT_TRUE(hash->starts_with("$argon2id$"));
  EXPECT_TRUE(hasher.Verify("correct horse battery", *hash));
  EXPECT_FALSE(hasher.Verify("correct horse batterx", *hash));
  EXPECT_FALSE(hasher.Verify("correct horse battery", "garbage"));
  EXPECT_FALSE(hasher.VerifyDummy("anything at all"));
  EXPECT_NE(*hash, *hasher.Hash("correct horse battery"));  // salted
}

TEST(Password, PolicyRejectsShortPasswords) {
  PasswordHasher hasher(PasswordCost::kTest);
  EXPECT_EQ(hasher.Hash("short").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(hasher.Hash(std::string(2000, 'a')).status().code(), StatusCode::kInvalidArgument);
}

TEST(Password, HashesOfOtherCostsStillVerify) {
  PasswordHasher test(PasswordCost::kTest);
  auto hash = test.Hash("password123");
  ASSERT_TRUE(hash.ok());
  PasswordHasher interactive(PasswordCost::kInteractive);
  EXPECT_TRUE(interactive.Verify("password123", *hash));
}

// "Unknown email" runs VerifyDummy, "wrong password" runs Verify: with production limits both must
// cost one argon2id evaluation, so response times do not reveal which accounts exist.
TEST(Password, DummyVerificationTakesAsLongAsARealOne) {
  PasswordHasher hasher(PasswordCost::kInteractive);
  auto hash = hasher.Hash("the-real-password");
  ASSERT_TRUE(hash.ok());
  auto time = [](auto fn) {
    std::vector<double> samples;
    for (int i = 0; i < 3; ++i) {
      auto start = std::chrono::steady_clock::now();
      fn();
      samples.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(samples.begin(), samples.end());
    return samples[1];
  };
  double real = time([&] { EXPECT_FALSE(hasher.Verify("a-wrong-password", *hash)); });
  double dummy = time([&] { EXPECT_FALSE(hasher.VerifyDummy("a-wrong-password")); });
  EXPECT_GT(dummy, real * 0.5);
  EXPECT_LT(dummy, real * 2.0);
}

TEST(Encoding, Base64UrlRoundTripsAndIsStrict) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00"}) {
    auto d = Base64UrlDecode(Base64UrlEncode(s));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("ab=").ok());
  EXPECT_FALSE(Base64UrlDecode("a+b/").ok());
  EXPECT_FALSE(Base64UrlDecode("a").ok());
  EXPECT_FALSE(Base64UrlDecode("Zh").ok());  // non-canonical trailing bits
}

TEST(Encoding, Base62OfThirtyTwoBytesHasFixedWidth) {
  EXPECT_EQ(Base62Encode(std::string(32, '\0')).size(), 43u);
  EXPECT_EQ(Base62Encode(std::string(32, '\xff')).size(), 43u);
  EXPECT_EQ(Base62Encode(std::string("\x00\x3d", 2)), "00z");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string key = "atr_" + Base62Encode(RandomBytes(Env::Default(), 32));
    EXPECT_EQ(key.size(), 47u);
    EXPECT_EQ(
        key.find_first_not_of("atr_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
        std::string::npos);
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(Encoding, Sha256AndConstantTimeEquals) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
}

TEST(Time, Rfc3339RoundTrips) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(*ParseRfc3339("2026-11-22T03:04:05Z"), 1795316645LL * 1000000);
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-11-22T03:04:05Z")), "2026-11-22T03:04:05Z");
  EXPECT_EQ(*ParseRfc3339("2026-11-22T04:04:05+01:00"), *ParseRfc3339("2026-11-22T03:04:05Z"));
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:00:00.5Z"), 500000);
  EXPECT_FALSE(ParseRfc3339("2026-11-22").ok());
  EXPECT_FALSE(ParseRfc3339("2026-13-22T03:04:05Z").ok());
  EXPECT_FALSE(ParseRfc3339("2026-11-22T03:04:05").ok());
}

// GCRA behaviour is covered for both backends in rate_limiter_test.cc.
TEST(Gcra, ParsesRateLimits) {
  auto r = ParseRateLimit("10/1m");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->limit, 10);
  EXPECT_EQ(r->period, std::chrono::minutes(1));
  EXPECT_EQ(ParseRateLimit("5/10s:2")->burst, 2);
  EXPECT_FALSE(ParseRateLimit("10").ok());
  EXPECT_FALSE(ParseRateLimit("0/1m").ok());
  EXPECT_FALSE(ParseRateLimit("x/1m").ok());
}

TEST(SecretBox, SealsAndOpens) {
  SecretBox box("k1", std::string(32, 'm'));
  auto sealed = box.Seal(Env::Default(), "upstream-secret", "record-1");
  ASSERT_TRUE(sealed.ok());
  EXPECT_TRUE(sealed->starts_with("aes1.k1."));
  EXPECT_EQ(sealed->find("upstream-secret"), std::string::npos);
  EXPECT_EQ(*box.Open(*sealed, "record-1"), "upstream-secret");
  EXPECT_NE(*sealed, *box.Seal(Env::Default(), "upstream-secret", "record-1"));  // random nonce
}

TEST(SecretBox, RejectsTamperingOtherRecordsAndOtherKeys) {
  SecretBox box("k1", std::string(32, 'm'));
  std::string sealed = *box.Seal(Env::Default(), "secret", "record-1");
  EXPECT_EQ(box.Open(sealed, "record-2").status().code(), StatusCode::kPermissionDenied);
  std::string tampered = sealed;
  tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(box.Open(tampered, "record-1").ok());
  SecretBox other("k1", std::string(32, 'n'));
  EXPECT_EQ(other.Open(sealed, "record-1").status().code(), StatusCode::kPermissionDenied);
  SecretBox unknown("k2", std::string(32, 'm'));
  EXPECT_EQ(unknown.Open(sealed, "record-1").status().code(), StatusCode::kNotFound);
}

TEST(SecretBox, KeyRingSealsWithFirstAndOpensWithAll) {
  std::string k_old = Base64UrlEncode(std::string(32, 'a'));
  std::string k_new = Base64UrlEncode(std::string(32, 'b'));
  auto old_ring = SecretBox::FromKeyRing("old:" + k_old);
  ASSERT_TRUE(old_ring.ok());
  std::string sealed = *old_ring->Seal(Env::Default(), "s", "id");
  auto ring = SecretBox::FromKeyRing("new:" + k_new + ",old:" + k_old);
  ASSERT_TRUE(ring.ok());
  EXPECT_EQ(ring->current_key_id(), "new");
  EXPECT_EQ(*ring->Open(sealed, "id"), "s");
  EXPECT_EQ(SecretBox::KeyIdOf(*ring->Seal(Env::Default(), "s", "id")), "new");
  EXPECT_FALSE(SecretBox::FromKeyRing("").ok());
  EXPECT_FALSE(SecretBox::FromKeyRing("k:short").ok());
  EXPECT_FALSE(SecretBox::FromKeyRing("a:" + k_old + ",a:" + k_new).ok());
}

TEST(Principal, ScopeRules) {
  Principal user{.user_id = "u", .workspace_id = "w", .role = "member"};
  EXPECT_TRUE(user.Allows("user"));
  EXPECT_TRUE(user.Allows("embed"));
  Principal key{.user_id = "u", .workspace_id = "w", .key_id = "k", .scopes = {"track:write"}};
  EXPECT_FALSE(key.Allows("user"));
  EXPECT_TRUE(key.Allows("session"));
  EXPECT_TRUE(key.Allows("track:read"));
  EXPECT_FALSE(key.Allows("embed"));
  key.scopes = {"admin"};
  EXPECT_TRUE(key.Allows("embed"));
  EXPECT_FALSE(key.Allows("user"));
}

}  // namespace
}  // namespace atrium::auth
