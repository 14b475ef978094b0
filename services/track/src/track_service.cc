// TrackService: construction, configuration, schema, shared helpers, the crash check, the series
// cache. Handlers live in the other files of this folder; live updates in live_hub.cc.
#include <algorithm>

#include "atrium/core/thread_name.h"
#include "track_impl.h"

namespace atrium::track {

void DefineTrackConfig(ConfigSchema& schema) {
  TrackOptions d;
  schema.DefineDuration("track.heartbeat_timeout", d.heartbeat_timeout,
                        "A running run without heartbeat this long becomes crashed");
  schema.DefineDuration("track.crash_check_interval", d.crash_check_interval,
                        "How often runs without heartbeat are looked for");
  schema.DefineBytes("track.max_batch_bytes", d.max_batch_bytes,
                     "Body limit of metric and log batches (413 beyond)");
  schema.DefineBytes("track.max_file_bytes", d.max_file_bytes,
                     "Body limit of run files and artifact blob uploads (413 beyond)");
  schema.DefineInt("track.series_cache_points", static_cast<int64_t>(d.series_cache_points),
                   "Metric points kept in memory for fast history queries (0 = none)", {.min = 0});
}

TrackOptions TrackOptionsFromConfig(const Config& c) {
  TrackOptions o;
  o.heartbeat_timeout = c.GetDuration("track.heartbeat_timeout");
  o.crash_check_interval = c.GetDuration("track.crash_check_interval");
  o.max_batch_bytes = c.GetBytes("track.max_batch_bytes");
  o.max_file_bytes = c.GetBytes("track.max_file_bytes");
  o.series_cache_points = static_cast<uint64_t>(c.GetInt("track.series_cache_points"));
  return o;
}

namespace {

// SQLite text; PostgreSQL gets BIGSERIAL ids and no WITHOUT ROWID (see PostgresOf).
constexpr const char* kSchemaV400 = R"sql(
CREATE TABLE track_projects (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workspace_id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  visibility TEXT NOT NULL DEFAULT 'workspace',
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  deleted_at BIGINT
);
CREATE UNIQUE INDEX track_projects_name ON track_projects(workspace_id, name) WHERE deleted_at IS NULL;
CREATE TABLE track_runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workspace_id TEXT NOT NULL,
  project_id BIGINT NOT NULL,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  config TEXT NOT NULL DEFAULT '{}',
  tags TEXT NOT NULL DEFAULT '{}',
  notes TEXT NOT NULL DEFAULT '',
  grp TEXT NOT NULL DEFAULT '',
  job_type TEXT NOT NULL DEFAULT '',
  parent_id BIGINT,
  sweep_id BIGINT,
  suggestion_id BIGINT,
  git TEXT NOT NULL DEFAULT '{}',
  host TEXT NOT NULL DEFAULT '{}',
  created_by TEXT NOT NULL,
  start_time BIGINT NOT NULL,
  end_time BIGINT,
  heartbeat_at BIGINT NOT NULL,
  exit_code BIGINT,
  log_seq BIGINT NOT NULL DEFAULT 0,
  deleted_at BIGINT
);
CREATE INDEX track_runs_project ON track_runs(project_id, start_time);
CREATE INDEX track_runs_running ON track_runs(status, heartbeat_at);
CREATE INDEX track_runs_sweep ON track_runs(sweep_id);
CREATE TABLE track_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE
);
CREATE TABLE track_params (
  run_id BIGINT NOT NULL,
  key_id BIGINT NOT NULL,
  num DOUBLE PRECISION,
  txt TEXT NOT NULL,
  PRIMARY KEY (run_id, key_id)
) WITHOUT ROWID;
CREATE INDEX track_params_num ON track_params(key_id, num);
CREATE TABLE track_tags (
  run_id BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE track_summary (
  run_id BIGINT NOT NULL,
  key_id BIGINT NOT NULL,
  last_step BIGINT NOT NULL,
  last_value DOUBLE PRECISION,
  last_ts BIGINT NOT NULL,
  min_value DOUBLE PRECISION,
  max_value DOUBLE PRECISION,
  count BIGINT NOT NULL,
  version BIGINT NOT NULL,
  PRIMARY KEY (run_id, key_id)
) WITHOUT ROWID;
CREATE INDEX track_summary_key ON track_summary(key_id, last_value);
CREATE TABLE track_points (
  run_id BIGINT NOT NULL,
  key_id BIGINT NOT NULL,
  step BIGINT NOT NULL,
  value DOUBLE PRECISION,
  ts BIGINT NOT NULL,
  PRIMARY KEY (run_id, key_id, step)
) WITHOUT ROWID;
CREATE TABLE track_logs (
  run_id BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL,
  ts BIGINT NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE track_files (
  run_id BIGINT NOT NULL,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (run_id, path)
);
CREATE TABLE track_blobs (
  workspace_id TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (workspace_id, sha256)
);
CREATE TABLE track_artifacts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workspace_id TEXT NOT NULL,
  project_id BIGINT NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  UNIQUE (project_id, name)
);
CREATE TABLE track_artifact_versions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  artifact_id BIGINT NOT NULL,
  idx BIGINT,
  state TEXT NOT NULL,
  digest TEXT NOT NULL DEFAULT '',
  size BIGINT NOT NULL DEFAULT 0,
  file_count BIGINT NOT NULL DEFAULT 0,
  metadata TEXT NOT NULL DEFAULT '{}',
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  UNIQUE (artifact_id, idx)
);
CREATE INDEX track_artifact_versions_digest ON track_artifact_versions(artifact_id, digest);
CREATE TABLE track_artifact_files (
  version_id BIGINT NOT NULL,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL DEFAULT '',
  size BIGINT NOT NULL DEFAULT 0,
  url TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (version_id, path)
);
CREATE TABLE track_artifact_aliases (
  artifact_id BIGINT NOT NULL,
  alias TEXT NOT NULL,
  version_id BIGINT NOT NULL,
  PRIMARY KEY (artifact_id, alias)
);
CREATE TABLE track_lineage (
  run_id BIGINT NOT NULL,
  version_id BIGINT NOT NULL,
  relation TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (run_id, version_id, relation)
);
CREATE INDEX track_lineage_version ON track_lineage(version_id);
CREATE TABLE track_sweeps (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workspace_id TEXT NOT NULL,
  project_id BIGINT NOT NULL,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  config TEXT NOT NULL,
  suggestion_count BIGINT NOT NULL DEFAULT 0,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE track_sweep_suggestions (
  sweep_id BIGINT NOT NULL,
  idx BIGINT NOT NULL,
  params TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (sweep_id, idx)
);
CREATE TABLE track_models (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workspace_id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '{}',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (workspace_id, name)
);
CREATE TABLE track_model_versions (
  model_id BIGINT NOT NULL,
  version BIGINT NOT NULL,
  run_id BIGINT,
  artifact_version_id BIGINT,
  description TEXT NOT NULL DEFAULT '',
  stage TEXT NOT NULL DEFAULT 'none',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (model_id, version)
);
CREATE TABLE track_model_transitions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  model_id BIGINT NOT NULL,
  version BIGINT NOT NULL,
  from_stage TEXT NOT NULL,
  to_stage TEXT NOT NULL,
  comment TEXT NOT NULL DEFAULT '',
  actor TEXT NOT NULL,
  at BIGINT NOT NULL
);
CREATE INDEX track_model_transitions_version ON track_model_transitions(model_id, version);
CREATE TABLE track_model_aliases (
  model_id BIGINT NOT NULL,
  alias TEXT NOT NULL,
  version BIGINT NOT NULL,
  PRIMARY KEY (model_id, alias)
)
)sql";

