// Handlers: sweeps — create, suggest (grid / random / TPE), pause / resume / finish, stats and
// Hyperband early termination. The algorithms are in sweep.cc.
#include <algorithm>
#include <cmath>

#include "atrium/track/sweep.h"
#include "track_impl.h"

namespace atrium::track {
namespace {

json::object SweepJson(const store::Row& r, int64_t run_count) {
  return json::object{{"id", IdStr(r.Int("id"))},
                      {"project_id", IdStr(r.Int("project_id"))},
                      {"name", r.Text("name")},
                      {"status", r.Text("status")},
                      {"config", ParseJsonOr(r.Text("config"), json::object())},
                      {"suggestion_count", r.Int("suggestion_count")},
                      {"run_count", run_count},
                      {"created_at", Time(r.Int("created_at"))},
                      {"updated_at", Time(r.Int("updated_at"))}};
}

constexpr const char* kSweepSelect =
    "SELECT s.id, s.project_id, s.name, s.status, s.config, s.suggestion_count, s.created_at, "
    "s.updated_at FROM track_sweeps s JOIN track_projects pr ON pr.id = s.project_id WHERE "
    "s.workspace_id = ? AND pr.deleted_at IS NULL AND (pr.visibility = 'workspace' OR "
    "pr.created_by = ?)";

// The parameters of a run as the sweep sees them: the config's members named like the
// sweep's parameters.
Assignment ParamsOf(const SweepConfig& c, const std::string& config_text) {
  Assignment out;
  json::value v = ParseJsonOr(config_text, json::object());
  if (!v.is_object()) return out;
  for (const auto& p : c.params) {
    if (const auto* x = v.as_object().if_contains(p.name))
      out.emplace_back(p.name, json::serialize(*x));
  }
  return out;
}

json::object AssignmentJson(const Assignment& a) {
  json::object o;
  for (const auto& [k, v] : a) o[k] = ParseJsonOr(v, nullptr);
  return o;
}

}  // namespace

Status TrackService::Impl::AddSweepRoutes(http::Router& router) {
  using http::SyncHandler;
  auto sweep_row = [this](const auth::Principal& p,
                          std::string_view id_text) -> Result<store::Row> {
    ASSIGN_OR_RETURN(int64_t id, ParseId(id_text, "sweep"));
    ASSIGN_OR_RETURN(auto rows, db.Query(std::string(kSweepSelect) + " AND s.id = ?",
                                         {p.workspace_id, p.user_id, id}));
    if (rows.empty()) return NotFound("sweep " + std::string(id_text) + " not found");
    return rows[0];
  };
  auto run_count = [this](int64_t sweep_id) -> Result<int64_t> {
    ASSIGN_OR_RETURN(auto rows, db.Query("SELECT COUNT(*) FROM track_runs WHERE sweep_id = ? AND "
                                         "deleted_at IS NULL",
                                         {sweep_id}));
    return rows[0].Int(0);
  };
  auto reply = [this, sweep_row, run_count](const Request& req, int64_t id,
                                            int status) -> Response {
    TRACK_ASSIGN_OR_RESPONSE(auto row, sweep_row(P(req), IdStr(id)));
    TRACK_ASSIGN_OR_RESPONSE(int64_t n, run_count(id));
    return JsonReply(status, SweepJson(row, n));
  };

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/sweeps", SyncHandler([this, reply](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto project_id, GetInt(body, "project_id"));
        if (!project_id) return Error(InvalidArgument("project_id is required"));
        TRACK_ASSIGN_OR_RESPONSE(auto prow, ProjectRow(p, *project_id));
        (void)prow;
        TRACK_ASSIGN_OR_RESPONSE(auto name, GetString(body, "name", false, 256));
        const auto* config = body.if_contains("config");
        if (config == nullptr || !config->is_object())
          return Error(InvalidArgument("config must be an object"));
        std::string text = json::serialize(*config);
        TRACK_ASSIGN_OR_RESPONSE(auto parsed, ParseSweepConfig(text));
        (void)parsed;
        int64_t now = Now();
        TRACK_ASSIGN_OR_RESPONSE(
            auto rows, db.Query("INSERT INTO track_sweeps(workspace_id, project_id, name, "
                                "status, config, created_by, created_at, updated_at) VALUES "
                                "(?, ?, ?, 'running', ?, ?, ?, ?) RETURNING id",
                                {p.workspace_id, *project_id, name, text, p.user_id, now, now}));
        int64_t id = rows[0].Int(0);
        if (name.empty()) {
          TRACK_RETURN_IF_ERROR(
              db.Exec("UPDATE track_sweeps SET name = ? WHERE id = ?", {"sweep-" + IdStr(id), id})
                  .status());
        }
        Audit(req, "track.sweep.create", "sweep", IdStr(id));
        return reply(req, id, 201);
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add("GET", "/api/v1/sweeps", SyncHandler([this, run_count](Request& req) {
                               const auto& p = P(req);
                               std::string sql = kSweepSelect;
                               store::Params params{p.workspace_id, p.user_id};
                               if (auto pid = req.Query("project_id")) {
                                 TRACK_ASSIGN_OR_RESPONSE(int64_t id, ParseId(*pid, "project"));
                                 sql += " AND s.project_id = ?";
                                 params.emplace_back(id);
                               }
                               TRACK_ASSIGN_OR_RESPONSE(
                                   auto rows,
                                   db.Query(sql + " ORDER BY s.id DESC LIMIT 1000", params));
                               json::array out;
                               for (const auto& r : rows) {
                                 TRACK_ASSIGN_OR_RESPONSE(int64_t n, run_count(r.Int("id")));
                                 out.push_back(SweepJson(r, n));
                               }
                               return JsonReply(200, json::object{{"sweeps", std::move(out)}});
                             }),
                             ReadRoute()));

