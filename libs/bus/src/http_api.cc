#include "atrium/bus/http_api.h"

#include "atrium/core/base64.h"

#include <atomic>
#include <charconv>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "atrium/bus/filter.h"
#include "atrium/core/metrics.h"
#include "atrium/core/thread_name.h"
#include "atrium/http/router.h"
#include "atrium/http/sse.h"

namespace atrium::bus {
namespace {

namespace json = boost::json;
using http::Request;
using http::Responder;
using http::Response;

// ---- encoding helpers ----

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = uint8_t(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      auto cc = uint8_t(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::optional<uint64_t> ParseOffset(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

Response Error(const Status& s) { return Response::FromStatus(s); }

// ---- JSON shapes ----

json::object StatsJson(const TopicStats& st) {
  json::object retention{{"max_bytes", st.options.retention.max_bytes},
                         {"max_age_s", st.options.retention.max_age.count()}};
  json::object o{{"name", st.name},
                 {"durability", std::string(DurabilityName(st.options.durability))},
                 {"first_offset", st.first_offset},
                 {"next_offset", st.next_offset},
                 {"wal_bytes", st.wal_bytes},
                 {"wal_segments", st.wal_segments},
                 {"retention", std::move(retention)},
                 {"health", st.health.ok() ? std::string("ok") : st.health.ToString()}};
  if (st.options.durability == Durability::kInterval) {
    o["interval_ms"] = st.options.interval.count();
  }
  if (st.options.durability == Durability::kSync) {
    o["commit_delay_us"] = st.options.commit_delay.count();
  }
  return o;
}

// The `data:` of one `message` event.
std::string RecordJson(const Record& r, std::optional<uint32_t> delivery_count) {
  json::object headers;
  for (const auto& [k, v] : r.headers) headers[k] = v;
  json::object o{{"offset", r.offset},
                 {"timestamp", r.timestamp_ns},
                 {"key", r.key},
                 {"headers", std::move(headers)}};
  if (IsValidUtf8(r.payload)) {
    o["payload"] = r.payload;
  } else {
    o["payload_b64"] = atrium::Base64Encode(r.payload);
  }
  if (delivery_count) o["delivery_count"] = *delivery_count;
  return json::serialize(o);
}

Result<json::object> ParseObject(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return InvalidArgument("body: invalid JSON (" + ec.message() + ")");
  if (!v.is_object()) return InvalidArgument("body: must be a JSON object");
  return std::move(v.as_object());
}

Result<uint64_t> GetUint(const json::object& o, std::string_view field, std::string_view path) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr) return uint64_t{0};
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() >= 0) return uint64_t(v->as_int64());
  return InvalidArgument(std::string(path) + ": must be a non-negative integer");
}

// Parses {"messages":[{"key"?,"headers"?:{},"payload":"..."|null,"payload_b64"?}]}.
Result<std::vector<Message>> ParseMessages(std::string_view body, size_t max_messages) {
  ASSIGN_OR_RETURN(json::object root, ParseObject(body));
  const json::value* arr = root.if_contains("messages");
  if (arr == nullptr || !arr->is_array()) return InvalidArgument("messages: must be an array");
  const json::array& items = arr->as_array();
  if (items.empty()) return InvalidArgument("messages: must not be empty");
  if (items.size() > max_messages) {
    return InvalidArgument("messages: at most " + std::to_string(max_messages) + " per request");
  }
  std::vector<Message> out;
  out.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!items[i].is_object()) return InvalidArgument(at + ": must be an object");
    const json::object& m = items[i].as_object();
    Message msg;
    for (const auto& [k, v] : m) {
      if (k != "key" && k != "headers" && k != "payload" && k != "payload_b64") {
        return InvalidArgument(at + "." + std::string(k) + ": unknown field");
      }
    }
    if (const json::value* key = m.if_contains("key"); key != nullptr && !key->is_null()) {
      if (!key->is_string()) return InvalidArgument(at + ".key: must be a string");
      msg.key = std::string(key->as_string());
    }
    if (const json::value* h = m.if_contains("headers"); h != nullptr && !h->is_null()) {
      if (!h->is_object()) return InvalidArgument(at + ".headers: must be an object");
      for (const auto& [name, value] : h->as_object()) {
        if (!value.is_string()) {
          return InvalidArgument(at + ".headers." + std::string(name) + ": must be a string");
        }
        msg.headers.emplace_back(std::string(name), std::string(value.as_string()));
      }
    }
    const json::value* text = m.if_contains("payload");
    const json::value* b64 = m.if_contains("payload_b64");
    bool has_text = text != nullptr && !text->is_null();
    bool has_b64 = b64 != nullptr && !b64->is_null();
    if (has_text && has_b64) {
      return InvalidArgument(at + ": give payload or payload_b64, not both");
    }
    if (has_text) {
      if (!text->is_string()) return InvalidArgument(at + ".payload: must be a string or null");
      msg.payload = std::string(text->as_string());
    } else if (has_b64) {
      if (!b64->is_string()) return InvalidArgument(at + ".payload_b64: must be a string");
      auto decoded = atrium::Base64Decode(b64->as_string());
      if (!decoded) return InvalidArgument(at + ".payload_b64: invalid base64");
      msg.payload = std::move(*decoded);
    }
    out.push_back(std::move(msg));
  }
  return out;
}

