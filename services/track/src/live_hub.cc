// LiveHub: live run events through the bus topic `track.live` (format: docs/track.md, "Live
// updates on the bus").
#include "live_hub.h"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>

#include "atrium/bus/bus.h"
#include "atrium/core/thread_name.h"
#include "atrium/http/json_error.h"
#include "track_impl.h"

namespace atrium::track {
namespace {

// Metric records are copied point by point as raw little-endian bytes.
static_assert(std::endian::native == std::endian::little, "the live record format is LE");
static_assert(sizeof(SeriesPoint) == 24 && std::is_trivially_copyable_v<SeriesPoint>);
constexpr uint8_t kMetricsFormat = 1;
constexpr size_t kPointBytes = 24;
// Events a held viewer may buffer before it is told to resync.
constexpr size_t kMaxHeldEvents = 10000;
constexpr auto kPoll = std::chrono::milliseconds(200);

void PutU32(std::string& out, uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

bool GetU32(std::string_view& in, uint32_t& v) {
  if (in.size() < 4) return false;
  std::memcpy(&v, in.data(), 4);
  in.remove_prefix(4);
  return true;
}

http::SseEvent Resync() { return http::SseEvent{.event = "resync", .data = "{}"}; }

}  // namespace

struct LiveHub::Event {
  bool is_log = false;
  int64_t log_seq = 0;
  std::shared_ptr<const std::string> frame;  // the SSE wire text
};

class LiveHub::Viewer {
 public:
  Viewer(int64_t run, std::shared_ptr<http::SseWriter> w, bool logs, bool hold)
      : run_id(run), writer(std::move(w)), logs_only(logs), held(hold) {}
  const int64_t run_id;
  const std::shared_ptr<http::SseWriter> writer;
  const bool logs_only;
  // Guarded by the hub's mu_.
  bool held;
  bool overflow = false;
  int64_t sent_log_seq = 0;
  std::vector<Event> pending;
};

LiveHub::LiveHub(bus::Bus* bus, std::shared_ptr<spdlog::logger> log)
    : bus_(bus), log_(std::move(log)), publish_state_(std::make_shared<PublishState>()) {
  publish_state_->log = log_;
}

LiveHub::~LiveHub() { Stop(); }

Status LiveHub::Start() {
  if (bus_ == nullptr) return Status::Ok();
  // Ephemeral: live views need no history, and a ring of 256 records bounds the memory that
  // large batches can hold (the resume of log streams reads the database, not the topic).
  bus::TopicOptions o;
  o.durability = bus::Durability::kMemory;
  o.overflow = bus::OverflowPolicy::kDropOldest;
  o.ring_pow = 8;
  o.retention.max_bytes = 64ull << 20;
  o.retention.max_age = std::chrono::seconds(60);
  RETURN_IF_ERROR(bus_->CreateTopic(kLiveTopic, o));
  auto sub =
      bus_->Subscribe({.pattern = std::string(kLiveTopic), .start = bus::StartPosition::Latest()});
  if (!sub.ok()) return sub.status().WithContext("subscribing to " + std::string(kLiveTopic));
  sub_ = std::move(*sub);
  reader_ = std::thread([this] {
    SetThreadName("track-live");
    ReadLoop();
  });
  return Status::Ok();
}

void LiveHub::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    viewers_.clear();
  }
  stop_ = true;
  if (reader_.joinable()) reader_.join();
  if (sub_) sub_->Close();
}

// ---- publishing ----

void LiveHub::Publish(int64_t run_id, std::string_view event, std::string payload) {
  if (bus_ == nullptr) {
    Dispatch(run_id, event, payload);
    return;
  }
  std::vector<bus::Message> batch;
  batch.push_back(bus::Message{.key = std::to_string(run_id),
                               .headers = {{"event", std::string(event)}},
                               .payload = std::move(payload)});
  bus_->PublishBatchAsync(
      kLiveTopic, std::move(batch), [state = publish_state_](Result<bus::OffsetRange> r) {
        if (r.ok()) return;
        uint64_t n = ++state->failures;
        if (state->log && (n == 1 || n % 1000 == 0)) {
          state->log->warn("live update not published ({} so far): {}", n, r.status().ToString());
        }
      });
}

