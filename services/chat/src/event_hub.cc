#include "event_hub.h"

#include <algorithm>
#include <unordered_set>
#include <utility>

#include "atrium/core/thread_name.h"

namespace atrium::chat {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(200);

struct Decoded {
  std::string type;
  std::vector<std::string> users;
  std::string data;
  int64_t event_id = 0;  // the outbox id (0: none); a re-published event repeats it
};

std::optional<Decoded> DecodeEvent(const std::string& payload) {
  boost::system::error_code ec;
  json::value v = json::parse(payload, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  const json::value* type = o.if_contains("type");
  const json::value* users = o.if_contains("users");
  const json::value* data = o.if_contains("data");
  if (type == nullptr || !type->is_string() || users == nullptr || !users->is_array() ||
      data == nullptr) {
    return std::nullopt;
  }
  Decoded d;
  d.type = std::string(type->as_string());
  for (const auto& u : users->as_array()) {
    if (u.is_string()) d.users.emplace_back(u.as_string());
  }
  d.data = json::serialize(*data);
  if (const json::value* id = o.if_contains("event_id"); id != nullptr && id->is_int64()) {
    d.event_id = id->as_int64();
  }
  return d;
}

bool Addressed(const Decoded& d, const std::string& user) {
  return std::find(d.users.begin(), d.users.end(), user) != d.users.end();
}

}  // namespace

EventHub::EventHub(bus::Bus& bus, HubOptions options, MetricsRegistry* metrics)
    : bus_(bus), options_(std::move(options)) {
  if (metrics != nullptr) {
    resync_counter_ = &metrics
                           ->Counter("chat_sse_resync_total",
                                     "Chat SSE streams ended with `resync` (slow client, position "
                                     "older than retention)")
                           .Get();
    delivered_counter_ =
        &metrics->Counter("chat_sse_events_total", "Chat events written to SSE streams").Get();
  }
}

EventHub::~EventHub() { Stop(); }

Status EventHub::Start() {
  bus::TopicOptions durable;
  durable.durability = bus::Durability::kAsync;
  durable.retention.max_bytes = options_.events_retention_bytes;
  durable.segment_bytes = options_.events_segment_bytes;
  RETURN_IF_ERROR(bus_.CreateTopic(options_.events_topic, durable));
  bus::TopicOptions ephemeral;
  ephemeral.durability = bus::Durability::kMemory;
  ephemeral.overflow = bus::OverflowPolicy::kDropOldest;
  ephemeral.ring_pow = 12;
  RETURN_IF_ERROR(bus_.CreateTopic(options_.ephemeral_topic, ephemeral));
  ASSIGN_OR_RETURN(bus::TopicStats stats, bus_.GetTopicStats(options_.events_topic));
  {
    std::lock_guard lock(mu_);
    next_offset_ = stats.next_offset;
  }
  ASSIGN_OR_RETURN(durable_sub_,
                   bus_.Subscribe({.pattern = options_.events_topic,
                                   .start = bus::StartPosition::AtOffset(stats.next_offset)}));
  ASSIGN_OR_RETURN(ephemeral_sub_, bus_.Subscribe({.pattern = options_.ephemeral_topic,
                                                   .start = bus::StartPosition::Latest()}));
  durable_thread_ = std::thread([this] {
    SetThreadName("chat-events");
    ReadLoop(durable_sub_.get(), true);
  });
  ephemeral_thread_ = std::thread([this] {
    SetThreadName("chat-ephemeral");
    ReadLoop(ephemeral_sub_.get(), false);
  });
  return Status::Ok();
}

void EventHub::Stop() {
  std::multimap<std::string, std::shared_ptr<Stream>> streams;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    streams.swap(streams_);
  }
  stop_ = true;  // the readers notice within one poll
  if (durable_thread_.joinable()) durable_thread_.join();
  if (ephemeral_thread_.joinable()) ephemeral_thread_.join();
  if (durable_sub_) durable_sub_->Close();
  if (ephemeral_sub_) ephemeral_sub_->Close();
  for (auto& [user, s] : streams) {
    s->writer->Close(http::SseEvent{.event = "shutdown", .data = "{}"});
  }
}

Status EventHub::Publish(const std::vector<Event>& events) {
  if (events.empty()) return Status::Ok();
  std::vector<bus::Message> batch;
  batch.reserve(events.size());
  for (const auto& e : events) {
    batch.push_back(
        bus::Message{.key = e.chat_id, .headers = {{"type", e.type}}, .payload = EncodeEvent(e)});
  }
  auto r = bus_.PublishBatch(options_.events_topic, std::move(batch));
  if (!r.ok()) return r.status().WithContext("publishing chat events");
  return Status::Ok();
}

