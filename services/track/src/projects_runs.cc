// Handlers: projects and runs (docs/track.md, Projects / Runs).
#include <set>

#include "track_impl.h"

namespace atrium::track {
namespace {

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool ValidStatus(std::string_view s) {
  return s == "running" || s == "finished" || s == "failed" || s == "crashed" || s == "killed";
}

json::object ProjectJson(const store::Row& r) {
  return json::object{{"id", IdStr(r.Int("id"))},
                      {"name", r.Text("name")},
                      {"description", r.Text("description")},
                      {"visibility", r.Text("visibility")},
                      {"created_by", r.Text("created_by")},
                      {"created_at", Time(r.Int("created_at"))},
                      {"updated_at", Time(r.Int("updated_at"))}};
}

struct ParamRow {
  int64_t key_id;
  std::optional<double> num;
  std::string txt;
};

// Tags as an object of strings; a list means {"tag":"true"}.
Result<json::object> NormalizeTags(const json::value* v) {
  json::object out;
  if (v == nullptr || v->is_null()) return out;
  if (v->is_array()) {
    for (const auto& e : v->as_array()) {
      if (!e.is_string() || e.as_string().empty() || e.as_string().size() > 256) {
        return InvalidArgument("tags must be a list of non-empty strings or an object");
      }
      out[e.as_string()] = "true";
    }
  } else if (v->is_object()) {
    for (const auto& [k, val] : v->as_object()) {
      if (k.empty() || k.size() > 256) return InvalidArgument("tags: keys must be 1-256 chars");
      out[k] = val.is_string() ? json::value(val.as_string()) : json::value(json::serialize(val));
    }
  } else {
    return InvalidArgument("tags must be an object or a list of strings");
  }
  if (out.size() > 1000) return InvalidArgument("tags: at most 1000");
  return out;
}

}  // namespace

Status TrackService::Impl::WriteTags(store::Transaction& tx, int64_t run_id,
                                     const json::object& tags) {
  RETURN_IF_ERROR(tx.Exec("DELETE FROM track_tags WHERE run_id = ?", {run_id}).status());
  for (const auto& [k, v] : tags) {
    RETURN_IF_ERROR(tx.Exec("INSERT INTO track_tags(run_id, key, value) VALUES (?, ?, ?)",
                            {run_id, std::string(k), std::string(v.as_string())})
                        .status());
  }
  return Status::Ok();
}

namespace {

// Resolves the key ids of a config (outside any transaction: KeyId uses the database).
Result<std::vector<ParamRow>> PrepareParams(TrackService::Impl& s, const json::object& config) {
  std::vector<std::pair<std::string, const json::value*>> flat;
  Flatten(config, "", flat);
  if (flat.size() > 10000) return InvalidArgument("config: at most 10000 flattened keys");
  std::vector<ParamRow> out;
  out.reserve(flat.size());
  for (const auto& [key, v] : flat) {
    if (key.size() > 256)
      return InvalidArgument("config: key " + key.substr(0, 64) + "... too long");
    ASSIGN_OR_RETURN(auto id, s.KeyId(key, true));
    ParamRow row{*id, std::nullopt, ""};
    if (v->is_number()) {
      row.num = v->to_number<double>();
      row.txt = json::serialize(*v);
    } else if (v->is_bool()) {
      row.num = v->as_bool() ? 1.0 : 0.0;
      row.txt = v->as_bool() ? "true" : "false";
    } else if (v->is_string()) {
      row.txt = std::string(v->as_string());
    } else {
      row.txt = json::serialize(*v);
    }
    out.push_back(std::move(row));
  }
  return out;
}

Status WriteParamRows(store::Transaction& tx, int64_t run_id, const std::vector<ParamRow>& rows) {
  RETURN_IF_ERROR(tx.Exec("DELETE FROM track_params WHERE run_id = ?", {run_id}).status());
  for (const auto& r : rows) {
    store::Value num = r.num ? store::Value(*r.num) : store::Value();
    RETURN_IF_ERROR(
        tx.Exec("INSERT INTO track_params(run_id, key_id, num, txt) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, key_id) DO UPDATE SET num = excluded.num, "
                "txt = excluded.txt",
                {run_id, r.key_id, num, r.txt})
            .status());
  }
  return Status::Ok();
}

}  // namespace

Status TrackService::Impl::WriteParams(store::Transaction& tx, int64_t run_id,
                                       const json::object& config, bool) {
  ASSIGN_OR_RETURN(auto rows, PrepareParams(*this, config));
  return WriteParamRows(tx, run_id, rows);
}

Result<int64_t> TrackService::Impl::ProjectIdByName(const auth::Principal& p,
                                                    const std::string& name, bool create) {
  if (!ValidName(name)) return InvalidArgument("project must be 1-128 characters");
  auto find = [&]() -> Result<std::optional<int64_t>> {
    ASSIGN_OR_RETURN(auto rows,
                     db.Query("SELECT id FROM track_projects WHERE workspace_id = ? AND name = ? "
                              "AND deleted_at IS NULL AND (visibility = 'workspace' OR "
                              "created_by = ?)",
                              {p.workspace_id, name, p.user_id}));
    if (rows.empty()) return std::optional<int64_t>();
    return std::optional<int64_t>(rows[0].Int(0));
  };
  ASSIGN_OR_RETURN(auto found, find());
  if (found) return *found;
  if (!create) return NotFound("project " + name + " not found");
  int64_t now = Now();
  auto inserted = db.Query(
      "INSERT INTO track_projects(workspace_id, name, description, visibility, created_by, "
      "created_at, updated_at) VALUES (?, ?, '', 'workspace', ?, ?, ?) RETURNING id",
      {p.workspace_id, name, p.user_id, now, now});
  if (inserted.ok()) return (*inserted)[0].Int(0);
  if (inserted.status().code() != StatusCode::kConflict) return inserted.status();
  ASSIGN_OR_RETURN(found, find());  // created concurrently (or private to someone else)
  if (!found) return Conflict("project " + name + " exists and is private");
  return *found;
}

Result<json::array> TrackService::Impl::RunsJson(const store::Rows& rows) {
  json::array out;
  if (rows.empty()) return out;
  std::string ids;
  store::Params params;
  for (const auto& r : rows) {
    ids += ids.empty() ? "?" : ",?";
    params.emplace_back(r.Int("id"));
  }
  ASSIGN_OR_RETURN(auto sums,
                   db.Query("SELECT s.run_id, k.name, s.last_step, s.last_value, s.min_value, "
                            "s.max_value, s.count FROM track_summary s JOIN track_keys k ON k.id "
                            "= s.key_id WHERE s.run_id IN (" +
                                ids + ") ORDER BY k.name",
                            params));
  std::map<int64_t, json::object> summary;
  for (const auto& s : sums) {
    summary[s.Int(0)][s.Text(1)] = json::object{{"last", NumOrNull(s, "last_value")},
                                                {"min", NumOrNull(s, "min_value")},
                                                {"max", NumOrNull(s, "max_value")},
                                                {"step", s.Int(2)},
                                                {"count", s.Int(6)}};
  }
  for (const auto& r : rows) {
    int64_t id = r.Int("id");
    json::object o{
        {"id", IdStr(id)},
        {"project_id", IdStr(r.Int("project_id"))},
        {"name", r.Text("name")},
        {"status", r.Text("status")},
        {"config", ParseJsonOr(r.Text("config"), json::object())},
        {"tags", ParseJsonOr(r.Text("tags"), json::object())},
        {"notes", r.Text("notes")},
        {"group", r.Text("grp")},
        {"job_type", r.Text("job_type")},
        {"parent_id", IdOrNull(r, "parent_id")},
        {"sweep_id", IdOrNull(r, "sweep_id")},
        {"git", ParseJsonOr(r.Text("git"), json::object())},
        {"host", ParseJsonOr(r.Text("host"), json::object())},
        {"created_by", r.Text("created_by")},
        {"start_time", Time(r.Int("start_time"))},
        {"end_time", r.IsNull("end_time") ? json::value(nullptr) : Time(r.Int("end_time"))},
        {"heartbeat_at", Time(r.Int("heartbeat_at"))},
        {"exit_code",
         r.IsNull("exit_code") ? json::value(nullptr) : json::value(r.Int("exit_code"))}};
    auto it = summary.find(id);
    o["summary"] = it == summary.end() ? json::object() : std::move(it->second);
    out.push_back(std::move(o));
  }
  return out;
}

Result<json::object> TrackService::Impl::RunJson(int64_t id) {
  ASSIGN_OR_RETURN(
      auto rows,
      db.Query(std::string("SELECT ") + kRunColumns + " FROM track_runs r WHERE r.id = ?", {id}));
  if (rows.empty()) return NotFound("run " + IdStr(id) + " not found");
  ASSIGN_OR_RETURN(auto arr, RunsJson(rows));
  return std::move(arr[0].as_object());
}

Status TrackService::Impl::AddProjectRunRoutes(http::Router& router) {
  using http::SyncHandler;
  // ---- projects ----
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/projects", SyncHandler([this](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto name, GetString(body, "name", true, 128));
        TRACK_ASSIGN_OR_RESPONSE(auto desc, GetString(body, "description", false, 10000));
        TRACK_ASSIGN_OR_RESPONSE(auto vis, GetString(body, "visibility", false, 32));
        if (!ValidName(name))
          return Error(InvalidArgument("name must be 1-128 printable characters"));
        if (vis.empty()) vis = "workspace";
        if (vis != "workspace" && vis != "private") {
          return Error(InvalidArgument("visibility must be workspace or private"));
        }
        int64_t now = Now();
        auto rows = db.Query(
            "INSERT INTO track_projects(workspace_id, name, description, visibility, created_by, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id, name, description, "
            "visibility, created_by, created_at, updated_at",
            {p.workspace_id, name, desc, vis, p.user_id, now, now});
        if (!rows.ok()) {
          if (rows.status().code() == StatusCode::kConflict) {
            return Error(Conflict("name: a project named " + name + " exists"));
          }
          return Error(rows.status());
        }
        Audit(req, "track.project.create", "project", IdStr((*rows)[0].Int(0)));
        return JsonReply(201, ProjectJson((*rows)[0]));
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/projects", SyncHandler([this](Request& req) {
        const auto& p = P(req);
        std::string sql =
            "SELECT id, name, description, visibility, created_by, created_at, updated_at FROM "
            "track_projects WHERE workspace_id = ? AND deleted_at IS NULL AND (visibility = "
            "'workspace' OR created_by = ?)";
        store::Params params{p.workspace_id, p.user_id};
        if (auto name = req.Query("name")) {
          sql += " AND name = ?";
          params.emplace_back(*name);
        }
        TRACK_ASSIGN_OR_RESPONSE(auto rows, db.Query(sql + " ORDER BY name", params));
        json::array out;
        for (const auto& r : rows) out.push_back(ProjectJson(r));
        return JsonReply(200, json::object{{"projects", std::move(out)}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add("GET", "/api/v1/projects/{id}", SyncHandler([this](Request& req) {
                               TRACK_ASSIGN_OR_RESPONSE(int64_t id,
                                                        ParseId(req.Param("id"), "project"));
                               TRACK_ASSIGN_OR_RESPONSE(auto row, ProjectRow(P(req), id));
                               return JsonReply(200, ProjectJson(row));
                             }),
                             ReadRoute()));

  RETURN_IF_ERROR(
      router.Add("PATCH", "/api/v1/projects/{id}", SyncHandler([this](Request& req) {
                   const auto& p = P(req);
                   TRACK_ASSIGN_OR_RESPONSE(int64_t id, ParseId(req.Param("id"), "project"));
                   TRACK_ASSIGN_OR_RESPONSE(auto row, ProjectRow(p, id));
                   TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
                   std::string name = row.Text("name"), desc = row.Text("description"),
                               vis = row.Text("visibility");
                   if (body.contains("name")) {
                     TRACK_ASSIGN_OR_RESPONSE(name, GetString(body, "name", true, 128));
                     if (!ValidName(name))
                       return Error(InvalidArgument("name must be 1-128 printable characters"));
                   }
                   if (body.contains("description")) {
                     TRACK_ASSIGN_OR_RESPONSE(desc, GetString(body, "description", false, 10000));
                   }
                   if (body.contains("visibility")) {
                     TRACK_ASSIGN_OR_RESPONSE(vis, GetString(body, "visibility", true, 32));
                     if (vis != "workspace" && vis != "private") {
                       return Error(InvalidArgument("visibility must be workspace or private"));
                     }
                   }
                   auto n = db.Exec(
                       "UPDATE track_projects SET name = ?, description = ?, visibility = ?, "
                       "updated_at = ? WHERE id = ?",
                       {name, desc, vis, Now(), id});
                   if (!n.ok()) {
                     if (n.status().code() == StatusCode::kConflict) {
                       return Error(Conflict("name: a project named " + name + " exists"));
                     }
                     return Error(n.status());
                   }
                   Audit(req, "track.project.update", "project", IdStr(id));
                   TRACK_ASSIGN_OR_RESPONSE(row, ProjectRow(p, id));
                   return JsonReply(200, ProjectJson(row));
                 }),
                 WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "DELETE", "/api/v1/projects/{id}", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(int64_t id, ParseId(req.Param("id"), "project"));
        TRACK_ASSIGN_OR_RESPONSE(auto row, ProjectRow(P(req), id));
        TRACK_RETURN_IF_ERROR(
            db.Exec("UPDATE track_projects SET deleted_at = ? WHERE id = ?", {Now(), id}).status());
        Audit(req, "track.project.delete", "project", IdStr(id));
        return Response::NoContent();
      }),
      WriteRoute()));