Result<TopicOptions> ParseTopicOptions(const json::object& o) {
  TopicOptions options;
  if (const json::value* d = o.if_contains("durability"); d != nullptr) {
    if (!d->is_string()) return InvalidArgument("durability: must be a string");
    auto parsed = ParseDurability(d->as_string());
    if (!parsed.ok()) return InvalidArgument("durability: must be memory, async, interval or sync");
    options.durability = *parsed;
  }
  if (o.contains("interval_ms")) {
    ASSIGN_OR_RETURN(uint64_t ms, GetUint(o, "interval_ms", "interval_ms"));
    if (ms == 0 || ms > 3'600'000) return InvalidArgument("interval_ms: must be 1..3600000");
    options.interval = std::chrono::milliseconds(ms);
  }
  if (o.contains("commit_delay_us")) {
    ASSIGN_OR_RETURN(uint64_t us, GetUint(o, "commit_delay_us", "commit_delay_us"));
    // The range and the sync-only rule are TopicOptions::Validate's, below (a value past
    // INT64_MAX wraps negative and is refused there too).
    options.commit_delay = std::chrono::microseconds(us);
  }
  if (const json::value* r = o.if_contains("retention"); r != nullptr && !r->is_null()) {
    if (!r->is_object()) return InvalidArgument("retention: must be an object");
    ASSIGN_OR_RETURN(options.retention.max_bytes,
                     GetUint(r->as_object(), "max_bytes", "retention.max_bytes"));
    ASSIGN_OR_RETURN(uint64_t age, GetUint(r->as_object(), "max_age_s", "retention.max_age_s"));
    options.retention.max_age = std::chrono::seconds(age);
  }
  if (Status s = options.Validate(); !s.ok()) return s;
  return options;
}

}  // namespace

// ---- streams ----

// One SSE stream and its reader thread's inputs.
struct SseStream {
  std::shared_ptr<http::SseWriter> writer;
  std::string topic;
  std::string consumer_name;  // empty: an ephemeral subscription
  std::unique_ptr<Subscription> subscription;
  std::unique_ptr<Consumer> consumer;
  std::mutex mu;
  std::vector<std::pair<uint64_t, Responder>> acks;  // guarded by mu; applied by the reader
  std::atomic<bool> done{false};
};

class BusHttpApi::State : public std::enable_shared_from_this<BusHttpApi::State> {
 public:
  State(Bus& bus, BusHttpOptions options) : bus_(bus), options_(options) {
    if (options_.metrics != nullptr) {
      resyncs_ = &options_.metrics->Counter(
          "bus_sse_resync_total", "SSE streams ended with `resync`: the client read too slowly",
          {"topic"});
    }
  }
  void RegisterGauges(const std::shared_ptr<State>& self) {
    if (options_.metrics == nullptr) return;
    std::weak_ptr<State> weak = self;
    options_.metrics->GaugeFunc("bus_sse_streams", "Open SSE streams of the bus HTTP API", [weak] {
      auto s = weak.lock();
      return s ? static_cast<double>(s->open_streams()) : 0.0;
    });
  }

  Bus& bus() { return bus_; }
  const BusHttpOptions& options() const { return options_; }

  // Starts the reader thread of `stream` (Unavailable once the API is stopping). A second stream
  // of one consumer cannot reach here: OpenConsumer refuses an open name with Conflict.
  Status Start(std::shared_ptr<SseStream> stream) {
    std::lock_guard lock(mu_);
    if (stopping_) return Unavailable("the bus API is shutting down");
    ReapLocked();
    if (!stream->consumer_name.empty()) consumers_[stream->consumer_name] = stream;
    auto self = shared_from_this();
    std::thread t([self, stream] {
      SetThreadName("bus-sse");
      self->Read(*stream);
    });
    streams_.push_back({stream, std::move(t)});
    return Status::Ok();
  }

