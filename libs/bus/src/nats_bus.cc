// The NATS JetStream Bus (nats_bus.h). libnats handles live in unique_ptrs with their destroy
// functions; every libnats error is converted to a Status at the call.
#include "atrium/bus/nats_bus.h"

#include <nats/nats.h>
#include <strings.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace atrium::bus {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kKeyHeader = "Atrium-Key";
constexpr std::string_view kDescriptionPrefix = "atrium topic durability=";
constexpr std::string_view kInboxPrefix = "_INBOX.";

template <typename T, void (*Destroy)(T*)>
struct NatsDeleter {
  void operator()(T* p) const {
    if (p) Destroy(p);
  }
};
using MsgPtr = std::unique_ptr<natsMsg, NatsDeleter<natsMsg, natsMsg_Destroy>>;
using StreamInfoPtr =
    std::unique_ptr<jsStreamInfo, NatsDeleter<jsStreamInfo, jsStreamInfo_Destroy>>;
using ConsumerInfoPtr =
    std::unique_ptr<jsConsumerInfo, NatsDeleter<jsConsumerInfo, jsConsumerInfo_Destroy>>;
using MetaPtr = std::unique_ptr<jsMsgMetaData, NatsDeleter<jsMsgMetaData, jsMsgMetaData_Destroy>>;
using SubPtr =
    std::unique_ptr<natsSubscription, NatsDeleter<natsSubscription, natsSubscription_Destroy>>;
using PubAckPtr = std::unique_ptr<jsPubAck, NatsDeleter<jsPubAck, jsPubAck_Destroy>>;
using OptionsPtr = std::unique_ptr<natsOptions, NatsDeleter<natsOptions, natsOptions_Destroy>>;

// A Status for a failed libnats call: `what` names the operation.
Status FromNats(natsStatus s, int ec, std::string_view what) {
  std::string text = std::string(what) + ": " + natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail && *detail && last == s) text += std::string(" (") + detail + ")";
  if (ec == JSStreamNotFoundErr || ec == JSConsumerNotFoundErr || s == NATS_NOT_FOUND) {
    return NotFound(std::move(text));
  }
  switch (s) {
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_NO_SERVER_SUPPORT:
    case NATS_IO_ERROR:
    case NATS_TIMEOUT:
    case NATS_DRAINING:
      return Unavailable(std::move(text));
    case NATS_NO_RESPONDERS:
      return NotFound(std::move(text));
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_MAX_PAYLOAD:
      return InvalidArgument(std::move(text));
    default:
      return Internal(std::move(text));
  }
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

// Stream names may not contain '.', so topic names are escaped injectively: '_' -> "__",
// '.' -> "_d".
std::string EscapeTopic(std::string_view topic) {
  std::string out;
  out.reserve(topic.size() + 4);
  for (char c : topic) {
    if (c == '_') {
      out += "__";
    } else if (c == '.') {
      out += "_d";
    } else {
      out += c;
    }
  }
  return out;
}

// Header names and values travel in NATS's text header block: no CR/LF, names without ':' or
// spaces, and names the server interprets ("Nats-...") are reserved.
Status ValidateMessage(const Message& m) {
  auto bad_text = [](std::string_view s) { return s.find_first_of("\r\n") != s.npos; };
  if (bad_text(m.key)) return InvalidArgument("record key contains CR or LF");
  for (const auto& [name, value] : m.headers) {
    if (name.empty() || name.find_first_of(": \t\r\n") != name.npos) {
      return InvalidArgument("header name '" + name + "' is not a NATS header token");
    }
    if (name.size() >= 5 && strncasecmp(name.c_str(), "nats-", 5) == 0) {
      return InvalidArgument("header name '" + name + "' is reserved by NATS");
    }
    if (strcasecmp(name.c_str(), kKeyHeader) == 0) {
      return InvalidArgument("header name '" + name + "' is reserved by the bus");
    }
    if (bad_text(value)) return InvalidArgument("header '" + name + "' contains CR or LF");
  }
  return Status::Ok();
}

// A NATS message for `subject` carrying `m` (validated by ValidateMessage).
Result<MsgPtr> ToNatsMsg(const std::string& subject, const Message& m,
                         const char* reply = nullptr) {
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, subject.c_str(), reply, m.payload.data(),
                                static_cast<int>(m.payload.size()));
  if (s != NATS_OK) return FromNats(s, 0, "create message");
  MsgPtr msg(raw);
  if (!m.key.empty()) s = natsMsgHeader_Set(msg.get(), kKeyHeader, m.key.c_str());
  for (const auto& [name, value] : m.headers) {
    if (s != NATS_OK) break;
    s = natsMsgHeader_Add(msg.get(), name.c_str(), value.c_str());
  }
  if (s != NATS_OK) return FromNats(s, 0, "set message headers");
  return msg;
}

// Key, headers (sorted by name; values of one name keep their order) and payload of `msg`.
Record FromNatsMsg(natsMsg* msg) {
  Record r;
  const char* data = natsMsg_GetData(msg);
  r.payload.assign(data ? data : "", static_cast<size_t>(natsMsg_GetDataLength(msg)));
  const char** keys = nullptr;
  int nkeys = 0;
  if (natsMsgHeader_Keys(msg, &keys, &nkeys) != NATS_OK) return r;
  std::vector<std::string> names(keys, keys + nkeys);
  free(static_cast<void*>(keys));
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    const char** values = nullptr;
    int nvalues = 0;
    if (natsMsgHeader_Values(msg, name.c_str(), &values, &nvalues) != NATS_OK) continue;
    if (name == kKeyHeader) {
      if (nvalues > 0) r.key = values[0];
    } else if (name.rfind("Nats-", 0) != 0) {
      for (int i = 0; i < nvalues; ++i) r.headers.emplace_back(name, values[i]);
    }
    free(static_cast<void*>(values));
  }
  return r;
}