Status EventHub::PublishEphemeral(const Event& e) {
  auto r = bus_.Publish(
      options_.ephemeral_topic,
      bus::Message{.key = e.chat_id, .headers = {{"type", e.type}}, .payload = EncodeEvent(e)});
  return r.ok() ? Status::Ok() : r.status();
}

std::pair<http::Response, std::shared_ptr<EventHub::Stream>> EventHub::Open(
    const std::string& user_id, const std::string& workspace_id) {
  auto [response, writer] = http::SseResponse(
      {.max_queued_bytes = options_.stream_queue_bytes, .heartbeat = options_.heartbeat});
  auto stream = std::make_shared<Stream>();
  stream->user_id = user_id;
  stream->workspace_id = workspace_id;
  stream->writer = writer;
  {
    std::lock_guard lock(mu_);
    if (stopped_) {
      writer->Close(http::SseEvent{.event = "shutdown", .data = "{}"});
      return {std::move(response), stream};
    }
    stream->live_from = next_offset_;
    streams_.emplace(user_id, stream);
  }
  std::weak_ptr<Stream> weak = stream;
  writer->stream().OnClose([this, weak] {
    if (auto s = weak.lock()) Remove(s);
  });
  return {std::move(response), stream};
}

void EventHub::Remove(const std::shared_ptr<Stream>& stream) {
  bool last = false;
  {
    std::lock_guard lock(mu_);
    auto range = streams_.equal_range(stream->user_id);
    bool found = false;
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == stream) {
        streams_.erase(it);
        found = true;
        break;
      }
    }
    last = found && streams_.count(stream->user_id) == 0 && !stopped_;
    if (last) last_closed_.emplace_back(stream->user_id, stream->workspace_id);
  }
}

void EventHub::Resync(Stream& stream, std::string_view reason) {
  ++resyncs_;
  if (resync_counter_ != nullptr) resync_counter_->Inc();
  stream.writer->Close(
      http::SseEvent{.event = "resync", .data = json::serialize(json::object{{"reason", reason}})});
}

