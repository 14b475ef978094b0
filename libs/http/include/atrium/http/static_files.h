// StaticFiles: serves a directory (the web UI's `web/dist`) with ETags, Cache-Control, gzip and
// an SPA fallback to index.html.
//
// Files are read once and kept in memory with their gzip form until their size or mtime changes.
// Paths are confined to the root (".." and NUL are refused). Files under `immutable_prefix`
// (Vite's hashed assets) are cached for a year; everything else must be revalidated. Paths with
// no extension that do not exist fall back to index.html unless they start with an API prefix.
// Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "atrium/http/handler.h"
#include "atrium/http/router.h"

namespace atrium::http {

struct StaticOptions {
  std::string root;
  std::string index = "index.html";
  bool spa_fallback = true;
  std::string immutable_prefix = "assets/";
  // Paths starting with one of these never fall back to index.html (they are 404 JSON).
  std::vector<std::string> api_prefixes = {"api/", "v1/", "v1beta/", "health", "metrics", "info"};
  size_t min_gzip_bytes = 512;
};

class StaticFiles {
 public:
  explicit StaticFiles(StaticOptions options);
  StaticFiles(const StaticFiles&) = delete;
  StaticFiles& operator=(const StaticFiles&) = delete;

  // Serves `relative` (the part of the path under the mount point, still percent-encoded or
  // decoded — both are accepted) for a GET or HEAD request.
  Response Serve(const Request& request, std::string_view relative) const;

  // Registers GET `{prefix}{path...}` (prefix "/" for the site root) on `router`.
  static Status Mount(Router& router, std::shared_ptr<const StaticFiles> files,
                      std::string_view prefix = "/");

 private:
  struct Entry {
    int64_t mtime_ns = 0;
    uint64_t size = 0;
    std::string etag;
    std::string content_type;
    std::string body;
    std::string gzipped;  // empty when not worth it
  };
  std::shared_ptr<const Entry> Load(const std::string& rel) const;

  StaticOptions options_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::shared_ptr<const Entry>> cache_;  // guarded by mu_
};

// The MIME type for a file name, by extension ("application/octet-stream" when unknown).
std::string_view MimeTypeFor(std::string_view filename);
// gzip-compresses `data` (zlib, level 6).
std::string GzipCompress(std::string_view data);

}  // namespace atrium::http