int64_t ToNanos(milliseconds ms) { return static_cast<int64_t>(ms.count()) * 1'000'000; }

int64_t RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return std::max<int64_t>(left, 0);
}

std::string DurabilityDescription(Durability d) {
  return std::string(kDescriptionPrefix) + std::string(DurabilityName(d));
}

// Configures `cc` to start at `start`.
void SetDeliverPolicy(jsConsumerConfig& cc, const StartPosition& start) {
  switch (start.kind) {
    case StartPosition::Kind::kEarliest:
      cc.DeliverPolicy = js_DeliverAll;
      break;
    case StartPosition::Kind::kLatest:
      cc.DeliverPolicy = js_DeliverNew;
      break;
    case StartPosition::Kind::kOffset:
      cc.DeliverPolicy = js_DeliverByStartSequence;
      cc.OptStartSeq = start.offset + 1;
      break;
    case StartPosition::Kind::kTime:
      // Whole seconds only: with libnats 3.4.1 and nats-server 2.9 sub-second start times were
      // seen to start late (about one run in three); readers skip the records before
      // `timestamp_ns` themselves (SkipBefore).
      cc.DeliverPolicy = js_DeliverByStartTime;
      cc.OptStartTime = start.timestamp_ns - start.timestamp_ns % 1'000'000'000;
      break;
  }
}

// Records older than this are skipped by a reader starting at `start`.
int64_t SkipBefore(const StartPosition& start) {
  return start.kind == StartPosition::Kind::kTime ? start.timestamp_ns : 0;
}

struct BusMetrics {
  explicit BusMetrics(MetricsRegistry* r) {
    if (!r) return;
    publish_total = &r->Counter("bus_publish_total", "Records published", {"topic"});
    backlog_lag = &r->Gauge("bus_backlog_lag", "Records not yet acknowledged by a consumer",
                            {"topic", "consumer"});
    redelivery_total = &r->Counter("bus_redelivery_total", "Redeliveries after an ack timeout",
                                   {"topic", "consumer"});
    consumer_position = &r->Gauge("bus_consumer_position",
                                  "Offset below which a consumer has acknowledged everything",
                                  {"topic", "consumer"});
  }
  CounterFamily* publish_total = nullptr;
  GaugeFamily* backlog_lag = nullptr;
  CounterFamily* redelivery_total = nullptr;
  GaugeFamily* consumer_position = nullptr;
};

// One in-flight PublishBatchAsync: completes when every message has its PubAck (or error).
struct PendingBatch {
  PendingBatch(std::string t, size_t n, PublishCallback cb)
      : topic(std::move(t)), remaining(n), count(n), done(std::move(cb)) {}
  std::string topic;
  std::mutex mu;
  size_t remaining;  // guarded by mu
  const size_t count;
  uint64_t min_seq = UINT64_MAX;  // guarded by mu
  Status error;                   // guarded by mu; the first failure
  PublishCallback done;
};

