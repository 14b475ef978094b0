// BlobStore: immutable, content-addressed storage for large byte strings (uploads, model files).
//
// A blob is named by the lowercase hex SHA-256 of its content, so equal content is stored once
// and a name always denotes the same bytes. Writes are all-or-nothing: a Put that fails leaves
// no blob behind. Names that are not 64 lowercase hex digits are rejected with InvalidArgument
// (they never reach the filesystem). Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "atrium/core/env.h"
#include "atrium/core/status.h"

namespace atrium::store {

// Produces the next chunk of a stream; an empty chunk means the end. The view must stay valid
// until the next call.
using ChunkSource = std::function<Result<std::string_view>()>;

// True for 64 lowercase hex digits.
bool IsValidSha256Hex(std::string_view sha);

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // Stores `data` and returns its SHA-256 (hex). Storing existing content is a cheap no-op.
  virtual Result<std::string> Put(std::string_view data) = 0;
  // Streams chunks from `next` until it returns an empty chunk or an error (returned as is).
  virtual Result<std::string> Put(const ChunkSource& next) = 0;
  // Streams `file` to its end.
  virtual Result<std::string> Put(SequentialFile& file) = 0;

  // The whole content. NotFound when absent.
  virtual Result<std::string> Get(std::string_view sha) = 0;
  // A reader over the content (for streaming large blobs). NotFound when absent.
  virtual Result<std::unique_ptr<SequentialFile>> Open(std::string_view sha) = 0;
  virtual Result<bool> Exists(std::string_view sha) = 0;
  // NotFound when absent.
  virtual Result<uint64_t> Size(std::string_view sha) = 0;
  // Removes the blob. NotFound when absent. Callers own reference tracking: content is shared
  // by everyone who stored the same bytes.
  virtual Status Delete(std::string_view sha) = 0;
};

}  // namespace atrium::store
