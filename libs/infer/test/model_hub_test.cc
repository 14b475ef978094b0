// ResolveModel against a local HTTP server that speaks the Hugging Face Hub's API.
#include "atrium/infer/model_hub.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "atrium/core/testing.h"
#include "atrium/http/server.h"

namespace atrium::infer {
namespace {
namespace fs = std::filesystem;

std::string Hex(const unsigned char* d, unsigned int n) {
  std::string s;
  for (unsigned int i = 0; i < n; ++i) s += fmt::format("{:02x}", d[i]);
  return s;
}

std::string Sha256(std::string_view data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
  return Hex(d, n);
}

std::string GitBlobSha1(std::string_view data) {
  std::string blob = fmt::format("blob {}", data.size());
  blob.push_back('\0');
  blob.append(data);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(blob.data(), blob.size(), d, &n, EVP_sha1(), nullptr);
  return Hex(d, n);
}

// A fake hub with one repository, "acme/tiny-embedder".
class FakeHub {
 public:
  static constexpr const char* kSha = "0123456789abcdef0123456789abcdef01234567";

  FakeHub() {
    std::mt19937 rng(7);
    std::string weights(3 << 20, '\0');
    for (auto& c : weights) c = static_cast<char>(rng());
    files_["model.safetensors"] = {weights, true};
    files_["config.json"] = {R"({"model_type":"bert","hidden_size":8})", false};
    files_["tokenizer.json"] = {R"({"version":"1.0"})", false};
    files_["1_Pooling/config.json"] = {R"({"pooling_mode_mean_tokens":true})", false};
    files_["README.md"] = {"# not needed", false};
    files_["pytorch_model.bin"] = {"not needed either", true};

    http::Router router;
    EXPECT_TRUE(router
                    .Add("GET", "/api/models/{rest...}",
                         http::SyncHandler([this](http::Request& r) { return Listing(r); }))
                    .ok());
    EXPECT_TRUE(router
                    .Add("GET", "/{org}/{name}/resolve/{sha}/{rest...}",
                         http::SyncHandler([this](http::Request& r) { return File(r); }))
                    .ok());
    server_ = std::make_unique<http::Server>(http::ServerOptions{.port = 0, .io_threads = 1},
                                             std::move(router));
    EXPECT_TRUE(server_->Start().ok());
  }

  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}", server_->port()); }

  int fetches(const std::string& name) {
    std::lock_guard lock(mu_);
    return fetch_count_[name];
  }
  std::string last_range(const std::string& name) {
    std::lock_guard lock(mu_);
    return last_range_[name];
  }
  std::string content(const std::string& name) { return files_[name].data; }

  std::string required_token;  // when set, requests without "Bearer <token>" get 401
  bool corrupt = false;        // serve flipped bytes for model.safetensors

 private:
  struct FileEntry {
    std::string data;
    bool lfs;
  };

  bool Authorized(const http::Request& r) const {
    return required_token.empty() ||
           r.headers.GetOr("authorization", "") == "Bearer " + required_token;
  }

  http::Response Listing(http::Request& r) {
    if (!Authorized(r)) return http::Response::Json(401, R"({"error":"unauthorized"})");
    if (r.Param("rest") != "acme/tiny-embedder/revision/main") {
      return http::Response::Json(404, R"({"error":"Repository not found"})");
    }
    std::string siblings;
    for (const auto& [name, f] : files_) {
      if (!siblings.empty()) siblings += ",";
      siblings += fmt::format(R"({{"rfilename":"{}","size":{},"blobId":"{}")", name, f.data.size(),
                              GitBlobSha1(f.data));
      if (f.lfs) {
        siblings +=
            fmt::format(R"(,"lfs":{{"sha256":"{}","size":{}}})", Sha256(f.data), f.data.size());
      }
      siblings += "}";
    }
    return http::Response::Json(
        200,
        fmt::format(R"({{"id":"acme/tiny-embedder","sha":"{}","siblings":[{}]}})", kSha, siblings));
  }

  http::Response File(http::Request& r) {
    if (!Authorized(r)) return http::Response::Json(401, R"({"error":"unauthorized"})");
    std::string name(r.Param("rest"));
    auto it = files_.find(name);
    if (r.Param("sha") != kSha || it == files_.end()) {
      return http::Response::Json(404, R"({"error":"Entry not found"})");
    }
    std::string data = it->second.data;
    if (corrupt && name == "model.safetensors") data[data.size() / 2] ^= 1;
    std::string range(r.headers.GetOr("range", ""));
    {
      std::lock_guard lock(mu_);
      ++fetch_count_[name];
      last_range_[name] = range;
    }
    if (range.starts_with("bytes=") && range.ends_with("-")) {
      size_t from = std::stoull(range.substr(6));
      http::Response resp =
          http::Response::Text(206, data.substr(from), "application/octet-stream");
      resp.headers.Set("content-range",
                       fmt::format("bytes {}-{}/{}", from, data.size() - 1, data.size()));
      return resp;
    }
    return http::Response::Text(200, data, "application/octet-stream");
  }

  std::map<std::string, FileEntry> files_;
  std::mutex mu_;
  std::map<std::string, int> fetch_count_;         // guarded by mu_
  std::map<std::string, std::string> last_range_;  // guarded by mu_
  std::unique_ptr<http::Server> server_;
};

class ModelHubTest : public ::testing::Test {
 protected:
  HubOptions Options() {
    HubOptions o;
    o.endpoint = hub_.endpoint();
    o.cache_dir = tmp_.path() + "/cache";
    o.log = [this](std::string_view line) { log_lines_.emplace_back(line); };
    return o;
  }
  std::string ReadFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string Repo() { return tmp_.path() + "/cache/models--acme--tiny-embedder"; }