// The connection and what outlives the Bus object: subscriptions and consumers share it.
class Connection {
 public:
  Connection(NatsBusOptions options) : options_(std::move(options)), metrics_(options_.metrics) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ~Connection() {
    if (js_) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = options_.api_timeout.count();
      js_PublishAsyncComplete(js_, &po);
    }
    if (nc_) natsConnection_Close(nc_);
    std::unordered_map<natsMsg*, std::shared_ptr<PendingBatch>> left;
    {
      std::lock_guard lock(pending_mu_);
      left.swap(pending_);
    }
    for (auto& [msg, batch] : left) Complete(*batch, 0, Cancelled("bus closed before the PubAck"));
    if (js_) jsCtx_Destroy(js_);
    if (nc_) natsConnection_Destroy(nc_);
  }

  Status Connect() {
    natsOptions* raw = nullptr;
    natsStatus s = natsOptions_Create(&raw);
    if (s != NATS_OK) return FromNats(s, 0, "nats options");
    OptionsPtr opts(raw);
    s = natsOptions_SetURL(opts.get(), options_.url.c_str());
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts.get(), options_.connect_timeout.count());
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts.get(), -1);
    if (s != NATS_OK) return FromNats(s, 0, "nats options for " + options_.url);
    s = natsConnection_Connect(&nc_, opts.get());
    if (s != NATS_OK) {
      nc_ = nullptr;
      return Unavailable("cannot connect to NATS at " + options_.url + ": " +
                         natsStatus_GetText(s));
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = options_.api_timeout.count();
    jo.PublishAsync.AckHandler = &Connection::OnPubAck;
    jo.PublishAsync.AckHandlerClosure = this;
    jo.PublishAsync.MaxPending = 16384;
    jo.PublishAsync.StallWait = options_.api_timeout.count();
    s = natsConnection_JetStream(&js_, nc_, &jo);
    if (s != NATS_OK) return FromNats(s, 0, "jetstream context");
    jsAccountInfo* ai = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    s = js_GetAccountInfo(&ai, js_, nullptr, &ec);
    if (s != NATS_OK) {
      return Unavailable("NATS server at " + options_.url +
                         " has no JetStream (start it with -js): " + natsStatus_GetText(s));
    }
    jsAccountInfo_Destroy(ai);
    return Status::Ok();
  }

  natsConnection* nc() const { return nc_; }
  jsCtx* js() const { return js_; }
  const NatsBusOptions& options() const { return options_; }
  const BusMetrics& metrics() const { return metrics_; }
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  void MarkClosed() { closed_.store(true, std::memory_order_release); }

  std::string Subject(std::string_view topic) const {
    return options_.stream_prefix + "." + std::string(topic);
  }
  std::string Stream(std::string_view topic) const {
    return options_.stream_prefix + "_" + EscapeTopic(topic);
  }

  Result<StreamInfoPtr> GetStream(std::string_view topic) {
    if (!IsValidTopicName(topic))
      return InvalidArgument("bad topic name '" + std::string(topic) + "'");
    jsStreamInfo* si = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js_, Stream(topic).c_str(), nullptr, &ec);
    if (s != NATS_OK) {
      Status st = FromNats(s, ec, "topic " + std::string(topic));
      if (st.code() == StatusCode::kNotFound)
        return NotFound("no topic '" + std::string(topic) + "'");
      return st;
    }
    return StreamInfoPtr(si);
  }

  Status CreateTopic(std::string_view name, const TopicOptions& o) {
    if (!IsValidTopicName(name))
      return InvalidArgument("bad topic name '" + std::string(name) + "'");
    RETURN_IF_ERROR(o.Validate());
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto existing = GetStream(name);
      if (existing.ok()) {
        auto d = DurabilityOf(**existing);
        if (d.ok() && *d == o.durability) return Status::Ok();
        return Conflict("topic '" + std::string(name) + "' exists with durability " +
                        (d.ok() ? std::string(DurabilityName(*d)) : "unknown"));
      }
      if (existing.status().code() != StatusCode::kNotFound) return existing.status();
      std::string stream = Stream(name);
      std::string subject = Subject(name);
      std::string description = DurabilityDescription(o.durability);
      const char* subjects[] = {subject.c_str()};
      jsStreamConfig cfg;
      jsStreamConfig_Init(&cfg);
      cfg.Name = stream.c_str();
      cfg.Description = description.c_str();
      cfg.Subjects = subjects;
      cfg.SubjectsLen = 1;
      cfg.Retention = js_LimitsPolicy;
      cfg.Discard = js_DiscardOld;
      cfg.Replicas = 1;
      if (o.retention.max_bytes > 0) cfg.MaxBytes = static_cast<int64_t>(o.retention.max_bytes);
      if (o.retention.max_age.count() > 0) cfg.MaxAge = o.retention.max_age.count() * 1'000'000'000;
      if (o.durability == Durability::kMemory) {
        cfg.Storage = js_MemoryStorage;
        cfg.MaxMsgs = int64_t{1} << o.ring_pow;  // the ring: the newest 2^ring_pow records
      } else {
        cfg.Storage = js_FileStorage;
      }
      jsStreamInfo* si = nullptr;
      jsErrCode ec = static_cast<jsErrCode>(0);
      natsStatus s = js_AddStream(&si, js_, &cfg, nullptr, &ec);
      if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return Status::Ok();
      }
      if (ec != JSStreamNameExistErr) return FromNats(s, ec, "create topic " + std::string(name));
      // Created concurrently by someone else: compare with theirs.
    }
    return Conflict("topic '" + std::string(name) + "' is being created concurrently");
  }

  static Result<Durability> DurabilityOf(const jsStreamInfo& si) {
    const char* d = si.Config ? si.Config->Description : nullptr;
    std::string_view desc = d ? d : "";
    if (desc.rfind(kDescriptionPrefix, 0) == 0) {
      return ParseDurability(desc.substr(kDescriptionPrefix.size()));
    }
    if (si.Config && si.Config->Storage == js_MemoryStorage) return Durability::kMemory;
    return Durability::kAsync;
  }

  std::vector<std::string> ListTopics() {
    std::vector<std::string> out;
    jsStreamInfoList* list = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    if (js_Streams(&list, js_, nullptr, &ec) != NATS_OK || !list) return out;
    std::string subject_prefix = options_.stream_prefix + ".";
    for (int i = 0; i < list->Count; ++i) {
      const jsStreamConfig* c = list->List[i]->Config;
      if (!c || c->SubjectsLen != 1 || !c->Subjects[0]) continue;
      std::string_view subject = c->Subjects[0];
      if (subject.rfind(subject_prefix, 0) != 0) continue;
      std::string topic(subject.substr(subject_prefix.size()));
      if (IsValidTopicName(topic) && c->Name && Stream(topic) == c->Name) out.push_back(topic);
    }
    jsStreamInfoList_Destroy(list);
    std::sort(out.begin(), out.end());
    return out;
  }

  void PublishBatchAsync(std::string_view topic, std::vector<Message> messages,
                         PublishCallback done) {
    if (closed()) return done(Cancelled("bus closed"));
    if (!IsValidTopicName(topic)) {
      return done(InvalidArgument("bad topic name '" + std::string(topic) + "'"));
    }
    if (messages.empty()) return done(InvalidArgument("empty batch"));
    const int64_t max_payload = natsConnection_GetMaxPayload(nc_);
    std::string subject = Subject(topic);
    std::vector<MsgPtr> msgs;
    msgs.reserve(messages.size());
    for (const auto& m : messages) {
      if (Status st = ValidateMessage(m); !st.ok()) return done(st);
      if (max_payload > 0 && static_cast<int64_t>(m.payload.size()) > max_payload) {
        return done(InvalidArgument("payload of " + std::to_string(m.payload.size()) +
                                    " bytes exceeds the server's max_payload"));
      }
      auto msg = ToNatsMsg(subject, m);
      if (!msg.ok()) return done(msg.status());
      msgs.push_back(std::move(msg).value());
    }
    auto batch = std::make_shared<PendingBatch>(std::string(topic), msgs.size(), std::move(done));
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = options_.api_timeout.count();
    // One batch at a time goes out on the connection, so a batch's records get contiguous
    // sequences whenever this bus is the topic's only publisher.
    std::lock_guard publish_lock(publish_mu_);
    for (auto& msg : msgs) {
      natsMsg* key = msg.get();
      {
        std::lock_guard lock(pending_mu_);
        pending_[key] = batch;
      }
      natsMsg* raw = msg.release();
      natsStatus s = js_PublishMsgAsync(js_, &raw, &po);
      if (s != NATS_OK) {
        // The library kept no reference (raw is still ours): fail this message.
        bool ours = false;
        {
          std::lock_guard lock(pending_mu_);
          ours = pending_.erase(key) > 0;
        }
        natsMsg_Destroy(raw);
        if (ours) Complete(*batch, 0, FromNats(s, 0, "publish to " + batch->topic));
      }
    }
  }

  // Finishes one message of `batch`: `seq` on success, else `error`.
  void Complete(PendingBatch& batch, uint64_t seq, Status error) {
    bool last = false;
    {
      std::lock_guard lock(batch.mu);
      if (!error.ok()) {
        if (batch.error.ok()) batch.error = std::move(error);
      } else {
        batch.min_seq = std::min(batch.min_seq, seq);
      }
      last = --batch.remaining == 0;
    }
    if (!last) return;
    if (!batch.error.ok()) return batch.done(batch.error);
    if (metrics_.publish_total) metrics_.publish_total->WithLabels({batch.topic}).Inc(batch.count);
    batch.done(OffsetRange{batch.min_seq - 1, batch.count});
  }

  static void OnPubAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<Connection*>(closure);
    std::shared_ptr<PendingBatch> batch;
    {
      std::lock_guard lock(self->pending_mu_);
      auto it = self->pending_.find(msg);
      if (it != self->pending_.end()) {
        batch = std::move(it->second);
        self->pending_.erase(it);
      }
    }
    natsMsg_Destroy(msg);
    if (!batch) return;
    if (pa) {
      self->Complete(*batch, pa->Sequence, Status::Ok());
    } else if (pae && pae->Err == NATS_NO_RESPONDERS) {
      self->Complete(*batch, 0, NotFound("no topic '" + batch->topic + "'"));
    } else {
      std::string text = pae && pae->ErrText ? pae->ErrText : "";
      Status st =
          FromNats(pae ? pae->Err : NATS_ERR, pae ? pae->ErrCode : 0, "publish to " + batch->topic);
      if (!text.empty()) st = st.WithContext(text);
      self->Complete(*batch, 0, std::move(st));
    }
  }

  // A synchronous JetStream publish (dead letters, requests): the record's offset.
  Result<uint64_t> PublishSync(std::string_view topic, const Message& m,
                               const char* reply = nullptr) {
    RETURN_IF_ERROR(ValidateMessage(m));
    ASSIGN_OR_RETURN(MsgPtr msg, ToNatsMsg(Subject(topic), m, reply));
    jsPubAck* pa = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    natsStatus s = js_PublishMsg(&pa, js_, msg.get(), nullptr, &ec);
    if (s == NATS_NO_RESPONDERS) return NotFound("no topic '" + std::string(topic) + "'");
    if (s != NATS_OK) return FromNats(s, ec, "publish to " + std::string(topic));
    PubAckPtr ack(pa);
    if (metrics_.publish_total) metrics_.publish_total->WithLabels({std::string(topic)}).Inc();
    return ack->Sequence - 1;
  }

  // Durable consumer names open in this process (a name is open once at a time).
  Status ClaimConsumer(const std::string& name) {
    std::lock_guard lock(consumers_mu_);
    if (!open_consumers_.insert(name).second) {
      return Conflict("consumer '" + name + "' is already open");
    }
    return Status::Ok();
  }
  void ReleaseConsumer(const std::string& name) {
    std::lock_guard lock(consumers_mu_);
    open_consumers_.erase(name);
  }

 private:
  const NatsBusOptions options_;
  const BusMetrics metrics_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<bool> closed_{false};
  std::mutex publish_mu_;  // serializes batches on the connection
  std::mutex pending_mu_;
  std::unordered_map<natsMsg*, std::shared_ptr<PendingBatch>> pending_;  // guarded by pending_mu_
  std::mutex consumers_mu_;
  std::set<std::string> open_consumers_;  // guarded by consumers_mu_
};