  // Queues an ack for the reader thread of consumer `name`; it answers `responder`.
  void Ack(const std::string& name, const std::string& topic, uint64_t offset,
           Responder responder) {
    std::shared_ptr<SseStream> stream;
    {
      std::lock_guard lock(mu_);
      auto it = consumers_.find(name);
      if (it != consumers_.end() && !it->second->done) stream = it->second;
    }
    if (stream == nullptr) {
      responder.Send(Error(NotFound("consumer " + name + " has no open stream on this server")));
      return;
    }
    if (stream->topic != topic) {
      responder.Send(
          Error(NotFound("consumer " + name + " reads topic " + stream->topic + ", not " + topic)));
      return;
    }
    std::lock_guard lock(stream->mu);
    if (stream->done) {
      responder.Send(Error(NotFound("consumer " + name + " has no open stream on this server")));
      return;
    }
    stream->acks.emplace_back(offset, std::move(responder));
  }

  void Stop() {
    std::list<std::pair<std::shared_ptr<SseStream>, std::thread>> streams;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      streams.swap(streams_);
      consumers_.clear();
    }
    for (auto& [s, t] : streams) {
      s->writer->Close();
      if (t.joinable()) t.join();
    }
  }

  size_t open_streams() const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& [s, t] : streams_) n += s->done ? 0 : 1;
    return n;
  }

 private:
  // Joins the threads of finished streams. Requires mu_.
  void ReapLocked() {
    for (auto it = streams_.begin(); it != streams_.end();) {
      if (it->first->done) {
        it->second.join();
        if (auto c = consumers_.find(it->first->consumer_name);
            c != consumers_.end() && c->second == it->first) {
          consumers_.erase(c);
        }
        it = streams_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Applies queued acks (consumer streams). Runs on the reader thread only, which is the one
  // thread using the consumer, as the Consumer contract requires.
  static void ApplyAcks(SseStream& s, bool closing) {
    std::vector<std::pair<uint64_t, Responder>> acks;
    {
      std::lock_guard lock(s.mu);
      acks.swap(s.acks);
      if (closing) s.done = true;
    }
    for (auto& [offset, responder] : acks) {
      Status st = closing ? NotFound("the consumer's stream closed before the ack was applied")
                          : s.consumer->Ack(offset);
      responder.Send(st.ok() ? Response::NoContent() : Error(st));
    }
  }

  void Read(SseStream& s) {
    const bool is_consumer = s.consumer != nullptr;
    while (!s.writer->closed()) {
      if (is_consumer) ApplyAcks(s, false);
      Result<Delivery> d = is_consumer ? s.consumer->Next(options_.reader_poll)
                                       : s.subscription->Next(options_.reader_poll);
      if (!d.ok()) {
        if (d.status().code() == StatusCode::kDeadlineExceeded) continue;
        if (d.status().code() == StatusCode::kCancelled) {
          s.writer->Close();
          break;
        }
        json::object err{{"code", std::string(CodeName(d.status().code()))},
                         {"message", d.status().message()}};
        s.writer->Close(http::SseEvent{.event = "error", .data = json::serialize(err)});
        break;
      }
      http::SseEvent event;
      if (d->kind == Delivery::Kind::kRecord) {
        event.id = std::to_string(d->record->offset);
        event.event = "message";
        event.data = RecordJson(
            *d->record, is_consumer ? std::optional<uint32_t>(d->delivery_count) : std::nullopt);
      } else {
        // No id: the client's Last-Event-ID stays on the last record it really got.
        event.event = d->kind == Delivery::Kind::kTruncated ? "truncated" : "lagged";
        event.data = json::serialize(json::object{{"next_offset", d->next_offset}});
      }
      auto written = s.writer->Send(event);
      if (written == http::BodyStream::WriteResult::kClosed) break;
      if (written == http::BodyStream::WriteResult::kFull) {
        // The client is slower than the topic: end the stream, telling where to resume.
        uint64_t next = d->kind == Delivery::Kind::kRecord ? d->record->offset : d->next_offset;
        if (resyncs_ != nullptr) resyncs_->WithLabels({s.topic}).Inc();
        s.writer->Close(http::SseEvent{
            .event = "resync", .data = json::serialize(json::object{{"next_offset", next}})});
        break;
      }
    }
    if (is_consumer) {
      s.consumer->Close();  // first: a reconnecting client may reopen the name at once
      ApplyAcks(s, true);
    } else {
      s.subscription->Close();
      s.done = true;
    }
  }

  Bus& bus_;
  const BusHttpOptions options_;
  CounterFamily* resyncs_ = nullptr;
  mutable std::mutex mu_;
  bool stopping_ = false;                                                  // guarded by mu_
  std::list<std::pair<std::shared_ptr<SseStream>, std::thread>> streams_;  // guarded by mu_
  std::map<std::string, std::shared_ptr<SseStream>> consumers_;            // guarded by mu_
};

BusHttpApi::BusHttpApi(Bus& bus, BusHttpOptions options)
    : state_(std::make_shared<State>(bus, options)) {
  state_->RegisterGauges(state_);
}

BusHttpApi::~BusHttpApi() { state_->Stop(); }

size_t BusHttpApi::open_streams() const { return state_->open_streams(); }

namespace {

void HandlePublish(BusHttpApi::State& state, Request& req, Responder responder) {
  std::string topic(req.Param("topic"));
  auto messages = ParseMessages(req.body, state.options().max_batch_messages);
  if (!messages.ok()) {
    responder.Send(Error(messages.status()));
    return;
  }
  const size_t count = messages->size();
  // Answered from the bus's callback once the topic's durability policy is met.
  state.bus().PublishBatchAsync(topic, std::move(*messages),
                                [responder, count](Result<OffsetRange> range) {
                                  if (!range.ok()) {
                                    responder.Send(Error(range.status()));
                                    return;
                                  }
                                  std::string body = "{\"offsets\":[";
                                  body.reserve(body.size() + count * 8);
                                  for (uint64_t i = 0; i < range->count; ++i) {
                                    if (i > 0) body += ',';
                                    body += std::to_string(range->first + i);
                                  }
                                  body += "]}";
                                  responder.Send(Response::Json(200, std::move(body)));
                                });
}

void HandleSubscribe(BusHttpApi::State& state, Request& req, Responder responder) {
  std::string topic(req.Param("topic"));
  auto stats = state.bus().GetTopicStats(topic);
  if (!stats.ok()) {
    responder.Send(Error(stats.status()));
    return;
  }
  StartPosition start = StartPosition::Latest();
  if (auto last = req.headers.Get("last-event-id"); last.has_value()) {
    auto n = ParseOffset(*last);
    if (!n || *n == UINT64_MAX) {
      responder.Send(Error(InvalidArgument("Last-Event-ID: must be an offset")));
      return;
    }
    start = StartPosition::AtOffset(*n + 1);
  } else if (auto from = req.Query("from"); from.has_value()) {
    if (*from == "earliest") {
      start = StartPosition::Earliest();
    } else if (*from == "latest") {
      start = StartPosition::Latest();
    } else if (auto n = ParseOffset(*from); n) {
      start = StartPosition::AtOffset(*n);
    } else {
      responder.Send(Error(InvalidArgument("from: must be earliest, latest or an offset")));
      return;
    }
  }
  Filter filter;
  if (auto prefix = req.Query("key_prefix"); prefix.has_value() && !prefix->empty()) {
    filter = Filter::KeyPrefix(*prefix);
  }

  auto stream = std::make_shared<SseStream>();
  stream->topic = topic;
  if (auto name = req.Query("consumer"); name.has_value()) {
    stream->consumer_name = *name;
    auto consumer =
        state.bus().OpenConsumer({.name = *name, .topic = topic, .filter = filter, .start = start});
    if (!consumer.ok()) {
      responder.Send(Error(consumer.status()));
      return;
    }
    stream->consumer = std::move(*consumer);
  } else {
    auto sub = state.bus().Subscribe({.pattern = topic, .filter = filter, .start = start});
    if (!sub.ok()) {
      responder.Send(Error(sub.status()));
      return;
    }
    stream->subscription = std::move(*sub);
  }
  auto [response, writer] =
      http::SseResponse({.max_queued_bytes = state.options().sse_max_queued_bytes,
                         .heartbeat = state.options().sse_heartbeat});
  stream->writer = writer;
  if (Status s = state.Start(stream); !s.ok()) {
    if (stream->consumer) stream->consumer->Close();
    responder.Send(Error(s));
    return;
  }
  responder.Send(std::move(response));
}

void HandleAck(BusHttpApi::State& state, Request& req, Responder responder) {
  std::string name(req.Param("name"));
  auto body = ParseObject(req.body);
  if (!body.ok()) {
    responder.Send(Error(body.status()));
    return;
  }
  const json::value* topic = body->if_contains("topic");
  if (topic == nullptr || !topic->is_string() || topic->as_string().empty()) {
    responder.Send(Error(InvalidArgument("topic: must be a topic name")));
    return;
  }
  if (!body->contains("offset")) {
    responder.Send(Error(InvalidArgument("offset: required")));
    return;
  }
  auto offset = GetUint(*body, "offset", "offset");
  if (!offset.ok()) {
    responder.Send(Error(offset.status()));
    return;
  }
  state.Ack(name, std::string(topic->as_string()), *offset, std::move(responder));
}

Response HandleCreateTopic(BusHttpApi::State& state, Request& req) {
  auto body = ParseObject(req.body);
  if (!body.ok()) return Error(body.status());
  const json::value* name = body->if_contains("name");
  if (name == nullptr || !name->is_string()) return Error(InvalidArgument("name: required"));
  std::string topic(name->as_string());
  if (!IsValidTopicName(topic)) {
    return Error(InvalidArgument("name: must be dot-separated tokens of [A-Za-z0-9_-]"));
  }
  auto options = ParseTopicOptions(*body);
  if (!options.ok()) return Error(options.status());
  bool existed = state.bus().GetTopicStats(topic).ok();
  if (Status s = state.bus().CreateTopic(topic, *options); !s.ok()) return Error(s);
  auto stats = state.bus().GetTopicStats(topic);
  if (!stats.ok()) return Error(stats.status());
  return Response::Json(existed ? 200 : 201, json::serialize(StatsJson(*stats)));
}

Response HandleListTopics(BusHttpApi::State& state) {
  json::array topics;
  for (const auto& name : state.bus().ListTopics()) {
    auto stats = state.bus().GetTopicStats(name);
    if (stats.ok()) topics.push_back(StatsJson(*stats));
  }
  return Response::Json(200, json::serialize(json::object{{"topics", std::move(topics)}}));
}

}  // namespace

Status BusHttpApi::AddRoutes(http::Router& router) {
  using http::Handler;
  using http::RouteOptions;
  using http::SyncHandler;
  std::shared_ptr<State> st = state_;
  const std::string base = "/api/v1/bus";
  RETURN_IF_ERROR(router.Add("POST", base + "/topics", SyncHandler([st](Request& req) {
                               return HandleCreateTopic(*st, req);
                             }),
                             RouteOptions{.max_body_bytes = 64 << 10,
                                          .blocking = true,
                                          .auth_scope = kBusAdminScope,
                                          .audit = true}));
  RETURN_IF_ERROR(router.Add("GET", base + "/topics",
                             SyncHandler([st](Request&) { return HandleListTopics(*st); }),
                             RouteOptions{.blocking = true, .auth_scope = kBusAdminScope}));
  RETURN_IF_ERROR(router.Add("GET", base + "/topics/{topic}", SyncHandler([st](Request& req) {
                               auto stats = st->bus().GetTopicStats(req.Param("topic"));
                               if (!stats.ok()) return Error(stats.status());
                               return Response::Json(200, json::serialize(StatsJson(*stats)));
                             }),
                             RouteOptions{.blocking = true, .auth_scope = kBusAdminScope}));
  // Blocking: parsing a large batch is CPU work, and a full `block` memory topic parks the
  // publishing thread until subscribers catch up.
  RETURN_IF_ERROR(router.Add(
      "POST", base + "/topics/{topic}/messages",
      Handler([st](Request& req, Responder r) { HandlePublish(*st, req, std::move(r)); }),
      RouteOptions{.max_body_bytes = st->options().max_publish_body_bytes,
                   .blocking = true,
                   .auth_scope = kBusPublishScope}));
  // Blocking: opening a consumer reads and may write its position file.
  RETURN_IF_ERROR(router.Add(
      "GET", base + "/topics/{topic}/messages",
      Handler([st](Request& req, Responder r) { HandleSubscribe(*st, req, std::move(r)); }),
      RouteOptions{.blocking = true, .auth_scope = kBusSubscribeScope}));
  RETURN_IF_ERROR(
      router.Add("POST", base + "/consumers/{name}/ack",
                 Handler([st](Request& req, Responder r) { HandleAck(*st, req, std::move(r)); }),
                 RouteOptions{.max_body_bytes = 4 << 10, .auth_scope = kBusSubscribeScope}));
  return Status::Ok();
}

}  // namespace atrium::bus