  FakeHub hub_;
  testing::TempDir tmp_;
  std::vector<std::string> log_lines_;
};

TEST_F(ModelHubTest, DownloadsTheModelFilesIntoTheHuggingFaceCacheLayout) {
  auto dir = ResolveModel("acme/tiny-embedder", Options());
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_EQ(*dir, Repo() + "/snapshots/" + FakeHub::kSha);
  EXPECT_EQ(ReadFile(*dir + "/model.safetensors"), hub_.content("model.safetensors"));
  EXPECT_EQ(ReadFile(*dir + "/1_Pooling/config.json"), hub_.content("1_Pooling/config.json"));
  EXPECT_TRUE(fs::is_symlink(*dir + "/config.json"));
  EXPECT_TRUE(fs::exists(Repo() + "/blobs/" + Sha256(hub_.content("model.safetensors"))));
  EXPECT_EQ(ReadFile(Repo() + "/refs/main"), FakeHub::kSha);
  // Files an embedding model does not need are not fetched.
  EXPECT_FALSE(fs::exists(*dir + "/README.md"));
  EXPECT_EQ(hub_.fetches("pytorch_model.bin"), 0);
  EXPECT_FALSE(log_lines_.empty());  // progress lines (no terminal)
}

TEST_F(ModelHubTest, ASecondResolveUsesTheCache) {
  ASSERT_TRUE(ResolveModel("acme/tiny-embedder", Options()).ok());
  ASSERT_TRUE(ResolveModel("acme/tiny-embedder", Options()).ok());
  EXPECT_EQ(hub_.fetches("model.safetensors"), 1);
}

TEST_F(ModelHubTest, OfflineModeUsesTheCacheOrFailsClearly) {
  HubOptions o = Options();
  o.offline = true;
  auto missing = ResolveModel("acme/tiny-embedder", o);
  EXPECT_EQ(missing.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(missing.status().message().find("HF_HUB_OFFLINE"), std::string::npos);
  ASSERT_TRUE(ResolveModel("acme/tiny-embedder", Options()).ok());
  auto cached = ResolveModel("acme/tiny-embedder", o);
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(hub_.fetches("model.safetensors"), 1);
}

TEST_F(ModelHubTest, AnUnreachableHubFallsBackToACompleteCache) {
  ASSERT_TRUE(ResolveModel("acme/tiny-embedder", Options()).ok());
  HubOptions o = Options();
  o.endpoint = "http://127.0.0.1:1";  // nothing listens there
  auto cached = ResolveModel("acme/tiny-embedder", o);
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
}

TEST_F(ModelHubTest, ResumesAPartialDownloadWithARangeRequest) {
  std::string weights = hub_.content("model.safetensors");
  std::string blob = Repo() + "/blobs/" + Sha256(weights);
  fs::create_directories(Repo() + "/blobs");
  std::ofstream(blob + ".incomplete", std::ios::binary) << weights.substr(0, 1000000);
  auto dir = ResolveModel("acme/tiny-embedder", Options());
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_EQ(hub_.last_range("model.safetensors"), "bytes=1000000-");
  EXPECT_EQ(ReadFile(*dir + "/model.safetensors"), weights);
  EXPECT_FALSE(fs::exists(blob + ".incomplete"));
}

TEST_F(ModelHubTest, AChecksumMismatchFailsAndDeletesTheDownload) {
  hub_.corrupt = true;
  auto dir = ResolveModel("acme/tiny-embedder", Options());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("checksum mismatch"), std::string::npos);
  EXPECT_NE(dir.status().message().find("model.safetensors"), std::string::npos);
  std::string blob = Repo() + "/blobs/" + Sha256(hub_.content("model.safetensors"));
  EXPECT_FALSE(fs::exists(blob));
  EXPECT_FALSE(fs::exists(blob + ".incomplete"));
  // Not marked complete: a later good download succeeds.
  hub_.corrupt = false;
  EXPECT_TRUE(ResolveModel("acme/tiny-embedder", Options()).ok());
}

TEST_F(ModelHubTest, SendsTheTokenAndReportsARefusal) {
  hub_.required_token = "hf_secret";
  auto refused = ResolveModel("acme/tiny-embedder", Options());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(refused.status().message().find("HF_TOKEN"), std::string::npos);
  HubOptions o = Options();
  o.token = "hf_secret";
  EXPECT_TRUE(ResolveModel("acme/tiny-embedder", o).ok());
}

TEST_F(ModelHubTest, UnknownModelsAndPathsAreNotFound) {
  EXPECT_EQ(ResolveModel("acme/no-such-model", Options()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ResolveModel("/no/such/dir", Options()).status().code(), StatusCode::kNotFound);
}

TEST_F(ModelHubTest, AnExistingDirectoryIsUsedAsIs) {
  auto dir = ResolveModel(tmp_.path(), Options());
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(*dir, tmp_.path());
}

TEST(ModelIdTest, RecognisesHubIds) {
  EXPECT_TRUE(LooksLikeModelId("BAAI/bge-small-en-v1.5"));
  EXPECT_TRUE(LooksLikeModelId("bert-base-uncased"));
  EXPECT_TRUE(LooksLikeModelId("intfloat/e5-small@main"));
  EXPECT_FALSE(LooksLikeModelId("/models/minilm"));
  EXPECT_FALSE(LooksLikeModelId("./minilm"));
  EXPECT_FALSE(LooksLikeModelId("a/b/c"));
  EXPECT_FALSE(LooksLikeModelId("../etc"));
  EXPECT_FALSE(LooksLikeModelId(""));
}

}  // namespace
}  // namespace atrium::infer