// ---------------------------------------------------------------------------------------------
// Subscriptions: one ordered push consumer per matching topic, all feeding one queue.

struct SubscriptionQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Delivery> events;  // guarded by mu
  Status error;                 // guarded by mu; a reader's fatal error
};

// The state of one topic's reader; owned by its natsSubscription's callbacks, deleted in the
// subscription's completion callback (after its last message callback).
struct TopicReader {
  std::shared_ptr<SubscriptionQueue> queue;
  std::shared_ptr<const std::string> topic;
  Filter filter;
  bool memory = false;
  std::optional<uint64_t> expected;  // the offset the next record should have, once known
  int64_t skip_before_ns = 0;        // see SkipBefore

  static void OnMsg(natsConnection*, natsSubscription*, natsMsg* raw, void* closure) {
    MsgPtr msg(raw);
    auto* self = static_cast<TopicReader*>(closure);
    jsMsgMetaData* meta_raw = nullptr;
    if (natsMsg_GetMetaData(&meta_raw, msg.get()) != NATS_OK) return;  // not a stream message
    MetaPtr meta(meta_raw);
    auto record = std::make_shared<Record>(FromNatsMsg(msg.get()));
    record->offset = meta->Sequence.Stream - 1;
    record->timestamp_ns = meta->Timestamp;
    if (record->timestamp_ns < self->skip_before_ns) return;
    self->skip_before_ns = 0;
    std::vector<Delivery> out;
    if (self->expected && record->offset > *self->expected) {
      Delivery gap;
      gap.kind = self->memory ? Delivery::Kind::kLagged : Delivery::Kind::kTruncated;
      gap.topic = self->topic;
      gap.next_offset = record->offset;
      out.push_back(std::move(gap));
    }
    self->expected = record->offset + 1;
    if (self->filter.Matches(*record)) {
      Delivery d;
      d.topic = self->topic;
      d.record = std::move(record);
      out.push_back(std::move(d));
    }
    if (out.empty()) return;
    {
      std::lock_guard lock(self->queue->mu);
      for (auto& d : out) self->queue->events.push_back(std::move(d));
    }
    self->queue->cv.notify_one();
  }

