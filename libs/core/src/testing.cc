#include "atrium/core/testing.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace atrium::testing {

TempDir::TempDir() {
  const char* base = std::getenv("ATRIUM_TEST_TMPDIR");
  std::filesystem::path root = base != nullptr ? base : "/tmp";
  std::filesystem::create_directories(root);
  std::string templ = (root / "atrium-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace atrium::testing