// Rollups of metric series (rollup.h), backfilled from the points already stored: the finest
// level from track_points (min/max over finite values only), each coarser one from the level
// below, then the value and timestamp at each chunk's last step. Widths: kRollupLevels.
std::string RollupSchemaV401() {
  std::string sql = R"sql(
CREATE TABLE track_rollups (
  run_id BIGINT NOT NULL,
  key_id BIGINT NOT NULL,
  width BIGINT NOT NULL,
  chunk BIGINT NOT NULL,
  first_step BIGINT NOT NULL,
  last_step BIGINT NOT NULL,
  last_value DOUBLE PRECISION,
  last_ts BIGINT NOT NULL,
  min_value DOUBLE PRECISION,
  max_value DOUBLE PRECISION,
  count BIGINT NOT NULL,
  PRIMARY KEY (run_id, key_id, width, chunk)
) WITHOUT ROWID;
)sql";
  const std::string insert =
      "INSERT INTO track_rollups(run_id, key_id, width, chunk, first_step, last_step, "
      "last_value, last_ts, min_value, max_value, count) ";
  const std::string finest = std::to_string(kRollupLevels[0]);
  const std::string finite =
      "CASE WHEN value >= -1.7976931348623157e308 AND value <= "
      "1.7976931348623157e308 THEN value END";
  sql += insert + "SELECT run_id, key_id, " + finest + ", step / " + finest +
         ", MIN(step), MAX(step), NULL, 0, MIN(" + finite + "), MAX(" + finite +
         "), COUNT(*) FROM track_points GROUP BY run_id, key_id, step / " + finest + ";\n";
  for (size_t i = 1; i < std::size(kRollupLevels); ++i) {
    const std::string ratio = std::to_string(kRollupLevels[i] / kRollupLevels[i - 1]);
    sql += insert + "SELECT run_id, key_id, " + std::to_string(kRollupLevels[i]) + ", chunk / " +
           ratio +
           ", MIN(first_step), MAX(last_step), NULL, 0, MIN(min_value), MAX(max_value), "
           "SUM(count) FROM track_rollups WHERE width = " +
           std::to_string(kRollupLevels[i - 1]) + " GROUP BY run_id, key_id, chunk / " + ratio +
           ";\n";
  }
  const std::string at_last =
      " FROM track_points p WHERE p.run_id = track_rollups.run_id AND p.key_id = "
      "track_rollups.key_id AND p.step = track_rollups.last_step)";
  sql += "UPDATE track_rollups SET last_value = (SELECT p.value" + at_last +
         ", last_ts = (SELECT p.ts" + at_last;
  return sql;
}

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

