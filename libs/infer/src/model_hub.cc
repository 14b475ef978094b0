#include "atrium/infer/model_hub.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "atrium/core/env.h"
#include "atrium/http/client.h"

namespace atrium::infer {
namespace fs = std::filesystem;
namespace json = boost::json;
namespace {

// The files an embedding model is made of; anything else in the repository is skipped.
bool WantedFile(std::string_view name) {
  static constexpr std::string_view kFiles[] = {
      "config.json",
      "tokenizer.json",
      "vocab.txt",
      "tokenizer_config.json",
      "special_tokens_map.json",
      "model.safetensors",
      "model.safetensors.index.json",
      "modules.json",
      "1_Pooling/config.json",
      "sentence_bert_config.json",
      "config_sentence_transformers.json",
  };
  for (auto f : kFiles) {
    if (name == f) return true;
  }
  // Shards: model-00001-of-00002.safetensors.
  return name.starts_with("model-") && name.ends_with(".safetensors") &&
         name.find('/') == std::string_view::npos;
}

struct RemoteFile {
  std::string name;
  uint64_t size = 0;
  std::string sha256;    // LFS files
  std::string git_sha1;  // the git blob id (every file)
  std::string BlobName() const { return sha256.empty() ? git_sha1 : sha256; }
};

// Streaming SHA-256 or the git blob SHA-1 ("blob <size>\0" + content).
class Digest {
 public:
  Digest(const EVP_MD* md) : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), md, nullptr);
  }
  void Update(std::string_view data) { EVP_DigestUpdate(ctx_.get(), data.data(), data.size()); }
  std::string HexFinal() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), out, &len);
    std::string hex;
    for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", out[i]);
    return hex;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

// Hashes a file the way the hub identifies it.
Result<std::string> FileHash(const fs::path& path, const RemoteFile& file) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Internal("cannot read " + path.string());
  bool lfs = !file.sha256.empty();
  Digest d(lfs ? EVP_sha256() : EVP_sha1());
  if (!lfs) {
    std::string header = fmt::format("blob {}", fs::file_size(path));
    header.push_back('\0');
    d.Update(header);
  }
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    d.Update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  return d.HexFinal();
}

std::string RepoFolder(std::string_view id) {
  std::string folder = "models--";
  for (char c : id) {
    if (c == '/') {
      folder += "--";
    } else {
      folder += c;
    }
  }
  return folder;
}

Status StatusFromHub(int status, std::string_view what) {
  std::string w(what);
  if (status == 401) return Unauthenticated(w + ": the hub refused the request (set HF_TOKEN)");
  if (status == 403) return PermissionDenied(w + ": the token may not access this repository");
  if (status == 404) return NotFound(w + ": not found on the hub");
  return Unavailable(fmt::format("{}: the hub answered HTTP {}", w, status));
}

class Downloader {
 public:
  Downloader(const HubOptions& options, http::HttpClient& client)
      : options_(options), client_(client) {}

  http::ClientRequest Request(std::string url) const {
    http::ClientRequest req;
    req.url = std::move(url);
    req.follow_redirects = true;
    req.connect_timeout = std::chrono::seconds(10);
    req.read_timeout = std::chrono::seconds(60);
    if (!options_.token.empty()) req.headers.Set("authorization", "Bearer " + options_.token);
    return req;
  }

  Result<std::pair<std::string, std::vector<RemoteFile>>> Listing(const std::string& id,
                                                                  const std::string& revision) {
    auto req = Request(
        fmt::format("{}/api/models/{}/revision/{}?blobs=true", options_.endpoint, id, revision));
    ASSIGN_OR_RETURN(auto resp, client_.SendSync(std::move(req)));
    if (resp.status != 200) return StatusFromHub(resp.status, "model " + id);
    boost::system::error_code ec;
    json::value doc = json::parse(resp.body, ec);
    if (ec || !doc.is_object()) return Unavailable("model " + id + ": the hub sent invalid JSON");
    const auto& obj = doc.as_object();
    const auto* sha = obj.if_contains("sha");
    const auto* siblings = obj.if_contains("siblings");
    if (sha == nullptr || !sha->is_string() || siblings == nullptr || !siblings->is_array()) {
      return Unavailable("model " + id + ": the hub's listing lacks sha or siblings");
    }
    std::vector<RemoteFile> files;
    for (const auto& s : siblings->as_array()) {
      if (!s.is_object()) continue;
      const auto& so = s.as_object();
      const auto* name = so.if_contains("rfilename");
      if (name == nullptr || !name->is_string() || !WantedFile(name->as_string())) continue;
      RemoteFile f;
      f.name = std::string(name->as_string());
      if (f.name.find("..") != std::string::npos || f.name.starts_with("/")) continue;
      if (const auto* size = so.if_contains("size"); size != nullptr && size->is_int64()) {
        f.size = static_cast<uint64_t>(size->as_int64());
      }
      if (const auto* blob = so.if_contains("blobId"); blob != nullptr && blob->is_string()) {
        f.git_sha1 = std::string(blob->as_string());
      }
      if (const auto* lfs = so.if_contains("lfs"); lfs != nullptr && lfs->is_object()) {
        if (const auto* h = lfs->as_object().if_contains("sha256");
            h != nullptr && h->is_string()) {
          f.sha256 = std::string(h->as_string());
        }
        if (const auto* sz = lfs->as_object().if_contains("size");
            sz != nullptr && sz->is_int64()) {
          f.size = static_cast<uint64_t>(sz->as_int64());
        }
      }
      if (f.BlobName().empty()) {
        return Unavailable("model " + id + ": the hub's listing has no hash for " + f.name);
      }
      files.push_back(std::move(f));
    }
    return std::make_pair(std::string(sha->as_string()), std::move(files));
  }

