// Handler: run search with the filter language (docs/track.md, Run search).
#include "atrium/track/filter.h"
#include "track_impl.h"

namespace atrium::track {
namespace {

store::Value ToValue(const SqlArg& a) {
  if (const auto* i = std::get_if<int64_t>(&a)) return *i;
  if (const auto* d = std::get_if<double>(&a)) return *d;
  return std::get<std::string>(a);
}

}  // namespace

Status TrackService::Impl::AddSearchRoutes(http::Router& router) {
  using http::SyncHandler;
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/runs/search", SyncHandler([this](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        // Projects.
        std::vector<int64_t> projects;
        TRACK_ASSIGN_OR_RESPONSE(auto one, GetInt(body, "project_id"));
        if (one) projects.push_back(*one);
        if (const auto* many = body.if_contains("project_ids"); many && !many->is_null()) {
          if (!many->is_array()) return Error(InvalidArgument("project_ids must be a list"));
          for (const auto& v : many->as_array()) {
            json::object tmp{{"id", v}};
            TRACK_ASSIGN_OR_RESPONSE(auto id, GetInt(tmp, "id"));
            if (!id) return Error(InvalidArgument("project_ids must hold ids"));
            projects.push_back(*id);
          }
        }
        if (projects.empty())
          return Error(InvalidArgument("project_id (or project_ids) is required"));
        if (projects.size() > 100) return Error(InvalidArgument("project_ids: at most 100"));
        for (int64_t id : projects) {
          TRACK_ASSIGN_OR_RESPONSE(auto row, ProjectRow(p, id));
          (void)row;
        }
        TRACK_ASSIGN_OR_RESPONSE(auto filter_text, GetString(body, "filter", false, 16384));
        TRACK_ASSIGN_OR_RESPONSE(auto filter, ParseFilter(filter_text));
        KeyIdLookup lookup = [this](const std::string& key) -> std::optional<int64_t> {
          auto id = KeyId(key, false);
          return id.ok() ? *id : std::nullopt;
        };
        std::string sql =
            std::string("SELECT ") + kRunColumns +
            " FROM track_runs r WHERE r.deleted_at IS NULL AND r.workspace_id = ? AND "
            "r.project_id IN (";
        store::Params params{p.workspace_id};
        for (size_t i = 0; i < projects.size(); ++i) {
          sql += i == 0 ? "?" : ",?";
          params.emplace_back(projects[i]);
        }
        sql += ")";
        if (filter) {
          TRACK_ASSIGN_OR_RESPONSE(auto cond, CompileFilter(*filter, lookup, "r"));
          sql += " AND " + cond.sql;
          for (const auto& a : cond.args) params.push_back(ToValue(a));
        }
        // Order.
        std::vector<std::string> terms;
        if (const auto* ob = body.if_contains("order_by"); ob && !ob->is_null()) {
          if (ob->is_string()) {
            std::string_view s = ob->as_string();
            size_t start = 0;
            while (start <= s.size()) {
              size_t comma = s.find(',', start);
              std::string_view part = s.substr(
                  start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
              if (!part.empty()) terms.emplace_back(part);
              if (comma == std::string_view::npos) break;
              start = comma + 1;
            }
          } else if (ob->is_array()) {
            for (const auto& t : ob->as_array()) {
              if (!t.is_string()) return Error(InvalidArgument("order_by must hold strings"));
              terms.emplace_back(t.as_string());
            }
          } else {
            return Error(InvalidArgument("order_by must be a string or a list of strings"));
          }
        }
        if (terms.size() > 10) return Error(InvalidArgument("order_by: at most 10 terms"));
        std::string order;
        store::Params order_params;
        // Each expression appears twice ("IS NULL" first, so missing values sort last): its
        // argument is bound twice.
        auto add = [&](const std::string& expr, bool desc, std::optional<store::Value> arg) {
          order += order.empty() ? "" : ", ";
          order += "(" + expr + ") IS NULL, " + expr + (desc ? " DESC" : " ASC");
          if (arg) {
            order_params.push_back(*arg);
            order_params.push_back(*arg);
          }
        };
        for (const auto& t : terms) {
          TRACK_ASSIGN_OR_RESPONSE(auto term, ParseOrderTerm(t));
          const auto& id = term.ident;
          if (id.field == FilterField::kAttribute) {
            add("r." + LookupAttribute(id.name)->column, term.descending, std::nullopt);
          } else if (id.field == FilterField::kTag) {
            add("(SELECT t.value FROM track_tags t WHERE t.run_id = r.id AND t.key = ?)",
                term.descending, store::Value(id.name));
          } else {
            int64_t key_id = lookup(id.name).value_or(-1);
            if (id.field == FilterField::kMetric) {
              add("(SELECT s.last_value FROM track_summary s WHERE s.run_id = r.id AND s.key_id = "
                  "?)",
                  term.descending, store::Value(key_id));
            } else {
              add("(SELECT pa.num FROM track_params pa WHERE pa.run_id = r.id AND pa.key_id = ?)",
                  term.descending, store::Value(key_id));
              add("(SELECT pa.txt FROM track_params pa WHERE pa.run_id = r.id AND pa.key_id = ?)",
                  term.descending, store::Value(key_id));
            }
          }
        }
        if (order.empty()) order = "r.start_time DESC";
        sql += " ORDER BY " + order + ", r.id DESC LIMIT ? OFFSET ?";
        params.insert(params.end(), order_params.begin(), order_params.end());
        int64_t limit = 50;
        TRACK_ASSIGN_OR_RESPONSE(auto lim, GetInt(body, "limit"));
        if (lim) {
          if (*lim < 1 || *lim > 1000) return Error(InvalidArgument("limit must be 1-1000"));
          limit = *lim;
        }
        int64_t offset = 0;
        TRACK_ASSIGN_OR_RESPONSE(auto cursor, GetString(body, "cursor", false, 32));
        if (!cursor.empty()) {
          char* end = nullptr;
          offset = std::strtoll(cursor.c_str(), &end, 10);
          if (end != cursor.c_str() + cursor.size() || offset < 0) {
            return Error(InvalidArgument("cursor is malformed"));
          }
        }
        params.emplace_back(limit + 1);
        params.emplace_back(offset);
        TRACK_ASSIGN_OR_RESPONSE(auto rows, db.Query(sql, params));
        store::Rows page(rows.shared_columns());
        for (size_t i = 0; i < rows.size() && static_cast<int64_t>(i) < limit; ++i) {
          page.Add(rows[i].values());
        }
        json::value next = nullptr;
        if (static_cast<int64_t>(rows.size()) > limit) next = std::to_string(offset + limit);
        TRACK_ASSIGN_OR_RESPONSE(auto runs, RunsJson(page));
        return JsonReply(200, json::object{{"runs", std::move(runs)}, {"next_cursor", next}});
      }),
      ReadRoute()));
  return Status::Ok();
}

}  // namespace atrium::track
