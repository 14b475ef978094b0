// Handler: run search with the filter language (docs/track.md, Run search), paginated with a
// keyset cursor: the last run's sort values and id, so runs created or changed between two page
// requests neither shift the pages (no run is skipped or repeated) nor cost an OFFSET scan.
#include <charconv>

#include "atrium/core/base64.h"
#include "atrium/track/filter.h"
#include "track_impl.h"

namespace atrium::track {
namespace {

struct SortColumn {
  bool desc = false;
};

// Where the previous page ended: its last run's sort values (NULL = missing) and id.
struct SearchCursor {
  std::vector<store::Value> values;
  int64_t id = 0;
};

// Cursor wire form: base64 of {"v":1,"o":signature,"k":[value...],"id":n} where a value is
// null, an integer, a string, or {"d":"<shortest round-trip text>"} for a double (so it
// compares exactly equal when bound again).
std::string EncodeCursor(const SearchCursor& c, const std::string& signature) {
  json::array values;
  for (const auto& v : c.values) {
    switch (v.type()) {
      case store::ValueType::kInt:
        values.emplace_back(v.int_value());
        break;
      case store::ValueType::kDouble: {
        std::string text;
        AppendJsonNumber(text, v.double_value());  // finite: NaN is stored as NULL
        values.emplace_back(json::object{{"d", text}});
        break;
      }
      case store::ValueType::kText:
        values.emplace_back(v.text_value());
        break;
      default:
        values.emplace_back(nullptr);
        break;
    }
  }
  return Base64Encode(json::serialize(
      json::object{{"v", 1}, {"o", signature}, {"k", std::move(values)}, {"id", c.id}}));
}

Result<SearchCursor> DecodeCursor(const std::string& text, const std::string& signature,
                                  size_t columns) {
  auto malformed = [] { return InvalidArgument("cursor is malformed"); };
  auto raw = Base64Decode(text);
  if (!raw) return malformed();
  boost::system::error_code ec;
  json::value v = json::parse(*raw, ec);
  if (ec || !v.is_object()) return malformed();
  const auto& o = v.as_object();
  const auto* sig = o.if_contains("o");
  const auto* keys = o.if_contains("k");
  const auto* id = o.if_contains("id");
  if (sig == nullptr || !sig->is_string() || keys == nullptr || !keys->is_array() ||
      id == nullptr || !id->is_int64()) {
    return malformed();
  }
  if (sig->as_string() != signature || keys->as_array().size() != columns) {
    return InvalidArgument("cursor does not match order_by (it belongs to another search)");
  }
  SearchCursor c;
  c.id = id->as_int64();
  for (const auto& k : keys->as_array()) {
    if (k.is_null()) {
      c.values.emplace_back();
    } else if (k.is_int64()) {
      c.values.emplace_back(k.as_int64());
    } else if (k.is_string()) {
      c.values.emplace_back(std::string(k.as_string()));
    } else if (const auto* d = k.is_object() ? k.as_object().if_contains("d") : nullptr;
               d != nullptr && d->is_string()) {
      double x = 0;
      std::string_view t = d->as_string();
      auto r = std::from_chars(t.data(), t.data() + t.size(), x);
      if (r.ec != std::errc() || r.ptr != t.data() + t.size()) return malformed();
      c.values.emplace_back(x);
    } else {
      return malformed();
    }
  }
  return c;
}

struct Condition {
  std::string sql;
  store::Params args;
};

// The runs after the cursor in the order (o0 IS NULL), o0 <dir>, ..., id DESC: a disjunction
// over the first sort column that differs, with missing values (NULL) after every present one.
Condition KeysetCondition(const std::vector<SortColumn>& columns, const SearchCursor& c) {
  Condition out;
  std::string equal_prefix;  // "q.o0 = ? AND q.o1 IS NULL AND ..."
  store::Params equal_args;
  auto disjunct = [&](const std::string& after, const store::Params& after_args) {
    out.sql += out.sql.empty() ? "(" : " OR (";
    out.sql += equal_prefix + after + ")";
    out.args.insert(out.args.end(), equal_args.begin(), equal_args.end());
    out.args.insert(out.args.end(), after_args.begin(), after_args.end());
  };
  for (size_t i = 0; i < columns.size(); ++i) {
    const std::string col = "q.o" + std::to_string(i);
    const store::Value& v = c.values[i];
    if (v.is_null()) {
      // Nothing sorts after a missing value but other missing values.
      equal_prefix += col + " IS NULL AND ";
      continue;
    }
    disjunct("(" + col + " IS NULL OR " + col + (columns[i].desc ? " < ?)" : " > ?)"), {v});
    equal_prefix += col + " = ? AND ";
    equal_args.push_back(v);
  }
  disjunct("q.id < ?", {store::Value(c.id)});
  out.sql = "(" + out.sql + ")";
  return out;
}

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
        std::string from =
            " FROM track_runs r WHERE r.deleted_at IS NULL AND r.workspace_id = ? AND "
            "r.project_id IN (";
        store::Params params{p.workspace_id};
        for (size_t i = 0; i < projects.size(); ++i) {
          from += i == 0 ? "?" : ",?";
          params.emplace_back(projects[i]);
        }
        from += ")";
        if (filter) {
          TRACK_ASSIGN_OR_RESPONSE(auto cond, CompileFilter(*filter, lookup, "r"));
          from += " AND " + cond.sql;
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
        // Sort columns, computed once per run in a subquery (o0, o1, ...) so that the ORDER BY
        // and the keyset condition of the cursor can name them.
        std::vector<SortColumn> columns;
        std::string select_extra;
        store::Params select_params;
        std::string signature;  // the order the cursor was made for
        auto add = [&](const std::string& expr, bool desc, std::optional<store::Value> arg) {
          select_extra += ", " + expr + " AS o" + std::to_string(columns.size());
          if (arg) select_params.push_back(*arg);
          columns.push_back({desc});
        };
        if (terms.empty()) terms.emplace_back("start_time desc");
        for (const auto& t : terms) {
          TRACK_ASSIGN_OR_RESPONSE(auto term, ParseOrderTerm(t));
          const auto& id = term.ident;
          signature += std::string(1, "pmta"[static_cast<int>(id.field)]) + id.name +
                       (term.descending ? "-," : "+,");
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
        int64_t limit = 50;
        TRACK_ASSIGN_OR_RESPONSE(auto lim, GetInt(body, "limit"));
        if (lim) {
          if (*lim < 1 || *lim > 1000) return Error(InvalidArgument("limit must be 1-1000"));
          limit = *lim;
        }
        TRACK_ASSIGN_OR_RESPONSE(auto cursor_text, GetString(body, "cursor", false, 1 << 16));
        std::optional<SearchCursor> cursor;
        if (!cursor_text.empty()) {
          TRACK_ASSIGN_OR_RESPONSE(cursor, DecodeCursor(cursor_text, signature, columns.size()));
        }
        // Missing values (NULL) sort last in either direction; ties by id, newest first.
        std::string order;
        for (size_t i = 0; i < columns.size(); ++i) {
          std::string c = "q.o" + std::to_string(i);
          order += "(" + c + " IS NULL), " + c + (columns[i].desc ? " DESC, " : " ASC, ");
        }
        order += "q.id DESC";
        // The run columns, then the sort columns.
        std::string full =
            "SELECT * FROM (SELECT " + std::string(kRunColumns) + select_extra + from + ") q";
        store::Params all = select_params;
        all.insert(all.end(), params.begin(), params.end());
        if (cursor) {
          auto keyset = KeysetCondition(columns, *cursor);
          full += " WHERE " + keyset.sql;
          all.insert(all.end(), keyset.args.begin(), keyset.args.end());
        }
        full += " ORDER BY " + order + " LIMIT ?";
        all.emplace_back(limit + 1);
        TRACK_ASSIGN_OR_RESPONSE(auto rows, db.Query(full, all));
        store::Rows page(rows.shared_columns());
        for (size_t i = 0; i < rows.size() && static_cast<int64_t>(i) < limit; ++i) {
          page.Add(rows[i].values());
        }
        json::value next = nullptr;
        if (static_cast<int64_t>(rows.size()) > limit) {
          const auto& last = rows[static_cast<size_t>(limit) - 1];
          const size_t first_sort_column = last.size() - columns.size();
          SearchCursor c;
          c.id = last.Int("id");
          for (size_t i = 0; i < columns.size(); ++i)
            c.values.push_back(last.Get(first_sort_column + i));
          next = EncodeCursor(c, signature);
        }
        TRACK_ASSIGN_OR_RESPONSE(auto runs, RunsJson(page));
        return JsonReply(200, json::object{{"runs", std::move(runs)}, {"next_cursor", next}});
      }),
      ReadRoute()));
  return Status::Ok();
}

}  // namespace atrium::track