  // Downloads `file` into blobs/ (resuming a partial download) and checks its hash.
  Status Fetch(const std::string& id, const std::string& sha, const RemoteFile& file,
               const fs::path& blobs) {
    fs::path final_path = blobs / file.BlobName();
    if (fs::exists(final_path)) return Status::Ok();
    fs::path partial = blobs / (file.BlobName() + ".incomplete");
    std::error_code ec;
    uint64_t have = fs::exists(partial, ec) ? fs::file_size(partial, ec) : 0;
    if (have > file.size && file.size > 0) {
      fs::remove(partial, ec);
      have = 0;
    }
    auto req = Request(fmt::format("{}/{}/resolve/{}/{}", options_.endpoint, id, sha, file.name));
    if (have > 0) req.headers.Set("range", fmt::format("bytes={}-", have));
    std::FILE* out = nullptr;
    int status = 0;
    uint64_t received = have;
    auto started = std::chrono::steady_clock::now();
    auto last_report = started;
    bool write_failed = false;
    req.on_headers = [&](int s, const http::Headers&) {
      status = s;
      if (s == 206) {
        out = std::fopen(partial.c_str(), "ab");
      } else if (s == 200) {
        out = std::fopen(partial.c_str(), "wb");  // the server ignored the range: start over
        received = 0;
      }
    };
    req.on_data = [&](std::string_view chunk) {
      if (out == nullptr) return status != 200 && status != 206;  // error bodies are discarded
      if (std::fwrite(chunk.data(), 1, chunk.size(), out) != chunk.size()) {
        write_failed = true;
        return false;
      }
      received += chunk.size();
      auto now = std::chrono::steady_clock::now();
      if (now - last_report >= std::chrono::milliseconds(options_.progress_bar ? 100 : 5000)) {
        Report(file, received, now - started, false);
        last_report = now;
      }
      return true;
    };
    auto resp = client_.SendSync(std::move(req));
    if (out != nullptr && std::fclose(out) != 0) write_failed = true;
    if (write_failed) return Internal("writing " + partial.string() + " failed (disk full?)");
    if (!resp.ok()) {
      return Unavailable(
          fmt::format("downloading {} stopped after {} bytes: {} (run again to "
                      "resume)",
                      file.name, received, resp.status().message()));
    }
    if (status != 200 && status != 206) return StatusFromHub(status, file.name);
    Report(file, received, std::chrono::steady_clock::now() - started, true);
    ASSIGN_OR_RETURN(std::string hash, FileHash(partial, file));
    if (hash != file.BlobName()) {
      fs::remove(partial, ec);
      return Internal(
          fmt::format("{}: checksum mismatch (expected {}, got {}); the partial "
                      "download was deleted",
                      file.name, file.BlobName(), hash));
    }
    fs::rename(partial, final_path, ec);
    if (ec) return Internal("renaming " + partial.string() + ": " + ec.message());
    return Status::Ok();
  }

 private:
  void Report(const RemoteFile& file, uint64_t received, std::chrono::nanoseconds elapsed,
              bool done) {
    double secs = std::max(1e-3, std::chrono::duration<double>(elapsed).count());
    double mb = static_cast<double>(received) / 1e6;
    double total = static_cast<double>(file.size) / 1e6;
    int pct = file.size > 0 ? static_cast<int>(100.0 * static_cast<double>(received) /
                                               static_cast<double>(file.size))
                            : 100;
    if (options_.progress_bar) {
      int filled = pct / 5;
      std::fprintf(stderr, "\r%-32.32s [%-20s] %3d%% %8.1f/%.1f MB %6.1f MB/s%s", file.name.c_str(),
                   std::string(static_cast<size_t>(filled), '#').c_str(), pct, mb, total, mb / secs,
                   done ? "\n" : "");
      std::fflush(stderr);
    } else if (options_.log) {
      options_.log(fmt::format("downloading {}: {}% ({:.1f}/{:.1f} MB, {:.1f} MB/s){}", file.name,
                               pct, mb, total, mb / secs, done ? " done" : ""));
    }
  }

  const HubOptions& options_;
  http::HttpClient& client_;
};

