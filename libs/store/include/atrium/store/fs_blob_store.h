// FsBlobStore: the default BlobStore, a directory tree on the local filesystem.
//
// Layout under the root (see docs/store.md):
//   <root>/ab/cd/abcd...   the blob whose SHA-256 is abcd... (two levels of fan-out)
//   <root>/tmp/            uploads in progress
// A Put writes to tmp/ while hashing, fsyncs, renames into place and fsyncs the directory, so a
// blob that is visible is complete, and one whose Put returned ok is durable (a Put of existing
// content syncs the directory too, so a retry after a failed directory sync is durable). All file
// access goes through the Env. Thread-safe. One FsBlobStore per root: opening clears tmp/ of
// uploads left by a crash.
#pragma once

#include <memory>
#include <string>

#include "atrium/core/env.h"
#include "atrium/store/blob_store.h"

namespace atrium::store {

struct FsBlobStoreOptions {
  // Larger puts fail with PayloadTooLarge (0: no limit).
  uint64_t max_blob_bytes = 0;
};

class FsBlobStore final : public BlobStore {
 public:
  // Creates `root` (owner-only permissions) and tmp/ when missing. `env` must outlive the store.
  static Result<std::unique_ptr<FsBlobStore>> Create(Env& env, std::string root,
                                                     FsBlobStoreOptions options = {});

  FsBlobStore(const FsBlobStore&) = delete;
  FsBlobStore& operator=(const FsBlobStore&) = delete;

  Result<std::string> Put(std::string_view data) override;
  Result<std::string> Put(const ChunkSource& next) override;
  Result<std::string> Put(SequentialFile& file) override;
  Result<std::string> Get(std::string_view sha) override;
  Result<std::unique_ptr<SequentialFile>> Open(std::string_view sha) override;
  Result<bool> Exists(std::string_view sha) override;
  Result<uint64_t> Size(std::string_view sha) override;
  Status Delete(std::string_view sha) override;

  // Where the blob with this (valid) name lives.
  std::string PathOf(std::string_view sha) const;
  const std::string& root() const { return root_; }

 private:
  FsBlobStore(Env& env, std::string root, FsBlobStoreOptions options)
      : env_(env), root_(std::move(root)), options_(options) {}

  // Writes the stream to a temp file while hashing and commits it.
  Result<std::string> PutStream(const ChunkSource& next);
  // Moves a complete, synced temp file into place (or drops it when the blob exists).
  Status Commit(const std::string& tmp_path, const std::string& sha);
  // Makes sure the fan-out directory of `sha` exists and is durable.
  Status EnsureFanOutDir(const std::string& sha);

  Env& env_;
  const std::string root_;
  const FsBlobStoreOptions options_;
};

}  // namespace atrium::store
