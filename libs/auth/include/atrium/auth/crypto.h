// Cryptographic building blocks of the identity module: hashing, encodings, random tokens,
// RFC 3339 timestamps and AES-256-GCM sealing of secrets at rest (SecretBox).
//
// Everything here is stateless and thread-safe except SecretBox, which is immutable after
// construction (and so thread-safe too). The sealed-secret format is documented in
// docs/identity.md ("Secrets at rest").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "atrium/core/env.h"
#include "atrium/core/status.h"

namespace atrium::auth {

// SHA-256 of `data` as raw 32 bytes / as 64 lower-case hex digits.
std::string Sha256(std::string_view data);
std::string Sha256Hex(std::string_view data);
// HMAC-SHA256(key, data), raw 32 bytes.
std::string HmacSha256(std::string_view key, std::string_view data);
// Constant-time equality (sodium_memcmp); false when the sizes differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// base64url without padding (RFC 4648 §5), as JWTs use it.
std::string Base64UrlEncode(std::string_view data);
// Strict decoding: rejects padding, characters outside the alphabet and impossible lengths.
Result<std::string> Base64UrlDecode(std::string_view text);
// Base62 (0-9A-Za-z) of a big-endian number; a 32-byte input gives 43 characters.
std::string Base62Encode(std::string_view bytes);

// `n` random bytes from `env`.
std::string RandomBytes(Env& env, size_t n);
// An identifier: `prefix` + base62 of 16 random bytes ("usr_5GZk...").
std::string NewId(Env& env, std::string_view prefix);

// "2026-11-22T03:04:05Z" for microseconds since the epoch (sub-second part dropped).
std::string FormatRfc3339(int64_t micros);
// Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)"; InvalidArgument otherwise.
Result<int64_t> ParseRfc3339(std::string_view text);

// AES-256-GCM with key ids. A sealed value reads "aes1.<key id>.<base64url(nonce|ciphertext|tag)>"
// with a random 96-bit nonce; the associated data (the record id) binds a ciphertext to its record
// so it cannot be moved to another one.
class SecretBox {
 public:
  // Parses a key ring "kid:base64url-of-32-bytes[,kid:key...]"; the first key seals, all open.
  // InvalidArgument on a malformed ring (the message never contains key material).
  static Result<SecretBox> FromKeyRing(std::string_view ring);
  // A ring with one key (tests, admin tooling).
  SecretBox(std::string key_id, std::string key);

  const std::string& current_key_id() const { return current_; }
  Result<std::string> Seal(Env& env, std::string_view plaintext, std::string_view aad) const;
  // Unauthenticated-free errors: InvalidArgument for a malformed value, NotFound for an unknown
  // key id, PermissionDenied when authentication fails (wrong key, tampering, other aad).
  Result<std::string> Open(std::string_view sealed, std::string_view aad) const;
  // The key id of a sealed value, or "" when it is not one.
  static std::string KeyIdOf(std::string_view sealed);
  static bool IsSealed(std::string_view value) { return value.starts_with("aes1."); }

 private:
  SecretBox() = default;
  std::string current_;
  std::map<std::string, std::string> keys_;  // key id -> 32 raw bytes
};

}  // namespace atrium::auth
