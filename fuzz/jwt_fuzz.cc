// libFuzzer target: JWT verification must reject or accept any byte string without crashing, and
// must never accept a token it did not sign.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "atrium/auth/jwt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const atrium::auth::JwtCodec codec =
      *atrium::auth::JwtCodec::Create(std::string(32, 'k'), "atrium");
  std::string_view token(reinterpret_cast<const char*>(data), size);
  auto claims = codec.Verify(token, 1'800'000'000);
  if (claims.ok()) {
    // Only a correctly signed token may pass: re-signing its claims must give the same token.
    if (codec.Sign(*claims) != token) std::abort();
  }
  return 0;
}