// The cached snapshot of `revision` if it is complete (every wanted file linked).
std::optional<std::string> CachedSnapshot(const fs::path& repo, const std::string& revision) {
  std::ifstream ref(repo / "refs" / revision);
  std::string sha;
  if (!(ref >> sha)) return std::nullopt;
  fs::path snap = repo / "snapshots" / sha;
  std::error_code ec;
  if (fs::exists(snap / ".atrium-complete", ec)) return snap.string();
  return std::nullopt;
}

Status LinkIntoSnapshot(const fs::path& repo, const std::string& sha, const RemoteFile& file) {
  fs::path link = repo / "snapshots" / sha / file.name;
  std::error_code ec;
  fs::create_directories(link.parent_path(), ec);
  if (ec) return Internal("creating " + link.parent_path().string() + ": " + ec.message());
  fs::path target = fs::relative(repo / "blobs" / file.BlobName(), link.parent_path(), ec);
  fs::remove(link, ec);
  fs::create_symlink(target, link, ec);
  if (ec) return Internal("linking " + link.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

HubOptions HubOptionsFromEnvironment(const std::string& default_cache_dir) {
  HubOptions o;
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v == nullptr ? "" : v;
  };
  if (auto e = env("HF_ENDPOINT"); !e.empty()) {
    while (!e.empty() && e.back() == '/') e.pop_back();
    o.endpoint = e;
  }
  o.token = env("HF_TOKEN");
  if (o.token.empty()) o.token = env("HUGGING_FACE_HUB_TOKEN");
  std::string offline = env("HF_HUB_OFFLINE");
  o.offline = offline == "1" || offline == "true" || offline == "TRUE";
  if (auto c = env("ATRIUM_MODEL_CACHE"); !c.empty()) {
    o.cache_dir = c;
  } else if (auto h = env("HF_HOME"); !h.empty()) {
    o.cache_dir = JoinPath(h, "hub");
  } else {
    o.cache_dir = default_cache_dir;
  }
  o.progress_bar = ::isatty(2) != 0;
  return o;
}

bool LooksLikeModelId(std::string_view s) {
  if (s.empty() || s.starts_with("/") || s.starts_with(".") || s.find("..") != s.npos) {
    return false;
  }
  size_t at = s.find('@');
  std::string_view id = s.substr(0, at);
  int slashes = 0;
  for (char c : id) {
    if (c == '/') {
      ++slashes;
    } else if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return slashes <= 1 && !id.empty() && !id.ends_with("/");
}

Result<std::string> ResolveModel(const std::string& dir_or_id, const HubOptions& options) {
  std::error_code ec;
  if (fs::is_directory(dir_or_id, ec)) return dir_or_id;
  if (!LooksLikeModelId(dir_or_id)) {
    return NotFound("model '" + dir_or_id + "': no such directory, and not a hub model id");
  }
  size_t at = dir_or_id.find('@');
  std::string id = dir_or_id.substr(0, at);
  std::string revision = at == std::string::npos ? "main" : dir_or_id.substr(at + 1);
  if (options.cache_dir.empty()) return InvalidArgument("model cache directory is not set");
  fs::path repo = fs::path(options.cache_dir) / RepoFolder(id);
  auto cached = CachedSnapshot(repo, revision);
  if (options.offline) {
    if (cached) return *cached;
    return Unavailable("model " + id + " is not in the cache " + options.cache_dir +
                       " and HF_HUB_OFFLINE is set");
  }

  auto client_or = http::HttpClient::Create({.ca_file = options.ca_file});
  if (!client_or.ok()) return client_or.status();
  Downloader downloader(options, **client_or);
  auto listing = downloader.Listing(id, revision);
  if (!listing.ok()) {
    // An unreachable hub is fine when the cache has the model.
    if (cached && listing.status().code() == StatusCode::kUnavailable) return *cached;
    return listing.status();
  }
  auto& [sha, files] = *listing;
  bool has_weights = false;
  for (const auto& f : files) {
    has_weights |= f.name.ends_with(".safetensors") || f.name == "model.safetensors.index.json";
  }
  if (!has_weights) {
    return InvalidArgument("model " + id +
                           " has no safetensors weights (only safetensors "
                           "models can be served)");
  }
  fs::path snap = repo / "snapshots" / sha;
  if (fs::exists(snap / ".atrium-complete", ec)) {
    RETURN_IF_ERROR(WriteFileAtomic(Env::Default(), (repo / "refs" / revision).string(), sha));
    return snap.string();
  }
  fs::create_directories(repo / "blobs", ec);
  fs::create_directories(repo / "refs", ec);
  fs::create_directories(snap, ec);
  if (ec) return Internal("creating the model cache in " + repo.string() + ": " + ec.message());
  for (const auto& f : files) {
    RETURN_IF_ERROR(downloader.Fetch(id, sha, f, repo / "blobs"));
    RETURN_IF_ERROR(LinkIntoSnapshot(repo, sha, f));
  }
  RETURN_IF_ERROR(WriteFileAtomic(Env::Default(), (snap / ".atrium-complete").string(), ""));
  RETURN_IF_ERROR(WriteFileAtomic(Env::Default(), (repo / "refs" / revision).string(), sha));
  return snap.string();
}

}  // namespace atrium::infer
