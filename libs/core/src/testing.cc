#include "atrium/core/testing.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
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

std::string FixtureUrl(std::string_view fixture, const char* env_var) {
  if (const char* url = std::getenv(env_var); url != nullptr && *url != '\0') return url;
  const char* bin = std::getenv("ATRIUM_BINARY_DIR");
  if (bin == nullptr) return "";
  std::ifstream in(std::string(bin) + "/" + std::string(fixture) + "/url");
  std::string url;
  std::getline(in, url);
  return url;
}

}  // namespace atrium::testing
