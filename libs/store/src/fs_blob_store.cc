#include "atrium/store/fs_blob_store.h"

#include <openssl/evp.h>

#include <memory>
#include <optional>

namespace atrium::store {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr size_t kStreamChunkBytes = 1 << 20;

std::string Hex(const unsigned char* p, size_t n) {
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += kHexDigits[p[i] >> 4];
    out += kHexDigits[p[i] & 15];
  }
  return out;
}

struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// Incremental SHA-256 over OpenSSL's EVP interface.
class Sha256 {
 public:
  Status Init() {
    ctx_.reset(EVP_MD_CTX_new());
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
      return Internal("blob store: cannot initialise SHA-256");
    }
    return Status::Ok();
  }
  Status Update(std::string_view data) {
    if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) {
      return Internal("blob store: SHA-256 update failed");
    }
    return Status::Ok();
  }
  Result<std::string> FinalHex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), digest, &len) != 1) {
      return Internal("blob store: SHA-256 final failed");
    }
    return Hex(digest, len);
  }

 private:
  std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx_;
};

Status CheckSha(std::string_view sha) {
  if (IsValidSha256Hex(sha)) return Status::Ok();
  std::string shown(sha.substr(0, 80));
  return InvalidArgument("blob store: not a lowercase hex SHA-256: \"" + shown + "\"");
}

}  // namespace

bool IsValidSha256Hex(std::string_view sha) {
  if (sha.size() != 64) return false;
  for (char c : sha) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<std::unique_ptr<FsBlobStore>> FsBlobStore::Create(Env& env, std::string root,
                                                         FsBlobStoreOptions options) {
  if (root.empty()) return InvalidArgument("blob store: empty root directory");
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::string tmp = JoinPath(root, "tmp");
  RETURN_IF_ERROR(env.CreateDirs(root, 0700).WithContext("blob store: creating " + root));
  RETURN_IF_ERROR(env.CreateDirs(tmp, 0700).WithContext("blob store: creating " + tmp));
  // Uploads interrupted by a crash: nobody can finish them.
  ASSIGN_OR_RETURN(std::vector<std::string> leftovers, env.ListDir(tmp));
  for (const std::string& name : leftovers) (void)env.RemoveFile(JoinPath(tmp, name));
  return std::unique_ptr<FsBlobStore>(new FsBlobStore(env, std::move(root), options));
}

std::string FsBlobStore::PathOf(std::string_view sha) const {
  std::string path = root_;
  path += '/';
  path.append(sha.substr(0, 2));
  path += '/';
  path.append(sha.substr(2, 2));
  path += '/';
  path.append(sha);
  return path;
}

Result<std::string> FsBlobStore::Put(std::string_view data) {
  if (options_.max_blob_bytes != 0 && data.size() > options_.max_blob_bytes) {
    return PayloadTooLarge("blob store: blob of " + std::to_string(data.size()) +
                           " bytes exceeds the limit of " +
                           std::to_string(options_.max_blob_bytes));
  }
  // Hash first: existing content needs no write at all.
  Sha256 hasher;
  RETURN_IF_ERROR(hasher.Init());
  RETURN_IF_ERROR(hasher.Update(data));
  ASSIGN_OR_RETURN(std::string sha, hasher.FinalHex());
  std::string path = PathOf(sha);
  if (env_.FileExists(path)) {
    RETURN_IF_ERROR(env_.SyncDir(DirName(path)));
    return sha;
  }
  bool done = false;
  return PutStream([&]() -> Result<std::string_view> {
    if (done) return std::string_view();
    done = true;
    return data;
  });
}

Result<std::string> FsBlobStore::Put(const ChunkSource& next) { return PutStream(next); }

Result<std::string> FsBlobStore::Put(SequentialFile& file) {
  std::string buffer;
  return PutStream([&]() -> Result<std::string_view> {
    RETURN_IF_ERROR(file.Read(kStreamChunkBytes, &buffer));
    return std::string_view(buffer);
  });
}

Result<std::string> FsBlobStore::PutStream(const ChunkSource& next) {
  std::string tmp = JoinPath(JoinPath(root_, "tmp"), "put-" + std::to_string(env_.RandomU64()));
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, env_.NewWritableFile(tmp));
  Sha256 hasher;
  Status s = [&]() -> Status {
    RETURN_IF_ERROR(hasher.Init());
    uint64_t total = 0;
    while (true) {
      ASSIGN_OR_RETURN(std::string_view chunk, next());
      if (chunk.empty()) break;
      total += chunk.size();
      if (options_.max_blob_bytes != 0 && total > options_.max_blob_bytes) {
        return PayloadTooLarge("blob store: blob exceeds the limit of " +
                               std::to_string(options_.max_blob_bytes) + " bytes");
      }
      RETURN_IF_ERROR(hasher.Update(chunk));
      RETURN_IF_ERROR(file->Append(chunk));
    }
    RETURN_IF_ERROR(file->Sync());
    return file->Close();
  }();
  if (!s.ok()) {
    file.reset();  // closes without flushing more
    (void)env_.RemoveFile(tmp);
    return s.WithContext("blob store: put");
  }
  file.reset();
  ASSIGN_OR_RETURN(std::string sha, hasher.FinalHex());
  Status c = Commit(tmp, sha);
  if (!c.ok()) return c.WithContext("blob store: put " + sha);
  return sha;
}

