// Helpers for Atrium's tests only (hermetic temp dirs).
#pragma once

#include <string>

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

}  // namespace atrium::testing
