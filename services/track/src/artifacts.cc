// Handlers: blobs, run files, artifacts (versions, manifests, aliases, finalize, external
// references) and lineage. See docs/track.md, Files / Artifacts.
#include <algorithm>
#include <deque>
#include <set>

#include "atrium/auth/crypto.h"
#include "track_impl.h"

namespace atrium::track {
namespace {

// Relative '/'-separated path without empty, "." or ".." segments or control characters.
bool ValidPath(std::string_view p) {
  if (p.empty() || p.size() > 1024 || p.front() == '/' || p.back() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    std::string_view seg =
        p.substr(start, slash == std::string_view::npos ? p.size() - start : slash - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  for (unsigned char c : p) {
    if (c < 0x20 || c == 0x7f || c == '\\') return false;
  }
  return true;
}

bool ValidArtifactName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

// v3 / 3 → 3; nullopt otherwise.
std::optional<int64_t> VersionIndex(std::string_view ref) {
  if (!ref.empty() && ref[0] == 'v') ref.remove_prefix(1);
  if (ref.empty() || ref.size() > 15) return std::nullopt;
  int64_t v = 0;
  for (char c : ref) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

bool ValidAlias(std::string_view a) {
  return ValidArtifactName(a) && a.size() <= 64 && !VersionIndex(a).has_value();
}

struct ManifestEntry {
  std::string path, sha256, url;
  int64_t size = 0;
};

std::string Digest(std::vector<ManifestEntry> files) {
  std::sort(files.begin(), files.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return a.path < b.path; });
  std::string text;
  for (const auto& f : files) {
    text += f.path + '\t' + f.sha256 + '\t' + std::to_string(f.size) + '\t' + f.url + '\n';
  }
  return auth::Sha256Hex(text);
}

constexpr const char* kVersionSelect =
    "SELECT v.id, v.artifact_id, v.idx, v.state, v.digest, v.size, v.file_count, v.metadata, "
    "v.description, v.created_at, a.project_id, a.name, a.type FROM track_artifact_versions v "
    "JOIN track_artifacts a ON a.id = v.artifact_id JOIN track_projects pr ON pr.id = "
    "a.project_id WHERE a.workspace_id = ? AND pr.deleted_at IS NULL AND (pr.visibility = "
    "'workspace' OR pr.created_by = ?)";

}  // namespace

// Artifact handlers: a helper class bound to the Impl keeps the shared logic in one place.
class ArtifactRoutes {
 public:
  explicit ArtifactRoutes(TrackService::Impl& s) : s_(s) {}

  Result<store::Row> VersionRow(const auth::Principal& p, std::string_view id_text) {
    ASSIGN_OR_RETURN(int64_t id, ParseId(id_text, "artifact version"));
    ASSIGN_OR_RETURN(auto rows, s_.db.Query(std::string(kVersionSelect) + " AND v.id = ?",
                                            {p.workspace_id, p.user_id, id}));
    if (rows.empty()) return NotFound("artifact version " + std::string(id_text) + " not found");
    return rows[0];
  }

  Result<store::Row> ArtifactRow(const auth::Principal& p, std::string_view id_text) {
    ASSIGN_OR_RETURN(int64_t id, ParseId(id_text, "artifact"));
    ASSIGN_OR_RETURN(auto rows,
                     s_.db.Query("SELECT a.id, a.project_id, a.name, a.type, a.description, "
                                 "a.created_at FROM track_artifacts a JOIN track_projects pr ON "
                                 "pr.id = a.project_id WHERE a.id = ? AND a.workspace_id = ? AND "
                                 "pr.deleted_at IS NULL AND (pr.visibility = 'workspace' OR "
                                 "pr.created_by = ?)",
                                 {id, p.workspace_id, p.user_id}));
    if (rows.empty()) return NotFound("artifact " + std::string(id_text) + " not found");
    return rows[0];
  }

  Result<json::object> VersionJson(const store::Row& v, bool with_files) {
    int64_t id = v.Int("id");
    ASSIGN_OR_RETURN(auto aliases, s_.db.Query("SELECT alias FROM track_artifact_aliases WHERE "
                                               "version_id = ? ORDER BY alias",
                                               {id}));
    json::array alias_list;
    for (const auto& a : aliases) alias_list.emplace_back(a.Text(0));
    json::object o{{"id", IdStr(id)},
                   {"artifact_id", IdStr(v.Int("artifact_id"))},
                   {"project_id", IdStr(v.Int("project_id"))},
                   {"name", v.Text("name")},
                   {"type", v.Text("type")},
                   {"version", v.IsNull("idx") ? json::value(nullptr)
                                               : json::value("v" + std::to_string(v.Int("idx")))},
                   {"index", v.IsNull("idx") ? json::value(nullptr) : json::value(v.Int("idx"))},
                   {"state", v.Text("state")},
                   {"digest", v.Text("digest")},
                   {"size", v.Int("size")},
                   {"file_count", v.Int("file_count")},
                   {"aliases", std::move(alias_list)},
                   {"metadata", ParseJsonOr(v.Text("metadata"), json::object())},
                   {"description", v.Text("description")},
                   {"created_at", Time(v.Int("created_at"))}};
    if (with_files) {
      ASSIGN_OR_RETURN(auto files, s_.db.Query("SELECT path, sha256, size, url FROM "
                                               "track_artifact_files WHERE version_id = ? ORDER "
                                               "BY path",
                                               {id}));
      json::array fl;
      for (const auto& f : files) {
        json::object e{{"path", f.Text(0)}, {"sha256", f.Text(1)}, {"size", f.Int(2)}};
        e["url"] = f.Text(3).empty() ? json::value(nullptr) : json::value(f.Text(3));
        fl.push_back(std::move(e));
      }
      o["files"] = std::move(fl);
    }
    return o;
  }

  Result<json::object> ArtifactJson(const store::Row& a) {
    int64_t id = a.Int("id");
    ASSIGN_OR_RETURN(auto stats, s_.db.Query("SELECT COUNT(*), MAX(idx) FROM "
                                             "track_artifact_versions WHERE artifact_id = ? AND "
                                             "state = 'committed'",
                                             {id}));
    ASSIGN_OR_RETURN(auto aliases,
                     s_.db.Query("SELECT al.alias, v.idx FROM track_artifact_aliases al JOIN "
                                 "track_artifact_versions v ON v.id = al.version_id WHERE "
                                 "al.artifact_id = ? ORDER BY al.alias",
                                 {id}));
    json::object amap;
    for (const auto& r : aliases) amap[r.Text(0)] = "v" + std::to_string(r.Int(1));
    return json::object{
        {"id", IdStr(id)},
        {"project_id", IdStr(a.Int("project_id"))},
        {"name", a.Text("name")},
        {"type", a.Text("type")},
        {"description", a.Text("description")},
        {"version_count", stats[0].Int(0)},
        {"latest_version", stats[0].IsNull(1) ? json::value(nullptr)
                                              : json::value("v" + std::to_string(stats[0].Int(1)))},
        {"aliases", std::move(amap)},
        {"created_at", Time(a.Int("created_at"))}};
  }

  // Parses manifest entries; blob-backed entries must be blobs of the workspace.
  Result<std::vector<ManifestEntry>> ParseFiles(const auth::Principal& p, const json::value* v) {
    std::vector<ManifestEntry> out;
    if (v == nullptr || v->is_null()) return out;
    if (!v->is_array()) return InvalidArgument("files must be a list");
    if (v->as_array().size() > 100000) return InvalidArgument("files: at most 100000 entries");
    std::set<std::string> seen;
    for (size_t i = 0; i < v->as_array().size(); ++i) {
      std::string field = "files[" + std::to_string(i) + "]";
      const auto& e = v->as_array()[i];
      if (!e.is_object()) return InvalidArgument(field + " must be an object");
      const auto& o = e.as_object();
      ManifestEntry m;
      ASSIGN_OR_RETURN(m.path, GetString(o, "path", true, 1024));
      if (!ValidPath(m.path)) return InvalidArgument(field + ".path must be a relative path");
      if (!seen.insert(m.path).second) return InvalidArgument(field + ".path is a duplicate");
      ASSIGN_OR_RETURN(m.url, GetString(o, "url", false, 4096));
      ASSIGN_OR_RETURN(m.sha256, GetString(o, "sha256", false, 64));
      ASSIGN_OR_RETURN(auto size, GetInt(o, "size"));
      if (!m.url.empty()) {
        if (m.url.find("://") == std::string::npos) {
          return InvalidArgument(field + ".url must be an absolute URL");
        }
        if (!m.sha256.empty() && !store::IsValidSha256Hex(m.sha256)) {
          return InvalidArgument(field + ".sha256 must be 64 lowercase hex digits");
        }
        m.size = size.value_or(0);
      } else {
        if (!store::IsValidSha256Hex(m.sha256)) {
          return InvalidArgument(field + ".sha256 must be 64 lowercase hex digits (or give url)");
        }
        ASSIGN_OR_RETURN(auto rows, s_.db.Query("SELECT size FROM track_blobs WHERE "
                                                "workspace_id = ? AND sha256 = ?",
                                                {p.workspace_id, m.sha256}));
        if (rows.empty()) {
          return InvalidArgument(field + ".sha256: no such blob (PUT /api/v1/blobs first)");
        }
        m.size = rows[0].Int(0);
      }
      out.push_back(std::move(m));
    }
    return out;
  }

  static Status InsertFiles(store::Transaction& tx, int64_t version_id,
                            const std::vector<ManifestEntry>& files) {
    for (const auto& f : files) {
      RETURN_IF_ERROR(tx.Exec("INSERT INTO track_artifact_files(version_id, path, sha256, size, "
                              "url) VALUES (?, ?, ?, ?, ?) ON CONFLICT (version_id, path) DO "
                              "UPDATE SET sha256 = excluded.sha256, size = excluded.size, url = "
                              "excluded.url",
                              {version_id, f.path, f.sha256, f.size, f.url})
                          .status());
    }
    return Status::Ok();
  }

  static Status SetAlias(store::Transaction& tx, int64_t artifact_id, const std::string& alias,
                         int64_t version_id) {
    return tx
        .Exec(
            "INSERT INTO track_artifact_aliases(artifact_id, alias, version_id) VALUES (?, ?, ?) "
            "ON CONFLICT (artifact_id, alias) DO UPDATE SET version_id = excluded.version_id",
            {artifact_id, alias, version_id})
        .status();
  }

  static Status RecordLineage(store::Transaction& tx, int64_t run_id, int64_t version_id,
                              const std::string& relation, int64_t now) {
    return tx
        .Exec(
            "INSERT INTO track_lineage(run_id, version_id, relation, created_at) VALUES (?, ?, "
            "?, ?) ON CONFLICT (run_id, version_id, relation) DO NOTHING",
            {run_id, version_id, relation, now})
        .status();
  }

  // Commits a version with these files: returns {version id, created}. When a committed version
  // with the same digest exists, that one is returned (and `pending_id`, if any, is deleted).
  Result<std::pair<int64_t, bool>> Commit(int64_t artifact_id, std::optional<int64_t> pending_id,
                                          const std::vector<ManifestEntry>& files,
                                          const std::string& metadata,
                                          const std::string& description,
                                          const std::vector<std::string>& aliases,
                                          std::optional<int64_t> run_id) {
    std::string digest = Digest(files);
    int64_t size = 0;
    for (const auto& f : files) size += f.size;
    int64_t now = s_.Now();
    std::pair<int64_t, bool> result{0, false};
    Status last;
    for (int attempt = 0; attempt < 3; ++attempt) {
      last = s_.db.Transaction([&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(auto same, tx.Query("SELECT id FROM track_artifact_versions WHERE "
                                             "artifact_id = ? AND digest = ? AND state = "
                                             "'committed' ORDER BY idx LIMIT 1",
                                             {artifact_id, digest}));
        if (!same.empty()) {
          result = {same[0].Int(0), false};
          if (pending_id) {
            RETURN_IF_ERROR(
                tx.Exec("DELETE FROM track_artifact_files WHERE version_id = ?", {*pending_id})
                    .status());
            RETURN_IF_ERROR(
                tx.Exec("DELETE FROM track_artifact_versions WHERE id = ?", {*pending_id})
                    .status());
          }
        } else {
          ASSIGN_OR_RETURN(auto next, tx.Query("SELECT COALESCE(MAX(idx), -1) + 1 FROM "
                                               "track_artifact_versions WHERE artifact_id = ?",
                                               {artifact_id}));
          int64_t idx = next[0].Int(0);
          if (pending_id) {
            RETURN_IF_ERROR(
                tx.Exec("UPDATE track_artifact_versions SET idx = ?, state = "
                        "'committed', digest = ?, size = ?, file_count = ? WHERE id "
                        "= ?",
                        {idx, digest, size, static_cast<int64_t>(files.size()), *pending_id})
                    .status());
            result = {*pending_id, true};
          } else {
            ASSIGN_OR_RETURN(
                auto ins,
                tx.Query("INSERT INTO track_artifact_versions(artifact_id, idx, state, digest, "
                         "size, file_count, metadata, description, created_at) VALUES (?, ?, "
                         "'committed', ?, ?, ?, ?, ?, ?) RETURNING id",
                         {artifact_id, idx, digest, size, static_cast<int64_t>(files.size()),
                          metadata, description, now}));
            result = {ins[0].Int(0), true};
            RETURN_IF_ERROR(InsertFiles(tx, result.first, files));
          }
          RETURN_IF_ERROR(SetAlias(tx, artifact_id, "latest", result.first));
        }
        for (const auto& a : aliases) RETURN_IF_ERROR(SetAlias(tx, artifact_id, a, result.first));
        if (run_id) RETURN_IF_ERROR(RecordLineage(tx, *run_id, result.first, "produced", now));
        return Status::Ok();
      });
      if (last.code() != StatusCode::kConflict) break;  // a concurrent commit took the index
    }
    RETURN_IF_ERROR(last);
    return result;
  }

  Result<std::vector<std::string>> ParseAliases(const json::object& body) {
    std::vector<std::string> out;
    const auto* v = body.if_contains("aliases");
    if (v == nullptr || v->is_null()) return out;
    if (!v->is_array()) return InvalidArgument("aliases must be a list");
    for (const auto& a : v->as_array()) {
      if (!a.is_string() || !ValidAlias(a.as_string()) || a.as_string() == "latest") {
        return InvalidArgument(
            "aliases: each must be 1-64 of [A-Za-z0-9._-], not 'latest' or "
            "a version like v3");
      }
      out.emplace_back(a.as_string());
    }
    return out;
  }

  // Resolves "v3", "3" or an alias within an artifact to a committed version row.
  Result<store::Row> Resolve(const auth::Principal& p, int64_t artifact_id, std::string_view ref) {
    std::string sql =
        std::string(kVersionSelect) + " AND v.artifact_id = ? AND v.state = 'committed'";
    store::Params params{p.workspace_id, p.user_id, artifact_id};
    if (auto idx = VersionIndex(ref)) {
      sql += " AND v.idx = ?";
      params.emplace_back(*idx);
    } else {
      sql +=
          " AND v.id = (SELECT version_id FROM track_artifact_aliases WHERE artifact_id = ? AND "
          "alias = ?)";
      params.emplace_back(artifact_id);
      params.emplace_back(std::string(ref));
    }
    ASSIGN_OR_RETURN(auto rows, s_.db.Query(sql, params));
    if (rows.empty()) return NotFound("artifact version " + std::string(ref) + " not found");
    return rows[0];
  }

  Response Download(const std::string& sha, const std::string& name) {
    auto data = s_.blobs.Get(sha);
    if (!data.ok()) return Error(data.status());
    Response r = Response::Text(200, std::move(*data), "application/octet-stream");
    r.headers.Set("x-content-sha256", sha);
    if (!name.empty()) {
      std::string base = name.substr(name.rfind('/') + 1);
      std::string safe;
      for (char c : base) safe += (c == '"' || static_cast<unsigned char>(c) < 0x20) ? '_' : c;
      r.headers.Set("content-disposition", "attachment; filename=\"" + safe + "\"");
    }
    return r;
  }

  Status Register(http::Router& router);

 private:
  TrackService::Impl& s_;
};

Status ArtifactRoutes::Register(http::Router& router) {
  using http::SyncHandler;
  auto& s = s_;
  // ---- blobs ----
  RETURN_IF_ERROR(router.Add(
      "PUT", "/api/v1/blobs", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto sha, s.blobs.Put(req.body));
        TRACK_RETURN_IF_ERROR(
            s.db.Exec("INSERT INTO track_blobs(workspace_id, sha256, size, "
                      "created_at) VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, "
                      "sha256) DO NOTHING",
                      {p.workspace_id, sha, static_cast<int64_t>(req.body.size()), s.Now()})
                .status());
        s.Audit(req, "track.blob.upload", "blob", sha);
        return JsonReply(
            200, json::object{{"sha256", sha}, {"size", static_cast<int64_t>(req.body.size())}});
      }),
      WriteRoute(s.options.max_file_bytes)));

