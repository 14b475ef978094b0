#include "atrium/http/static_files.h"

#include <sys/stat.h>
#include <zlib.h>

#include <fstream>
#include <sstream>

namespace atrium::http {

namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool Compressible(std::string_view type) {
  return StartsWith(type, "text/") || type.find("javascript") != std::string_view::npos ||
         type.find("json") != std::string_view::npos ||
         type.find("svg") != std::string_view::npos || type.find("wasm") != std::string_view::npos;
}

bool AcceptsGzip(const Request& req) {
  auto ae = req.headers.Get("accept-encoding");
  if (!ae) return false;
  // Accept "gzip" unless explicitly disabled with q=0.
  size_t pos = ae->find("gzip");
  if (pos == std::string_view::npos) return false;
  std::string_view rest = ae->substr(pos + 4);
  size_t comma = rest.find(',');
  std::string_view params = rest.substr(0, comma);
  return params.find("q=0") == std::string_view::npos ||
         params.find("q=0.") != std::string_view::npos;
}

bool EtagMatches(std::string_view header, std::string_view etag) {
  if (header == "*") return true;
  size_t start = 0;
  while (start < header.size()) {
    size_t comma = header.find(',', start);
    std::string_view tag =
        header.substr(start, comma == std::string_view::npos ? comma : comma - start);
    while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
    while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
    if (StartsWith(tag, "W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return false;
}

}  // namespace

std::string_view MimeTypeFor(std::string_view name) {
  size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) return "application/octet-stream";
  std::string_view ext = name.substr(dot + 1);
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"ico", "image/x-icon"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"wasm", "application/wasm"},
      {"webmanifest", "application/manifest+json"},
  };
  for (const auto& [e, t] : kTypes) {
    if (e == ext) return t;
  }
  return "application/octet-stream";
}

std::string GzipCompress(std::string_view data) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out;
  out.resize(deflateBound(&zs, data.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return {};
  return out;
}

StaticFiles::StaticFiles(StaticOptions options) : options_(std::move(options)) {}

std::shared_ptr<const StaticFiles::Entry> StaticFiles::Load(const std::string& rel) const {
  std::string path = options_.root + "/" + rel;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(rel);
    if (it != cache_.end() && it->second->mtime_ns == mtime_ns &&
        it->second->size == static_cast<uint64_t>(st.st_size)) {
      return it->second;
    }
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  std::ostringstream ss;
  ss << in.rdbuf();
  auto e = std::make_shared<Entry>();
  e->mtime_ns = mtime_ns;
  e->body = ss.str();
  e->size = e->body.size();
  char etag[64];
  std::snprintf(etag, sizeof(etag), "\"%llx-%llx\"", static_cast<unsigned long long>(e->size),
                static_cast<unsigned long long>(mtime_ns));
  e->etag = etag;
  e->content_type = std::string(MimeTypeFor(rel));
  if (e->size >= options_.min_gzip_bytes && Compressible(e->content_type)) {
    std::string gz = GzipCompress(e->body);
    if (!gz.empty() && gz.size() < e->size) e->gzipped = std::move(gz);
  }
  std::lock_guard lock(mu_);
  cache_[rel] = e;
  return e;
}

Response StaticFiles::Serve(const Request& request, std::string_view relative) const {
  std::string rel = PercentDecode(relative);
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  if (rel.find('\0') != std::string::npos) {
    return Response::FromStatus(InvalidArgument("path contains NUL"));
  }
  // Refuse any ".." segment: the root must confine every path.
  for (size_t start = 0; start <= rel.size();) {
    size_t slash = rel.find('/', start);
    std::string_view seg = std::string_view(rel).substr(
        start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg == "..") return Response::FromStatus(NotFound("no such file: " + rel));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  bool is_index = rel.empty() || rel.back() == '/';
  if (is_index) rel += options_.index;
  auto entry = Load(rel);
  bool fallback = false;
  if (!entry && options_.spa_fallback) {
    bool api = false;
    for (const auto& p : options_.api_prefixes) api = api || StartsWith(rel, p);
    std::string_view last = rel;
    if (size_t slash = last.rfind('/'); slash != std::string_view::npos)
      last.remove_prefix(slash + 1);
    if (!api && last.find('.') == std::string_view::npos) {
      entry = Load(options_.index);
      fallback = true;
      is_index = true;
    }
  }
  if (!entry) return Response::FromStatus(NotFound("no such file: /" + rel));
  Response res;
  res.headers.Set("Content-Type", entry->content_type);
  res.headers.Set("ETag", entry->etag);
  if (!is_index && StartsWith(rel, options_.immutable_prefix)) {
    res.headers.Set("Cache-Control", "public, max-age=31536000, immutable");
  } else {
    res.headers.Set("Cache-Control", "no-cache");
  }
  if (!entry->gzipped.empty()) res.headers.Set("Vary", "Accept-Encoding");
  (void)fallback;
  if (auto inm = request.headers.Get("if-none-match"); inm && EtagMatches(*inm, entry->etag)) {
    res.status = 304;
    return res;
  }
  res.status = 200;
  if (!entry->gzipped.empty() && AcceptsGzip(request)) {
    res.headers.Set("Content-Encoding", "gzip");
    res.body = entry->gzipped;
  } else {
    res.body = entry->body;
  }
  return res;
}

Status StaticFiles::Mount(Router& router, std::shared_ptr<const StaticFiles> files,
                          std::string_view prefix) {
  std::string pattern(prefix);
  if (pattern.empty() || pattern.back() != '/') pattern += '/';
  pattern += "{path...}";
  RouteOptions opts;
  opts.blocking = true;  // first reads hit the disk
  return router.Add(
      "GET", pattern,
      SyncHandler([files](Request& req) { return files->Serve(req, req.Param("path")); }), opts);
}

}  // namespace atrium::http