  // ---- runs ----
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/runs", SyncHandler([this](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto project_id, GetInt(body, "project_id"));
        int64_t pid = 0;
        if (project_id) {
          TRACK_ASSIGN_OR_RESPONSE(auto prow, ProjectRow(p, *project_id));
          pid = prow.Int("id");
        } else {
          TRACK_ASSIGN_OR_RESPONSE(auto pname, GetString(body, "project", false, 128));
          if (pname.empty()) return Error(InvalidArgument("project_id (or project) is required"));
          TRACK_ASSIGN_OR_RESPONSE(pid, ProjectIdByName(p, pname, true));
        }
        TRACK_ASSIGN_OR_RESPONSE(auto name, GetString(body, "name", false, 256));
        TRACK_ASSIGN_OR_RESPONSE(auto notes, GetString(body, "notes", false, 100000));
        TRACK_ASSIGN_OR_RESPONSE(auto group, GetString(body, "group", false, 256));
        TRACK_ASSIGN_OR_RESPONSE(auto job_type, GetString(body, "job_type", false, 256));
        json::object config;
        if (const auto* c = body.if_contains("config"); c && !c->is_null()) {
          if (!c->is_object()) return Error(InvalidArgument("config must be an object"));
          config = c->as_object();
        }
        TRACK_ASSIGN_OR_RESPONSE(auto tags, NormalizeTags(body.if_contains("tags")));
        std::string git = "{}", host = "{}";
        for (auto [field, out] : {std::pair{"git", &git}, std::pair{"host", &host}}) {
          if (const auto* v = body.if_contains(field); v && !v->is_null()) {
            if (!v->is_object())
              return Error(InvalidArgument(std::string(field) + " must be an object"));
            *out = json::serialize(*v);
          }
        }
        TRACK_ASSIGN_OR_RESPONSE(auto parent, GetInt(body, "parent_id"));
        if (parent) {
          TRACK_ASSIGN_OR_RESPONSE(auto pr, Run(p, IdStr(*parent)));
          (void)pr;
        }
        TRACK_ASSIGN_OR_RESPONSE(auto sweep, GetInt(body, "sweep_id"));
        if (sweep) {
          TRACK_ASSIGN_OR_RESPONSE(auto srows, db.Query("SELECT project_id FROM track_sweeps WHERE "
                                                        "id = ? AND workspace_id = ?",
                                                        {*sweep, p.workspace_id}));
          if (srows.empty())
            return Error(NotFound("sweep_id: sweep " + IdStr(*sweep) + " not found"));
        }
        TRACK_ASSIGN_OR_RESPONSE(auto suggestion, GetInt(body, "suggestion_id"));
        TRACK_ASSIGN_OR_RESPONSE(auto params, PrepareParams(*this, config));
        int64_t now = Now();
        int64_t run_id = 0;
        std::string config_text = json::serialize(config), tags_text = json::serialize(tags);
        Status st = db.Transaction([&](store::Transaction& tx) -> Status {
          ASSIGN_OR_RETURN(
              auto rows,
              tx.Query(
                  "INSERT INTO track_runs(workspace_id, project_id, name, status, config, tags, "
                  "notes, grp, job_type, parent_id, sweep_id, suggestion_id, git, host, "
                  "created_by, start_time, heartbeat_at) VALUES (?, ?, ?, 'running', ?, ?, ?, "
                  "?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                  {p.workspace_id, pid, name, config_text, tags_text, notes, group, job_type,
                   parent ? store::Value(*parent) : store::Value(),
                   sweep ? store::Value(*sweep) : store::Value(),
                   suggestion ? store::Value(*suggestion) : store::Value(), git, host, p.user_id,
                   now, now}));
          run_id = rows[0].Int(0);
          if (name.empty()) {
            RETURN_IF_ERROR(tx.Exec("UPDATE track_runs SET name = ? WHERE id = ?",
                                    {"run-" + IdStr(run_id), run_id})
                                .status());
          }
          RETURN_IF_ERROR(WriteParamRows(tx, run_id, params));
          return WriteTags(tx, run_id, tags);
        });
        TRACK_RETURN_IF_ERROR(st);
        Audit(req, "track.run.create", "run", IdStr(run_id));
        TRACK_ASSIGN_OR_RESPONSE(auto run, RunJson(run_id));
        return JsonReply(201, run);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add("GET", "/api/v1/runs/{id}", SyncHandler([this](Request& req) {
                               TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
                               TRACK_ASSIGN_OR_RESPONSE(auto out, RunJson(run.id));
                               return JsonReply(200, out);
                             }),
                             ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs", SyncHandler([this](Request& req) {
        const auto& p = P(req);
        int limit = ClampLimit(req, 50, 1000);
        std::string sql =
            std::string("SELECT ") + kRunColumns +
            " FROM track_runs r JOIN track_projects pr ON pr.id = r.project_id WHERE "
            "r.workspace_id = ? AND r.deleted_at IS NULL AND pr.deleted_at IS NULL AND "
            "(pr.visibility = 'workspace' OR pr.created_by = ?)";
        store::Params params{p.workspace_id, p.user_id};
        if (auto pid = req.Query("project_id")) {
          TRACK_ASSIGN_OR_RESPONSE(int64_t id, ParseId(*pid, "project"));
          sql += " AND r.project_id = ?";
          params.emplace_back(id);
        }
        if (auto status = req.Query("status")) {
          sql += " AND r.status = ?";
          params.emplace_back(*status);
        }
        if (auto cursor = req.Query("cursor"); cursor && !cursor->empty()) {
          TRACK_ASSIGN_OR_RESPONSE(int64_t c, ParseId(*cursor, "cursor"));
          sql += " AND r.id < ?";
          params.emplace_back(c);
        }
        sql += " ORDER BY r.id DESC LIMIT ?";
        params.emplace_back(limit + 1);
        TRACK_ASSIGN_OR_RESPONSE(auto rows, db.Query(sql, params));
        json::value next = nullptr;
        store::Rows page(rows.shared_columns());
        for (size_t i = 0; i < rows.size() && static_cast<int>(i) < limit; ++i) {
          page.Add(rows[i].values());
        }
        if (static_cast<int>(rows.size()) > limit) next = IdStr(rows[limit - 1].Int("id"));
        TRACK_ASSIGN_OR_RESPONSE(auto runs, RunsJson(page));
        return JsonReply(200, json::object{{"runs", std::move(runs)}, {"next_cursor", next}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "PATCH", "/api/v1/runs/{id}", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto cur_rows,
                                 db.Query("SELECT name, status, notes, grp, job_type, "
                                          "config, end_time FROM track_runs WHERE id = ?",
                                          {run.id}));
        const auto& cur = cur_rows[0];
        std::string name = cur.Text("name"), status = cur.Text("status"), notes = cur.Text("notes"),
                    group = cur.Text("grp"), job_type = cur.Text("job_type");
        store::Value end_time = cur.Get("end_time");
        if (body.contains("name")) {
          TRACK_ASSIGN_OR_RESPONSE(name, GetString(body, "name", true, 256));
        }
        if (body.contains("status")) {
          TRACK_ASSIGN_OR_RESPONSE(status, GetString(body, "status", true, 32));
          if (!ValidStatus(status)) {
            return Error(
                InvalidArgument("status must be running, finished, failed, crashed or killed"));
          }
          if (status == "running") {
            end_time = store::Value();
          } else if (end_time.is_null()) {
            end_time = Now();
          }
        }
        if (body.contains("notes")) {
          TRACK_ASSIGN_OR_RESPONSE(notes, GetString(body, "notes", false, 100000));
        }
        if (body.contains("group")) {
          TRACK_ASSIGN_OR_RESPONSE(group, GetString(body, "group", false, 256));
        }
        if (body.contains("job_type")) {
          TRACK_ASSIGN_OR_RESPONSE(job_type, GetString(body, "job_type", false, 256));
        }
        std::optional<json::object> tags;
        if (body.contains("tags")) {
          TRACK_ASSIGN_OR_RESPONSE(tags, NormalizeTags(body.if_contains("tags")));
        }
        std::optional<json::object> config;
        std::vector<ParamRow> params;
        if (const auto* c = body.if_contains("config"); c && !c->is_null()) {
          if (!c->is_object()) return Error(InvalidArgument("config must be an object"));
          json::object merged = ParseJsonOr(cur.Text("config"), json::object()).as_object();
          for (const auto& [k, v] : c->as_object()) merged[k] = v;
          TRACK_ASSIGN_OR_RESPONSE(params, PrepareParams(*this, merged));
          config = std::move(merged);
        }
        Status st = db.Transaction([&](store::Transaction& tx) -> Status {
          RETURN_IF_ERROR(tx.Exec("UPDATE track_runs SET name = ?, status = ?, notes = ?, grp = ?, "
                                  "job_type = ?, end_time = ? WHERE id = ?",
                                  {name, status, notes, group, job_type, end_time, run.id})
                              .status());
          if (tags) {
            RETURN_IF_ERROR(tx.Exec("UPDATE track_runs SET tags = ? WHERE id = ?",
                                    {json::serialize(*tags), run.id})
                                .status());
            RETURN_IF_ERROR(WriteTags(tx, run.id, *tags));
          }
          if (config) {
            RETURN_IF_ERROR(tx.Exec("UPDATE track_runs SET config = ? WHERE id = ?",
                                    {json::serialize(*config), run.id})
                                .status());
            RETURN_IF_ERROR(WriteParamRows(tx, run.id, params));
          }
          return Status::Ok();
        });
        TRACK_RETURN_IF_ERROR(st);
        if (status != run.status) {
          live.PublishStatus(run.id, status);
        }
        Audit(req, "track.run.update", "run", IdStr(run.id));
        TRACK_ASSIGN_OR_RESPONSE(auto out, RunJson(run.id));
        return JsonReply(200, out);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/runs/{id}/finish", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto status, GetString(body, "status", false, 32));
        if (status.empty()) status = "finished";
        if (!ValidStatus(status) || status == "running") {
          return Error(InvalidArgument("status must be finished, failed, crashed or killed"));
        }
        TRACK_ASSIGN_OR_RESPONSE(auto exit_code, GetInt(body, "exit_code"));
        int64_t now = Now();
        TRACK_RETURN_IF_ERROR(
            db.Exec(
                  "UPDATE track_runs SET status = ?, end_time = ?, "
                  "heartbeat_at = ?, exit_code = ? WHERE id = ?",
                  {status, now, now, exit_code ? store::Value(*exit_code) : store::Value(), run.id})
                .status());
        live.PublishStatus(run.id, status);
        Audit(req, "track.run.finish", "run", IdStr(run.id));
        TRACK_ASSIGN_OR_RESPONSE(auto out, RunJson(run.id));
        return JsonReply(200, out);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/runs/{id}/heartbeat", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        int64_t now = Now();
        TRACK_ASSIGN_OR_RESPONSE(
            auto rows,
            db.Query("UPDATE track_runs SET heartbeat_at = ?, end_time = CASE WHEN status = "
                     "'crashed' THEN NULL ELSE end_time END, status = CASE WHEN status = 'crashed' "
                     "THEN 'running' ELSE status END WHERE id = ? RETURNING status",
                     {now, run.id}));
        return JsonReply(200, json::object{{"id", IdStr(run.id)},
                                           {"status", rows[0].Text(0)},
                                           {"heartbeat_at", Time(now)}});
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "DELETE", "/api/v1/runs/{id}", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        TRACK_RETURN_IF_ERROR(
            db.Exec("UPDATE track_runs SET deleted_at = ? WHERE id = ?", {Now(), run.id}).status());
        series.Drop(run.id);
        Audit(req, "track.run.delete", "run", IdStr(run.id));
        return Response::NoContent();
      }),
      WriteRoute()));
  return Status::Ok();
}

}  // namespace atrium::track
