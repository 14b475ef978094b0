// Helpers for Atrium's tests only (hermetic temp dirs).
#pragma once

#include <string>
#include <string_view>

namespace atrium::testing {

// A fresh directory under $ATRIUM_TEST_TMPDIR (or /tmp), removed with its content on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The URL of a server started by a ctest fixture (`pg`, `redis`, `nats`): `env_var` when set and
// non-empty, else the first line of $ATRIUM_BINARY_DIR/<fixture>/url; empty when neither exists
// (tests then skip).
std::string FixtureUrl(std::string_view fixture, const char* env_var);

}  // namespace atrium::testing
