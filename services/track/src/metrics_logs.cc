// Handlers: metrics (ingest, keys, history with downsampling, scan, compare, live events) and
// logs (append, read, live tail, download). See docs/track.md.
#include <algorithm>
#include <cmath>
#include <limits>

#include <charconv>
#include <set>

#include "atrium/http/json_error.h"

#include "rollup.h"
#include "track_impl.h"

namespace atrium::track {
namespace {

constexpr size_t kMaxPointsPerBatch = 100000;
constexpr size_t kMaxLinesPerBatch = 100000;
constexpr size_t kRowsPerInsert = 1000;  // 5 params each: well under SQLite's 32766 limit

bool ValidKey(std::string_view k) {
  if (k.empty() || k.size() > 256) return false;
  for (unsigned char c : k) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// "INSERT ... VALUES (?,?,?,?,?),... ON CONFLICT ..." for `n` rows.
std::string PointsInsertSql(size_t n) {
  std::string sql = "INSERT INTO track_points(run_id, key_id, step, value, ts) VALUES ";
  sql.reserve(sql.size() + n * 12 + 120);
  for (size_t i = 0; i < n; ++i) sql += i == 0 ? "(?,?,?,?,?)" : ",(?,?,?,?,?)";
  sql +=
      " ON CONFLICT (run_id, key_id, step) DO UPDATE SET value = excluded.value, ts = excluded.ts";
  return sql;
}

const std::string& FullPointsInsertSql() {
  static const std::string sql = PointsInsertSql(kRowsPerInsert);
  return sql;
}

constexpr const char* kSummaryUpsert =
    "INSERT INTO track_summary(run_id, key_id, last_step, last_value, last_ts, min_value, "
    "max_value, count, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (run_id, key_id) "
    "DO UPDATE SET "
    "last_value = CASE WHEN excluded.last_step >= track_summary.last_step THEN "
    "excluded.last_value ELSE track_summary.last_value END, "
    "last_ts = CASE WHEN excluded.last_step >= track_summary.last_step THEN excluded.last_ts "
    "ELSE track_summary.last_ts END, "
    "last_step = CASE WHEN excluded.last_step >= track_summary.last_step THEN "
    "excluded.last_step ELSE track_summary.last_step END, "
    "min_value = CASE WHEN track_summary.min_value IS NULL OR excluded.min_value < "
    "track_summary.min_value THEN excluded.min_value ELSE track_summary.min_value END, "
    "max_value = CASE WHEN track_summary.max_value IS NULL OR excluded.max_value > "
    "track_summary.max_value THEN excluded.max_value ELSE track_summary.max_value END, "
    "count = track_summary.count + excluded.count, "
    "version = track_summary.version + 1 "
    "RETURNING version";

store::Value DoubleOrNull(double d) { return std::isnan(d) ? store::Value() : store::Value(d); }

json::object PointJson(const std::string& key, int64_t step, double value, int64_t ts_ms) {
  return json::object{{"key", key}, {"step", step}, {"value", Num(value)}, {"timestamp", ts_ms}};
}

bool ValidLevel(std::string_view l) {
  return l == "debug" || l == "info" || l == "warning" || l == "error" || l == "stdout" ||
         l == "stderr";
}

json::object LineJson(const store::Row& r) {
  return json::object{{"seq", r.Int("seq")},
                      {"level", r.Text("level")},
                      {"message", r.Text("message")},
                      {"timestamp", r.Int("ts")}};
}

std::optional<int64_t> QueryInt(const Request& req, std::string_view name) {
  auto q = req.Query(name);
  if (!q || q->empty()) return std::nullopt;
  char* end = nullptr;
  long long v = std::strtoll(q->c_str(), &end, 10);
  if (end != q->c_str() + q->size()) return std::nullopt;
  return v;
}

// A history answer: {<extra>"key","total","downsampled","points"}. Written by hand: a tree of
// json::objects costs several allocations per point.
std::string HistoryJson(const std::string& key, std::string_view extra_members, int64_t total,
                        bool downsampled, const std::vector<Bucket>& buckets) {
  std::string out;
  out.reserve(64 + buckets.size() * (downsampled ? 110 : 60));
  out += "{";
  out += extra_members;
  out += "\"key\":" + http::JsonQuote(key) + ",\"total\":";
  AppendJsonInt(out, total);
  out += downsampled ? ",\"downsampled\":true,\"points\":[" : ",\"downsampled\":false,\"points\":[";
  for (size_t i = 0; i < buckets.size(); ++i) {
    const auto& b = buckets[i];
    out += i == 0 ? "{\"step\":" : ",{\"step\":";
    AppendJsonInt(out, b.step);
    out += ",\"value\":";
    AppendJsonNumber(out, b.value);
    if (downsampled) {
      out += ",\"min\":";
      AppendJsonNumber(out, b.min);
      out += ",\"max\":";
      AppendJsonNumber(out, b.max);
      out += ",\"count\":";
      AppendJsonInt(out, b.count);
    }
    out += ",\"timestamp\":";
    AppendJsonInt(out, b.ts_ms);
    out += "}";
  }
  out += "]}";
  return out;
}

}  // namespace

Result<std::string> TrackService::Impl::History(
    int64_t run_id, const std::string& key, int64_t max_points, std::optional<int64_t> min_step,
    std::optional<int64_t> max_step, std::string_view extra_members,
    std::optional<std::pair<int64_t, int64_t>> key_and_version) {
  int64_t key_id = 0, version = 0;
  if (key_and_version) {
    std::tie(key_id, version) = *key_and_version;
  } else {
    ASSIGN_OR_RETURN(auto id, KeyId(key, false));
    if (!id) return NotFound("metric " + key + " not found in run " + IdStr(run_id));
    key_id = *id;
    ASSIGN_OR_RETURN(auto vrows, db.Query("SELECT version FROM track_summary WHERE run_id = ? AND "
                                          "key_id = ?",
                                          {run_id, key_id}));
    if (vrows.empty()) return NotFound("metric " + key + " not found in run " + IdStr(run_id));
    version = vrows[0].Int(0);
  }
  auto points = series.Get(run_id, key_id, version);
  if (!points) {
    // Not cached. A long range is assembled from the rollups (the same buckets as from the
    // points, see ChooseBucketGrid) instead of loading every point.
    const int64_t lo = min_step.value_or(0), hi = max_step.value_or(INT64_MAX);
    ASSIGN_OR_RETURN(
        auto ends,
        // ORDER BY ... LIMIT 1, not MIN/MAX: PostgreSQL without statistics (a fresh series)
        // plans MIN/MAX as a scan of the whole range.
        db.Query("SELECT (SELECT step FROM track_points WHERE run_id = ? AND key_id = ? AND step "
                 ">= ? AND step <= ? ORDER BY step LIMIT 1), (SELECT step FROM track_points "
                 "WHERE run_id = ? AND key_id = ? AND step >= ? AND step <= ? ORDER BY step DESC "
                 "LIMIT 1)",
                 {run_id, key_id, lo, hi, run_id, key_id, lo, hi}));
    if (ends.empty() || ends[0].IsNull(0)) return HistoryJson(key, extra_members, 0, false, {});
    const int64_t first = ends[0].Int(0), last = ends[0].Int(1);
    const BucketGrid grid = ChooseBucketGrid(first, last, max_points);
    if (grid.level != 0) {
      ASSIGN_OR_RETURN(auto rolled, ReadRollupHistory(db, run_id, key_id, first, last, grid));
      if (rolled.total > max_points) {
        return HistoryJson(key, extra_members, rolled.total, true, rolled.buckets);
      }
      // Sparse: few points over a long range; they are read as they are.
      ASSIGN_OR_RETURN(auto rows, db.Query("SELECT step, value, ts FROM track_points WHERE "
                                           "run_id = ? AND key_id = ? AND step >= ? AND step "
                                           "<= ? ORDER BY step",
                                           {run_id, key_id, first, last}));
      std::vector<SeriesPoint> few;
      few.reserve(rows.size());
      for (const auto& r : rows) {
        double v = r.IsNull(1) ? std::numeric_limits<double>::quiet_NaN() : r.Double(1);
        few.push_back({r.Int(0), v, r.Int(2)});
      }
      return HistoryJson(key, extra_members, static_cast<int64_t>(few.size()), false,
                         Downsample(few, max_points));
    }
    // Loaded in pages so the row objects of a long series never pile up.
    auto loaded = std::make_shared<std::vector<SeriesPoint>>();
    int64_t after = -1;
    constexpr int kPage = 50000;
    while (true) {
      ASSIGN_OR_RETURN(auto rows, db.Query("SELECT step, value, ts FROM track_points WHERE "
                                           "run_id = ? AND key_id = ? AND step > ? ORDER BY "
                                           "step LIMIT ?",
                                           {run_id, key_id, after, kPage}));
      for (const auto& r : rows) {
        double v = r.IsNull(1) ? std::numeric_limits<double>::quiet_NaN() : r.Double(1);
        loaded->push_back({r.Int(0), v, r.Int(2)});
      }
      if (static_cast<int>(rows.size()) < kPage) break;
      after = loaded->back().step;
    }
    // A write between the version read and the load only makes the entry stale: the version
    // check refreshes it next time.
    series.Put(run_id, key_id, version, loaded);
    points = std::move(loaded);
  }
  auto first = points->begin(), last = points->end();
  if (min_step) {
    first = std::lower_bound(points->begin(), points->end(), *min_step,
                             [](const SeriesPoint& p, int64_t s) { return p.step < s; });
  }
  if (max_step) {
    last = std::upper_bound(first, points->end(), *max_step,
                            [](int64_t s, const SeriesPoint& p) { return s < p.step; });
  }
  std::span<const SeriesPoint> range;
  if (first != last)
    range = std::span<const SeriesPoint>(&*first, static_cast<size_t>(last - first));
  return HistoryJson(key, extra_members, static_cast<int64_t>(range.size()),
                     static_cast<int64_t>(range.size()) > max_points,
                     Downsample(range, max_points));
}

Status TrackService::Impl::AddMetricLogRoutes(http::Router& router) {
  using http::SyncHandler;
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/runs/{id}/metrics", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        const auto* pts = body.if_contains("points");
        if (pts == nullptr || !pts->is_array())
          return Error(InvalidArgument("points must be a list"));
        const auto& arr = pts->as_array();
        if (arr.size() > kMaxPointsPerBatch) {
          return Error(InvalidArgument("points: at most " + std::to_string(kMaxPointsPerBatch) +
                                       " per request"));
        }
        const int64_t now_ms = Now() / 1000;
        // Points grouped by key, in arrival order.
        std::map<std::string, std::vector<SeriesPoint>, std::less<>> by_key;
        for (size_t i = 0; i < arr.size(); ++i) {
          // Built only for errors: this loop runs for every point of every batch.
          auto field = [i] { return "points[" + std::to_string(i) + "]"; };
          if (!arr[i].is_object()) return Error(InvalidArgument(field() + " must be an object"));
          const auto& o = arr[i].as_object();
          const auto* k = o.if_contains("key");
          if (k == nullptr || !k->is_string() || !ValidKey(k->as_string())) {
            return Error(
                InvalidArgument(field() + ".key must be a string of 1-256 printable characters"));
          }
          const auto* st = o.if_contains("step");
          int64_t step = 0;
          if (st != nullptr && st->is_int64() && st->as_int64() >= 0) {
            step = st->as_int64();
          } else if (st != nullptr && st->is_uint64() && st->as_uint64() <= INT64_MAX) {
            step = static_cast<int64_t>(st->as_uint64());
          } else if (st != nullptr && st->is_double() && st->as_double() >= 0 &&
                     st->as_double() < 9e18 && std::trunc(st->as_double()) == st->as_double()) {
            step = static_cast<int64_t>(st->as_double());
          } else {
            return Error(InvalidArgument(field() + ".step must be an integer >= 0"));
          }
          const auto* raw_value = o.if_contains("value");
          double value = 0;
          if (raw_value != nullptr && raw_value->is_double()) {
            value = raw_value->as_double();
          } else if (raw_value != nullptr && raw_value->is_int64()) {
            value = static_cast<double>(raw_value->as_int64());
          } else {
            TRACK_ASSIGN_OR_RESPONSE(value, ToMetricValue(raw_value, field() + ".value"));
          }
          int64_t ts = now_ms;
          if (const auto* t = o.if_contains("timestamp"); t != nullptr && !t->is_null()) {
            if (!t->is_number())
              return Error(InvalidArgument(field() + ".timestamp must be a number"));
            double d = t->to_number<double>();
            if (!std::isfinite(d) || d < 0 || d > 1e16) {
              return Error(
                  InvalidArgument(field() + ".timestamp must be milliseconds since the epoch"));
            }
            ts = static_cast<int64_t>(d);
          }
          std::string_view key = k->as_string();
          auto it = by_key.find(key);
          if (it == by_key.end())
            it = by_key.emplace(std::string(key), std::vector<SeriesPoint>()).first;
          it->second.push_back({step, value, ts});
        }
        // Sorted by step with duplicates collapsed, the last one winning.
        struct KeyBatch {
          std::string key;
          int64_t key_id;
          std::vector<SeriesPoint> points;
        };
        std::vector<KeyBatch> batches;
        size_t total = 0;
        for (auto& [key, v] : by_key) {
          std::stable_sort(v.begin(), v.end(), [](const SeriesPoint& a, const SeriesPoint& b) {
            return a.step < b.step;
          });
          std::vector<SeriesPoint> unique;
          unique.reserve(v.size());
          for (const auto& p : v) {
            if (!unique.empty() && unique.back().step == p.step) {
              unique.back() = p;
            } else {
              unique.push_back(p);
            }
          }
          TRACK_ASSIGN_OR_RESPONSE(auto id, KeyId(key, true));
          total += unique.size();
          batches.push_back({key, *id, std::move(unique)});
        }
        std::vector<int64_t> versions(batches.size());
        int64_t now = Now();
        Status st = db.Transaction([&](store::Transaction& tx) -> Status {
          store::Params params;
          params.reserve(kRowsPerInsert * 5);
          size_t in_stmt = 0;
          auto flush = [&]() -> Status {
            if (in_stmt == 0) return Status::Ok();
            const std::string& sql =
                in_stmt == kRowsPerInsert ? FullPointsInsertSql() : PointsInsertSql(in_stmt);
            RETURN_IF_ERROR(tx.Exec(sql, params).status());
            params.clear();
            in_stmt = 0;
            return Status::Ok();
          };
          for (const auto& b : batches) {
            for (const auto& p : b.points) {
              params.emplace_back(run.id);
              params.emplace_back(b.key_id);
              params.emplace_back(p.step);
              params.push_back(DoubleOrNull(p.value));
              params.emplace_back(p.ts_ms);
              if (++in_stmt == kRowsPerInsert) RETURN_IF_ERROR(flush());
            }
          }
          RETURN_IF_ERROR(flush());
          for (size_t i = 0; i < batches.size(); ++i) {
            const auto& b = batches[i];
            const double nan = std::numeric_limits<double>::quiet_NaN();
            double mn = nan, mx = nan;
            for (const auto& p : b.points) {
              if (!std::isfinite(p.value)) continue;
              if (!(mn <= p.value)) mn = p.value;
              if (!(mx >= p.value)) mx = p.value;
            }
            const auto& lastp = b.points.back();
            // Whether the batch only appends to the series (the common case): its rollups can
            // then be merged without checking each chunk.
            ASSIGN_OR_RETURN(auto prev, tx.Query("SELECT last_step FROM track_summary WHERE "
                                                 "run_id = ? AND key_id = ?",
                                                 {run.id, b.key_id}));
            const bool appends = prev.empty() || prev[0].Int(0) < b.points.front().step;
            ASSIGN_OR_RETURN(
                auto rows,
                tx.Query(kSummaryUpsert, {run.id, b.key_id, lastp.step, DoubleOrNull(lastp.value),
                                          lastp.ts_ms, DoubleOrNull(mn), DoubleOrNull(mx),
                                          static_cast<int64_t>(b.points.size())}));
            versions[i] = rows[0].Int(0);
            RETURN_IF_ERROR(UpdateRollups(tx, run.id, b.key_id, b.points, appends));
          }
          return tx
              .Exec(
                  "UPDATE track_runs SET heartbeat_at = ?, end_time = CASE WHEN status = "
                  "'crashed' THEN NULL ELSE end_time END, status = CASE WHEN status = 'crashed' "
                  "THEN 'running' ELSE status END WHERE id = ?",
                  {now, run.id})
              .status();
        });
        TRACK_RETURN_IF_ERROR(st);
        for (size_t i = 0; i < batches.size(); ++i) {
          series.Apply(run.id, batches[i].key_id, versions[i], batches[i].points);
        }
        // One bus record for the batch (split only past LiveHub::kMaxRecordBytes).
        std::vector<LiveSeries> live_series;
        live_series.reserve(batches.size());
        for (const auto& b : batches) live_series.push_back({b.key, b.points});
        live.PublishMetrics(run.id, live_series);
        return JsonReply(200, json::object{{"accepted", static_cast<int64_t>(arr.size())}});
      }),
      WriteRoute(options.max_batch_bytes)));

  RETURN_IF_ERROR(router.Add("GET", "/api/v1/runs/{id}/metrics", SyncHandler([this](Request& req) {
                               TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
                               std::string prefix = req.Query("prefix").value_or("");
                               TRACK_ASSIGN_OR_RESPONSE(
                                   auto rows, db.Query("SELECT k.name FROM track_summary s JOIN "
                                                       "track_keys k ON k.id = s.key_id WHERE "
                                                       "s.run_id = ? ORDER BY k.name",
                                                       {run.id}));
                               json::array keys;
                               for (const auto& r : rows) {
                                 std::string name = r.Text(0);
                                 if (name.compare(0, prefix.size(), prefix) == 0)
                                   keys.emplace_back(name);
                               }
                               return JsonReply(200, json::object{{"keys", std::move(keys)}});
                             }),
                             ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/metrics/{key...}", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        std::string key(req.Param("key"));
        if (!ValidKey(key)) return Error(NotFound("metric key missing or invalid"));
        int64_t max_points = QueryInt(req, "max_points").value_or(1000);
        if (max_points < 2 || max_points > 100000) {
          return Error(InvalidArgument("max_points must be between 2 and 100000"));
        }
        TRACK_ASSIGN_OR_RESPONSE(
            auto out,
            History(run.id, key, max_points, QueryInt(req, "min_step"), QueryInt(req, "max_step")));
        return Response::Json(200, std::move(out));
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/metric-points", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        int limit = ClampLimit(req, 1000, 10000);
        int64_t after_key = -1, after_step = -1;
        if (auto c = req.Query("cursor"); c && !c->empty()) {
          size_t colon = c->find(':');
          char* end = nullptr;
          after_key = std::strtoll(c->c_str(), &end, 10);
          if (colon == std::string::npos || end != c->c_str() + colon) {
            return Error(InvalidArgument("cursor is malformed"));
          }
          after_step = std::strtoll(c->c_str() + colon + 1, &end, 10);
        }
        std::string sql =
            "SELECT p.key_id, k.name, p.step, p.value, p.ts FROM track_points p JOIN track_keys k "
            "ON "
            "k.id = p.key_id WHERE p.run_id = ? AND (p.key_id > ? OR (p.key_id = ? AND p.step > "
            "?))";
        store::Params params{run.id, after_key, after_key, after_step};
        if (auto key = req.Query("key")) {
          TRACK_ASSIGN_OR_RESPONSE(auto id, KeyId(*key, false));
          sql += " AND p.key_id = ?";
          params.emplace_back(id.value_or(-1));
        }
        sql += " ORDER BY p.key_id, p.step LIMIT ?";
        params.emplace_back(limit + 1);
        TRACK_ASSIGN_OR_RESPONSE(auto rows, db.Query(sql, params));
        json::array out;
        json::value next = nullptr;
        for (size_t i = 0; i < rows.size() && static_cast<int>(i) < limit; ++i) {
          const auto& r = rows[i];
          double v = r.IsNull(3) ? std::numeric_limits<double>::quiet_NaN() : r.Double(3);
          out.push_back(PointJson(r.Text(1), r.Int(2), v, r.Int(4)));
        }
        if (static_cast<int>(rows.size()) > limit) {
          next =
              std::to_string(rows[limit - 1].Int(0)) + ":" + std::to_string(rows[limit - 1].Int(2));
        }
        return JsonReply(200, json::object{{"points", std::move(out)}, {"next_cursor", next}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/metrics/compare", SyncHandler([this](Request& req) {
        const auto& p = P(req);
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        const auto* runs = body.if_contains("run_ids");
        const auto* keys = body.if_contains("keys");
        if (runs == nullptr || !runs->is_array())
          return Error(InvalidArgument("run_ids must be a list"));
        if (keys == nullptr || !keys->is_array())
          return Error(InvalidArgument("keys must be a list"));
        if (runs->as_array().size() * keys->as_array().size() > 1000) {
          return Error(InvalidArgument("run_ids x keys: at most 1000 series"));
        }
        TRACK_ASSIGN_OR_RESPONSE(auto max_points, GetInt(body, "max_points"));
        int64_t mp = max_points.value_or(1000);
        if (mp < 2 || mp > 100000)
          return Error(InvalidArgument("max_points must be between 2 and 100000"));
        // Access to every run, then every (run, key) version, in two queries.
        std::vector<std::string> run_ids;
        for (const auto& rv : runs->as_array()) {
          run_ids.push_back(rv.is_string() ? std::string(rv.as_string())
                                           : (rv.is_int64() ? std::to_string(rv.as_int64()) : ""));
        }
        std::vector<std::pair<std::string, std::optional<int64_t>>> key_ids;
        for (const auto& kv : keys->as_array()) {
          if (!kv.is_string()) return Error(InvalidArgument("keys must be strings"));
          TRACK_ASSIGN_OR_RESPONSE(auto id, KeyId(std::string(kv.as_string()), false));
          key_ids.emplace_back(std::string(kv.as_string()), id);
        }
        std::vector<int64_t> ids;
        std::string marks;
        store::Params params{p.workspace_id, p.user_id};
        for (const auto& r : run_ids) {
          TRACK_ASSIGN_OR_RESPONSE(int64_t id, ParseId(r, "run"));
          ids.push_back(id);
          marks += marks.empty() ? "?" : ",?";
          params.emplace_back(id);
        }
        std::set<int64_t> visible;
        std::map<std::pair<int64_t, int64_t>, int64_t> versions;
        if (!ids.empty()) {
          TRACK_ASSIGN_OR_RESPONSE(
              auto rows, db.Query("SELECT r.id FROM track_runs r JOIN track_projects pr ON "
                                  "pr.id = r.project_id WHERE r.workspace_id = ? AND "
                                  "r.deleted_at IS NULL AND pr.deleted_at IS NULL AND "
                                  "(pr.visibility = 'workspace' OR pr.created_by = ?) AND "
                                  "r.id IN (" +
                                      marks + ")",
                                  params));
          for (const auto& r : rows) visible.insert(r.Int(0));
          store::Params vparams(params.begin() + 2, params.end());
          TRACK_ASSIGN_OR_RESPONSE(auto vrows, db.Query("SELECT run_id, key_id, version FROM "
                                                        "track_summary WHERE run_id IN (" +
                                                            marks + ")",
                                                        vparams));
          for (const auto& r : vrows) versions[{r.Int(0), r.Int(1)}] = r.Int(2);
        }
        std::string out = "{\"series\":[";
        bool first_series = true;
        for (size_t i = 0; i < ids.size(); ++i) {
          if (!visible.count(ids[i])) return Error(NotFound("run " + run_ids[i] + " not found"));
          std::string extra = "\"run_id\":\"" + IdStr(ids[i]) + "\",";
          for (const auto& [key, key_id] : key_ids) {
            if (!first_series) out += ",";
            first_series = false;
            auto it = key_id ? versions.find({ids[i], *key_id}) : versions.end();
            if (it == versions.end()) {
              out += "{" + extra + "\"key\":" + http::JsonQuote(key) +
                     ",\"total\":0,\"downsampled\":false,\"points\":[]}";
              continue;
            }
            TRACK_ASSIGN_OR_RESPONSE(auto h, History(ids[i], key, mp, std::nullopt, std::nullopt,
                                                     extra, std::pair{*key_id, it->second}));
            out += h;
          }
        }
        out += "]}";
        return Response::Json(200, std::move(out));
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/events", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        auto [resp, writer] = http::SseResponse();
        // Held while the current status is read, so a change committed meanwhile comes after it.
        auto viewer = live.Subscribe(run.id, writer, /*logs_only=*/false, /*held=*/true);
        auto rows = db.Query("SELECT status FROM track_runs WHERE id = ?", {run.id});
        std::string status = rows.ok() && !rows->empty() ? (*rows)[0].Text(0) : run.status;
        writer->Send(http::SseEvent{.event = "status",
                                    .data = json::serialize(json::object{{"status", status}})});
        live.Release(viewer, 0);
        return std::move(resp);
      }),
      ReadRoute()));

  // ---- logs ----
  RETURN_IF_ERROR(router.Add(
      "POST", "/api/v1/runs/{id}/logs", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        TRACK_ASSIGN_OR_RESPONSE(auto body, ParseBody(req));
        const auto* lines = body.if_contains("lines");
        if (lines == nullptr || !lines->is_array())
          return Error(InvalidArgument("lines must be a list"));
        const auto& arr = lines->as_array();
        if (arr.size() > kMaxLinesPerBatch)
          return Error(InvalidArgument("lines: too many per request"));
        struct Line {
          std::string level, message;
          int64_t ts;
        };
        std::vector<Line> parsed;
        parsed.reserve(arr.size());
        const int64_t now_ms = Now() / 1000;
        for (size_t i = 0; i < arr.size(); ++i) {
          std::string field = "lines[" + std::to_string(i) + "]";
          if (!arr[i].is_object()) return Error(InvalidArgument(field + " must be an object"));
          const auto& o = arr[i].as_object();
          Line l{"info", "", now_ms};
          TRACK_ASSIGN_OR_RESPONSE(l.message, GetString(o, "message", true, 1 << 16));
          TRACK_ASSIGN_OR_RESPONSE(auto level, GetString(o, "level", false, 16));
          if (!level.empty()) {
            if (!ValidLevel(level)) {
              return Error(InvalidArgument(field + ".level must be debug, info, warning, error, "
                                                   "stdout or stderr"));
            }
            l.level = level;
          }
          if (const auto* t = o.if_contains("timestamp"); t != nullptr && !t->is_null()) {
            if (!t->is_number())
              return Error(InvalidArgument(field + ".timestamp must be a number"));
            double d = t->to_number<double>();
            if (!std::isfinite(d) || d < 0 || d > 1e16) {
              return Error(
                  InvalidArgument(field + ".timestamp must be milliseconds since the epoch"));
            }
            l.ts = static_cast<int64_t>(d);
          }
          parsed.push_back(std::move(l));
        }
        int64_t last_seq = 0;
        int64_t n = static_cast<int64_t>(parsed.size());
        int64_t now = Now();
        Status st = db.Transaction([&](store::Transaction& tx) -> Status {
          ASSIGN_OR_RETURN(auto rows,
                           tx.Query("UPDATE track_runs SET log_seq = log_seq + ?, heartbeat_at = ? "
                                    "WHERE id = ? RETURNING log_seq",
                                    {n, now, run.id}));
          last_seq = rows[0].Int(0);
          int64_t seq = last_seq - n;
          for (size_t start = 0; start < parsed.size(); start += kRowsPerInsert) {
            size_t count = std::min(kRowsPerInsert, parsed.size() - start);
            std::string sql = "INSERT INTO track_logs(run_id, seq, level, message, ts) VALUES ";
            store::Params params;
            for (size_t i = 0; i < count; ++i) {
              sql += i == 0 ? "(?,?,?,?,?)" : ",(?,?,?,?,?)";
              const auto& l = parsed[start + i];
              params.insert(params.end(), {run.id, ++seq, l.level, l.message, l.ts});
            }
            RETURN_IF_ERROR(tx.Exec(sql, params).status());
          }
          return Status::Ok();
        });
        TRACK_RETURN_IF_ERROR(st);
        std::vector<LiveLogLine> live_lines;
        live_lines.reserve(parsed.size());
        int64_t seq = last_seq - n;
        for (const auto& l : parsed) live_lines.push_back({++seq, l.level, l.message, l.ts});
        live.PublishLogs(run.id, live_lines);
        return JsonReply(200, json::object{{"accepted", n}, {"last_seq", last_seq}});
      }),
      WriteRoute(options.max_batch_bytes)));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/logs", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        int limit = ClampLimit(req, 1000, 10000);
        int64_t cursor = QueryInt(req, "cursor").value_or(0);
        std::string sql =
            "SELECT seq, level, message, ts FROM track_logs WHERE run_id = ? AND seq > ?";
        store::Params params{run.id, cursor};
        if (auto level = req.Query("level"); level && !level->empty()) {
          sql += " AND level = ?";
          params.emplace_back(*level);
        }
        sql += " ORDER BY seq LIMIT ?";
        params.emplace_back(limit + 1);
        TRACK_ASSIGN_OR_RESPONSE(auto rows, db.Query(sql, params));
        json::array out;
        int64_t next = cursor;
        for (size_t i = 0; i < rows.size() && static_cast<int>(i) < limit; ++i) {
          out.push_back(LineJson(rows[i]));
          next = rows[i].Int("seq");
        }
        bool more = static_cast<int>(rows.size()) > limit;
        return JsonReply(200, json::object{{"lines", std::move(out)},
                                           {"next_cursor", std::to_string(next)},
                                           {"has_more", more}});
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/logs/stream", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        int64_t cursor = QueryInt(req, "cursor").value_or(0);
        if (auto last = req.headers.Get("last-event-id")) {
          cursor = std::max<int64_t>(cursor, std::strtoll(std::string(*last).c_str(), nullptr, 10));
        }
        auto [resp, writer] = http::SseResponse({.max_queued_bytes = 8 << 20});
        // Registered (held) before the backlog is read: a line committed after the read is
        // delivered live, one committed before it comes from the database, and lines in both
        // are sent once.
        auto viewer = live.Subscribe(run.id, writer, /*logs_only=*/true, /*held=*/true);
        int64_t sent = cursor;
        while (true) {
          auto rows = db.Query(
              "SELECT seq, level, message, ts FROM track_logs WHERE run_id = ? AND seq > ? "
              "ORDER BY seq LIMIT 10000",
              {run.id, sent});
          if (!rows.ok()) {
            writer->Close();
            return Error(rows.status());
          }
          for (const auto& r : *rows) {
            if (writer->Send(http::SseEvent{.id = std::to_string(r.Int("seq")),
                                            .event = "log",
                                            .data = json::serialize(LineJson(r))}) ==
                http::BodyStream::WriteResult::kFull) {
              // A backlog larger than the stream's queue: the client resumes from its last id.
              writer->Close(http::SseEvent{.event = "resync", .data = "{}"});
              return std::move(resp);
            }
            sent = r.Int("seq");
          }
          if (rows->size() < 10000) break;
        }
        live.Release(viewer, sent);
        return std::move(resp);
      }),
      ReadRoute()));

  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/runs/{id}/logs/download", SyncHandler([this](Request& req) {
        TRACK_ASSIGN_OR_RESPONSE(auto run, Run(P(req), req.Param("id")));
        std::string text;
        int64_t after = 0;
        while (true) {
          TRACK_ASSIGN_OR_RESPONSE(auto rows,
                                   db.Query("SELECT seq, level, message, ts FROM track_logs "
                                            "WHERE run_id = ? AND seq > ? ORDER BY seq "
                                            "LIMIT 10000",
                                            {run.id, after}));
          for (const auto& r : rows) {
            std::string level = r.Text("level");
            for (auto& c : level)
              c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            text += FormatTime(r.Int("ts") * 1000) + " " + level + " " + r.Text("message") + "\n";
            after = r.Int("seq");
          }
          if (rows.size() < 10000) break;
        }
        Response resp = Response::Text(200, std::move(text), "text/plain; charset=utf-8");
        resp.headers.Set("content-disposition",
                         "attachment; filename=\"run-" + IdStr(run.id) + "-logs.txt\"");
        return resp;
      }),
      ReadRoute()));
  return Status::Ok();
}

}  // namespace atrium::track
