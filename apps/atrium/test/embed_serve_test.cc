// End-to-end: `atrium embed` and `atrium serve` answering the embedding APIs with a real (tiny,
// randomly initialised) BERT model that the test writes in the Hugging Face layout, loaded from a
// directory and downloaded from a local stand-in for the Hugging Face Hub.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "child_process.h"
#include "tiny_bert.h"

namespace atrium {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Child = testing::AtriumChild;

using embed::testing::kTinyHidden;
using embed::testing::WriteTinyBert;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Sha256(std::string_view data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) hex += fmt::format("{:02x}", d[i]);
  return hex;
}

// Serves `dir` as the hub repository "acme/tiny-bert" (every file as an LFS file).
class LocalHub {
 public:
  explicit LocalHub(fs::path dir) : dir_(std::move(dir)) {
    http::Router router;
    EXPECT_TRUE(router
                    .Add("GET", "/api/models/acme/tiny-bert/revision/main",
                         http::SyncHandler([this](http::Request&) { return Listing(); }))
                    .ok());
    EXPECT_TRUE(router
                    .Add("GET", "/acme/tiny-bert/resolve/{sha}/{rest...}",
                         http::SyncHandler([this](http::Request& r) {
                           fs::path p = dir_ / std::string(r.Param("rest"));
                           if (!fs::exists(p)) return http::Response::Json(404, "{}");
                           return http::Response::Text(200, ReadAll(p), "application/octet-stream");
                         }))
                    .ok());
    server_ = std::make_unique<http::Server>(http::ServerOptions{.port = 0, .io_threads = 1},
                                             std::move(router));
    EXPECT_TRUE(server_->Start().ok());
  }
  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}", server_->port()); }

 private:
  http::Response Listing() {
    std::string siblings;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      if (!e.is_regular_file()) continue;
      std::string content = ReadAll(e.path());
      siblings += fmt::format(
          R"({}{{"rfilename":"{}","size":{},"blobId":"x","lfs":{{"sha256":"{}","size":{}}}}})",
          siblings.empty() ? "" : ",", fs::relative(e.path(), dir_).string(), content.size(),
          Sha256(content), content.size());
    }
    return http::Response::Json(
        200, R"({"sha":"1111111111111111111111111111111111111111","siblings":[)" + siblings + "]}");
  }

  fs::path dir_;
  std::unique_ptr<http::Server> server_;
};

class EmbedServeTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteTinyBert(model_dir()); }
  fs::path model_dir() const { return fs::path(tmp_.path()) / "tiny-bert"; }

  std::pair<int, json::value> Post(const std::string& url, const std::string& body,
                                   const std::string& token = "") {
    http::ClientRequest req{.method = "POST", .url = url, .body = body};
    req.headers.Set("content-type", "application/json");
    if (!token.empty()) req.headers.Set("authorization", "Bearer " + token);
    auto r = client_.SendSync(std::move(req));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {0, nullptr};
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    return {r->status, ec ? json::value(r->body) : v};
  }
  std::string Get(const std::string& url) {
    auto r = client_.SendSync(http::ClientRequest{.method = "GET", .url = url});
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->body : "";
  }

  testing::TempDir tmp_;
  http::HttpClient client_;
};

std::vector<double> Vector(const json::value& v) {
  std::vector<double> out;
  for (const auto& x : v.as_array()) out.push_back(x.to_number<double>());
  return out;
}

double Norm(const std::vector<double>& v) {
  double n = 0;
  for (double x : v) n += x * x;
  return std::sqrt(n);
}

TEST_F(EmbedServeTest, EmbedCommandServesAModelDirectoryOnAllThreeApis) {
  Child embed = Child::Spawn({"embed", "--model", "tiny=" + model_dir().string(), "--port", "0",
                              "--data-dir", tmp_.path() + "/data"});
  std::string url = embed.WaitForUrl();
  ASSERT_FALSE(url.empty()) << embed.err;

  auto [s1, openai] =
      Post(url + "/v1/embeddings", R"({"input":["a man is playing a flute.","the cat"]})");
  ASSERT_EQ(s1, 200) << json::serialize(openai);
  EXPECT_EQ(openai.at("model"), "tiny");
  const auto& data = openai.at("data").as_array();
  ASSERT_EQ(data.size(), 2u);
  auto first = Vector(data[0].at("embedding"));
  EXPECT_EQ(first.size(), static_cast<size_t>(kTinyHidden));
  EXPECT_NEAR(Norm(first), 1.0, 1e-5);  // modules.json lists Normalize; OpenAI normalizes anyway
  EXPECT_EQ(openai.at("usage").at("prompt_tokens"), 9 + 4);

  auto [s2, tei] = Post(url + "/embed", R"({"inputs":"a man is playing a flute."})");
  ASSERT_EQ(s2, 200);
  auto again = Vector(tei.as_array()[0]);
  for (size_t i = 0; i < first.size(); ++i) EXPECT_NEAR(again[i], first[i], 1e-6);

  auto [s3, sim] = Post(url + "/api/v1/similarity", R"({"source":"the cat","target":"the cat"})");
  ASSERT_EQ(s3, 200);
  EXPECT_NEAR(sim.at("score").to_number<double>(), 1.0, 1e-5);

  std::string info = Get(url + "/info");
  EXPECT_NE(info.find(R"("model_id":"tiny")"), std::string::npos) << info;
  EXPECT_NE(info.find(R"("max_input_length":64)"), std::string::npos) << info;
  std::string metrics = Get(url + "/metrics");
  EXPECT_NE(metrics.find("embed_tokens_total{model=\"tiny\"}"), std::string::npos);
  EXPECT_NE(metrics.find("embed_cache_hits_total"), std::string::npos);
}

