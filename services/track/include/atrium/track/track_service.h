// TrackService: Atrium's experiment tracker — projects, runs, params, metrics (time series and
// system metrics), logs, files, artifacts with versions, aliases and lineage, sweeps and a model
// registry, all scoped to the caller's workspace, over the REST API under /api/v1/ described in
// docs/track.md (the binding contract for clients such as sdk/python).
//
// Storage: the relational Database (SQLite or PostgreSQL, same SQL; migrations 400-499 from
// TrackMigrations()) and a content-addressed BlobStore for files and artifact content. Every
// mutation is recorded through the AuditSink. A background thread marks runs without a heartbeat
// for `heartbeat_timeout` as crashed (Start/Stop).
//
// Live updates (SSE) travel through the bus: every committed metric batch, log batch and status
// change is published on the memory topic `track.live`, and each instance forwards that topic to
// its own SSE viewers, so a viewer on one node sees what another node ingested. Without a bus the
// live updates stay inside the process.
//
// Thread-safe. The Database, BlobStore, Env, AuditSink and Bus must outlive the service, and the
// service must outlive the Router/Server it registered routes on.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "atrium/core/config.h"
#include "atrium/core/env.h"
#include "atrium/core/status.h"
#include "atrium/http/router.h"
#include "atrium/store/blob_store.h"
#include "atrium/store/database.h"
#include "atrium/store/migrations.h"

namespace spdlog {
class logger;
}

namespace atrium::auth {
class AuditSink;
}

namespace atrium::bus {
class Bus;
}

namespace atrium::track {

struct TrackOptions {
  // A running run with no heartbeat (or ingest) for this long becomes `crashed`.
  std::chrono::milliseconds heartbeat_timeout{5 * 60 * 1000};
  // How often the crash check runs (Start()).
  std::chrono::milliseconds crash_check_interval{30 * 1000};
  // Body limit of metric and log batches (413 beyond).
  uint64_t max_batch_bytes = 16ull << 20;
  // Body limit of run files and blob uploads (413 beyond).
  uint64_t max_file_bytes = 1ull << 30;
  // Metric points kept in memory for history queries (0 = no cache).
  uint64_t series_cache_points = 20'000'000;
};

// Declares the track.* keys (docs/track.md, Configuration).
void DefineTrackConfig(ConfigSchema& schema);
TrackOptions TrackOptionsFromConfig(const Config& config);

// The module's schema (versions 400-499).
std::vector<store::Migration> TrackMigrations();

class TrackService {
 public:
  // `db` must be migrated with TrackMigrations(). `audit` may be null (no audit records). `bus`
  // carries live updates between the nodes that share `db`; null keeps them in this process
  // (one node only). Fails with the bus's error when its topic cannot be created or read.
  // `log` may be null.
  static Result<std::unique_ptr<TrackService>> Create(
      TrackOptions options, store::Database& db, store::BlobStore& blobs, Env& env,
      auth::AuditSink* audit, bus::Bus* bus, std::shared_ptr<spdlog::logger> log = nullptr);
  ~TrackService();
  TrackService(const TrackService&) = delete;
  TrackService& operator=(const TrackService&) = delete;

  // Registers every route of the module (scopes track:read / track:write).
  Status AddRoutes(http::Router& router);

  // Starts / stops the background crash check. Stop is idempotent and also run by the destructor
  // (which also stops the live updates).
  void Start();
  void Stop();
  // Runs one crash check now; returns how many runs became crashed.
  Result<int> MarkCrashedRuns();

  class Impl;

 private:
  explicit TrackService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::track