std::string PostgresOf(std::string sqlite) {
  sqlite =
      ReplaceAll(std::move(sqlite), "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY");
  return ReplaceAll(std::move(sqlite), " WITHOUT ROWID", "");
}

}  // namespace

std::vector<store::Migration> TrackMigrations() {
  return {store::Migration{.version = 400,
                           .name = "track_schema",
                           .sqlite_sql = kSchemaV400,
                           .postgres_sql = PostgresOf(kSchemaV400)},
          store::Migration{.version = 401,
                           .name = "track_rollups",
                           .sqlite_sql = RollupSchemaV401(),
                           .postgres_sql = PostgresOf(RollupSchemaV401())}};
}

// ---- SeriesCache ----

std::shared_ptr<const std::vector<SeriesPoint>> SeriesCache::Get(int64_t run_id, int64_t key_id,
                                                                 int64_t version) {
  std::lock_guard lock(mu_);
  auto it = entries_.find({run_id, key_id});
  if (it == entries_.end() || it->second.version != version) return nullptr;
  it->second.last_use = ++clock_;
  return it->second.points;
}

void SeriesCache::Put(int64_t run_id, int64_t key_id, int64_t version,
                      std::shared_ptr<const std::vector<SeriesPoint>> points) {
  if (points->size() > max_points_ / 2) return;  // would evict everything else
  std::lock_guard lock(mu_);
  auto& e = entries_[{run_id, key_id}];
  if (e.points) total_points_ -= e.points->size();
  total_points_ += points->size();
  e = Entry{version, std::move(points), ++clock_};
  EvictLocked();
}