TEST_F(EmbedServeTest, EmbedCommandDownloadsAHubModelIdOnce) {
  LocalHub hub(model_dir());
  std::vector<std::string> env = {"HF_ENDPOINT=" + hub.endpoint(),
                                  "ATRIUM_MODEL_CACHE=" + tmp_.path() + "/cache"};
  std::string url;
  {
    Child embed = Child::Spawn(
        {"embed", "--model", "acme/tiny-bert", "--port", "0", "--data-dir", tmp_.path() + "/data"},
        env);
    url = embed.WaitForUrl();
    ASSERT_FALSE(url.empty()) << embed.err;
    // The short name works as an alias of the id.
    auto [status, v] = Post(url + "/v1/embeddings", R"({"input":"the cat","model":"tiny-bert"})");
    ASSERT_EQ(status, 200) << json::serialize(v);
    EXPECT_EQ(v.at("model"), "acme/tiny-bert");
  }
  EXPECT_TRUE(fs::exists(tmp_.path() +
                         "/cache/models--acme--tiny-bert/snapshots/"
                         "1111111111111111111111111111111111111111/model.safetensors"));
  // Offline, from the cache.
  env.push_back("HF_HUB_OFFLINE=1");
  Child offline = Child::Spawn(
      {"embed", "--model", "acme/tiny-bert", "--port", "0", "--data-dir", tmp_.path() + "/data"},
      env);
  ASSERT_FALSE(offline.WaitForUrl().empty()) << offline.err;
}

TEST_F(EmbedServeTest, AMissingModelStopsStartUpNamingIt) {
  Child embed = Child::Spawn({"embed", "--model", "broken=" + tmp_.path() + "/nowhere", "--port",
                              "0", "--data-dir", tmp_.path() + "/data"});
  EXPECT_EQ(embed.Wait(), 1);
  EXPECT_NE(embed.err.find("broken"), std::string::npos) << embed.err;
}

TEST_F(EmbedServeTest, ServeRequiresCredentialsUnlessPublic) {
  Child serve = Child::Spawn({"serve", "--port", "0", "--data-dir", tmp_.path() + "/data", "--set",
                              "auth.password_hash_cost=test", "--set",
                              "embed.models=tiny=" + model_dir().string(), "--set",
                              "bootstrap_admin_email=root@example.com", "--set",
                              "bootstrap_admin_password=admin-password"});
  std::string url = serve.WaitForUrl();
  ASSERT_FALSE(url.empty()) << serve.err;
  auto [anonymous, err] = Post(url + "/v1/embeddings", R"({"input":"the cat"})");
  EXPECT_EQ(anonymous, 401);

  auto [login_status, login] = Post(url + "/api/v1/auth/login",
                                    R"({"email":"root@example.com","password":"admin-password"})");
  ASSERT_EQ(login_status, 200);
  std::string token(login.at("access_token").as_string());
  auto [key_status, key] =
      Post(url + "/api/v1/keys", R"({"name":"embedder","scopes":["embed"],"tier":"pro"})", token);
  ASSERT_EQ(key_status, 201) << json::serialize(key);
  std::string api_key(key.at("key").as_string());
  auto [ok, v] = Post(url + "/v1/embeddings", R"({"input":"the cat"})", api_key);
  EXPECT_EQ(ok, 200) << json::serialize(v);

  auto [chat_key_status, chat_key] =
      Post(url + "/api/v1/keys", R"({"name":"chatter","scopes":["chat"]})", token);
  ASSERT_EQ(chat_key_status, 201);
  auto [forbidden, e] = Post(url + "/v1/embeddings", R"({"input":"the cat"})",
                             std::string(chat_key.at("key").as_string()));
  EXPECT_EQ(forbidden, 403);
}

}  // namespace
}  // namespace atrium
