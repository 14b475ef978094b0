// Live updates of runs across nodes: the SSE streams `GET /runs/{id}/events` and
// `/runs/{id}/logs/stream` (docs/track.md, "Live updates").
//
// Handlers publish one bus record per committed batch (metric points, log lines, a status
// change) on the memory topic `track.live`, asynchronously, after the commit. Every node's hub
// subscribes to that topic and forwards each record to its own SSE viewers of the run, so a
// viewer connected to node B sees points ingested through node A. The record format is in
// docs/track.md ("Live updates on the bus"). Without a bus (a process that runs track alone,
// tests, benchmarks) the hub dispatches in-process instead.
//
// Delivery is best effort, like the live views it feeds: a failed publish is logged and counted
// (the data is committed; a reload shows it), and a viewer that falls behind — its SSE queue is
// full, or the hub itself lagged behind the topic's ring — is sent `resync` and closed.
//
// Thread-safe. The bus (if any) must outlive the hub.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/http/sse.h"
#include "atrium/track/downsample.h"

namespace spdlog {
class logger;
}

namespace atrium::bus {
class Bus;
class Subscription;
}  // namespace atrium::bus

namespace atrium::track {

// The bus topic of live events.
inline constexpr std::string_view kLiveTopic = "track.live";

// One metric key's points of a committed batch (sorted by step, unique steps).
struct LiveSeries {
  std::string_view key;
  std::span<const SeriesPoint> points;
};

// One committed log line.
struct LiveLogLine {
  int64_t seq = 0;
  std::string_view level;
  std::string_view message;
  int64_t ts_ms = 0;
};

class LiveHub {
 public:
  // `bus` null: in-process dispatch only. `log` may be null.
  LiveHub(bus::Bus* bus, std::shared_ptr<spdlog::logger> log);
  ~LiveHub();
  LiveHub(const LiveHub&) = delete;
  LiveHub& operator=(const LiveHub&) = delete;

  // Creates the topic and starts the reader thread (no-op without a bus). Errors: the bus's
  // (e.g. Unavailable when NATS cannot be reached).
  Status Start();
  // Stops the reader and closes every viewer's stream. Idempotent; run by the destructor.
  void Stop();

  // ---- publishing (after the commit) ----
  // Metric points of one batch: event `metrics`. Batches over kMaxRecordBytes go out as several
  // records (and SSE events).
  void PublishMetrics(int64_t run_id, std::span<const LiveSeries> series);
  // Log lines of one batch: one event `log` per line, id = seq.
  void PublishLogs(int64_t run_id, std::span<const LiveLogLine> lines);
  // Event `status`.
  void PublishStatus(int64_t run_id, std::string_view status);

  // ---- viewers ----
  class Viewer;
  // Registers an SSE stream for the run's events (`logs_only`: the `log` events only). A viewer
  // opened `held` buffers its events until Release, so the handler can first send what it reads
  // from the database without losing or reordering what is committed meanwhile.
  std::shared_ptr<Viewer> Subscribe(int64_t run_id, std::shared_ptr<http::SseWriter> writer,
                                    bool logs_only, bool held);
  // Sends the held events and goes live. `sent_log_seq`: log lines up to this seq were sent
  // already (from the database); such lines are skipped now and later.
  void Release(const std::shared_ptr<Viewer>& viewer, int64_t sent_log_seq);

  // Records that failed to publish (for tests and logs).
  uint64_t publish_failures() const { return publish_state_->failures.load(); }
  // Viewers currently registered (closed streams are dropped lazily).
  size_t viewers();

  // Largest payload of one bus record: NATS's default max_payload is 1 MiB.
  static constexpr size_t kMaxRecordBytes = 256 << 10;

 private:
  struct PublishState {
    std::atomic<uint64_t> failures{0};
    std::shared_ptr<spdlog::logger> log;
  };
  struct Event;
  void Publish(int64_t run_id, std::string_view event, std::string payload);
  // Decodes a record and writes it to the run's viewers.
  void Dispatch(int64_t run_id, std::string_view event, std::string_view payload);
  void Deliver(int64_t run_id, const std::vector<Event>& events);
  bool HasViewers(int64_t run_id);
  void ResyncAll();
  void ReadLoop();

  bus::Bus* const bus_;
  std::shared_ptr<spdlog::logger> log_;
  // Shared with publish callbacks, which may run after the hub is gone (NATS PubAck thread).
  std::shared_ptr<PublishState> publish_state_;
  std::unique_ptr<bus::Subscription> sub_;
  std::thread reader_;
  std::atomic<bool> stop_{false};

  std::mutex mu_;
  std::unordered_map<int64_t, std::vector<std::shared_ptr<Viewer>>> viewers_;  // guarded by mu_
  bool stopped_ = false;                                                       // guarded by mu_
};

}  // namespace atrium::track