void SeriesCache::Apply(int64_t run_id, int64_t key_id, int64_t new_version,
                        const std::vector<SeriesPoint>& batch) {
  std::lock_guard lock(mu_);
  auto it = entries_.find({run_id, key_id});
  if (it == entries_.end()) return;
  if (it->second.version != new_version - 1) {
    total_points_ -= it->second.points->size();
    entries_.erase(it);
    return;
  }
  const auto& old = *it->second.points;
  auto merged = std::make_shared<std::vector<SeriesPoint>>();
  if (old.empty() || batch.front().step > old.back().step) {
    // The common case: appending later steps.
    merged->reserve(old.size() + batch.size());
    merged->insert(merged->end(), old.begin(), old.end());
    merged->insert(merged->end(), batch.begin(), batch.end());
  } else {
    merged->reserve(old.size() + batch.size());
    size_t i = 0, j = 0;
    while (i < old.size() || j < batch.size()) {
      if (j == batch.size() || (i < old.size() && old[i].step < batch[j].step)) {
        merged->push_back(old[i++]);
      } else {
        if (i < old.size() && old[i].step == batch[j].step) ++i;  // last write wins
        merged->push_back(batch[j++]);
      }
    }
  }
  total_points_ += merged->size() - old.size();
  it->second.points = std::move(merged);
  it->second.version = new_version;
  it->second.last_use = ++clock_;
  EvictLocked();
}

void SeriesCache::Drop(int64_t run_id) {
  std::lock_guard lock(mu_);
  for (auto it = entries_.lower_bound({run_id, INT64_MIN});
       it != entries_.end() && it->first.first == run_id;) {
    total_points_ -= it->second.points->size();
    it = entries_.erase(it);
  }
}

void SeriesCache::EvictLocked() {
  while (total_points_ > max_points_ && !entries_.empty()) {
    auto victim = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.last_use < victim->second.last_use) victim = it;
    }
    total_points_ -= victim->second.points->size();
    entries_.erase(victim);
  }
}

// ---- Impl common ----

const auth::Principal& TrackService::Impl::P(const Request& req) {
  static const auth::Principal kNobody;
  const auto* p = std::any_cast<auth::Principal>(&req.principal);
  return p != nullptr ? *p : kNobody;
}

void TrackService::Impl::Audit(const Request& req, std::string action, std::string type,
                               std::string id, std::string details) {
  if (audit == nullptr) return;
  const auto& p = P(req);
  auth::AuditRecord r;
  r.at = Now();
  r.workspace_id = p.workspace_id;
  r.actor_type = p.is_api_key() ? "key" : "user";
  r.actor_id = p.is_api_key() ? p.key_id : p.user_id;
  r.action = std::move(action);
  r.resource_type = std::move(type);
  r.resource_id = std::move(id);
  r.ip = req.remote_addr.substr(0, req.remote_addr.rfind(':'));
  if (auto ua = req.headers.Get("user-agent")) r.user_agent = std::string(*ua).substr(0, 256);
  r.outcome = "success";
  r.details = std::move(details);
  if (Status s = audit->Record(std::move(r)); !s.ok() && log) {
    log->warn("audit record for {} failed: {}", req.path, s.ToString());
  }
}

Result<std::optional<int64_t>> TrackService::Impl::KeyId(const std::string& name, bool create) {
  {
    std::lock_guard lock(keys_mu);
    auto it = key_ids.find(name);
    if (it != key_ids.end()) return std::optional<int64_t>(it->second);
  }
  ASSIGN_OR_RETURN(auto rows, db.Query("SELECT id FROM track_keys WHERE name = ?", {name}));
  if (rows.empty()) {
    if (!create) return std::optional<int64_t>();
    RETURN_IF_ERROR(
        db.Exec("INSERT INTO track_keys(name) VALUES (?) ON CONFLICT (name) DO NOTHING", {name})
            .status());
    ASSIGN_OR_RETURN(rows, db.Query("SELECT id FROM track_keys WHERE name = ?", {name}));
    if (rows.empty()) return Internal("metric key " + name + " vanished");
  }
  int64_t id = rows[0].Int(0);
  std::lock_guard lock(keys_mu);
  if (key_ids.size() > 1'000'000) key_ids.clear();  // bound memory; ids are re-read
  key_ids[name] = id;
  return std::optional<int64_t>(id);
}

Result<store::Row> TrackService::Impl::ProjectRow(const auth::Principal& p, int64_t id) {
  ASSIGN_OR_RETURN(auto rows,
                   db.Query("SELECT id, name, description, visibility, created_by, created_at, "
                            "updated_at FROM track_projects WHERE id = ? AND workspace_id = ? "
                            "AND deleted_at IS NULL AND (visibility = 'workspace' OR "
                            "created_by = ?)",
                            {id, p.workspace_id, p.user_id}));
  if (rows.empty()) return NotFound("project " + IdStr(id) + " not found");
  return rows[0];
}