void LiveHub::PublishMetrics(int64_t run_id, std::span<const LiveSeries> series) {
  // Without a bus nobody else can be watching.
  if (bus_ == nullptr && !HasViewers(run_id)) return;
  std::string payload(1, static_cast<char>(kMetricsFormat));
  for (const auto& s : series) {
    const size_t header = 8 + s.key.size();
    size_t i = 0;
    while (i < s.points.size()) {
      if (payload.size() > 1 && payload.size() + header + kPointBytes > kMaxRecordBytes) {
        Publish(run_id, "metrics", std::move(payload));
        payload.assign(1, static_cast<char>(kMetricsFormat));
      }
      size_t room =
          (kMaxRecordBytes - std::min(kMaxRecordBytes, payload.size() + header)) / kPointBytes;
      size_t n = std::min(std::max<size_t>(room, 1), s.points.size() - i);
      PutU32(payload, static_cast<uint32_t>(s.key.size()));
      payload.append(s.key);
      PutU32(payload, static_cast<uint32_t>(n));
      payload.append(reinterpret_cast<const char*>(s.points.data() + i), n * kPointBytes);
      i += n;
    }
  }
  if (payload.size() > 1) Publish(run_id, "metrics", std::move(payload));
}

void LiveHub::PublishLogs(int64_t run_id, std::span<const LiveLogLine> lines) {
  if (bus_ == nullptr && !HasViewers(run_id)) return;
  std::string payload = "[";
  for (const auto& l : lines) {
    if (payload.size() > 1 && payload.size() + l.message.size() + 96 > kMaxRecordBytes) {
      payload += "]";
      Publish(run_id, "log", std::move(payload));
      payload = "[";
    }
    payload += payload.size() == 1 ? "{\"seq\":" : ",{\"seq\":";
    AppendJsonInt(payload, l.seq);
    payload += ",\"level\":" + http::JsonQuote(l.level);
    payload += ",\"message\":" + http::JsonQuote(l.message);
    payload += ",\"timestamp\":";
    AppendJsonInt(payload, l.ts_ms);
    payload += "}";
  }
  if (payload.size() > 1) Publish(run_id, "log", payload + "]");
}

void LiveHub::PublishStatus(int64_t run_id, std::string_view status) {
  if (bus_ == nullptr && !HasViewers(run_id)) return;
  Publish(run_id, "status", "{\"status\":" + http::JsonQuote(status) + "}");
}

// ---- delivery ----

void LiveHub::Dispatch(int64_t run_id, std::string_view event, std::string_view payload) {
  std::vector<Event> events;
  if (event == "metrics") {
    std::string_view in = payload;
    if (in.empty() || static_cast<uint8_t>(in[0]) != kMetricsFormat) return;
    in.remove_prefix(1);
    std::string data = "{\"points\":[";
    data.reserve(32 + in.size() * 3);
    bool first = true;
    while (!in.empty()) {
      uint32_t key_len = 0, n = 0;
      if (!GetU32(in, key_len) || in.size() < key_len) return;  // malformed: dropped
      std::string quoted_key = http::JsonQuote(in.substr(0, key_len));
      in.remove_prefix(key_len);
      if (!GetU32(in, n) || in.size() / kPointBytes < n) return;
      for (uint32_t i = 0; i < n; ++i) {
        SeriesPoint p;
        std::memcpy(&p, in.data() + static_cast<size_t>(i) * kPointBytes, kPointBytes);
        data += first ? "{\"key\":" : ",{\"key\":";
        first = false;
        data += quoted_key;
        data += ",\"step\":";
        AppendJsonInt(data, p.step);
        data += ",\"value\":";
        AppendJsonNumber(data, p.value);
        data += ",\"timestamp\":";
        AppendJsonInt(data, p.ts_ms);
        data += "}";
      }
      in.remove_prefix(static_cast<size_t>(n) * kPointBytes);
    }
    data += "]}";
    events.push_back(Event{.frame = std::make_shared<const std::string>(http::FormatSseEvent(
                               http::SseEvent{.event = "metrics", .data = std::move(data)}))});
  } else if (event == "log") {
    boost::system::error_code ec;
    json::value v = json::parse(payload, ec);
    if (ec || !v.is_array()) return;
    for (const auto& line : v.as_array()) {
      const auto* seq = line.is_object() ? line.as_object().if_contains("seq") : nullptr;
      if (seq == nullptr || !seq->is_int64()) continue;
      events.push_back(Event{.is_log = true,
                             .log_seq = seq->as_int64(),
                             .frame = std::make_shared<const std::string>(http::FormatSseEvent(
                                 http::SseEvent{.id = std::to_string(seq->as_int64()),
                                                .event = "log",
                                                .data = json::serialize(line)}))});
    }
  } else if (event == "status") {
    events.push_back(Event{.frame = std::make_shared<const std::string>(http::FormatSseEvent(
                               http::SseEvent{.event = "status", .data = std::string(payload)}))});
  }
  if (!events.empty()) Deliver(run_id, events);
}