  RETURN_IF_ERROR(
      router.Add("GET", "/api/v1/sweeps/{id}", SyncHandler([this, sweep_row, reply](Request& req) {
                   TRACK_ASSIGN_OR_RESPONSE(auto row, sweep_row(P(req), req.Param("id")));
                   return reply(req, row.Int("id"), 200);
                 }),
                 ReadRoute()));

  for (const auto& [verb, status] : {std::pair{"pause", "paused"}, std::pair{"resume", "running"},
                                     std::pair{"finish", "finished"}}) {
    std::string action = verb;
    std::string target = status;
    RETURN_IF_ERROR(
        router.Add("POST", "/api/v1/sweeps/{id}/" + action,
                   SyncHandler([this, sweep_row, reply, action, target](Request& req) {
                     TRACK_ASSIGN_OR_RESPONSE(auto row, sweep_row(P(req), req.Param("id")));
                     if (row.Text("status") == "finished" && target != "finished") {
                       return Error(Conflict("sweep is finished"));
                     }
                     TRACK_RETURN_IF_ERROR(
                         db.Exec("UPDATE track_sweeps SET status = ?, updated_at = ? WHERE id = ?",
                                 {target, Now(), row.Int("id")})
                             .status());
                     Audit(req, "track.sweep." + action, "sweep", IdStr(row.Int("id")));
                     return reply(req, row.Int("id"), 200);
                   }),
                   WriteRoute()));
  }

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/sweeps/{id}/suggest", SyncHandler([this, sweep_row](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto row, sweep_row(P(req), req.Param("id")));
        int64_t id = row.Int("id");
        if (row.Text("status") == "paused") return Error(Conflict("sweep is paused"));
        auto done = [](const std::string& reason) {
          return JsonReply(200, json::object{{"done", true}, {"reason", reason}});
        };
        if (row.Text("status") == "finished") return done("finished");
        TRACK_ASSIGN_OR_RESPONSE(auto config, ParseSweepConfig(row.Text("config")));
        // Observations for TPE: finished runs of the sweep with the metric.
        std::vector<Observation> history;
        if (config.method == SweepConfig::Method::kBayes) {
          TRACK_ASSIGN_OR_RESPONSE(auto key_id, KeyId(config.metric, false));
          if (key_id) {
            TRACK_ASSIGN_OR_RESPONSE(
                auto rows, db.Query("SELECT r.config, s.last_value FROM track_runs r JOIN "
                                    "track_summary s ON s.run_id = r.id AND s.key_id = ? "
                                    "WHERE r.sweep_id = ? AND r.status = 'finished' AND "
                                    "r.deleted_at IS NULL AND s.last_value IS NOT NULL "
                                    "ORDER BY r.id",
                                    {*key_id, id}));
            for (const auto& r : rows) {
              double v = r.Double(1);
              if (std::isfinite(v)) history.push_back({ParamsOf(config, r.Text(0)), v});
            }
          }
        }
        int64_t index = -1;
        Assignment params;
        std::string reason;
        Status st = db.Transaction([&](store::Transaction& tx) -> Status {
          ASSIGN_OR_RETURN(auto rows, tx.Query("UPDATE track_sweeps SET suggestion_count = "
                                               "suggestion_count + 1, updated_at = ? WHERE id = ? "
                                               "RETURNING suggestion_count",
                                               {Now(), id}));
          index = rows[0].Int(0) - 1;
          if (config.run_cap > 0 && index >= config.run_cap) {
            reason = "run_cap";
            return Cancelled("done");
          }
          switch (config.method) {
            case SweepConfig::Method::kGrid: {
              auto g = GridSuggestion(config, index);
              if (!g) {
                reason = "grid_exhausted";
                return Cancelled("done");
              }
              params = std::move(*g);
              break;
            }
            case SweepConfig::Method::kRandom:
              params = RandomSuggestion(config, index);
              break;
            case SweepConfig::Method::kBayes:
              params = TpeSuggestion(config, index, history);
              break;
          }
          return tx
              .Exec(
                  "INSERT INTO track_sweep_suggestions(sweep_id, idx, params, created_at) VALUES "
                  "(?, ?, ?, ?)",
                  {id, index, json::serialize(AssignmentJson(params)), Now()})
              .status();
        });
        if (!reason.empty()) return done(reason);  // rolled back: the count does not grow
        TRACK_RETURN_IF_ERROR(st);
        Audit(req, "track.sweep.suggest", "sweep", IdStr(id));
        return JsonReply(200, json::object{{"done", false},
                                           {"suggestion_id", IdStr(index)},
                                           {"index", index},
                                           {"params", AssignmentJson(params)}});
      }),
      WriteRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/sweeps/{id}/stats", SyncHandler([this, sweep_row](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto row, sweep_row(P(req), req.Param("id")));
        int64_t id = row.Int("id");
        TRACK_ASSIGN_OR_RESPONSE(auto config, ParseSweepConfig(row.Text("config")));
        std::optional<int64_t> key_id;
        if (!config.metric.empty()) {
          TRACK_ASSIGN_OR_RESPONSE(key_id, KeyId(config.metric, false));
        }
        TRACK_ASSIGN_OR_RESPONSE(
            auto rows, db.Query("SELECT r.id, r.status, r.config, s.last_value FROM "
                                "track_runs r LEFT JOIN track_summary s ON s.run_id = r.id "
                                "AND s.key_id = ? WHERE r.sweep_id = ? AND r.deleted_at IS "
                                "NULL ORDER BY r.id",
                                {key_id.value_or(-1), id}));
        struct Entry {
          int64_t run_id;
          std::string status;
          Assignment params;
          std::optional<double> value;
        };
        std::vector<Entry> entries;
        json::object by_status;
        for (const auto& r : rows) {
          std::optional<double> v;
          if (!r.IsNull(3) && std::isfinite(r.Double(3))) v = r.Double(3);
          entries.push_back({r.Int(0), r.Text(1), ParamsOf(config, r.Text(2)), v});
          auto& n = by_status[r.Text(1)];
          n = n.is_int64() ? n.as_int64() + 1 : 1;
        }
        std::stable_sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
          if (a.value.has_value() != b.value.has_value()) return a.value.has_value();
          if (!a.value) return false;
          return config.maximize ? *a.value > *b.value : *a.value < *b.value;
        });
        json::array ranked;
        for (const auto& e : entries) {
          ranked.push_back(
              json::object{{"run_id", IdStr(e.run_id)},
                           {"status", e.status},
                           {"value", e.value ? json::value(*e.value) : json::value(nullptr)},
                           {"params", AssignmentJson(e.params)}});
        }
        json::value best = nullptr;
        if (!entries.empty() && entries[0].value) best = ranked[0];
        return JsonReply(200, json::object{{"run_count", static_cast<int64_t>(entries.size())},
                                           {"by_status", std::move(by_status)},
                                           {"best", std::move(best)},
                                           {"runs", std::move(ranked)}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/sweeps/{id}/should-stop", SyncHandler([this, sweep_row](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto row, sweep_row(p, req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        TRACK_ASSIGN_OR_RESPONSE(auto run_text, GetString(body, "run_id", true, 32));
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(p, run_text));
        int64_t id = row.Int("id");
        TRACK_ASSIGN_OR_RESPONSE(
            auto in_sweep, db.Query("SELECT sweep_id FROM track_runs WHERE id = ?", {run.id}));
        if (in_sweep[0].IsNull(0) || in_sweep[0].Int(0) != id) {
          return Error(InvalidArgument("run_id: run is not part of this sweep"));
        }
        auto answer = [](bool stop, const std::string& reason, json::value rung) {
          return JsonReply(200, json::object{{"stop", stop}, {"reason", reason}, {"rung", rung}});
        };
        TRACK_ASSIGN_OR_RESPONSE(auto config, ParseSweepConfig(row.Text("config")));
        if (row.Text("status") == "finished") return answer(true, "sweep finished", nullptr);
        if (!config.hyperband) return answer(false, "no early termination configured", nullptr);
        TRACK_ASSIGN_OR_RESPONSE(auto key_id, KeyId(config.metric, false));
        if (!key_id) return answer(false, "metric not logged yet", nullptr);
        TRACK_ASSIGN_OR_RESPONSE(auto mine_rows,
                                 db.Query("SELECT last_step FROM track_summary WHERE "
                                          "run_id = ? AND key_id = ?",
                                          {run.id, *key_id}));
        if (mine_rows.empty()) return answer(false, "metric not logged yet", nullptr);
        auto rung = HyperbandRung(config, mine_rows[0].Int(0));
        if (!rung) return answer(false, "below the first rung", nullptr);
        // Every run of the sweep that reached the rung, with its value at the rung.
        TRACK_ASSIGN_OR_RESPONSE(
            auto rows, db.Query("SELECT r.id, (SELECT p.value FROM track_points p WHERE "
                                "p.run_id = r.id AND p.key_id = ? AND p.step <= ? ORDER BY "
                                "p.step DESC LIMIT 1) FROM track_runs r JOIN track_summary "
                                "s ON s.run_id = r.id AND s.key_id = ? WHERE r.sweep_id = ? "
                                "AND r.deleted_at IS NULL AND s.last_step >= ?",
                                {*key_id, *rung, *key_id, id, *rung}));
        std::vector<double> all;
        double mine = std::nan("");
        for (const auto& r : rows) {
          double v = r.IsNull(1) ? std::nan("") : r.Double(1);
          all.push_back(v);
          if (r.Int(0) == run.id) mine = v;
        }
        bool stop = HyperbandShouldStop(config, mine, all);
        return answer(stop,
                      stop ? "not in the best 1/eta of runs at the rung"
                           : "within the best 1/eta of runs at the rung (or too few runs to judge)",
                      *rung);
      }),
      ReadRoute()));
  return Status::Ok();
}

}  // namespace atrium::track