  static void OnComplete(void* closure) { delete static_cast<TopicReader*>(closure); }
};

class NatsSubscription final : public Subscription {
 public:
  NatsSubscription(std::shared_ptr<Connection> conn, SubscribeOptions options)
      : conn_(std::move(conn)),
        options_(std::move(options)),
        wildcard_(options_.pattern.find_first_of("*>") != std::string::npos),
        queue_(std::make_shared<SubscriptionQueue>()) {}
  ~NatsSubscription() override { Close(); }

  // Starts readers for the topics that match now, from the requested start position.
  Status Start() { return Refresh(options_.start); }

  Result<Delivery> Next(milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      if (closed_) return Cancelled("subscription closed");
      if (conn_->closed()) return Cancelled("bus closed");
      {
        std::unique_lock lock(queue_->mu);
        if (!queue_->events.empty()) {
          Delivery d = std::move(queue_->events.front());
          queue_->events.pop_front();
          return d;
        }
        if (!queue_->error.ok()) return queue_->error;
        if (Clock::now() >= deadline) return DeadlineExceeded("no record within the timeout");
        // Until every topic it can match exists, a subscription looks for new ones every kRefresh.
        auto wake = Discovering() ? std::min(deadline, Clock::now() + kRefresh) : deadline;
        queue_->cv.wait_until(lock, wake, [&] { return !queue_->events.empty(); });
        if (!queue_->events.empty()) continue;
      }
      if (Discovering()) {
        // Topics created after the subscription are read from their start.
        if (Status st = Refresh(StartPosition::Earliest()); !st.ok()) return st;
      }
    }
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    for (auto& [topic, sub] : readers_) {
      // The completion callback frees the TopicReader once no message callback can run.
      natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
    }
    readers_.clear();
  }

 private:
  static constexpr milliseconds kRefresh{50};

  // Pattern subscriptions always look for new topics; one of a single topic until it exists.
  bool Discovering() const { return wildcard_ || readers_.empty(); }

  Status Refresh(const StartPosition& start) {
    if (!wildcard_) {
      auto si = conn_->GetStream(options_.pattern);
      if (si.status().code() == StatusCode::kNotFound) return Status::Ok();  // not created yet
      if (!si.ok()) return si.status();
      return AddReader(options_.pattern, start, **si);
    }
    for (const auto& topic : conn_->ListTopics()) {
      if (readers_.count(topic) || !TopicMatches(options_.pattern, topic)) continue;
      auto si = conn_->GetStream(topic);
      if (!si.ok()) continue;  // deleted meanwhile
      RETURN_IF_ERROR(AddReader(topic, start, **si));
    }
    return Status::Ok();
  }

  Status AddReader(const std::string& topic, const StartPosition& start, const jsStreamInfo& si) {
    auto reader = std::make_unique<TopicReader>();
    reader->queue = queue_;
    reader->topic = std::make_shared<const std::string>(topic);
    reader->filter = options_.filter;
    reader->memory = si.Config && si.Config->Storage == js_MemoryStorage;
    if (start.kind == StartPosition::Kind::kOffset) reader->expected = start.offset;
    reader->skip_before_ns = SkipBefore(start);
    std::string stream = conn_->Stream(topic);
    std::string subject = conn_->Subject(topic);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream.c_str();
    so.Ordered = true;
    SetDeliverPolicy(so.Config, start);
    natsSubscription* sub = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    natsStatus s = js_Subscribe(&sub, conn_->js(), subject.c_str(), &TopicReader::OnMsg,
                                reader.get(), nullptr, &so, &ec);
    if (s != NATS_OK) return FromNats(s, ec, "subscribe to " + topic);
    s = natsSubscription_SetOnCompleteCB(sub, &TopicReader::OnComplete, reader.get());
    if (s != NATS_OK) {
      natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);  // the reader is leaked rather than freed under a callback
      reader.release();
      return FromNats(s, 0, "subscribe to " + topic);
    }
    reader.release();  // owned by the subscription's completion callback now
    readers_[topic] = sub;
    return Status::Ok();
  }

  const std::shared_ptr<Connection> conn_;
  const SubscribeOptions options_;
  const bool wildcard_;
  const std::shared_ptr<SubscriptionQueue> queue_;
  bool closed_ = false;
  std::map<std::string, natsSubscription*> readers_;
};

// ---------------------------------------------------------------------------------------------
// Durable consumers: a JetStream durable pull consumer with explicit acks. The server redelivers
// after AckWait; its MaxDeliver is max_deliver + 1 so that the delivery past the last one is seen
// here, moved to the dead-letter topic and acknowledged.