void LiveHub::Deliver(int64_t run_id, const std::vector<Event>& events) {
  std::vector<std::shared_ptr<Viewer>> cut;
  {
    std::lock_guard lock(mu_);
    auto it = viewers_.find(run_id);
    if (it == viewers_.end()) return;
    auto& list = it->second;
    std::erase_if(list, [](const auto& v) { return v->writer->closed(); });
    for (const auto& v : list) {
      for (const auto& e : events) {
        if (v->logs_only && !e.is_log) continue;
        if (e.is_log && e.log_seq <= v->sent_log_seq) continue;
        if (v->held) {
          if (v->pending.size() >= kMaxHeldEvents) {
            v->overflow = true;
          } else {
            v->pending.push_back(e);
          }
          continue;
        }
        // A client too slow to keep up is told to resync and dropped.
        if (v->writer->stream().Write(*e.frame) == http::BodyStream::WriteResult::kFull) {
          cut.push_back(v);
          break;
        }
      }
    }
    if (list.empty()) viewers_.erase(it);
  }
  for (auto& v : cut) v->writer->Close(Resync());
}

std::shared_ptr<LiveHub::Viewer> LiveHub::Subscribe(int64_t run_id,
                                                    std::shared_ptr<http::SseWriter> writer,
                                                    bool logs_only, bool held) {
  auto viewer = std::make_shared<Viewer>(run_id, std::move(writer), logs_only, held);
  std::lock_guard lock(mu_);
  if (stopped_) return viewer;
  auto& list = viewers_[run_id];
  std::erase_if(list, [](const auto& v) { return v->writer->closed(); });
  list.push_back(viewer);
  return viewer;
}

void LiveHub::Release(const std::shared_ptr<Viewer>& viewer, int64_t sent_log_seq) {
  bool resync = false;
  {
    std::lock_guard lock(mu_);
    viewer->sent_log_seq = std::max(viewer->sent_log_seq, sent_log_seq);
    viewer->held = false;
    resync = viewer->overflow;
    for (const auto& e : viewer->pending) {
      if (resync) break;
      if (e.is_log && e.log_seq <= viewer->sent_log_seq) continue;
      resync = viewer->writer->stream().Write(*e.frame) == http::BodyStream::WriteResult::kFull;
    }
    viewer->pending.clear();
  }
  if (resync) viewer->writer->Close(Resync());
}

bool LiveHub::HasViewers(int64_t run_id) {
  std::lock_guard lock(mu_);
  auto it = viewers_.find(run_id);
  return it != viewers_.end() && !it->second.empty();
}

size_t LiveHub::viewers() {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [run, list] : viewers_) {
    n +=
        std::count_if(list.begin(), list.end(), [](const auto& v) { return !v->writer->closed(); });
  }
  return n;
}

void LiveHub::ResyncAll() {
  std::vector<std::shared_ptr<Viewer>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [run, list] : viewers_) all.insert(all.end(), list.begin(), list.end());
    viewers_.clear();
  }
  for (auto& v : all) v->writer->Close(Resync());
}

void LiveHub::ReadLoop() {
  uint64_t errors = 0;
  while (!stop_) {
    auto d = sub_->Next(kPoll);
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kDeadlineExceeded) continue;
      if (d.status().code() == StatusCode::kCancelled) return;
      if (log_ && (errors++ % 100) == 0) {
        log_->warn("live updates: reading {}: {}", kLiveTopic, d.status().ToString());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (d->kind != bus::Delivery::Kind::kRecord) {
      // The hub fell behind the topic's ring: every viewer may have missed events.
      if (log_) log_->warn("live updates: the hub lagged behind {}; viewers resync", kLiveTopic);
      ResyncAll();
      continue;
    }
    const bus::Record& rec = *d->record;
    int64_t run_id = 0;
    auto [ptr, ec] = std::from_chars(rec.key.data(), rec.key.data() + rec.key.size(), run_id);
    const std::string* event = rec.FindHeader("event");
    if (ec != std::errc() || event == nullptr) continue;  // not ours
    if (!HasViewers(run_id)) continue;
    Dispatch(run_id, *event, rec.payload);
  }
}

}  // namespace atrium::track
