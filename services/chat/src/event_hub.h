// EventHub: chat's realtime fan-out (docs/chat.md, "Events").
//
// Publishing: Publish() puts a stored event on the durable events topic (after the caller's
// transaction, which wrote it to the outbox, committed) and waits until the bus accepted it; an
// event the outbox relay publishes again keeps its event id and is dispatched once;
// PublishEphemeral() puts typing and presence on the memory topic. A record's payload is
// {"type","users":[...],"data":{...}}.
//
// Delivery: one subscription per topic, each read by its own thread, fans a record out to every
// open stream of its audience. The frame (`id: <offset>`, `event: <type>`, `data: <data>`) is
// rendered once per record. Each stream's queue is bounded (BodyStream); a stream whose queue is
// full is closed with a `resync` event. A stream opened with Last-Event-ID first replays the
// topic from that offset + 1 (its own subscription) while live records are held for it; then it
// goes live. A position older than the topic's first retained offset (or beyond the topic's
// newest record) gets `resync`. A position ahead of this hub but within the topic (an id another
// node's hub delivered before this one read it) is served by skipping the records up to it.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "atrium/bus/bus.h"
#include "atrium/core/metrics.h"
#include "atrium/http/sse.h"
#include "chat_store.h"

namespace atrium::chat {

struct HubOptions {
  std::string events_topic;
  std::string ephemeral_topic;
  uint64_t events_retention_bytes = 0;
  uint64_t events_segment_bytes = 64ull << 20;
  size_t stream_queue_bytes = 1 << 20;
  size_t max_pending_events = 20000;
  std::chrono::milliseconds replay_stall_timeout{5000};
  std::chrono::milliseconds heartbeat{15000};
};

class EventHub {
 public:
  // One open SSE stream.
  struct Stream {
    std::string user_id, workspace_id;
    std::shared_ptr<http::SseWriter> writer;
    std::mutex mu;
    bool live = false;  // guarded by mu
    // Durable frames held until live, with their offsets; guarded by mu.
    std::deque<std::pair<uint64_t, std::shared_ptr<const std::string>>> pending;
    bool overflow = false;  // guarded by mu
    // Durable records below this offset are not written to the stream: the client saw them
    // (a Last-Event-ID ahead of this node's hub, given by another node). Guarded by mu.
    uint64_t skip_below = 0;
    uint64_t live_from = 0;  // first offset the hub delivers to this stream
  };

  EventHub(bus::Bus& bus, HubOptions options, MetricsRegistry* metrics);
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Creates the topics when missing, subscribes and starts the reader threads.
  Status Start();
  // Ends every stream (shutdown event) and joins the threads. Idempotent.
  void Stop();

  Status Publish(const std::vector<Event>& events);
  Status PublishEphemeral(const Event& event);

  // Opens a stream for `user_id`: registered at once (events from now on are kept for it); the
  // returned response must be sent, then Resume() called on the same thread.
  std::pair<http::Response, std::shared_ptr<Stream>> Open(const std::string& user_id,
                                                          const std::string& workspace_id);
  // Replays from `last_event_id` + 1 (when given), then makes the stream live; ends it with
  // `resync` when the position cannot be served.
  void Resume(const std::shared_ptr<Stream>& stream, std::optional<uint64_t> last_event_id);

  size_t open_streams() const;
  size_t open_streams_of(const std::string& user_id) const;
  uint64_t resyncs() const { return resyncs_.load(); }
  // Not ok once a reader thread failed.
  Status health() const;

  // Invoked when the last stream of a user on this node closed, on the hub's ephemeral reader
  // thread (never on an I/O thread: the callback may query the database).
  void SetOnLastClose(std::function<void(const std::string& user, const std::string& ws)> fn) {
    on_last_close_ = std::move(fn);
  }
  // Invoked about every 200 ms (and after each ephemeral record) on the ephemeral reader thread:
  // expiry of presence. Set before Start().
  void SetOnTick(std::function<void()> fn) { on_tick_ = std::move(fn); }

 private:
  void ReadLoop(bus::Subscription* sub, bool durable);
  void Dispatch(const bus::Record& record, bool durable);
  void Remove(const std::shared_ptr<Stream>& stream);
  void Resync(Stream& stream, std::string_view reason);
  // Writes to a stream that is being replayed; waits for room up to the stall timeout.
  bool WritePatiently(Stream& stream, const std::string& frame);
  // False when the event id was dispatched recently (the relay re-published it). Under mu_.
  bool FirstSighting(int64_t event_id);

  bus::Bus& bus_;
  const HubOptions options_;
  std::unique_ptr<bus::Subscription> durable_sub_, ephemeral_sub_;
  std::thread durable_thread_, ephemeral_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> resyncs_{0};
  Counter* resync_counter_ = nullptr;
  Counter* delivered_counter_ = nullptr;
  std::function<void(const std::string&, const std::string&)> on_last_close_;
  std::function<void()> on_tick_;

  mutable std::mutex mu_;
  std::multimap<std::string, std::shared_ptr<Stream>> streams_;  // by user id; guarded by mu_
  uint64_t next_offset_ = 0;  // next durable offset the hub dispatches; guarded by mu_
  Status health_;             // guarded by mu_
  bool stopped_ = false;      // guarded by mu_
  std::vector<std::pair<std::string, std::string>> last_closed_;  // (user, ws); guarded by mu_
  static constexpr size_t kSeenIds = 65536;
  std::unordered_set<int64_t> seen_ids_;  // recent event ids; guarded by mu_
  std::deque<int64_t> seen_order_;        // the same, oldest first; guarded by mu_
};

}  // namespace atrium::chat
