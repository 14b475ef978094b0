// Handlers: the model registry — registered models, versions linked to runs and artifact
// versions, stage transitions with history and comments, aliases (docs/track.md).
#include "track_impl.h"

namespace atrium::track {
namespace {

bool ValidModelName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

bool ValidStage(std::string_view s) {
  return s == "none" || s == "staging" || s == "production" || s == "archived";
}

Result<json::object> TagsObject(const json::object& body) {
  json::object out;
  const auto* v = body.if_contains("tags");
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_object()) return InvalidArgument("tags must be an object of strings");
  for (const auto& [k, val] : v->as_object()) {
    if (!val.is_string()) return InvalidArgument("tags." + std::string(k) + " must be a string");
    out[k] = val;
  }
  return out;
}

}  // namespace

Status TrackService::Impl::AddRegistryRoutes(http::Router& router) {
  using http::SyncHandler;
  auto model_row = [this](const auth::Principal& p, std::string_view name) -> Result<store::Row> {
    ASSIGN_OR_RETURN(auto rows, db.Query("SELECT id, name, description, tags, created_at, "
                                         "updated_at FROM track_models WHERE workspace_id = ? AND "
                                         "name = ?",
                                         {p.workspace_id, std::string(name)}));
    if (rows.empty()) return NotFound("model " + std::string(name) + " not found");
    return rows[0];
  };
  auto model_json = [this](const store::Row& m) -> Result<json::object> {
    int64_t id = m.Int("id");
    ASSIGN_OR_RETURN(auto latest, db.Query("SELECT MAX(version) FROM track_model_versions WHERE "
                                           "model_id = ?",
                                           {id}));
    ASSIGN_OR_RETURN(auto aliases, db.Query("SELECT alias, version FROM track_model_aliases WHERE "
                                            "model_id = ? ORDER BY alias",
                                            {id}));
    json::object amap;
    for (const auto& a : aliases) amap[a.Text(0)] = a.Int(1);
    return json::object{{"id", IdStr(id)},
                        {"name", m.Text("name")},
                        {"description", m.Text("description")},
                        {"tags", ParseJsonOr(m.Text("tags"), json::object())},
                        {"latest_version", latest[0].IsNull(0) ? json::value(nullptr)
                                                               : json::value(latest[0].Int(0))},
                        {"aliases", std::move(amap)},
                        {"created_at", Time(m.Int("created_at"))},
                        {"updated_at", Time(m.Int("updated_at"))}};
  };
  auto version_json = [this](const std::string& model, int64_t model_id,
                             int64_t version) -> Result<json::object> {
    ASSIGN_OR_RETURN(auto rows, db.Query("SELECT run_id, artifact_version_id, description, stage, "
                                         "created_at, updated_at FROM track_model_versions WHERE "
                                         "model_id = ? AND version = ?",
                                         {model_id, version}));
    if (rows.empty()) {
      return NotFound("version " + std::to_string(version) + " of model " + model + " not found");
    }
    const auto& v = rows[0];
    ASSIGN_OR_RETURN(auto aliases, db.Query("SELECT alias FROM track_model_aliases WHERE model_id "
                                            "= ? AND version = ? ORDER BY alias",
                                            {model_id, version}));
    ASSIGN_OR_RETURN(auto transitions,
                     db.Query("SELECT from_stage, to_stage, comment, actor, at FROM "
                              "track_model_transitions WHERE model_id = ? AND version = ? ORDER "
                              "BY id",
                              {model_id, version}));
    json::array al, tr;
    for (const auto& a : aliases) al.emplace_back(a.Text(0));
    for (const auto& t : transitions) {
      tr.push_back(json::object{{"from", t.Text(0)},
                                {"to", t.Text(1)},
                                {"comment", t.Text(2)},
                                {"actor", t.Text(3)},
                                {"at", Time(t.Int(4))}});
    }
    return json::object{{"model", model},
                        {"version", version},
                        {"run_id", IdOrNull(v, "run_id")},
                        {"artifact_version_id", IdOrNull(v, "artifact_version_id")},
                        {"description", v.Text("description")},
                        {"stage", v.Text("stage")},
                        {"aliases", std::move(al)},
                        {"transitions", std::move(tr)},
                        {"created_at", Time(v.Int("created_at"))},
                        {"updated_at", Time(v.Int("updated_at"))}};
  };
  auto parse_version = [](std::string_view text) -> Result<int64_t> {
    return ParseId(text, "model version");
  };

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/registry/models", SyncHandler([this, model_row, model_json](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto name, GetString(body, "name", true, 128));
        if (!ValidModelName(name))
          return Error(InvalidArgument("name must be 1-128 of [A-Za-z0-9._-]"));
        TRACK_ASSIGN_OR_RESPONSE(auto description, GetString(body, "description", false, 10000));
        TRACK_ASSIGN_OR_RESPONSE(auto tags, TagsObject(body));
        int64_t now = Now();
        auto ins = db.Exec(
            "INSERT INTO track_models(workspace_id, name, description, tags, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            {p.workspace_id, name, description, json::serialize(tags), now, now});
        if (!ins.ok()) {
          if (ins.status().code() == StatusCode::kConflict) {
            return Error(Conflict("name: a model named " + name + " exists"));
          }
          return Error(ins.status());
        }
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(p, name));
        Audit(req, "track.model.create", "model", IdStr(row.Int("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto out, model_json(row));
        return JsonReply(201, out);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(
      router.Add("GET", "/api/v1/registry/models", SyncHandler([this, model_json](Request& req) {
                   TRACK_ASSIGN_OR_RESPONSE(
                       auto rows, db.Query("SELECT id, name, description, tags, created_at, "
                                           "updated_at FROM track_models WHERE workspace_id "
                                           "= ? ORDER BY name LIMIT 1000",
                                           {P(req).workspace_id}));
                   json::array out;
                   for (const auto& r : rows) {
                     TRACK_ASSIGN_OR_RESPONSE(auto m, model_json(r));
                     out.push_back(std::move(m));
                   }
                   return JsonReply(200, json::object{{"models", std::move(out)}});
                 }),
                 ReadRoute()));

  RETURN_IF_ERROR(router.Add("GET", "/api/v1/registry/models/{name}",
                             SyncHandler([this, model_row, model_json](Request& req) {
                               TRACK_ASSIGN_OR_RESPONSE(auto row,
                                                        model_row(P(req), req.Param("name")));
                               TRACK_ASSIGN_OR_RESPONSE(auto out, model_json(row));
                               return JsonReply(200, out);
                             }),
                             ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "PATCH", "/api/v1/registry/models/{name}",
      SyncHandler([this, model_row, model_json](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(p, req.Param("name")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        std::string description = row.Text("description"), tags = row.Text("tags");
        if (body.contains("description")) {
          TRACK_ASSIGN_OR_RESPONSE(description, GetString(body, "description", false, 10000));
        }
        if (body.contains("tags")) {
          TRACK_ASSIGN_OR_RESPONSE(auto t, TagsObject(body));
          tags = json::serialize(t);
        }
        TRACK_RETURN_IF_ERROR(
            db.Exec("UPDATE track_models SET description = ?, tags = ?, updated_at "
                    "= ? WHERE id = ?",
                    {description, tags, Now(), row.Int("id")})
                .status());
        Audit(req, "track.model.update", "model", IdStr(row.Int("id")));
        TRACK_ASSIGN_OR_RESPONSE(row, model_row(p, req.Param("name")));
        TRACK_ASSIGN_OR_RESPONSE(auto out, model_json(row));
        return JsonReply(200, out);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "DELETE", "/api/v1/registry/models/{name}", SyncHandler([this, model_row](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(P(req), req.Param("name")));
        int64_t id = row.Int("id");
        TRACK_RETURN_IF_ERROR(db.Transaction([id](store::Transaction& tx) -> Status {
          for (const char* table :
               {"track_model_aliases", "track_model_transitions", "track_model_versions"}) {
            RETURN_IF_ERROR(
                tx.Exec(std::string("DELETE FROM ") + table + " WHERE model_id = ?", {id})
                    .status());
          }
          return tx.Exec("DELETE FROM track_models WHERE id = ?", {id}).status();
        }));
        Audit(req, "track.model.delete", "model", IdStr(id));
        return Response::NoContent();
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/registry/models/{name}/versions",
      SyncHandler([this, model_row, version_json](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(p, req.Param("name")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto run_id, GetInt(body, "run_id"));
        if (run_id) {
          TRACK_ASSIGN_OR_RESPONSE(auto run, Run(p, IdStr(*run_id)));
          (void)run;
        }
        TRACK_ASSIGN_OR_RESPONSE(auto av, GetInt(body, "artifact_version_id"));
        if (av) {
          TRACK_ASSIGN_OR_RESPONSE(
              auto rows,
              db.Query(
                  "SELECT v.id FROM track_artifact_versions v JOIN track_artifacts a ON a.id = "
                  "v.artifact_id JOIN track_projects pr ON pr.id = a.project_id WHERE v.id = ? "
                  "AND a.workspace_id = ? AND pr.deleted_at IS NULL AND (pr.visibility = "
                  "'workspace' OR pr.created_by = ?)",
                  {*av, p.workspace_id, p.user_id}));
          if (rows.empty()) {
            return Error(NotFound("artifact_version_id: version " + IdStr(*av) + " not found"));
          }
        }
        TRACK_ASSIGN_OR_RESPONSE(auto description, GetString(body, "description", false, 10000));
        int64_t model_id = row.Int("id");
        int64_t version = 0;
        Status st;
        for (int attempt = 0; attempt < 3; ++attempt) {
          st = db.Transaction([&](store::Transaction& tx) -> Status {
            ASSIGN_OR_RETURN(auto next, tx.Query("SELECT COALESCE(MAX(version), 0) + 1 FROM "
                                                 "track_model_versions WHERE model_id = ?",
                                                 {model_id}));
            version = next[0].Int(0);
            int64_t now = Now();
            return tx
                .Exec(
                    "INSERT INTO track_model_versions(model_id, version, run_id, "
                    "artifact_version_id, description, stage, created_at, updated_at) VALUES (?, "
                    "?, ?, ?, ?, 'none', ?, ?)",
                    {model_id, version, run_id ? store::Value(*run_id) : store::Value(),
                     av ? store::Value(*av) : store::Value(), description, now, now})
                .status();
          });
          if (st.code() != StatusCode::kConflict) break;
        }
        TRACK_RETURN_IF_ERROR(st);
        Audit(req, "track.model.version.create", "model", IdStr(model_id),
              json::serialize(json::object{{"version", version}}));
        TRACK_ASSIGN_OR_RESPONSE(auto out, version_json(row.Text("name"), model_id, version));
        return JsonReply(201, out);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/registry/models/{name}/versions",
      SyncHandler([this, model_row, version_json](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(P(req), req.Param("name")));
        TRACK_ASSIGN_OR_RESPONSE(auto rows,
                                 db.Query("SELECT version FROM track_model_versions WHERE "
                                          "model_id = ? ORDER BY version",
                                          {row.Int("id")}));
        json::array out;
        for (const auto& r : rows) {
          TRACK_ASSIGN_OR_RESPONSE(auto v, version_json(row.Text("name"), row.Int("id"), r.Int(0)));
          out.push_back(std::move(v));
        }
        return JsonReply(200, json::object{{"versions", std::move(out)}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/registry/models/{name}/versions/{version}",
      SyncHandler([this, model_row, version_json, parse_version](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(P(req), req.Param("name")));
        TRACK_ASSIGN_OR_RESPONSE(int64_t version, parse_version(req.Param("version")));
        TRACK_ASSIGN_OR_RESPONSE(auto out, version_json(row.Text("name"), row.Int("id"), version));
        return JsonReply(200, out);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/registry/models/{name}/versions/{version}/stage",
      SyncHandler([this, model_row, version_json, parse_version](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(p, req.Param("name")));
        TRACK_ASSIGN_OR_RESPONSE(int64_t version, parse_version(req.Param("version")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto stage, GetString(body, "stage", true, 32));
        if (!ValidStage(stage)) {
          return Error(InvalidArgument("stage must be none, staging, production or archived"));
        }
        TRACK_ASSIGN_OR_RESPONSE(auto comment, GetString(body, "comment", false, 10000));
        bool archive_existing = false;
        if (const auto* a = body.if_contains("archive_existing"); a && !a->is_null()) {
          if (!a->is_bool()) return Error(InvalidArgument("archive_existing must be a boolean"));
          archive_existing = a->as_bool();
        }
        int64_t model_id = row.Int("id");
        std::string actor = p.user_id;
        Status st = db.Transaction([&](store::Transaction& tx) -> Status {
          int64_t now = Now();
          ASSIGN_OR_RETURN(auto cur,
                           tx.Query("SELECT stage FROM track_model_versions WHERE model_id "
                                    "= ? AND version = ?",
                                    {model_id, version}));
          if (cur.empty()) return NotFound("version " + std::to_string(version) + " not found");
          auto transition = [&](int64_t v, const std::string& from, const std::string& to,
                                const std::string& why) -> Status {
            RETURN_IF_ERROR(
                tx.Exec("UPDATE track_model_versions SET stage = ?, updated_at = ? WHERE "
                        "model_id = ? AND version = ?",
                        {to, now, model_id, v})
                    .status());
            return tx
                .Exec(
                    "INSERT INTO track_model_transitions(model_id, version, from_stage, to_stage, "
                    "comment, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    {model_id, v, from, to, why, actor, now})
                .status();
          };
          RETURN_IF_ERROR(transition(version, cur[0].Text(0), stage, comment));
          if (archive_existing && (stage == "staging" || stage == "production")) {
            ASSIGN_OR_RETURN(auto others, tx.Query("SELECT version FROM track_model_versions WHERE "
                                                   "model_id = ? AND stage = ? AND version <> ?",
                                                   {model_id, stage, version}));
            for (const auto& o : others) {
              RETURN_IF_ERROR(transition(o.Int(0), stage, "archived",
                                         "archived by the transition of version " +
                                             std::to_string(version) + " to " + stage));
            }
          }
          return Status::Ok();
        });
        TRACK_RETURN_IF_ERROR(st);
        Audit(req, "track.model.version.stage", "model", IdStr(model_id),
              json::serialize(json::object{{"version", version}, {"stage", stage}}));
        TRACK_ASSIGN_OR_RESPONSE(auto out, version_json(row.Text("name"), model_id, version));
        return JsonReply(200, out);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "PUT", "/api/v1/registry/models/{name}/aliases/{alias}",
      SyncHandler([this, model_row, version_json](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(P(req), req.Param("name")));
        std::string alias(req.Param("alias"));
        if (!ValidModelName(alias) || alias.size() > 64) {
          return Error(InvalidArgument("alias must be 1-64 of [A-Za-z0-9._-]"));
        }
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto version, GetInt(body, "version"));
        if (!version) return Error(InvalidArgument("version is required"));
        int64_t model_id = row.Int("id");
        TRACK_ASSIGN_OR_RESPONSE(auto exists, version_json(row.Text("name"), model_id, *version));
        (void)exists;
        TRACK_RETURN_IF_ERROR(
            db.Exec("INSERT INTO track_model_aliases(model_id, alias, version) "
                    "VALUES (?, ?, ?) ON CONFLICT (model_id, alias) DO UPDATE SET "
                    "version = excluded.version",
                    {model_id, alias, *version})
                .status());
        Audit(req, "track.model.alias.set", "model", IdStr(model_id),
              json::serialize(json::object{{"alias", alias}, {"version", *version}}));
        TRACK_ASSIGN_OR_RESPONSE(auto out, version_json(row.Text("name"), model_id, *version));
        return JsonReply(200, out);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/registry/models/{name}/aliases/{alias}",
      SyncHandler([this, model_row, version_json](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(P(req), req.Param("name")));
        TRACK_ASSIGN_OR_RESPONSE(auto rows,
                                 db.Query("SELECT version FROM track_model_aliases WHERE "
                                          "model_id = ? AND alias = ?",
                                          {row.Int("id"), std::string(req.Param("alias"))}));
        if (rows.empty())
          return Error(NotFound("alias " + std::string(req.Param("alias")) + " not found"));
        TRACK_ASSIGN_OR_RESPONSE(auto out,
                                 version_json(row.Text("name"), row.Int("id"), rows[0].Int(0)));
        return JsonReply(200, out);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "DELETE", "/api/v1/registry/models/{name}/aliases/{alias}",
      SyncHandler([this, model_row](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto row, model_row(P(req), req.Param("name")));
        TRACK_ASSIGN_OR_RESPONSE(auto n,
                                 db.Exec("DELETE FROM track_model_aliases WHERE model_id = ? "
                                         "AND alias = ?",
                                         {row.Int("id"), std::string(req.Param("alias"))}));
        if (n == 0)
          return Error(NotFound("alias " + std::string(req.Param("alias")) + " not found"));
        Audit(req, "track.model.alias.delete", "model", IdStr(row.Int("id")));
        return Response::NoContent();
      }),
      WriteRoute()));
  return Status::Ok();
}

}  // namespace atrium::track
