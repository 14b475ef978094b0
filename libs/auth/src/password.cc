#include "atrium/auth/password.h"

#include <sodium.h>

namespace atrium::auth {

Result<PasswordCost> ParsePasswordCost(std::string_view name) {
  if (name == "interactive") return PasswordCost::kInteractive;
  if (name == "test") return PasswordCost::kTest;
  return InvalidArgument("password hash cost must be interactive or test");
}

PasswordHasher::PasswordHasher(PasswordCost cost) {
  if (sodium_init() < 0) std::abort();  // start-up only: libsodium cannot work at all
  if (cost == PasswordCost::kTest) {
    opslimit_ = crypto_pwhash_OPSLIMIT_MIN;
    memlimit_ = crypto_pwhash_MEMLIMIT_MIN;
  } else {
    opslimit_ = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    memlimit_ = crypto_pwhash_MEMLIMIT_INTERACTIVE;
  }
  auto dummy = Hash("atrium-dummy-password-for-timing");
  dummy_hash_ = dummy.ok() ? *dummy : "";
}

Status PasswordHasher::CheckPolicy(std::string_view password) {
  if (password.size() < kMinLength) {
    return InvalidArgument("password must be at least " + std::to_string(kMinLength) +
                           " characters");
  }
  if (password.size() > kMaxLength) return InvalidArgument("password is too long");
  return Status::Ok();
}

Result<std::string> PasswordHasher::Hash(std::string_view password) const {
  RETURN_IF_ERROR(CheckPolicy(password));
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), opslimit_, memlimit_,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Internal("password hashing failed (out of memory)");
  }
  return std::string(out);
}

bool PasswordHasher::Verify(std::string_view password, const std::string& hash) const {
  if (hash.empty() || password.size() > kMaxLength) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

bool PasswordHasher::VerifyDummy(std::string_view password) const {
  (void)Verify(password.substr(0, kMaxLength), dummy_hash_);
  return false;
}

}  // namespace atrium::auth