// A consumer's description keeps its exact start time (the server keeps whole seconds).
constexpr std::string_view kConsumerDescriptionPrefix = "atrium consumer skip_before_ns=";

int64_t ParseStartDescription(const char* description) {
  std::string_view d = description ? description : "";
  if (d.rfind(kConsumerDescriptionPrefix, 0) != 0) return 0;
  d.remove_prefix(kConsumerDescriptionPrefix.size());
  int64_t v = 0;
  for (char c : d) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

class NatsConsumer final : public Consumer {
 public:
  NatsConsumer(std::shared_ptr<Connection> conn, ConsumerOptions options)
      : conn_(std::move(conn)), options_(std::move(options)) {
    const BusMetrics& m = conn_->metrics();
    if (m.backlog_lag) lag_ = &m.backlog_lag->WithLabels({options_.topic, options_.name});
    if (m.redelivery_total) {
      redelivery_ = &m.redelivery_total->WithLabels({options_.topic, options_.name});
    }
    if (m.consumer_position) {
      position_ = &m.consumer_position->WithLabels({options_.topic, options_.name});
    }
  }
  ~NatsConsumer() override { Close(); }

  Status Start() {
    std::string stream = conn_->Stream(options_.topic);
    jsConsumerInfo* ci = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = options_.name.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = ToNanos(options_.ack_timeout);
    cc.MaxDeliver = static_cast<int64_t>(options_.max_deliver) + 1;
    cc.MaxAckPending = 10000;
    ConsumerInfoPtr existing;  // its strings back `cc` until the update
    std::string description;
    natsStatus s =
        js_GetConsumerInfo(&ci, conn_->js(), stream.c_str(), options_.name.c_str(), nullptr, &ec);
    if (s == NATS_OK) {
      // Existing position: keep its start, update the delivery settings.
      existing.reset(ci);
      cc.DeliverPolicy = existing->Config->DeliverPolicy;
      cc.OptStartSeq = existing->Config->OptStartSeq;
      cc.OptStartTime = existing->Config->OptStartTime;
      ci = nullptr;
      s = js_UpdateConsumer(&ci, conn_->js(), stream.c_str(), &cc, nullptr, &ec);
      cc.Description = existing->Config->Description;
      skip_before_ns_ = ParseStartDescription(cc.Description);
    } else if (ec == JSConsumerNotFoundErr || s == NATS_NOT_FOUND) {
      SetDeliverPolicy(cc, options_.start);
      skip_before_ns_ = SkipBefore(options_.start);
      description = std::string(kConsumerDescriptionPrefix) + std::to_string(skip_before_ns_);
      cc.Description = description.c_str();
      ci = nullptr;
      s = js_AddConsumer(&ci, conn_->js(), stream.c_str(), &cc, nullptr, &ec);
    }
    if (s != NATS_OK) return FromNats(s, ec, "consumer " + options_.name);
    acked_ = ci->AckFloor.Stream;
    jsConsumerInfo_Destroy(ci);

    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream.c_str();
    so.Consumer = options_.name.c_str();
    natsSubscription* sub = nullptr;
    s = js_PullSubscribe(&sub, conn_->js(), conn_->Subject(options_.topic).c_str(),
                         options_.name.c_str(), nullptr, &so, &ec);
    if (s != NATS_OK) return FromNats(s, ec, "consumer " + options_.name);
    sub_.reset(sub);
    return Status::Ok();
  }

  Result<Delivery> Next(milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      if (closed_) return Cancelled("consumer closed");
      if (conn_->closed()) return Cancelled("bus closed");
      int64_t wait = std::max<int64_t>(RemainingMs(deadline), 1);
      natsMsgList list{nullptr, 0};
      jsErrCode ec = static_cast<jsErrCode>(0);
      natsStatus s = natsSubscription_Fetch(&list, sub_.get(), 1, wait, &ec);
      if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
        natsMsgList_Destroy(&list);
        if (Clock::now() >= deadline) return DeadlineExceeded("no record within the timeout");
        continue;
      }
      if (s != NATS_OK) return FromNats(s, ec, "consumer " + options_.name);
      MsgPtr msg(list.Msgs[0]);
      list.Msgs[0] = nullptr;
      natsMsgList_Destroy(&list);
      auto d = Handle(std::move(msg));
      if (!d.ok()) return d.status();
      if (*d) return std::move(**d);
      if (Clock::now() >= deadline) return DeadlineExceeded("no record within the timeout");
    }
  }

  Status Ack(uint64_t offset) override {
    if (closed_) return Cancelled("consumer closed");
    auto it = outstanding_.find(offset);
    if (it == outstanding_.end()) {
      return NotFound("offset " + std::to_string(offset) + " is not outstanding");
    }
    RETURN_IF_ERROR(AckSync(it->second.get()));
    outstanding_.erase(it);
    RefreshPosition();
    return Status::Ok();
  }

  uint64_t AckedPosition() const override {
    jsConsumerInfo* ci = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    if (!conn_->closed() &&
        js_GetConsumerInfo(&ci, conn_->js(), conn_->Stream(options_.topic).c_str(),
                           options_.name.c_str(), nullptr, &ec) == NATS_OK) {
      acked_ = ci->AckFloor.Stream;
      jsConsumerInfo_Destroy(ci);
    }
    return acked_;
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    // What was delivered but not acked goes back at once (not after the ack wait), so the next
    // opener of this consumer gets it immediately.
    for (auto& [offset, msg] : outstanding_) natsMsg_Nak(msg.get(), nullptr);
    outstanding_.clear();
    sub_.reset();  // bound to a consumer created here, so the durable itself stays
    conn_->ReleaseConsumer(options_.name);
  }

 private:
  // A delivery for the caller, nullopt when the record was consumed here (filtered out or dead).
  Result<std::optional<Delivery>> Handle(MsgPtr msg) {
    jsMsgMetaData* meta_raw = nullptr;
    natsStatus s = natsMsg_GetMetaData(&meta_raw, msg.get());
    if (s != NATS_OK) return FromNats(s, 0, "consumer " + options_.name + " metadata");
    MetaPtr meta(meta_raw);
    auto record = std::make_shared<Record>(FromNatsMsg(msg.get()));
    record->offset = meta->Sequence.Stream - 1;
    record->timestamp_ns = meta->Timestamp;
    const auto deliveries = static_cast<uint32_t>(meta->NumDelivered);
    if (deliveries > 1 && redelivery_) redelivery_->Inc();
    outstanding_.erase(record->offset);  // an earlier delivery of the same record
    if (deliveries > options_.max_deliver) {
      Message dead{record->key, record->headers, record->payload};
      dead.headers.emplace_back("x-original-topic", options_.topic);
      dead.headers.emplace_back("x-original-offset", std::to_string(record->offset));
      dead.headers.emplace_back("x-deliveries", std::to_string(options_.max_deliver));
      auto r = conn_->PublishSync(DeadLetterTopic(), dead);
      if (!r.ok()) return r.status().WithContext("dead-letter " + options_.topic);
      RETURN_IF_ERROR(AckSync(msg.get()));
      RefreshPosition();
      return std::optional<Delivery>();
    }
    if (record->timestamp_ns < skip_before_ns_ || !options_.filter.Matches(*record)) {
      RETURN_IF_ERROR(AckSync(msg.get()));
      return std::optional<Delivery>();
    }
    if (lag_) lag_->Set(static_cast<double>(meta->NumPending + outstanding_.size() + 1));
    Delivery d;
    if (!topic_) topic_ = std::make_shared<const std::string>(options_.topic);
    d.topic = topic_;
    d.record = std::move(record);
    d.delivery_count = deliveries;
    outstanding_.emplace(d.record->offset, std::move(msg));
    return std::optional<Delivery>(std::move(d));
  }

  Status AckSync(natsMsg* msg) {
    jsErrCode ec = static_cast<jsErrCode>(0);
    natsStatus s = natsMsg_AckSync(msg, nullptr, &ec);
    if (s != NATS_OK) return FromNats(s, ec, "ack on consumer " + options_.name);
    return Status::Ok();
  }

  // Metrics only: one consumer-info request per acknowledgement when they are recorded.
  void RefreshPosition() {
    if (!position_ && !lag_) return;
    jsConsumerInfo* raw = nullptr;
    jsErrCode ec = static_cast<jsErrCode>(0);
    if (js_GetConsumerInfo(&raw, conn_->js(), conn_->Stream(options_.topic).c_str(),
                           options_.name.c_str(), nullptr, &ec) != NATS_OK) {
      return;
    }
    ConsumerInfoPtr ci(raw);
    acked_ = ci->AckFloor.Stream;
    if (position_) position_->Set(static_cast<double>(acked_));
    if (lag_)
      lag_->Set(static_cast<double>(ci->NumPending + static_cast<uint64_t>(ci->NumAckPending)));
  }

  std::string DeadLetterTopic() const {
    return options_.dead_letter_topic.empty() ? options_.topic + ".dlq"
                                              : options_.dead_letter_topic;
  }

  const std::shared_ptr<Connection> conn_;
  const ConsumerOptions options_;
  std::shared_ptr<const std::string> topic_;
  SubPtr sub_;
  bool closed_ = false;
  std::map<uint64_t, MsgPtr> outstanding_;  // delivered, not acked, by offset
  mutable uint64_t acked_ = 0;
  int64_t skip_before_ns_ = 0;  // see SkipBefore
  Gauge* lag_ = nullptr;
  Counter* redelivery_ = nullptr;
  Gauge* position_ = nullptr;
};

