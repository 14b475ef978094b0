// Private parts of the track service shared by its source files: the Impl with the handlers,
// and the JSON/SQL helpers they use. Not installed.
#pragma once

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "atrium/auth/audit.h"
#include "atrium/auth/principal.h"
#include "atrium/http/sse.h"
#include "atrium/track/downsample.h"
#include "atrium/track/track_service.h"
#include "live_hub.h"

namespace atrium::track {

namespace json = boost::json;
using http::Request;
using http::Response;

// ---- JSON helpers (json_util.cc) ----
Response Error(const Status& s);
Response JsonReply(int status, const json::value& v);
// The body as an object ({} when empty); 400 when it is not a JSON object. Bare NaN/Infinity
// tokens (Python's json.dumps) are accepted and read as the strings "NaN"/"Infinity".
Result<json::object> ParseBody(const Request& req);
Result<std::string> GetString(const json::object& o, std::string_view name, bool required,
                              size_t max_len = 1024);
Result<std::optional<int64_t>> GetInt(const json::object& o, std::string_view name);
// A number, or "NaN"/"Infinity"/"-Infinity"/null (NaN); `field` names it in errors.
Result<double> ToMetricValue(const json::value* v, const std::string& field);
// RFC 3339 UTC with microseconds, or null for 0.
json::value Time(int64_t micros);
std::string FormatTime(int64_t micros);
// A double as JSON; non-finite values as "NaN", "Infinity", "-Infinity".
json::value Num(double d);
// The same, appended as JSON text (hand-written JSON of hot paths).
void AppendJsonNumber(std::string& out, double d);
void AppendJsonInt(std::string& out, int64_t v);
json::value NumOrNull(const store::Row& row, std::string_view col);
json::value ParseJsonOr(const std::string& text, json::value fallback);
// Positive decimal id, else NotFound naming `what`.
Result<int64_t> ParseId(std::string_view text, std::string_view what);
std::string IdStr(int64_t id);
json::value IdOrNull(const store::Row& row, std::string_view col);
// Flattens a config object into dotted keys (arrays/objects-in-arrays as JSON text).
void Flatten(const json::object& o, const std::string& prefix,
             std::vector<std::pair<std::string, const json::value*>>& out);
int ClampLimit(const Request& req, int def, int max);
// The macro for handlers answering Response.
#define TRACK_ASSIGN_OR_RESPONSE(lhs, expr) \
  TRACK_ASSIGN_OR_RESPONSE_IMPL_(ATRIUM_CONCAT_(track_result_, __LINE__), lhs, expr)
#define TRACK_ASSIGN_OR_RESPONSE_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return Error(tmp.status());           \
  lhs = std::move(tmp).value()
#define TRACK_RETURN_IF_ERROR(expr)                       \
  do {                                                    \
    ::atrium::Status track_status_ = (expr);              \
    if (!track_status_.ok()) return Error(track_status_); \
  } while (0)

// A run the caller may see.
struct RunRef {
  int64_t id = 0;
  int64_t project_id = 0;
  std::string status;
};

// In-memory copy of recent metric series for fast history queries, validated against the
// summary's version (so writes by other nodes invalidate it). Thread-safe.
class SeriesCache {
 public:
  explicit SeriesCache(uint64_t max_points) : max_points_(max_points) {}
  // The cached series when its version is `version`.
  std::shared_ptr<const std::vector<SeriesPoint>> Get(int64_t run_id, int64_t key_id,
                                                      int64_t version);
  void Put(int64_t run_id, int64_t key_id, int64_t version,
           std::shared_ptr<const std::vector<SeriesPoint>> points);
  // Applies a committed batch (sorted, unique steps) that moved the version from
  // `new_version - 1` to `new_version`; drops the entry when it is not at the old version.
  void Apply(int64_t run_id, int64_t key_id, int64_t new_version,
             const std::vector<SeriesPoint>& batch);
  void Drop(int64_t run_id);