  RETURN_IF_ERROR(router.Add("GET", "/api/v1/blobs/{sha}", SyncHandler([this, &s](Request& req) {
                               const auto& p = TrackService::Impl::P(req);
                               std::string sha(req.Param("sha"));
                               TRACK_ASSIGN_OR_RESPONSE(
                                   auto rows,
                                   s.db.Query("SELECT 1 FROM track_blobs WHERE workspace_id "
                                              "= ? AND sha256 = ?",
                                              {p.workspace_id, sha}));
                               if (rows.empty())
                                 return Error(NotFound("blob " + sha + " not found"));
                               return Download(sha, "");
                             }),
                             ReadRoute()));

  // ---- run files ----
  RETURN_IF_ERROR(router.Add(
      "PUT", "/api/v1/runs/{id}/files/{path...}", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto run, s.Run(p, req.Param("id")));
        std::string path(req.Param("path"));
        if (!ValidPath(path))
          return Error(InvalidArgument("path must be a relative path without .."));
        TRACK_ASSIGN_OR_RESPONSE(auto sha, s.blobs.Put(req.body));
        int64_t now = s.Now();
        int64_t size = static_cast<int64_t>(req.body.size());
        Status st = s.db.Transaction([&](store::Transaction& tx) -> Status {
          RETURN_IF_ERROR(
              tx.Exec("INSERT INTO track_blobs(workspace_id, sha256, size, created_at) "
                      "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, sha256) DO NOTHING",
                      {p.workspace_id, sha, size, now})
                  .status());
          return tx
              .Exec(
                  "INSERT INTO track_files(run_id, path, sha256, size, updated_at) VALUES (?, ?, "
                  "?, "
                  "?, ?) ON CONFLICT (run_id, path) DO UPDATE SET sha256 = excluded.sha256, size = "
                  "excluded.size, updated_at = excluded.updated_at",
                  {run.id, path, sha, size, now})
              .status();
        });
        TRACK_RETURN_IF_ERROR(st);
        s.Audit(req, "track.file.upload", "run", IdStr(run.id),
                json::serialize(json::object{{"path", path}, {"sha256", sha}}));
        return JsonReply(
            201, json::object{
                     {"path", path}, {"size", size}, {"sha256", sha}, {"updated_at", Time(now)}});
      }),
      WriteRoute(s.options.max_file_bytes)));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/files", SyncHandler([&s](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, s.Run(TrackService::Impl::P(req), req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto rows, s.db.Query("SELECT path, size, sha256, updated_at FROM "
                                                       "track_files WHERE run_id = ? ORDER BY path",
                                                       {run.id}));
        json::array files;
        for (const auto& r : rows) {
          files.push_back(json::object{{"path", r.Text(0)},
                                       {"size", r.Int(1)},
                                       {"sha256", r.Text(2)},
                                       {"updated_at", Time(r.Int(3))}});
        }
        return JsonReply(200, json::object{{"files", std::move(files)}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/files/{path...}", SyncHandler([this, &s](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, s.Run(TrackService::Impl::P(req), req.Param("id")));
        std::string path(req.Param("path"));
        TRACK_ASSIGN_OR_RESPONSE(auto rows,
                                 s.db.Query("SELECT sha256 FROM track_files WHERE run_id "
                                            "= ? AND path = ?",
                                            {run.id, path}));
        if (rows.empty()) return Error(NotFound("file " + path + " not found"));
        return Download(rows[0].Text(0), path);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "DELETE", "/api/v1/runs/{id}/files/{path...}", SyncHandler([&s](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, s.Run(TrackService::Impl::P(req), req.Param("id")));
        std::string path(req.Param("path"));
        TRACK_ASSIGN_OR_RESPONSE(auto n, s.db.Exec("DELETE FROM track_files WHERE run_id = ? AND "
                                                   "path = ?",
                                                   {run.id, path}));
        if (n == 0) return Error(NotFound("file " + path + " not found"));
        s.Audit(req, "track.file.delete", "run", IdStr(run.id),
                json::serialize(json::object{{"path", path}}));
        return Response::NoContent();
      }),
      WriteRoute()));

  // ---- artifacts ----
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/artifacts", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto project_id, GetInt(body, "project_id"));
        if (!project_id) return Error(InvalidArgument("project_id is required"));
        TRACK_ASSIGN_OR_RESPONSE(auto prow, s.ProjectRow(p, *project_id));
        (void)prow;
        TRACK_ASSIGN_OR_RESPONSE(auto name, GetString(body, "name", true, 128));
        if (!ValidArtifactName(name))
          return Error(InvalidArgument("name must be 1-128 of [A-Za-z0-9._-]"));
        TRACK_ASSIGN_OR_RESPONSE(auto type, GetString(body, "type", true, 64));
        if (!ValidArtifactName(type))
          return Error(InvalidArgument("type must be 1-64 of [A-Za-z0-9._-]"));
        TRACK_ASSIGN_OR_RESPONSE(auto description, GetString(body, "description", false, 10000));
        std::string metadata = "{}";
        if (const auto* m = body.if_contains("metadata"); m && !m->is_null()) {
          if (!m->is_object()) return Error(InvalidArgument("metadata must be an object"));
          metadata = json::serialize(*m);
        }
        TRACK_ASSIGN_OR_RESPONSE(auto files, ParseFiles(p, body.if_contains("files")));
        TRACK_ASSIGN_OR_RESPONSE(auto aliases, ParseAliases(body));
        TRACK_ASSIGN_OR_RESPONSE(auto run_id, GetInt(body, "run_id"));
        if (run_id) {
          TRACK_ASSIGN_OR_RESPONSE(auto run, s.Run(p, IdStr(*run_id)));
          (void)run;
        }
        bool finalize = true;
        if (const auto* f = body.if_contains("finalize"); f && !f->is_null()) {
          if (!f->is_bool()) return Error(InvalidArgument("finalize must be a boolean"));
          finalize = f->as_bool();
        }
        // The artifact (created on first use).
        int64_t artifact_id = 0;
        for (int attempt = 0; attempt < 2 && artifact_id == 0; ++attempt) {
          TRACK_ASSIGN_OR_RESPONSE(auto rows,
                                   s.db.Query("SELECT id, type FROM track_artifacts WHERE "
                                              "project_id = ? AND name = ?",
                                              {*project_id, name}));
          if (!rows.empty()) {
            if (rows[0].Text(1) != type) {
              return Error(Conflict("type: artifact " + name + " has type " + rows[0].Text(1)));
            }
            artifact_id = rows[0].Int(0);
            break;
          }
          auto ins = s.db.Query(
              "INSERT INTO track_artifacts(workspace_id, project_id, name, type, "
              "description, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
              {p.workspace_id, *project_id, name, type, description, s.Now()});
          if (ins.ok()) {
            artifact_id = (*ins)[0].Int(0);
          } else if (ins.status().code() != StatusCode::kConflict) {
            return Error(ins.status());
          }
        }
        if (artifact_id == 0) return Error(Conflict("artifact " + name + " is being created"));
        int64_t version_id = 0;
        bool created = true;
        if (finalize) {
          TRACK_ASSIGN_OR_RESPONSE(auto committed, Commit(artifact_id, std::nullopt, files,
                                                          metadata, description, aliases, run_id));
          version_id = committed.first;
          created = committed.second;
        } else {
          int64_t now = s.Now();
          Status st = s.db.Transaction([&](store::Transaction& tx) -> Status {
            ASSIGN_OR_RETURN(
                auto ins, tx.Query("INSERT INTO track_artifact_versions(artifact_id, idx, state, "
                                   "metadata, description, created_at) VALUES (?, NULL, "
                                   "'pending', ?, ?, ?) RETURNING id",
                                   {artifact_id, metadata, description, now}));
            version_id = ins[0].Int(0);
            RETURN_IF_ERROR(InsertFiles(tx, version_id, files));
            if (run_id) RETURN_IF_ERROR(RecordLineage(tx, *run_id, version_id, "produced", now));
            return Status::Ok();
          });
          TRACK_RETURN_IF_ERROR(st);
        }
        s.Audit(req, created ? "track.artifact.version.create" : "track.artifact.version.reuse",
                "artifact_version", IdStr(version_id));
        TRACK_ASSIGN_OR_RESPONSE(auto vrow, VersionRow(p, IdStr(version_id)));
        TRACK_ASSIGN_OR_RESPONSE(auto arow, ArtifactRow(p, IdStr(artifact_id)));
        TRACK_ASSIGN_OR_RESPONSE(auto vjson, VersionJson(vrow, true));
        TRACK_ASSIGN_OR_RESPONSE(auto ajson, ArtifactJson(arow));
        return JsonReply(created ? 201 : 200, json::object{{"artifact", std::move(ajson)},
                                                           {"version", std::move(vjson)},
                                                           {"created", created}});
      }),
      WriteRoute(s.options.max_batch_bytes)));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/artifacts", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        std::string sql =
            "SELECT a.id, a.project_id, a.name, a.type, a.description, a.created_at FROM "
            "track_artifacts a JOIN track_projects pr ON pr.id = a.project_id WHERE a.workspace_id "
            "= "
            "? AND pr.deleted_at IS NULL AND (pr.visibility = 'workspace' OR pr.created_by = ?)";
        store::Params params{p.workspace_id, p.user_id};
        if (auto pid = req.Query("project_id")) {
          TRACK_ASSIGN_OR_RESPONSE(int64_t id, ParseId(*pid, "project"));
          sql += " AND a.project_id = ?";
          params.emplace_back(id);
        }
        if (auto type = req.Query("type")) {
          sql += " AND a.type = ?";
          params.emplace_back(*type);
        }
        TRACK_ASSIGN_OR_RESPONSE(auto rows,
                                 s.db.Query(sql + " ORDER BY a.name LIMIT 1000", params));
        json::array out;
        for (const auto& r : rows) {
          TRACK_ASSIGN_OR_RESPONSE(auto a, ArtifactJson(r));
          out.push_back(std::move(a));
        }
        return JsonReply(200, json::object{{"artifacts", std::move(out)}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/artifacts/resolve", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        auto pid = req.Query("project_id");
        auto ref = req.Query("ref");
        if (!pid || !ref || ref->empty()) {
          return Error(InvalidArgument("project_id and ref (name:alias) are required"));
        }
        TRACK_ASSIGN_OR_RESPONSE(int64_t project_id, ParseId(*pid, "project"));
        TRACK_ASSIGN_OR_RESPONSE(auto prow, s.ProjectRow(p, project_id));
        (void)prow;
        size_t colon = ref->find(':');
        std::string name = ref->substr(0, colon);
        std::string alias = colon == std::string::npos ? "latest" : ref->substr(colon + 1);
        TRACK_ASSIGN_OR_RESPONSE(auto rows, s.db.Query("SELECT id FROM track_artifacts WHERE "
                                                       "project_id = ? AND name = ?",
                                                       {project_id, name}));
        if (rows.empty()) return Error(NotFound("artifact " + name + " not found"));
        TRACK_ASSIGN_OR_RESPONSE(auto v, Resolve(p, rows[0].Int(0), alias));
        TRACK_ASSIGN_OR_RESPONSE(auto out, VersionJson(v, true));
        return JsonReply(200, out);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/artifacts/{id}", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto a, ArtifactRow(TrackService::Impl::P(req), req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto out, ArtifactJson(a));
        return JsonReply(200, out);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/artifacts/{id}/versions", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto a, ArtifactRow(p, req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(
            auto rows,
            s.db.Query(std::string(kVersionSelect) + " AND v.artifact_id = ? ORDER BY v.idx, v.id",
                       {p.workspace_id, p.user_id, a.Int("id")}));
        json::array out;
        for (const auto& r : rows) {
          TRACK_ASSIGN_OR_RESPONSE(auto v, VersionJson(r, false));
          out.push_back(std::move(v));
        }
        return JsonReply(200, json::object{{"versions", std::move(out)}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(
      router.Add("GET", "/api/v1/artifacts/{id}/versions/{ref}", SyncHandler([this](Request& req) {
                   const auto& p = TrackService::Impl::P(req);
                   TRACK_ASSIGN_OR_RESPONSE(auto a, ArtifactRow(p, req.Param("id")));
                   TRACK_ASSIGN_OR_RESPONSE(auto v, Resolve(p, a.Int("id"), req.Param("ref")));
                   TRACK_ASSIGN_OR_RESPONSE(auto out, VersionJson(v, true));
                   return JsonReply(200, out);
                 }),
                 ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/artifact-versions/{vid}", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto v, VersionRow(TrackService::Impl::P(req), req.Param("vid")));
        TRACK_ASSIGN_OR_RESPONSE(auto out, VersionJson(v, true));
        return JsonReply(200, out);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/artifact-versions/{vid}/files", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto v, VersionRow(p, req.Param("vid")));
        if (v.Text("state") != "pending") return Error(Conflict("version is finalized"));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto files, ParseFiles(p, body.if_contains("files")));
        TRACK_RETURN_IF_ERROR(s.db.Transaction(
            [&](store::Transaction& tx) { return InsertFiles(tx, v.Int("id"), files); }));
        s.Audit(req, "track.artifact.version.add_files", "artifact_version", IdStr(v.Int("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto out, VersionJson(v, true));
        return JsonReply(200, out);
      }),
      WriteRoute(s.options.max_batch_bytes)));

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/artifact-versions/{vid}/finalize", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto v, VersionRow(p, req.Param("vid")));
        bool created = false;
        int64_t id = v.Int("id");
        if (v.Text("state") == "pending") {
          TRACK_ASSIGN_OR_RESPONSE(auto rows,
                                   s.db.Query("SELECT path, sha256, size, url FROM "
                                              "track_artifact_files WHERE version_id = ?",
                                              {id}));
          std::vector<ManifestEntry> files;
          for (const auto& r : rows) files.push_back({r.Text(0), r.Text(1), r.Text(3), r.Int(2)});
          TRACK_ASSIGN_OR_RESPONSE(
              auto committed, Commit(v.Int("artifact_id"), id, files, "", "", {}, std::nullopt));
          id = committed.first;
          created = committed.second;
          s.Audit(req, "track.artifact.version.finalize", "artifact_version", IdStr(id));
        }
        TRACK_ASSIGN_OR_RESPONSE(auto row, VersionRow(p, IdStr(id)));
        TRACK_ASSIGN_OR_RESPONSE(auto out, VersionJson(row, true));
        out["created"] = created;
        return JsonReply(200, out);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/artifact-versions/{vid}/files/{path...}",
      SyncHandler([this, &s](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto v, VersionRow(TrackService::Impl::P(req), req.Param("vid")));
        std::string path(req.Param("path"));
        TRACK_ASSIGN_OR_RESPONSE(auto rows,
                                 s.db.Query("SELECT sha256, url FROM track_artifact_files "
                                            "WHERE version_id = ? AND path = ?",
                                            {v.Int("id"), path}));
        if (rows.empty()) return Error(NotFound("file " + path + " not found in the version"));
        if (!rows[0].Text(1).empty()) {
          return Error(Conflict("file " + path + " is an external reference: " + rows[0].Text(1)));
        }
        return Download(rows[0].Text(0), path);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(
      router.Add("PUT", "/api/v1/artifact-versions/{vid}/aliases/{alias}",
                 SyncHandler([this, &s](Request& req) {
                   const auto& p = TrackService::Impl::P(req);
                   TRACK_ASSIGN_OR_RESPONSE(auto v, VersionRow(p, req.Param("vid")));
                   std::string alias(req.Param("alias"));
                   if (alias == "latest")
                     return Error(InvalidArgument("alias: latest is automatic"));
                   if (!ValidAlias(alias))
                     return Error(InvalidArgument("alias must be 1-64 of [A-Za-z0-9._-]"));
                   if (v.Text("state") != "committed")
                     return Error(Conflict("version is not finalized"));
                   TRACK_RETURN_IF_ERROR(s.db.Transaction([&](store::Transaction& tx) {
                     return SetAlias(tx, v.Int("artifact_id"), alias, v.Int("id"));
                   }));
                   s.Audit(req, "track.artifact.alias.set", "artifact_version", IdStr(v.Int("id")),
                           json::serialize(json::object{{"alias", alias}}));
                   TRACK_ASSIGN_OR_RESPONSE(auto out, VersionJson(v, false));
                   return JsonReply(200, out);
                 }),
                 WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "DELETE", "/api/v1/artifact-versions/{vid}/aliases/{alias}",
      SyncHandler([this, &s](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto v, VersionRow(TrackService::Impl::P(req), req.Param("vid")));
        std::string alias(req.Param("alias"));
        if (alias == "latest") return Error(InvalidArgument("alias: latest is automatic"));
        TRACK_ASSIGN_OR_RESPONSE(auto n, s.db.Exec("DELETE FROM track_artifact_aliases WHERE "
                                                   "version_id = ? AND alias = ?",
                                                   {v.Int("id"), alias}));
        if (n == 0) return Error(NotFound("alias " + alias + " is not on this version"));
        s.Audit(req, "track.artifact.alias.delete", "artifact_version", IdStr(v.Int("id")),
                json::serialize(json::object{{"alias", alias}}));
        return Response::NoContent();
      }),
      WriteRoute()));

  // ---- lineage ----
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/runs/{id}/artifacts", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto run, s.Run(p, req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto vid, GetString(body, "version_id", true, 32));
        TRACK_ASSIGN_OR_RESPONSE(auto relation, GetString(body, "relation", false, 16));
        if (relation.empty()) relation = "used";
        if (relation != "used" && relation != "produced") {
          return Error(InvalidArgument("relation must be used or produced"));
        }
        TRACK_ASSIGN_OR_RESPONSE(auto v, VersionRow(p, vid));
        TRACK_RETURN_IF_ERROR(s.db.Transaction([&](store::Transaction& tx) {
          return RecordLineage(tx, run.id, v.Int("id"), relation, s.Now());
        }));
        s.Audit(req, "track.lineage.record", "run", IdStr(run.id),
                json::serialize(json::object{{"version_id", vid}, {"relation", relation}}));
        return JsonReply(200, json::object{{"run_id", IdStr(run.id)},
                                           {"version_id", IdStr(v.Int("id"))},
                                           {"relation", relation}});
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/artifacts", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto run, s.Run(p, req.Param("id")));
        json::object out{{"used", json::array()}, {"produced", json::array()}};
        for (const char* relation : {"used", "produced"}) {
          TRACK_ASSIGN_OR_RESPONSE(
              auto rows,
              s.db.Query(std::string(kVersionSelect) + " AND v.id IN (SELECT version_id FROM "
                                                       "track_lineage WHERE run_id = ? AND "
                                                       "relation = ?) ORDER BY v.id",
                         {p.workspace_id, p.user_id, run.id, relation}));
          for (const auto& r : rows) {
            TRACK_ASSIGN_OR_RESPONSE(auto v, VersionJson(r, false));
            out[relation].as_array().push_back(std::move(v));
          }
        }
        return JsonReply(200, out);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/lineage", SyncHandler([this, &s](Request& req) {
        const auto& p = TrackService::Impl::P(req);
        std::string direction = req.Query("direction").value_or("both");
        if (direction != "upstream" && direction != "downstream" && direction != "both") {
          return Error(InvalidArgument("direction must be upstream, downstream or both"));
        }
        int64_t depth = 5;
        if (auto d = req.Query("depth")) depth = std::clamp<int64_t>(std::atoll(d->c_str()), 1, 50);
        // Nodes as ("run"|"version", id).
        std::deque<std::tuple<std::string, int64_t, int64_t, bool>> queue;  // kind, id, depth, up
        if (auto vid = req.Query("version_id")) {
          TRACK_ASSIGN_OR_RESPONSE(auto v, VersionRow(p, *vid));
          if (direction != "downstream") queue.emplace_back("version", v.Int("id"), 0, true);
          if (direction != "upstream") queue.emplace_back("version", v.Int("id"), 0, false);
        } else if (auto rid = req.Query("run_id")) {
          TRACK_ASSIGN_OR_RESPONSE(auto run, s.Run(p, *rid));
          if (direction != "downstream") queue.emplace_back("run", run.id, 0, true);
          if (direction != "upstream") queue.emplace_back("run", run.id, 0, false);
        } else {
          return Error(InvalidArgument("version_id or run_id is required"));
        }
        std::set<std::pair<std::string, int64_t>> nodes;
        std::set<std::tuple<std::string, std::string, std::string>> edges;
        std::set<std::tuple<std::string, int64_t, bool>> expanded;
        auto node_id = [](const std::string& kind, int64_t id) { return kind + ":" + IdStr(id); };
        for (const auto& [kind, id, d, up] : queue) nodes.insert({kind, id});
        while (!queue.empty() && nodes.size() < 1000) {
          auto [kind, id, d, up] = queue.front();
          queue.pop_front();
          if (d >= depth || !expanded.insert({kind, id, up}).second) continue;
          store::Rows rows;
          if (kind == "version") {
            // Upstream of a version: the runs that produced it; downstream: the runs that used it.
            TRACK_ASSIGN_OR_RESPONSE(rows, s.db.Query("SELECT run_id FROM track_lineage WHERE "
                                                      "version_id = ? AND relation = ?",
                                                      {id, up ? "produced" : "used"}));
            for (const auto& r : rows) {
              int64_t run = r.Int(0);
              nodes.insert({"run", run});
              if (up) {
                edges.insert({node_id("run", run), node_id("version", id), "produced"});
              } else {
                edges.insert({node_id("version", id), node_id("run", run), "used"});
              }
              queue.emplace_back("run", run, d + 1, up);
            }
          } else {
            // Upstream of a run: the versions it used; downstream: the versions it produced.
            TRACK_ASSIGN_OR_RESPONSE(rows, s.db.Query("SELECT version_id FROM track_lineage WHERE "
                                                      "run_id = ? AND relation = ?",
                                                      {id, up ? "used" : "produced"}));
            for (const auto& r : rows) {
              int64_t ver = r.Int(0);
              nodes.insert({"version", ver});
              if (up) {
                edges.insert({node_id("version", ver), node_id("run", id), "used"});
              } else {
                edges.insert({node_id("run", id), node_id("version", ver), "produced"});
              }
              queue.emplace_back("version", ver, d + 1, up);
            }
          }
        }
        json::array node_list, edge_list;
        for (const auto& [kind, id] : nodes) {
          if (kind == "run") {
            TRACK_ASSIGN_OR_RESPONSE(auto rows, s.db.Query("SELECT name, status FROM track_runs "
                                                           "WHERE id = ? AND workspace_id = ?",
                                                           {id, p.workspace_id}));
            if (rows.empty()) continue;
            node_list.push_back(json::object{{"id", node_id(kind, id)},
                                             {"kind", "run"},
                                             {"run_id", IdStr(id)},
                                             {"name", rows[0].Text(0)},
                                             {"status", rows[0].Text(1)}});
          } else {
            auto v = VersionRow(p, IdStr(id));
            if (!v.ok()) continue;
            node_list.push_back(json::object{
                {"id", node_id(kind, id)},
                {"kind", "artifact_version"},
                {"version_id", IdStr(id)},
                {"artifact", v->Text("name")},
                {"type", v->Text("type")},
                {"version", v->IsNull("idx") ? json::value(nullptr)
                                             : json::value("v" + std::to_string(v->Int("idx")))}});
          }
        }
        for (const auto& [from, to, relation] : edges) {
          edge_list.push_back(json::object{{"from", from}, {"to", to}, {"relation", relation}});
        }
        return JsonReply(
            200, json::object{{"nodes", std::move(node_list)}, {"edges", std::move(edge_list)}});
      }),
      ReadRoute()));
  return Status::Ok();
}

TrackService::Impl::Impl(TrackOptions o, store::Database& d, store::BlobStore& b, Env& e,
                         auth::AuditSink* a, bus::Bus* bus, std::shared_ptr<spdlog::logger> l)
    : options(o),
      db(d),
      blobs(b),
      env(e),
      audit(a),
      log(std::move(l)),
      series(o.series_cache_points),
      live(bus, log) {}

TrackService::Impl::~Impl() = default;

Status TrackService::Impl::AddArtifactRoutes(http::Router& router) {
  // The handlers capture the helper; it lives as long as the Impl.
  artifact_routes = std::make_unique<ArtifactRoutes>(*this);
  return artifact_routes->Register(router);
}

}  // namespace atrium::track