// ---------------------------------------------------------------------------------------------

class NatsBus final : public Bus {
 public:
  explicit NatsBus(std::shared_ptr<Connection> conn) : conn_(std::move(conn)) {}
  ~NatsBus() override { conn_->MarkClosed(); }

  Status CreateTopic(std::string_view name, const TopicOptions& options) override {
    return conn_->CreateTopic(name, options);
  }

  Result<TopicStats> GetTopicStats(std::string_view name) override {
    ASSIGN_OR_RETURN(StreamInfoPtr si, conn_->GetStream(name));
    TopicStats st;
    st.name = std::string(name);
    auto d = Connection::DurabilityOf(*si);
    st.options.durability = d.ok() ? *d : Durability::kAsync;
    const jsStreamConfig* c = si->Config;
    if (c && c->MaxBytes > 0) st.options.retention.max_bytes = static_cast<uint64_t>(c->MaxBytes);
    if (c && c->MaxAge > 0)
      st.options.retention.max_age = std::chrono::seconds(c->MaxAge / 1'000'000'000);
    if (c && c->Storage == js_MemoryStorage && c->MaxMsgs > 0) {
      int pow = 0;
      while ((int64_t{1} << pow) < c->MaxMsgs && pow < 62) ++pow;
      st.options.ring_pow = pow;
    }
    st.next_offset = si->State.LastSeq;
    st.first_offset = si->State.Msgs == 0 ? si->State.LastSeq : si->State.FirstSeq - 1;
    st.wal_bytes = si->State.Bytes;
    return st;
  }

  std::vector<std::string> ListTopics() override { return conn_->ListTopics(); }

  void PublishBatchAsync(std::string_view topic, std::vector<Message> messages,
                         PublishCallback done) override {
    conn_->PublishBatchAsync(topic, std::move(messages), std::move(done));
  }

  Result<std::unique_ptr<Subscription>> Subscribe(SubscribeOptions options) override {
    if (!IsValidTopicPattern(options.pattern)) {
      return InvalidArgument("bad topic pattern '" + options.pattern + "'");
    }
    auto sub = std::make_unique<NatsSubscription>(conn_, std::move(options));
    RETURN_IF_ERROR(sub->Start());
    return std::unique_ptr<Subscription>(std::move(sub));
  }

  Result<std::unique_ptr<Consumer>> OpenConsumer(ConsumerOptions options) override {
    if (!IsToken(options.name)) {
      return InvalidArgument("bad consumer name '" + options.name + "'");
    }
    if (options.max_deliver == 0) return InvalidArgument("max_deliver must be at least 1");
    if (options.ack_timeout.count() <= 0) return InvalidArgument("ack_timeout must be positive");
    RETURN_IF_ERROR(conn_->GetStream(options.topic).status());
    std::string dlq =
        options.dead_letter_topic.empty() ? options.topic + ".dlq" : options.dead_letter_topic;
    TopicOptions dlq_options;
    dlq_options.durability = Durability::kSync;
    if (Status st = conn_->CreateTopic(dlq, dlq_options);
        !st.ok() && st.code() != StatusCode::kConflict) {
      return st;
    }
    RETURN_IF_ERROR(conn_->ClaimConsumer(options.name));
    auto consumer = std::make_unique<NatsConsumer>(conn_, std::move(options));
    if (Status st = consumer->Start(); !st.ok()) return st;  // the destructor releases the name
    return std::unique_ptr<Consumer>(std::move(consumer));
  }

  Result<RecordPtr> Request(std::string_view topic, Message request, milliseconds timeout,
                            int priority) override {
    if (priority < 0 || priority > 3) return InvalidArgument("priority must be 0..3");
    const auto deadline = Clock::now() + timeout;
    natsInbox* inbox = nullptr;
    natsStatus s = natsInbox_Create(&inbox);
    if (s != NATS_OK) return FromNats(s, 0, "request inbox");
    std::string reply_to = inbox;
    natsInbox_Destroy(inbox);
    natsSubscription* raw = nullptr;
    s = natsConnection_SubscribeSync(&raw, conn_->nc(), reply_to.c_str());
    if (s != NATS_OK) return FromNats(s, 0, "request inbox subscription");
    SubPtr sub(raw);
    request.headers.emplace_back("reply_to", reply_to);
    request.headers.emplace_back("priority", std::to_string(priority));
    RETURN_IF_ERROR(conn_->PublishSync(topic, request).status());
    while (true) {
      int64_t wait = RemainingMs(deadline);
      if (wait <= 0) break;
      natsMsg* reply_raw = nullptr;
      s = natsSubscription_NextMsg(&reply_raw, sub.get(), wait);
      if (s == NATS_TIMEOUT) break;
      if (s != NATS_OK) return FromNats(s, 0, "request on " + std::string(topic));
      MsgPtr reply(reply_raw);
      // Confirm receipt, so the replier knows its answer arrived.
      if (const char* confirm = natsMsg_GetReply(reply.get())) {
        natsConnection_PublishString(conn_->nc(), confirm, "");
      }
      auto record = std::make_shared<Record>(FromNatsMsg(reply.get()));
      record->timestamp_ns = nats_NowInNanoSeconds();
      return RecordPtr(std::move(record));
    }
    return DeadlineExceeded("no reply on " + std::string(topic) + " within " +
                            std::to_string(timeout.count()) + " ms");
  }

  Status Reply(const Record& request, Message reply) override {
    const std::string* reply_to = request.FindHeader("reply_to");
    if (!reply_to) return InvalidArgument("the record has no reply_to header");
    if (reply_to->rfind(kInboxPrefix, 0) != 0 ||
        reply_to->find_first_of(" \t\r\n*>") != std::string::npos) {
      return InvalidArgument("reply_to '" + *reply_to + "' is not a NATS inbox");
    }
    RETURN_IF_ERROR(ValidateMessage(reply));
    ASSIGN_OR_RETURN(MsgPtr msg, ToNatsMsg(*reply_to, reply));
    natsMsg* confirm = nullptr;
    natsStatus s = natsConnection_RequestMsg(&confirm, conn_->nc(), msg.get(),
                                             conn_->options().api_timeout.count());
    natsMsg_Destroy(confirm);
    if (s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT) {
      return NotFound("the requester is no longer waiting");
    }
    if (s != NATS_OK) return FromNats(s, 0, "reply");
    return Status::Ok();
  }

 private:
  std::shared_ptr<Connection> conn_;
};

}  // namespace

Result<std::unique_ptr<Bus>> OpenNatsBus(NatsBusOptions options) {
  if (options.url.empty()) return InvalidArgument("bus.nats_url is empty");
  if (!IsToken(options.stream_prefix)) {
    return InvalidArgument("bad NATS stream prefix '" + options.stream_prefix + "'");
  }
  auto conn = std::make_shared<Connection>(std::move(options));
  RETURN_IF_ERROR(conn->Connect());
  return std::unique_ptr<Bus>(std::make_unique<NatsBus>(std::move(conn)));
}

}  // namespace atrium::bus