Result<RunRef> TrackService::Impl::Run(const auth::Principal& p, std::string_view id_text) {
  ASSIGN_OR_RETURN(int64_t id, ParseId(id_text, "run"));
  ASSIGN_OR_RETURN(auto rows,
                   db.Query("SELECT r.id, r.project_id, r.status FROM track_runs r JOIN "
                            "track_projects pr ON pr.id = r.project_id WHERE r.id = ? AND "
                            "r.workspace_id = ? AND r.deleted_at IS NULL AND pr.deleted_at IS "
                            "NULL AND (pr.visibility = 'workspace' OR pr.created_by = ?)",
                            {id, p.workspace_id, p.user_id}));
  if (rows.empty()) return NotFound("run " + std::string(id_text) + " not found");
  return RunRef{rows[0].Int(0), rows[0].Int(1), rows[0].Text(2)};
}

// ---- crash check ----

Result<int> TrackService::MarkCrashedRuns() {
  int64_t now = impl_->Now();
  int64_t cutoff =
      now - std::chrono::duration_cast<std::chrono::microseconds>(impl_->options.heartbeat_timeout)
                .count();
  ASSIGN_OR_RETURN(auto rows, impl_->db.Query("UPDATE track_runs SET status = 'crashed', "
                                              "end_time = ? WHERE status = 'running' AND "
                                              "heartbeat_at < ? RETURNING id",
                                              {now, cutoff}));
  for (const auto& r : rows) impl_->live.PublishStatus(r.Int(0), "crashed");
  if (!rows.empty() && impl_->log) impl_->log->info("marked {} run(s) crashed", rows.size());
  return static_cast<int>(rows.size());
}

void TrackService::Start() {
  std::lock_guard lock(impl_->sweeper_mu);
  if (impl_->sweeper.joinable()) return;
  impl_->sweeper_stop = false;
  impl_->sweeper = std::thread([this] {
    SetThreadName("track-sweeper");
    std::unique_lock lock(impl_->sweeper_mu);
    while (!impl_->sweeper_stop) {
      impl_->sweeper_cv.wait_for(lock, impl_->options.crash_check_interval);
      if (impl_->sweeper_stop) break;
      lock.unlock();
      auto n = MarkCrashedRuns();
      if (!n.ok() && impl_->log) impl_->log->warn("crash check failed: {}", n.status().ToString());
      lock.lock();
    }
  });
}

void TrackService::Stop() {
  std::thread t;
  {
    std::lock_guard lock(impl_->sweeper_mu);
    impl_->sweeper_stop = true;
    t = std::move(impl_->sweeper);
  }
  impl_->sweeper_cv.notify_all();
  if (t.joinable()) t.join();
}

// ---- service ----

Result<std::unique_ptr<TrackService>> TrackService::Create(TrackOptions options,
                                                           store::Database& db,
                                                           store::BlobStore& blobs, Env& env,
                                                           auth::AuditSink* audit, bus::Bus* bus,
                                                           std::shared_ptr<spdlog::logger> log) {
  if (options.crash_check_interval.count() <= 0) {
    return InvalidArgument("track.crash_check_interval must be positive");
  }
  auto impl = std::make_unique<Impl>(options, db, blobs, env, audit, bus, std::move(log));
  RETURN_IF_ERROR(impl->live.Start());
  return std::unique_ptr<TrackService>(new TrackService(std::move(impl)));
}

TrackService::TrackService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TrackService::~TrackService() { Stop(); }

Status TrackService::AddRoutes(http::Router& router) {
  RETURN_IF_ERROR(impl_->AddProjectRunRoutes(router));
  RETURN_IF_ERROR(impl_->AddMetricLogRoutes(router));
  RETURN_IF_ERROR(impl_->AddSearchRoutes(router));
  RETURN_IF_ERROR(impl_->AddArtifactRoutes(router));
  RETURN_IF_ERROR(impl_->AddSweepRoutes(router));
  RETURN_IF_ERROR(impl_->AddRegistryRoutes(router));
  return Status::Ok();
}

}  // namespace atrium::track
