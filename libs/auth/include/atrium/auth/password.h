// PasswordHasher: argon2id password hashes (libsodium crypto_pwhash_str).
//
// Hashes are self-describing strings ($argon2id$v=19$m=...,t=...,p=1$...), so hashes made with
// other costs still verify. Verification of an unknown account runs against a dummy hash so that
// "unknown email" and "wrong password" take the same time. Thread-safe (immutable).
#pragma once

#include <string>
#include <string_view>

#include "atrium/core/status.h"

namespace atrium::auth {

enum class PasswordCost {
  kInteractive,  // libsodium's interactive limits (~0.1 s, 64 MiB): production
  kTest,         // the minimum limits: INSECURE, for tests only (auth.password_hash_cost = "test")
};

// "interactive" / "test"; InvalidArgument otherwise.
Result<PasswordCost> ParsePasswordCost(std::string_view name);

class PasswordHasher {
 public:
  // Minimum accepted password length (bytes).
  static constexpr size_t kMinLength = 8;
  static constexpr size_t kMaxLength = 1024;

  explicit PasswordHasher(PasswordCost cost);

  // InvalidArgument when the password is too short or too long; Internal when hashing fails
  // (out of memory).
  Result<std::string> Hash(std::string_view password) const;
  // True when `password` matches `hash`. A malformed hash never matches.
  bool Verify(std::string_view password, const std::string& hash) const;
  // Spends the time of one verification and returns false (for unknown accounts).
  bool VerifyDummy(std::string_view password) const;
  // Checks the length rules only.
  static Status CheckPolicy(std::string_view password);

 private:
  unsigned long long opslimit_;
  size_t memlimit_;
  std::string dummy_hash_;
};

}  // namespace atrium::auth