 private:
  struct Entry {
    int64_t version = 0;
    std::shared_ptr<const std::vector<SeriesPoint>> points;
    uint64_t last_use = 0;
  };
  void EvictLocked();
  const uint64_t max_points_;
  std::mutex mu_;
  std::map<std::pair<int64_t, int64_t>, Entry> entries_;  // guarded by mu_
  uint64_t total_points_ = 0;                             // guarded by mu_
  uint64_t clock_ = 0;                                    // guarded by mu_
};

class ArtifactRoutes;

class TrackService::Impl {
 public:
  ~Impl();
  // Defined in artifacts.cc, where ArtifactRoutes is complete.
  Impl(TrackOptions o, store::Database& d, store::BlobStore& b, Env& e, auth::AuditSink* a,
       bus::Bus* bus, std::shared_ptr<spdlog::logger> l);

  TrackOptions options;
  store::Database& db;
  store::BlobStore& blobs;
  Env& env;
  auth::AuditSink* audit;
  std::shared_ptr<spdlog::logger> log;
  SeriesCache series;
  LiveHub live;

  std::mutex keys_mu;
  std::unordered_map<std::string, int64_t> key_ids;  // guarded by keys_mu

  std::unique_ptr<ArtifactRoutes> artifact_routes;

  std::mutex sweeper_mu;
  std::condition_variable sweeper_cv;
  bool sweeper_stop = false;  // guarded by sweeper_mu
  std::thread sweeper;

  // ---- common (track_service.cc) ----
  static const auth::Principal& P(const Request& req);
  int64_t Now() { return env.NowMicros(); }
  void Audit(const Request& req, std::string action, std::string type, std::string id,
             std::string details = "{}");
  // Id of a metric/param key; created when `create`. Nullopt when absent and not created.
  Result<std::optional<int64_t>> KeyId(const std::string& name, bool create);
  // Project the caller may see; NotFound otherwise.
  Result<store::Row> ProjectRow(const auth::Principal& p, int64_t id);
  Result<int64_t> ProjectIdByName(const auth::Principal& p, const std::string& name, bool create);
  Result<RunRef> Run(const auth::Principal& p, std::string_view id_text);
  Result<json::array> RunsJson(const store::Rows& rows);
  Result<json::object> RunJson(int64_t id);
  Status WriteParams(store::Transaction& tx, int64_t run_id, const json::object& config,
                     bool replace_all);
  Status WriteTags(store::Transaction& tx, int64_t run_id, const json::object& tags);

  // ---- routes ----
  Status AddProjectRunRoutes(http::Router& r);
  Status AddMetricLogRoutes(http::Router& r);
  Status AddSearchRoutes(http::Router& r);
  Status AddArtifactRoutes(http::Router& r);
  Status AddSweepRoutes(http::Router& r);
  Status AddRegistryRoutes(http::Router& r);

  // Metric history for one series (cache-backed), serialized: {"key","total","downsampled",
  // "points"} with `extra_members` (e.g. "\"run_id\":\"7\",") first. `version`: the summary's
  // version when the caller read it already (batch queries), else read here.
  Result<std::string> History(int64_t run_id, const std::string& key, int64_t max_points,
                              std::optional<int64_t> min_step, std::optional<int64_t> max_step,
                              std::string_view extra_members = "",
                              std::optional<std::pair<int64_t, int64_t>> key_and_version = {});
};

// Route options shorthands.
inline http::RouteOptions ReadRoute() { return {.blocking = true, .auth_scope = "track:read"}; }
inline http::RouteOptions WriteRoute(size_t max_body = 0) {
  return {.max_body_bytes = max_body, .blocking = true, .auth_scope = "track:write"};
}

// Run columns selected for RunsJson, with alias r.
inline constexpr const char* kRunColumns =
    "r.id, r.project_id, r.name, r.status, r.config, r.tags, r.notes, r.grp, r.job_type, "
    "r.parent_id, r.sweep_id, r.git, r.host, r.created_by, r.start_time, r.end_time, "
    "r.heartbeat_at, r.exit_code";

}  // namespace atrium::track