bool EventHub::WritePatiently(Stream& stream, const std::string& frame) {
  auto deadline = std::chrono::steady_clock::now() + options_.replay_stall_timeout;
  while (true) {
    auto r = stream.writer->stream().Write(frame);
    if (r == http::BodyStream::WriteResult::kOk) {
      if (delivered_counter_ != nullptr) delivered_counter_->Inc();
      return true;
    }
    if (r == http::BodyStream::WriteResult::kClosed) return false;
    if (std::chrono::steady_clock::now() >= deadline || stop_) {
      Resync(stream, "slow_client");
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void EventHub::Resume(const std::shared_ptr<Stream>& stream,
                      std::optional<uint64_t> last_event_id) {
  Stream& s = *stream;
  if (last_event_id) {
    const uint64_t from = *last_event_id + 1;
    auto stats = bus_.GetTopicStats(options_.events_topic);
    // The topic's end, not this hub's position, bounds a valid id: with several nodes the id may
    // come from another node's hub that read the topic before this one did.
    const uint64_t topic_end = stats.ok() ? std::max(stats->next_offset, s.live_from) : 0;
    if (!stats.ok() || from < stats->first_offset || from > topic_end) {
      Resync(s, !stats.ok()                  ? "unavailable"
                : from < stats->first_offset ? "too_old"
                                             : "unknown_id");
      return;
    }
    if (from > s.live_from) {
      // Ahead of this hub: drop what it held below `from` and skip the rest as it arrives.
      std::lock_guard lock(s.mu);
      s.skip_below = from;
      std::erase_if(s.pending, [from](const auto& held) { return held.first < from; });
    }
    if (from < s.live_from) {
      auto sub = bus_.Subscribe(
          {.pattern = options_.events_topic, .start = bus::StartPosition::AtOffset(from)});
      if (!sub.ok()) {
        Resync(s, "unavailable");
        return;
      }
      uint64_t next = from;
      std::unordered_set<int64_t> replayed_ids;  // event ids seen (duplicates are skipped)
      while (next < s.live_from && !s.writer->closed()) {
        auto d = (*sub)->Next(kPoll);
        if (!d.ok()) {
          if (d.status().code() == StatusCode::kDeadlineExceeded && !stop_) continue;
          Resync(s, "unavailable");
          return;
        }
        if (d->kind != bus::Delivery::Kind::kRecord) {
          Resync(s, "too_old");  // retention removed records while we read
          return;
        }
        const bus::Record& rec = *d->record;
        next = rec.offset + 1;
        if (rec.offset >= s.live_from) break;
        auto decoded = DecodeEvent(rec.payload);
        if (!decoded || !Addressed(*decoded, s.user_id)) continue;
        if (decoded->event_id != 0 && !replayed_ids.insert(decoded->event_id).second) continue;
        std::string frame = http::FormatSseEvent(http::SseEvent{
            .id = std::to_string(rec.offset), .event = decoded->type, .data = decoded->data});
        if (!WritePatiently(s, frame)) return;
      }
      (*sub)->Close();
    }
  }
  // Drain what the hub held meanwhile, then go live (under the stream's lock, so the hub's next
  // write lands after the held ones).
  while (!s.writer->closed()) {
    std::deque<std::pair<uint64_t, std::shared_ptr<const std::string>>> held;
    {
      std::lock_guard lock(s.mu);
      if (s.overflow) break;
      if (s.pending.empty()) {
        s.live = true;
        s.writer->Send(http::SseEvent{
            .event = "ready",
            .data = json::serialize(json::object{{"resumed", last_event_id.has_value()}})});
        return;
      }
      held.swap(s.pending);
    }
    for (const auto& entry : held) {
      if (!WritePatiently(s, *entry.second)) return;
    }
  }
  bool overflow;
  {
    std::lock_guard lock(s.mu);
    overflow = s.overflow;
  }
  if (overflow) Resync(s, "slow_client");
}

void EventHub::ReadLoop(bus::Subscription* sub, bool durable) {
  while (!stop_) {
    if (!durable) {
      std::vector<std::pair<std::string, std::string>> closed;
      {
        std::lock_guard lock(mu_);
        closed.swap(last_closed_);
      }
      for (const auto& [user, ws] : closed) {
        // Reconnected meanwhile: still online.
        if (on_last_close_ && open_streams_of(user) == 0) on_last_close_(user, ws);
      }
      if (on_tick_) on_tick_();
    }
    auto d = sub->Next(kPoll);
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kDeadlineExceeded) continue;
      if (d.status().code() == StatusCode::kCancelled) return;
      std::lock_guard lock(mu_);
      health_ = d.status().WithContext("chat event subscription");
      continue;
    }
    if (d->kind != bus::Delivery::Kind::kRecord) {
      if (!durable) continue;  // lost typing/presence indications do not matter
      // The hub fell behind retention: every stream may have missed events.
      std::vector<std::shared_ptr<Stream>> all;
      {
        std::lock_guard lock(mu_);
        next_offset_ = d->next_offset;
        for (auto& [u, s] : streams_) all.push_back(s);
      }
      for (auto& s : all) Resync(*s, "hub_lagged");
      continue;
    }
    Dispatch(*d->record, durable);
  }
}

void EventHub::Dispatch(const bus::Record& record, bool durable) {
  auto decoded = DecodeEvent(record.payload);
  std::vector<std::shared_ptr<Stream>> cut;
  {
    std::lock_guard lock(mu_);
    if (durable) next_offset_ = record.offset + 1;
    if (!decoded) return;                                      // not a chat event; ignored
    if (durable && !FirstSighting(decoded->event_id)) return;  // re-published by the relay
    auto frame = std::make_shared<const std::string>(http::FormatSseEvent(
        http::SseEvent{.id = durable ? std::to_string(record.offset) : std::string(),
                       .event = decoded->type,
                       .data = decoded->data}));
    for (const auto& user : decoded->users) {
      auto range = streams_.equal_range(user);
      for (auto it = range.first; it != range.second; ++it) {
        Stream& s = *it->second;
        std::lock_guard slock(s.mu);
        if (durable && record.offset < s.skip_below) continue;  // the client has it already
        if (!s.live) {
          // Still replaying: hold durable events (typing/presence are not worth holding).
          if (!durable || record.offset < s.live_from) continue;
          if (s.pending.size() >= options_.max_pending_events) {
            s.overflow = true;
          } else {
            s.pending.emplace_back(record.offset, frame);
          }
          continue;
        }
        auto r = s.writer->stream().Write(*frame);
        if (r == http::BodyStream::WriteResult::kFull) {
          cut.push_back(it->second);
        } else if (r == http::BodyStream::WriteResult::kOk && delivered_counter_ != nullptr) {
          delivered_counter_->Inc();
        }
      }
    }
  }
  // Outside the hub's lock: closing runs the stream's OnClose (Remove takes the lock).
  for (auto& s : cut) Resync(*s, "slow_client");
}

bool EventHub::FirstSighting(int64_t event_id) {
  if (event_id == 0) return true;
  if (!seen_ids_.insert(event_id).second) return false;
  seen_order_.push_back(event_id);
  if (seen_order_.size() > kSeenIds) {
    seen_ids_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  return true;
}

size_t EventHub::open_streams() const {
  std::lock_guard lock(mu_);
  return streams_.size();
}

size_t EventHub::open_streams_of(const std::string& user_id) const {
  std::lock_guard lock(mu_);
  return streams_.count(user_id);
}

Status EventHub::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

}  // namespace atrium::chat