Status FsBlobStore::EnsureFanOutDir(const std::string& sha) {
  std::string dir = DirName(PathOf(sha));
  if (env_.FileExists(dir)) return Status::Ok();
  std::string parent = DirName(dir);
  bool new_parent = !env_.FileExists(parent);
  RETURN_IF_ERROR(env_.CreateDirs(dir, 0700));
  // The new directory entries must be durable before a blob inside them is reported stored.
  RETURN_IF_ERROR(env_.SyncDir(parent));
  if (new_parent) RETURN_IF_ERROR(env_.SyncDir(root_));
  return Status::Ok();
}

Status FsBlobStore::Commit(const std::string& tmp_path, const std::string& sha) {
  std::string path = PathOf(sha);
  Status s = [&]() -> Status {
    if (env_.FileExists(path)) {
      // Same content already stored (dedup); make sure its entry is durable.
      RETURN_IF_ERROR(env_.RemoveFile(tmp_path));
      return env_.SyncDir(DirName(path));
    }
    RETURN_IF_ERROR(EnsureFanOutDir(sha));
    RETURN_IF_ERROR(env_.RenameFile(tmp_path, path));
    return env_.SyncDir(DirName(path));
  }();
  // After a successful rename the temp path is gone and removing it fails harmlessly.
  if (!s.ok()) (void)env_.RemoveFile(tmp_path);
  return s;
}

Result<std::string> FsBlobStore::Get(std::string_view sha) {
  RETURN_IF_ERROR(CheckSha(sha));
  std::string path = PathOf(sha);
  if (!env_.FileExists(path)) return NotFound("blob " + std::string(sha) + " not found");
  return env_.ReadFile(path);
}

Result<std::unique_ptr<SequentialFile>> FsBlobStore::Open(std::string_view sha) {
  RETURN_IF_ERROR(CheckSha(sha));
  std::string path = PathOf(sha);
  if (!env_.FileExists(path)) return NotFound("blob " + std::string(sha) + " not found");
  return env_.NewSequentialFile(path);
}

Result<bool> FsBlobStore::Exists(std::string_view sha) {
  RETURN_IF_ERROR(CheckSha(sha));
  return env_.FileExists(PathOf(sha));
}

Result<uint64_t> FsBlobStore::Size(std::string_view sha) {
  RETURN_IF_ERROR(CheckSha(sha));
  std::string path = PathOf(sha);
  if (!env_.FileExists(path)) return NotFound("blob " + std::string(sha) + " not found");
  return env_.FileSize(path);
}

Status FsBlobStore::Delete(std::string_view sha) {
  RETURN_IF_ERROR(CheckSha(sha));
  std::string path = PathOf(sha);
  if (!env_.FileExists(path)) return NotFound("blob " + std::string(sha) + " not found");
  RETURN_IF_ERROR(env_.RemoveFile(path));
  return env_.SyncDir(DirName(path));
}

}  // namespace atrium::store
