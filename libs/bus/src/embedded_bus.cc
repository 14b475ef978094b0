// The embedded Bus (embedded_bus.h).
//
// Each topic keeps a ring of the last 2^ring_pow records (shared pointers to immutable records, so
// fan-out never copies payloads) and, when durable, a Wal. Publishing assigns offsets under the
// topic's mutex and queues the records to the WAL in offset order; the records become visible to
// readers (`committed_end`) only when the WAL has met the durability policy, so no reader ever
// sees a record that a crash could take back (sync topics). Readers behind the ring read the WAL.
// Waiting readers sleep on one condition variable per bus, woken when any topic commits.
#include "atrium/bus/embedded_bus.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "atrium/bus/wal.h"
#include "atrium/core/spin.h"

namespace atrium::bus {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kTopicMetaFile[] = "topic.meta";
constexpr size_t kReadBatch = 1024;
// How long a reader that caught up watches for the next record before it sleeps (WaitForChange).
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(20);

std::vector<double> BatchSizeBuckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
}
std::vector<double> FlushBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
}

struct BusMetrics {
  CounterFamily* publish_total = nullptr;
  CounterFamily* drop_total = nullptr;
  GaugeFamily* backlog_lag = nullptr;
  GaugeFamily* wal_bytes = nullptr;
  HistogramFamily* wal_flush = nullptr;
  HistogramFamily* batch_size = nullptr;
  HistogramFamily* batch_flush = nullptr;
  GaugeFamily* ring_used = nullptr;
  CounterFamily* redelivery_total = nullptr;
  GaugeFamily* consumer_position = nullptr;

  explicit BusMetrics(MetricsRegistry* r) {
    if (!r) return;
    publish_total = &r->Counter("bus_publish_total", "Records published", {"topic"});
    drop_total = &r->Counter("bus_drop_total", "Records overwritten before a subscriber read them",
                             {"topic"});
    backlog_lag = &r->Gauge("bus_backlog_lag", "Records not yet acknowledged by a consumer",
                            {"topic", "consumer"});
    wal_bytes = &r->Gauge("bus_wal_bytes", "Bytes in the topic's WAL segments", {"topic"});
    wal_flush = &r->Histogram("bus_wal_flush_duration_seconds", "fdatasync duration", {"topic"},
                              FlushBuckets());
    batch_size = &r->Histogram("bus_batch_size", "Records per WAL write batch", {"topic"},
                               BatchSizeBuckets());
    batch_flush =
        &r->Histogram("bus_batch_flush_duration_seconds", "Write and sync duration of a WAL batch",
                      {"topic"}, FlushBuckets());
    ring_used = &r->Gauge("bus_ring_used", "Records held in the topic's ring", {"topic"});
    redelivery_total = &r->Counter("bus_redelivery_total", "Redeliveries after an ack timeout",
                                   {"topic", "consumer"});
    consumer_position = &r->Gauge("bus_consumer_position",
                                  "Offset below which a consumer has acknowledged everything",
                                  {"topic", "consumer"});
  }
};

std::string EncodeTopicMeta(const TopicOptions& o) {
  std::string s;
  auto kv = [&](std::string_view k, const std::string& v) {
    s.append(k).append("=").append(v).append("\n");
  };
  kv("durability", std::string(DurabilityName(o.durability)));
  kv("interval_ms", std::to_string(o.interval.count()));
  kv("ring_pow", std::to_string(o.ring_pow));
  kv("retention_max_bytes", std::to_string(o.retention.max_bytes));
  kv("retention_max_age_s", std::to_string(o.retention.max_age.count()));
  kv("segment_bytes", std::to_string(o.segment_bytes));
  kv("max_batch_size", std::to_string(o.max_batch_size));
  kv("max_batch_bytes", std::to_string(o.max_batch_bytes));
  kv("commit_delay_us", std::to_string(o.commit_delay.count()));
  return s;
}

Result<TopicOptions> DecodeTopicMeta(std::string_view text, const std::string& path) {
  TopicOptions o;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return Internal("malformed line in " + path);
    std::string_view k = line.substr(0, eq);
    std::string v(line.substr(eq + 1));
    if (k == "durability") {
      ASSIGN_OR_RETURN(o.durability, ParseDurability(v));
      continue;
    }
    uint64_t n = 0;
    try {
      n = std::stoull(v);
    } catch (...) {
      return Internal("malformed number for " + std::string(k) + " in " + path);
    }
    if (k == "interval_ms") o.interval = std::chrono::milliseconds(n);
    if (k == "ring_pow") o.ring_pow = static_cast<int>(n);
    if (k == "retention_max_bytes") o.retention.max_bytes = n;
    if (k == "retention_max_age_s") o.retention.max_age = std::chrono::seconds(n);
    if (k == "segment_bytes") o.segment_bytes = n;
    if (k == "max_batch_size") o.max_batch_size = n;
    if (k == "max_batch_bytes") o.max_batch_bytes = n;
    if (k == "commit_delay_us") o.commit_delay = std::chrono::microseconds(n);
  }
  return o;
}

bool IsValidConsumerName(std::string_view n) {
  if (n.empty() || n.size() > 100) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

class BusCore;

// A generation readers sleep on. Signal() costs one atomic increment unless a reader sleeps: the
// lock and the futex wake are taken only then. A waiter registers in `waiters_` before it
// re-checks the generation (both seq_cst), so either it sees the new generation or Signal() sees
// it waiting.
class ChangeSignal {
 public:
  void Signal() {
    gen_.fetch_add(1);
    if (waiters_.load() == 0) return;
    WakeAll();
  }
  uint64_t generation() const { return gen_.load(); }

  // Until the generation moves past `gen`, `closed` is set (whoever sets it calls WakeAll
  // after), or `until`. False on timeout.
  //
  // With `spin`, the caller has just delivered records: a reader that caught up with a steady
  // publisher usually sees the next batch within microseconds, sooner than a futex sleep and
  // wake-up take (and the wake-up would cost the publisher a system call per batch). So it first
  // watches the generation for at most kSpinBeforeSleep, pausing the core between looks, and only
  // then sleeps. Readers pass `spin` only after a delivery, so an idle reader, or one woken by
  // other topics' records, sleeps at once: no busy waiting while idle.
  bool Wait(uint64_t gen, Clock::time_point until, const std::atomic<bool>& closed,
            bool spin = false) {
    auto changed_or_closed = [&] {
      return gen_.load() != gen || closed.load(std::memory_order_relaxed);
    };
    if (spin && SpinUntil(changed_or_closed, std::min(until, Clock::now() + kSpinBeforeSleep))) {
      return true;
    }
    std::unique_lock<std::mutex> lock(mu_);
    waiters_.fetch_add(1);
    bool changed = cv_.wait_until(lock, until, changed_or_closed);
    waiters_.fetch_sub(1);
    return changed;
  }

  void WakeAll() {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_all();
  }

 private:
  std::atomic<uint64_t> gen_{0};
  std::atomic<uint64_t> waiters_{0};  // readers inside Wait
  std::mutex mu_;                     // pairs with cv_
  std::condition_variable cv_;
};

class Topic {
 public:
  Topic(std::string name, TopicOptions options, std::shared_ptr<Wal> wal, const BusMetrics& m)
      : name_(std::make_shared<const std::string>(std::move(name))),
        options_(options),
        wal_(std::move(wal)),
        ring_(size_t{1} << options.ring_pow),
        mask_((uint64_t{1} << options.ring_pow) - 1) {
    if (wal_) {
      ring_start_ = next_offset_ = wal_->next_offset();
      committed_end_.store(next_offset_);
    }
    if (m.publish_total) publish_total_ = &m.publish_total->WithLabels({*name_});
    if (m.drop_total) drop_total_ = &m.drop_total->WithLabels({*name_});
    if (m.ring_used) ring_used_ = &m.ring_used->WithLabels({*name_});
  }

  const std::shared_ptr<const std::string>& name() const { return name_; }
  const TopicOptions& options() const { return options_; }
  const std::shared_ptr<Wal>& wal() const { return wal_; }

  void Publish(BusCore& core, Env& env, std::vector<Message> messages, PublishCallback done);

  // A durable publish waiting in the topic's inbox for the combiner (see Publish): its records,
  // filled by the publisher, and its callback. The combiner sets `range` under the lock.
  struct Queued {
    Queued* next = nullptr;
    // The records. It also owns this entry (see QueuedBatch): releasing it frees the entry.
    std::shared_ptr<Record[]> block;
    uint64_t count = 0;
    PublishCallback done;
    OffsetRange range{};
    uint64_t batch_end = 0;  // the first entry of a combined batch: one past its last offset
  };
  // A durable publish's one allocation: its inbox entry and, for a single message (the common
  // case), its record; larger batches keep their records in `many`.
  struct QueuedBatch {
    Queued entry;
    Record one;
    std::unique_ptr<Record[]> many;
  };
  // Completes `q` with `result` and releases its hold on its allocation (the ring may hold it
  // longer; the callback, and what it captured, goes now).
  static void Finish(Queued* q, Result<OffsetRange> result) {
    std::shared_ptr<Record[]> hold = std::move(q->block);  // frees q after the callback
    PublishCallback done = std::move(q->done);
    done(std::move(result));
  }
  // Fails every publish of the list starting at `first` with `error`.
  static void FailAll(Queued* first, const Status& error) {
    for (Queued* q = first; q != nullptr;) {
      Queued* next = q->next;  // read before Finish frees q
      Finish(q, error);
      q = next;
    }
  }
  // The WAL callback of one combined batch (two words: std::function stores it without an
  // allocation). It runs once, on a WAL thread, before Wal::Close() returns (the topic outlives
  // its WAL's threads); it completes the batch's publishes in order and frees their entries. It
  // wakes no reader: the WAL does that once per batch (OpenTopic's hook).
  struct DurableBatch {
    Topic* topic;
    Queued* first;  // in offset order, linked by `next`
    void operator()(const Status& st) const;
  };

  // Reader registration (memory topics with block/error overflow track reader positions).
  bool TracksReaders() const { return !wal_ && options_.overflow != OverflowPolicy::kDropOldest; }
  void SetReaderPosition(uint64_t id, uint64_t pos) {
    if (!TracksReaders()) return;
    std::lock_guard<std::mutex> lock(mu_);
    MoveReaderLocked(id, pos);
  }
  void RemoveReader(uint64_t id) {
    if (!TracksReaders()) return;
    std::lock_guard<std::mutex> lock(mu_);
    reader_positions_.erase(id);
    space_cv_.notify_all();
  }
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    space_cv_.notify_all();
    if (wal_) wal_->Close();
  }

  uint64_t FirstAvailable() {
    if (wal_) return wal_->first_offset();
    std::lock_guard<std::mutex> lock(mu_);
    return EarliestInRing();
  }
  uint64_t CommittedEnd() const { return committed_end_.load(std::memory_order_acquire); }

  // Readers of this topic alone (durable consumers, subscriptions to one topic by name) wait
  // here rather than on the core's signal, which every topic's batches advance: a consumer of a
  // quiet topic sleeps through a busy one's traffic.
  ChangeSignal& changes() { return changes_; }
  uint64_t NextOffset() {
    std::lock_guard<std::mutex> lock(mu_);
    return next_offset_;
  }
  Status Health() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }

  // What a reader at `cursor` can get without blocking.
  struct Fetch {
    std::vector<RecordPtr> records;  // from the ring
    bool need_wal = false;           // cursor is behind the ring of a durable topic
    uint64_t ring_earliest = 0;
    std::optional<uint64_t> lagged_to;  // memory topic overwrote cursor
  };
  // Fetched records count as read: reader `reader_id` moves past them in the same critical section.
  //
  // The lock is held only to copy the ring's slots and to pin their batches (one reference count
  // per batch); the per-record references are taken after it, so a publisher waits for a short
  // copy rather than for a thousand atomic increments.
  Fetch FetchFrom(uint64_t reader_id, uint64_t cursor, size_t max) {
    Fetch f;
    struct Picked {
      const Record* record;
      size_t pin;  // index into `pins`
    };
    std::vector<Picked> picked;
    std::vector<std::shared_ptr<Record[]>> pins;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const uint64_t committed = committed_end_.load(std::memory_order_acquire);
      if (cursor >= committed) return f;
      uint64_t earliest = EarliestInRing();
      // A WAL reader must stop at committed_end_ too: past it the WAL may hold records that are
      // written but not yet durable (more uncommitted records than the ring holds).
      f.ring_earliest = std::min(earliest, committed);
      if (cursor < earliest) {
        if (wal_) {
          f.need_wal = true;
        } else {
          f.lagged_to = earliest;
          if (drop_total_) drop_total_->Inc(earliest - cursor);
        }
        return f;
      }
      const uint64_t end = cursor + std::min<uint64_t>(max, committed - cursor);
      picked.reserve(end - cursor);
      const std::shared_ptr<Record[]>* last_owner = nullptr;
      for (uint64_t o = cursor; o < end; ++o) {
        const Slot& slot = ring_[o & mask_];
        if (slot.owner != last_owner) {
          pins.push_back(*slot.owner);
          last_owner = slot.owner;
        }
        picked.push_back({slot.record, pins.size() - 1});
      }
      if (TracksReaders()) MoveReaderLocked(reader_id, end);
    }
    f.records.reserve(picked.size());
    for (const Picked& p : picked) f.records.emplace_back(pins[p.pin], p.record);
    return f;
  }

  // Durable topics: called by a WAL thread only, in offset order, without the lock (the combining
  // publisher holds it while it queues to the WAL).
  void Committed(uint64_t end) {
    if (end > committed_end_.load(std::memory_order_relaxed)) {
      committed_end_.store(end, std::memory_order_release);
    }
  }
  void Fail(const Status& s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.ok()) failed_ = s;
  }

 private:
  uint64_t EarliestInRing() const {  // requires mu_
    uint64_t cap = mask_ + 1;
    return next_offset_ > cap ? std::max(ring_start_, next_offset_ - cap) : ring_start_;
  }
  void MoveReaderLocked(uint64_t id, uint64_t pos) {  // requires mu_
    reader_positions_[id] = pos;
    if (blocked_publishers_ > 0) space_cv_.notify_all();
  }
  // Gives `n` records (the batch `block`) their offsets and ring slots. Requires mu_.
  OffsetRange PlaceLocked(std::shared_ptr<Record[]> block, uint64_t n, int64_t now_ns);
  // After placing `n` records (one or more PlaceLocked): moves the batches that left the ring to
  // `evicted`, to be released after the lock, and counts the records. Requires mu_.
  void PlacedLocked(uint64_t n, std::vector<std::shared_ptr<Record[]>>* evicted);
  // Durable topics: takes the combiner's role while the inbox has work (see Publish).
  void CombineQueued(Env& env);
  // Places the publishes of `fifo` (in arrival order, `total` records) and appends them to the
  // WAL as one batch; fails them all when the topic cannot take them.
  void AppendQueued(Env& env, Queued* fifo, uint64_t total);
  uint64_t UsedLocked() const {  // requires mu_
    uint64_t min_pos = next_offset_;
    for (const auto& [id, pos] : reader_positions_) min_pos = std::min(min_pos, pos);
    return next_offset_ - min_pos;
  }

  const std::shared_ptr<const std::string> name_;
  const TopicOptions options_;
  const std::shared_ptr<Wal> wal_;

  std::mutex mu_;
  std::condition_variable space_cv_;  // block policy: readers advanced
  // A ring slot points at its record and at the shared_ptr that owns the record's batch (an
  // element of `blocks_`, whose addresses deque keeps stable): the publisher writes two pointers
  // per record, and only readers touch reference counts.
  struct Slot {
    const Record* record = nullptr;
    const std::shared_ptr<Record[]>* owner = nullptr;
  };
  struct Block {
    uint64_t end = 0;  // one past the batch's last offset
    std::shared_ptr<Record[]> records;
  };
  std::vector<Slot> ring_;    // guarded by mu_
  std::deque<Block> blocks_;  // guarded by mu_: the batches with a record in the ring, oldest first
  const uint64_t mask_;
  uint64_t ring_start_ = 0;   // guarded by mu_: first offset published in this process
  uint64_t next_offset_ = 0;  // guarded by mu_
  // Records below are visible to readers. Memory topics advance it under mu_ when publishing,
  // durable ones on the WAL writer thread; readers load it (acquire) after the ring writes.
  std::atomic<uint64_t> committed_end_{0};
  Status failed_;               // guarded by mu_
  bool paused_ = false;         // guarded by mu_: above pause_hi until back under resume_lo
  int blocked_publishers_ = 0;  // guarded by mu_: publishers waiting on space_cv_
  bool closed_ = false;         // guarded by mu_
  std::map<uint64_t, uint64_t> reader_positions_;  // guarded by mu_

  ChangeSignal changes_;  // advanced by each batch of this topic (BusCore::Notify)

  // Durable topics: publishes waiting for the combiner (newest first), and whether a publisher
  // is combining (see Publish).
  std::atomic<Queued*> inbox_{nullptr};
  std::atomic<bool> combining_{false};

  Counter* publish_total_ = nullptr;
  Counter* drop_total_ = nullptr;
  Gauge* ring_used_ = nullptr;
};

struct ReplySlot {
  std::mutex mu;
  std::condition_variable cv;
  RecordPtr reply;  // guarded by mu
};

class BusCore : public std::enable_shared_from_this<BusCore> {
 public:
  BusCore(Env& env, EmbeddedBusOptions options)
      : env_(env), options_(std::move(options)), metrics_(options_.metrics) {}

  Env& env() { return env_; }
  const BusMetrics& metrics() const { return metrics_; }
  const EmbeddedBusOptions& options() const { return options_; }

  Status LoadTopics() {
    if (options_.data_dir.empty()) return Status::Ok();
    std::string topics_dir = JoinPath(options_.data_dir, "topics");
    RETURN_IF_ERROR(env_.CreateDirs(topics_dir));
    RETURN_IF_ERROR(env_.CreateDirs(JoinPath(options_.data_dir, "consumers")));
    ASSIGN_OR_RETURN(auto names, env_.ListDir(topics_dir));
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      std::string meta_path = JoinPath(JoinPath(topics_dir, name), kTopicMetaFile);
      if (!IsValidTopicName(name) || !env_.FileExists(meta_path)) continue;
      ASSIGN_OR_RETURN(std::string text, env_.ReadFile(meta_path));
      ASSIGN_OR_RETURN(TopicOptions o, DecodeTopicMeta(text, meta_path));
      RETURN_IF_ERROR(o.Validate().WithContext(meta_path));
      RETURN_IF_ERROR(OpenTopic(name, o));
    }
    return Status::Ok();
  }

  Status CreateTopic(std::string_view name, const TopicOptions& o) {
    if (!IsValidTopicName(name)) {
      return InvalidArgument("invalid topic name \"" + std::string(name) + "\"");
    }
    RETURN_IF_ERROR(o.Validate());
    std::lock_guard<std::mutex> lock(create_mu_);
    if (auto t = FindTopic(name)) {
      if (t->options().durability != o.durability) {
        return Conflict("topic " + std::string(name) + " exists with durability " +
                        std::string(DurabilityName(t->options().durability)));
      }
      return Status::Ok();
    }
    if (o.durability != Durability::kMemory) {
      if (options_.data_dir.empty()) {
        return InvalidArgument("durable topic " + std::string(name) + " needs a bus data_dir");
      }
      std::string dir = TopicDir(name);
      RETURN_IF_ERROR(env_.CreateDirs(dir));
      RETURN_IF_ERROR(WriteFileAtomic(env_, JoinPath(dir, kTopicMetaFile), EncodeTopicMeta(o)));
    }
    return OpenTopic(std::string(name), o);
  }

  std::shared_ptr<Topic> FindTopic(std::string_view name) {
    std::lock_guard<std::mutex> lock(topics_mu_);
    auto it = topics_.find(name);
    return it == topics_.end() ? nullptr : it->second;
  }

  // FindTopic for the publish path. A topic, once created, stays in topics_ (and at the same
  // address) for the core's life, so each thread remembers its last lookup: publishers to one
  // topic skip the map's mutex, which all of them share, and take no reference count.
  Topic* FindTopicForPublish(std::string_view name) {
    struct Last {
      uint64_t core = 0;  // id_ of the core it belongs to (never reused)
      std::string name;
      Topic* topic = nullptr;
    };
    thread_local Last last;
    if (last.core == id_ && last.name == name) return last.topic;
    std::shared_ptr<Topic> t = FindTopic(name);
    if (t == nullptr) return nullptr;
    last.core = id_;
    last.name.assign(name);
    last.topic = t.get();
    return last.topic;
  }

  std::vector<std::shared_ptr<Topic>> MatchingTopics(std::string_view pattern, uint64_t* gen) {
    std::vector<std::shared_ptr<Topic>> out;
    std::lock_guard<std::mutex> lock(topics_mu_);
    for (const auto& [name, t] : topics_) {
      if (TopicMatches(pattern, name)) out.push_back(t);
    }
    *gen = topics_gen_.load(std::memory_order_relaxed);
    return out;
  }
  uint64_t TopicsGeneration() const { return topics_gen_.load(std::memory_order_acquire); }
  std::vector<std::string> TopicNames() {
    std::lock_guard<std::mutex> lock(topics_mu_);
    std::vector<std::string> out;
    for (const auto& [name, t] : topics_) out.push_back(name);
    return out;
  }

  // Wakes the readers waiting on the core and, with `topic`, those waiting on that topic alone.
  // Publishers call this once per batch (see ChangeSignal for its cost).
  void Notify(Topic* topic = nullptr) {
    if (topic != nullptr) topic->changes().Signal();
    notify_.Signal();
  }
  uint64_t NotifyGeneration() const { return notify_.generation(); }
  // Waits until Notify() after `gen`, `until`, or shutdown. False on timeout. `spin`: see
  // ChangeSignal::Wait.
  bool WaitForChange(uint64_t gen, Clock::time_point until, bool spin = false) {
    return notify_.Wait(gen, until, closed_, spin);
  }
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  const std::atomic<bool>& closed_flag() const { return closed_; }

  void Shutdown() {
    std::vector<std::shared_ptr<Topic>> topics;
    {
      std::lock_guard<std::mutex> lock(topics_mu_);
      for (auto& [n, t] : topics_) topics.push_back(t);
    }
    closed_.store(true);
    notify_.WakeAll();
    for (auto& t : topics) t->changes().WakeAll();
    for (auto& t : topics) t->Close();
    std::lock_guard<std::mutex> lock(req_mu_);
    pending_requests_.clear();
  }

  uint64_t NewReaderId() { return next_reader_id_.fetch_add(1) + 1; }

  Status ClaimConsumer(const std::string& name) {
    std::lock_guard<std::mutex> lock(consumers_mu_);
    if (!open_consumers_.insert(name).second) {
      return Conflict("consumer " + name + " is already open");
    }
    return Status::Ok();
  }
  void ReleaseConsumer(const std::string& name) {
    std::lock_guard<std::mutex> lock(consumers_mu_);
    open_consumers_.erase(name);
  }

  std::string ConsumerPath(const std::string& name) const {
    return JoinPath(JoinPath(options_.data_dir, "consumers"), name + ".pos");
  }

  std::shared_ptr<ReplySlot> AddRequest(const std::string& id) {
    auto slot = std::make_shared<ReplySlot>();
    std::lock_guard<std::mutex> lock(req_mu_);
    pending_requests_[id] = slot;
    return slot;
  }
  void RemoveRequest(const std::string& id) {
    std::lock_guard<std::mutex> lock(req_mu_);
    pending_requests_.erase(id);
  }
  std::shared_ptr<ReplySlot> FindRequest(const std::string& id) {
    std::lock_guard<std::mutex> lock(req_mu_);
    auto it = pending_requests_.find(id);
    return it == pending_requests_.end() ? nullptr : it->second;
  }

 private:
  std::string TopicDir(std::string_view name) const {
    return JoinPath(JoinPath(options_.data_dir, "topics"), name);
  }

  Status OpenTopic(std::string name, const TopicOptions& o) {
    std::shared_ptr<Wal> wal;
    // The WAL's hook names the topic, made after it: nothing is appended before that.
    auto target = std::make_shared<std::atomic<Topic*>>(nullptr);
    if (o.durability != Durability::kMemory) {
      WalMetrics wm;
      if (metrics_.wal_bytes) wm.wal_bytes = &metrics_.wal_bytes->WithLabels({name});
      if (metrics_.wal_flush) wm.flush_duration = &metrics_.wal_flush->WithLabels({name});
      if (metrics_.batch_size) wm.batch_size = &metrics_.batch_size->WithLabels({name});
      if (metrics_.batch_flush) wm.batch_flush_duration = &metrics_.batch_flush->WithLabels({name});
      // Readers are woken once per durable batch. The WAL's threads run the hook only until
      // Wal::Close(), which Shutdown() calls for every topic before the core can go.
      auto opened = Wal::Open(env_, TopicDir(name), WalOptions::FromTopic(o, options_.repair), wm,
                              [this, target] { Notify(target->load(std::memory_order_acquire)); });
      if (!opened.ok()) return opened.status().WithContext("topic " + name);
      wal = std::move(opened).value();
    }
    auto topic = std::make_shared<Topic>(name, o, std::move(wal), metrics_);
    target->store(topic.get(), std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(topics_mu_);
      topics_.emplace(std::move(name), std::move(topic));
      topics_gen_.fetch_add(1, std::memory_order_release);
    }
    Notify();
    return Status::Ok();
  }

  Env& env_;
  const EmbeddedBusOptions options_;
  const BusMetrics metrics_;

  // Distinguishes cores in FindTopicForPublish's per-thread memory.
  static inline std::atomic<uint64_t> next_id_{1};
  const uint64_t id_ = next_id_.fetch_add(1);
  std::mutex create_mu_;  // serialises CreateTopic
  std::mutex topics_mu_;
  std::map<std::string, std::shared_ptr<Topic>, std::less<>> topics_;  // guarded by topics_mu_
  std::atomic<uint64_t> topics_gen_{0};  // changed under topics_mu_, read without it

  ChangeSignal notify_;  // advanced by every topic's batches and by new topics
  std::atomic<bool> closed_{false};

  std::atomic<uint64_t> next_reader_id_{0};

  std::mutex consumers_mu_;
  std::set<std::string> open_consumers_;  // guarded by consumers_mu_

  std::mutex req_mu_;
  std::map<std::string, std::shared_ptr<ReplySlot>> pending_requests_;  // guarded by req_mu_
};

void Topic::Publish(BusCore& core, Env& env, std::vector<Message> messages, PublishCallback done) {
  const uint64_t n = messages.size();
  const uint64_t cap = mask_ + 1;
  if (n > cap) return done(InvalidArgument("batch larger than the topic's ring"));
  // The batch's records are one allocation, filled before the lock (each RecordPtr aliases it, so
  // a reader holding one record keeps its batch alive); under the lock they only get offsets and
  // ring slots, and the batches that left the ring are released after it. A durable publish's
  // allocation holds its inbox entry too.
  std::shared_ptr<Record[]> block;
  Queued* q = nullptr;
  if (wal_) {
    auto batch = std::make_shared<QueuedBatch>();
    Record* records = &batch->one;
    if (n > 1) {
      batch->many = std::make_unique<Record[]>(n);
      records = batch->many.get();
    }
    q = &batch->entry;
    block = std::shared_ptr<Record[]>(std::move(batch), records);
  } else {
    block = std::make_shared<Record[]>(n);
  }
  for (uint64_t i = 0; i < n; ++i) {
    Message& m = messages[i];
    block[i].key = std::move(m.key);
    block[i].headers = std::move(m.headers);
    block[i].payload = std::move(m.payload);
  }
  if (wal_) {
    // Durable topics combine their publishers' work. A publish joins the inbox (one atomic
    // exchange); whichever publisher finds no combiner at work becomes it and moves everything
    // queued into the ring and the WAL in one critical section and one WAL append. Sixteen
    // publishers then share the topic and WAL locks a few times per batch instead of twice per
    // publish, and none waits for the others: completion is the WAL's callback anyway.
    q->block = std::move(block);
    q->count = n;
    q->done = std::move(done);
    Queued* head = inbox_.load();
    do {
      q->next = head;
    } while (!inbox_.compare_exchange_weak(head, q));
    CombineQueued(env);
    return;
  }
  std::vector<std::shared_ptr<Record[]>> evicted;
  std::unique_lock<std::mutex> lock(mu_);
  auto fail = [&](Status s) {
    lock.unlock();
    done(std::move(s));
  };
  if (!failed_.ok())
    return fail(Unavailable("topic " + *name_ + " is unavailable: " + failed_.message()));
  if (closed_) return fail(Unavailable("bus is closed"));
  if (TracksReaders() && !reader_positions_.empty()) {
    if (options_.overflow == OverflowPolicy::kError) {
      if (UsedLocked() + n > cap) {
        return fail(ResourceExhausted("topic " + *name_ + " is full (a subscriber is behind)"));
      }
    } else if (paused_ || UsedLocked() + n > static_cast<uint64_t>(options_.pause_hi * cap)) {
      paused_ = true;
      const auto resume = static_cast<uint64_t>(options_.resume_lo * cap);
      // Counted, so readers wake every blocked publisher, not only the first one to pause.
      ++blocked_publishers_;
      space_cv_.wait(lock, [&] {
        return closed_ || reader_positions_.empty() ||
               (UsedLocked() <= resume && UsedLocked() + n <= cap);
      });
      --blocked_publishers_;
      paused_ = false;
      if (closed_) return fail(Unavailable("bus is closed"));
    }
  }
  const OffsetRange range = PlaceLocked(std::move(block), n, env.NowMicros() * 1000);
  PlacedLocked(n, &evicted);
  committed_end_.store(next_offset_, std::memory_order_release);
  lock.unlock();
  core.Notify(this);
  done(range);
}

OffsetRange Topic::PlaceLocked(std::shared_ptr<Record[]> block, uint64_t n, int64_t now_ns) {
  OffsetRange range{next_offset_, n};
  blocks_.push_back({range.first + n, std::move(block)});
  const std::shared_ptr<Record[]>* owner = &blocks_.back().records;
  Record* records = owner->get();
  for (uint64_t i = 0; i < n; ++i) {
    Record& b = records[i];
    b.offset = next_offset_++;
    b.timestamp_ns = now_ns;
    ring_[b.offset & mask_] = {&b, owner};
  }
  return range;
}

void Topic::PlacedLocked(uint64_t n, std::vector<std::shared_ptr<Record[]>>* evicted) {
  // Batches whose every record has left the ring are released (after the lock).
  const uint64_t ring_earliest = EarliestInRing();
  while (blocks_.front().end <= ring_earliest) {
    evicted->push_back(std::move(blocks_.front().records));
    blocks_.pop_front();
  }
  if (publish_total_) publish_total_->Inc(n);
  if (ring_used_) {
    const uint64_t cap = mask_ + 1;
    ring_used_->Set(static_cast<double>(std::min<uint64_t>(next_offset_ - ring_start_, cap)));
  }
}

void Topic::CombineQueued(Env& env) {
  // Whoever finds the inbox non-empty after leaving the combiner's role takes it again: a
  // publish queued while a combiner worked is either in its batch or seen by this check (every
  // operation on inbox_ and combining_ is sequentially consistent).
  // A combiner at work is seen with a load first: while it lasts, the publishers that come and
  // go do not write its cache line.
  while (!combining_.load() && !combining_.exchange(true)) {
    Queued* fifo = nullptr;
    uint64_t records = 0;
    for (Queued* q = inbox_.exchange(nullptr); q != nullptr;) {
      Queued* next = q->next;
      q->next = fifo;
      fifo = q;
      records += q->count;
      q = next;
    }
    if (fifo != nullptr) AppendQueued(env, fifo, records);
    combining_.store(false);
    if (inbox_.load() == nullptr) return;
  }
}

void Topic::AppendQueued(Env& env, Queued* fifo, uint64_t total) {
  // The WAL's view of the batch, made before the lock; the entries keep the records alive until
  // the WAL's callback has run.
  std::vector<const Record*> records;
  records.reserve(total);
  for (Queued* q = fifo; q != nullptr; q = q->next) {
    for (uint64_t i = 0; i < q->count; ++i) records.push_back(&q->block[i]);
  }
  std::vector<std::shared_ptr<Record[]>> evicted;
  Status refused;  // before the WAL: the topic's state
  Status appended;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_.ok()) {
      refused = Unavailable("topic " + *name_ + " is unavailable: " + failed_.message());
    } else if (closed_) {
      refused = Unavailable("bus is closed");
    } else {
      const int64_t now_ns = env.NowMicros() * 1000;
      for (Queued* q = fifo; q != nullptr; q = q->next) {
        q->range = PlaceLocked(q->block, q->count, now_ns);
      }
      PlacedLocked(total, &evicted);
      fifo->batch_end = next_offset_;
      // Queued while holding mu_, so the WAL receives batches in offset order. The WAL takes the
      // callback only when it accepts the append.
      appended = wal_->Append(std::move(records), DurableBatch{this, fifo});
      if (appended.ok()) return;
      if (failed_.ok()) failed_ = appended;
    }
  }
  if (!appended.ok()) return DurableBatch{this, fifo}(appended);  // fails its publishes
  FailAll(fifo, refused);
}

void Topic::DurableBatch::operator()(const Status& st) const {
  if (!st.ok()) {
    topic->Fail(st);
    return FailAll(first, Unavailable("topic " + *topic->name_ + ": " + st.message()));
  }
  topic->Committed(first->batch_end);  // readers: woken after the batch
  for (Queued* q = first; q != nullptr;) {
    Queued* next = q->next;  // read before Finish frees q
    Finish(q, q->range);
    q = next;
  }
}

// Reads one topic from a cursor: ring first, then the WAL. Not thread-safe.
class TopicReader {
 public:
  TopicReader(std::shared_ptr<BusCore> core, std::shared_ptr<Topic> topic, uint64_t cursor,
              std::optional<int64_t> min_ts)
      : core_(std::move(core)),
        topic_(std::move(topic)),
        id_(core_->NewReaderId()),
        cursor_(cursor),
        min_ts_(min_ts) {
    topic_->SetReaderPosition(id_, cursor_);
  }
  ~TopicReader() { topic_->RemoveReader(id_); }

  const std::shared_ptr<Topic>& topic() const { return topic_; }
  // The offset of the next record this reader would deliver.
  uint64_t position() const { return buffer_.empty() ? cursor_ : buffer_.front()->offset; }

  // The next event, or nullopt when the reader has caught up.
  Result<std::optional<Delivery>> Poll(const Filter& filter) {
    while (true) {
      while (!buffer_.empty()) {
        RecordPtr r = std::move(buffer_.front());
        buffer_.pop_front();
        if (min_ts_) {
          if (r->timestamp_ns < *min_ts_) continue;
          min_ts_.reset();
        }
        if (!filter.Matches(*r)) continue;
        Delivery d;
        d.topic = topic_->name();
        d.record = std::move(r);
        return std::optional<Delivery>(std::move(d));
      }
      Topic::Fetch f = topic_->FetchFrom(id_, cursor_, kReadBatch);
      if (f.lagged_to) {
        cursor_ = *f.lagged_to;
        topic_->SetReaderPosition(id_, cursor_);
        Delivery d{Delivery::Kind::kLagged, topic_->name(), nullptr, cursor_};
        return std::optional<Delivery>(std::move(d));
      }
      if (f.need_wal) {
        if (!wal_cursor_ || wal_cursor_->position() != cursor_) {
          wal_cursor_ = std::make_unique<WalCursor>(topic_->wal(), cursor_);
        }
        ASSIGN_OR_RETURN(WalReadResult r, wal_cursor_->Read(kReadBatch, f.ring_earliest));
        if (r.truncated_to) {
          cursor_ = *r.truncated_to;
          Delivery d{Delivery::Kind::kTruncated, topic_->name(), nullptr, cursor_};
          return std::optional<Delivery>(std::move(d));
        }
        uint64_t before = cursor_;
        for (auto& rec : r.records) buffer_.push_back(std::move(rec));
        cursor_ = std::max(cursor_, wal_cursor_->position());
        // No progress: nothing readable yet. Never skip ahead silently; retry on the next wakeup.
        if (cursor_ == before && buffer_.empty()) return std::optional<Delivery>();
        continue;
      }
      if (f.records.empty()) return std::optional<Delivery>();
      cursor_ = f.records.back()->offset + 1;
      for (auto& rec : f.records) buffer_.push_back(std::move(rec));
    }
  }

 private:
  std::shared_ptr<BusCore> core_;
  std::shared_ptr<Topic> topic_;
  const uint64_t id_;
  uint64_t cursor_;                // next offset to fetch
  std::optional<int64_t> min_ts_;  // StartPosition::kTime: skip older records
  std::deque<RecordPtr> buffer_;   // fetched, not yet delivered
  std::unique_ptr<WalCursor> wal_cursor_;
};

std::unique_ptr<TopicReader> NewReader(const std::shared_ptr<BusCore>& core,
                                       const std::shared_ptr<Topic>& topic, StartPosition start) {
  uint64_t cursor = 0;
  std::optional<int64_t> min_ts;
  switch (start.kind) {
    case StartPosition::Kind::kEarliest:
      cursor = topic->FirstAvailable();
      break;
    case StartPosition::Kind::kLatest:
      cursor = topic->CommittedEnd();
      break;
    case StartPosition::Kind::kOffset:
      cursor = start.offset;
      break;
    case StartPosition::Kind::kTime:
      cursor = topic->FirstAvailable();
      min_ts = start.timestamp_ns;
      break;
  }
  return std::make_unique<TopicReader>(core, topic, cursor, min_ts);
}

class EmbeddedSubscription final : public Subscription {
 public:
  EmbeddedSubscription(std::shared_ptr<BusCore> core, SubscribeOptions options)
      : core_(std::move(core)), options_(std::move(options)) {
    for (auto& t : core_->MatchingTopics(options_.pattern, &topics_gen_)) {
      readers_.push_back(NewReader(core_, t, options_.start));
    }
  }

  Result<Delivery> Next(std::chrono::milliseconds timeout) override {
    // The clock is read only when there is nothing to deliver: a reader that keeps up with its
    // topics takes no lock and makes no system call per record (atomics and the ring only).
    std::optional<Clock::time_point> until;
    while (true) {
      if (closed_ || core_->closed()) return Cancelled("subscription closed");
      // A subscription to one topic by name that exists sleeps on that topic (no other topic
      // can match a pattern without wildcards); otherwise on the core, which new topics wake.
      Topic* only = literal_ && readers_.size() == 1 ? readers_.front()->topic().get() : nullptr;
      uint64_t gen = only != nullptr ? only->changes().generation() : core_->NotifyGeneration();
      if (only == nullptr && core_->TopicsGeneration() != topics_gen_) AddNewTopics();
      for (size_t i = 0; i < readers_.size(); ++i) {
        size_t k = (next_reader_ + i) % readers_.size();
        ASSIGN_OR_RETURN(std::optional<Delivery> d, readers_[k]->Poll(options_.filter));
        if (d) {
          next_reader_ = k + 1;
          delivered_ = true;
          return std::move(*d);
        }
      }
      if (!until) until = Clock::now() + timeout;
      const bool spin = std::exchange(delivered_, false);
      const bool changed = only != nullptr
                               ? only->changes().Wait(gen, *until, core_->closed_flag(), spin)
                               : core_->WaitForChange(gen, *until, spin);
      if (!changed) return DeadlineExceeded("no record on " + options_.pattern);
    }
  }

  void Close() override {
    closed_ = true;
    readers_.clear();
  }

 private:
  void AddNewTopics() {
    auto topics = core_->MatchingTopics(options_.pattern, &topics_gen_);
    for (auto& t : topics) {
      bool known = std::any_of(readers_.begin(), readers_.end(),
                               [&](const auto& r) { return r->topic() == t; });
      // Topics created after the subscription are read from their beginning.
      if (!known) readers_.push_back(NewReader(core_, t, StartPosition::Earliest()));
    }
  }

  std::shared_ptr<BusCore> core_;
  SubscribeOptions options_;
  const bool literal_ = options_.pattern.find_first_of("*>") == std::string::npos;
  uint64_t topics_gen_ = 0;
  std::vector<std::unique_ptr<TopicReader>> readers_;
  size_t next_reader_ = 0;
  bool delivered_ = false;  // the last Next() returned a record: its wait may spin first
  bool closed_ = false;
};

class EmbeddedBus;

class EmbeddedConsumer final : public Consumer {
 public:
  EmbeddedConsumer(std::shared_ptr<BusCore> core, Bus& bus, ConsumerOptions options,
                   std::shared_ptr<Topic> topic, StartPosition start)
      : core_(std::move(core)),
        bus_(bus),
        options_(std::move(options)),
        reader_(NewReader(core_, topic, start)) {
    const BusMetrics& m = core_->metrics();
    if (m.backlog_lag) lag_ = &m.backlog_lag->WithLabels({options_.topic, options_.name});
    if (m.consumer_position) {
      position_ = &m.consumer_position->WithLabels({options_.topic, options_.name});
    }
    if (m.redelivery_total) {
      redelivery_ = &m.redelivery_total->WithLabels({options_.topic, options_.name});
    }
    persisted_ = start.kind == StartPosition::Kind::kOffset ? start.offset : UINT64_MAX;
    UpdateMetrics();
  }
  ~EmbeddedConsumer() override { Close(); }

  Result<Delivery> Next(std::chrono::milliseconds timeout) override {
    const auto until = Clock::now() + timeout;
    Env& env = core_->env();
    while (true) {
      if (closed_ || core_->closed()) return Cancelled("consumer closed");
      // Only this topic's batches wake a consumer (Topic::changes()), not every topic's.
      uint64_t gen = reader_->topic()->changes().generation();
      auto now = env.SteadyNow();
      // Expired deliveries, looked for only once the earliest deadline may have passed: a
      // consumer holding many records (the relay's aggregator holds up to 512) would otherwise
      // scan all of them on every Next.
      if (!in_flight_.empty() && now >= earliest_deadline_) {
        auto earliest = Clock::time_point::max();
        for (auto it = in_flight_.begin(); it != in_flight_.end();) {
          if (it->second.deadline > now) {
            earliest = std::min(earliest, it->second.deadline);
            ++it;
            continue;
          }
          if (it->second.count >= options_.max_deliver) {
            RETURN_IF_ERROR(DeadLetter(it->second));
            it = in_flight_.erase(it);
            RETURN_IF_ERROR(PersistPosition());
            continue;
          }
          ++it->second.count;
          it->second.deadline = now + options_.ack_timeout;
          if (redelivery_) redelivery_->Inc();
          earliest_deadline_ = now;  // the rest is not scanned yet: look again next time
          return MakeDelivery(it->second);
        }
        earliest_deadline_ = earliest;
      }
      ASSIGN_OR_RETURN(std::optional<Delivery> d, reader_->Poll(options_.filter));
      if (d) {
        if (d->kind == Delivery::Kind::kRecord) {
          auto& f = in_flight_[d->record->offset];
          f.record = d->record;
          f.deadline = now + options_.ack_timeout;
          f.count = 1;
          earliest_deadline_ = std::min(earliest_deadline_, f.deadline);
        }
        UpdateMetrics();
        return std::move(*d);
      }
      UpdateMetrics();
      auto wake = until;
      if (!in_flight_.empty() && earliest_deadline_ != Clock::time_point::max()) {
        // Ack deadlines are on env's clock; wait at most the remaining real time.
        auto left = earliest_deadline_ - now;
        wake = std::min(wake, Clock::now() + std::chrono::duration_cast<Clock::duration>(left));
      }
      if (!reader_->topic()->changes().Wait(gen, wake, core_->closed_flag()) &&
          Clock::now() >= until) {
        return DeadlineExceeded("no record for consumer " + options_.name);
      }
    }
  }

  Status Ack(uint64_t offset) override {
    if (in_flight_.erase(offset) == 0) {
      return NotFound("offset " + std::to_string(offset) + " is not outstanding for consumer " +
                      options_.name);
    }
    RETURN_IF_ERROR(PersistPosition());
    UpdateMetrics();
    return Status::Ok();
  }

  uint64_t AckedPosition() const override {
    return in_flight_.empty() ? reader_->position() : in_flight_.begin()->first;
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    (void)PersistPosition();
    core_->ReleaseConsumer(options_.name);
  }

 private:
  struct InFlight {
    RecordPtr record;
    Clock::time_point deadline;
    uint32_t count = 0;
  };

  Delivery MakeDelivery(const InFlight& f) const {
    Delivery d;
    d.topic = reader_->topic()->name();
    d.record = f.record;
    d.delivery_count = f.count;
    return d;
  }

  Status DeadLetter(const InFlight& f) {
    Message m;
    m.key = f.record->key;
    m.headers = f.record->headers;
    m.headers.emplace_back("x-original-topic", options_.topic);
    m.headers.emplace_back("x-original-offset", std::to_string(f.record->offset));
    m.headers.emplace_back("x-deliveries", std::to_string(f.count));
    m.payload = f.record->payload;
    auto r = bus_.Publish(options_.dead_letter_topic, std::move(m));
    return r.status().WithContext("dead-lettering for consumer " + options_.name);
  }

  Status PersistPosition() {
    uint64_t pos = AckedPosition();
    if (pos == persisted_ || core_->options().data_dir.empty()) return Status::Ok();
    RETURN_IF_ERROR(WriteFileAtomic(core_->env(), core_->ConsumerPath(options_.name),
                                    std::to_string(pos) + "\n"));
    persisted_ = pos;
    return Status::Ok();
  }

  void UpdateMetrics() {
    uint64_t pos = AckedPosition();
    if (position_) position_->Set(static_cast<double>(pos));
    if (lag_) {
      uint64_t end = reader_->topic()->CommittedEnd();
      lag_->Set(static_cast<double>(end > pos ? end - pos : 0));
    }
  }

  std::shared_ptr<BusCore> core_;
  Bus& bus_;
  ConsumerOptions options_;
  std::unique_ptr<TopicReader> reader_;
  std::map<uint64_t, InFlight> in_flight_;
  // No deadline in in_flight_ is earlier than this (acks only remove entries; a scan makes it
  // exact again).
  Clock::time_point earliest_deadline_ = Clock::time_point::max();
  uint64_t persisted_ = UINT64_MAX;
  bool closed_ = false;
  Gauge* lag_ = nullptr;
  Gauge* position_ = nullptr;
  Counter* redelivery_ = nullptr;
};

class EmbeddedBus final : public Bus {
 public:
  explicit EmbeddedBus(std::shared_ptr<BusCore> core) : core_(std::move(core)) {}
  ~EmbeddedBus() override { core_->Shutdown(); }

  Status CreateTopic(std::string_view name, const TopicOptions& options) override {
    return core_->CreateTopic(name, options);
  }

  Result<TopicStats> GetTopicStats(std::string_view name) override {
    auto t = core_->FindTopic(name);
    if (!t) return NotFound("no topic " + std::string(name));
    TopicStats s;
    s.name = std::string(name);
    s.options = t->options();
    s.first_offset = t->FirstAvailable();
    s.next_offset = t->NextOffset();
    s.health = t->Health();
    if (t->wal()) {
      s.wal_bytes = t->wal()->total_bytes();
      s.wal_segments = t->wal()->segment_count();
      if (s.health.ok()) s.health = t->wal()->health();
    }
    return s;
  }

  std::vector<std::string> ListTopics() override { return core_->TopicNames(); }

  void PublishBatchAsync(std::string_view topic, std::vector<Message> messages,
                         PublishCallback done) override {
    if (messages.empty()) return done(InvalidArgument("empty batch"));
    Topic* t = core_->FindTopicForPublish(topic);
    if (!t) return done(NotFound("no topic " + std::string(topic)));
    t->Publish(*core_, core_->env(), std::move(messages), std::move(done));
  }

  Result<std::unique_ptr<Subscription>> Subscribe(SubscribeOptions options) override {
    if (!IsValidTopicPattern(options.pattern)) {
      return InvalidArgument("invalid topic pattern \"" + options.pattern + "\"");
    }
    return std::unique_ptr<Subscription>(
        std::make_unique<EmbeddedSubscription>(core_, std::move(options)));
  }

  Result<std::unique_ptr<Consumer>> OpenConsumer(ConsumerOptions options) override {
    if (!IsValidConsumerName(options.name)) {
      return InvalidArgument("invalid consumer name \"" + options.name + "\"");
    }
    if (options.max_deliver == 0) return InvalidArgument("max_deliver must be at least 1");
    auto topic = core_->FindTopic(options.topic);
    if (!topic) return NotFound("no topic " + options.topic);
    if (options.dead_letter_topic.empty()) options.dead_letter_topic = options.topic + ".dlq";
    if (!core_->FindTopic(options.dead_letter_topic)) {
      TopicOptions dlq;
      dlq.durability = topic->options().durability;
      dlq.ring_pow = 8;
      RETURN_IF_ERROR(core_->CreateTopic(options.dead_letter_topic, dlq));
    }
    StartPosition start = options.start;
    if (!core_->options().data_dir.empty()) {
      std::string path = core_->ConsumerPath(options.name);
      if (core_->env().FileExists(path)) {
        ASSIGN_OR_RETURN(std::string text, core_->env().ReadFile(path));
        try {
          start = StartPosition::AtOffset(std::stoull(text));
        } catch (...) {
          return Internal("malformed consumer position file " + path);
        }
      }
    }
    RETURN_IF_ERROR(core_->ClaimConsumer(options.name));
    return std::unique_ptr<Consumer>(
        std::make_unique<EmbeddedConsumer>(core_, *this, std::move(options), topic, start));
  }

  Result<RecordPtr> Request(std::string_view topic, Message request,
                            std::chrono::milliseconds timeout, int priority) override {
    if (priority < 0 || priority > 3) return InvalidArgument("priority must be in [0, 3]");
    const auto until = Clock::now() + timeout;
    char id[40];
    std::snprintf(id, sizeof(id), "_reply.%016llx",
                  static_cast<unsigned long long>(core_->env().RandomU64()));
    auto slot = core_->AddRequest(id);
    request.headers.emplace_back("reply_to", id);
    request.headers.emplace_back("priority", std::to_string(priority));
    auto published = PublishBatchFuture(topic, [&] {
      std::vector<Message> v;
      v.push_back(std::move(request));
      return v;
    }());
    if (published.wait_until(until) != std::future_status::ready) {
      core_->RemoveRequest(id);
      return DeadlineExceeded("request on " + std::string(topic) + " was not published in time");
    }
    if (auto r = published.get(); !r.ok()) {
      core_->RemoveRequest(id);
      return r.status();
    }
    std::unique_lock<std::mutex> lock(slot->mu);
    bool got = slot->cv.wait_until(lock, until, [&] { return slot->reply != nullptr; });
    RecordPtr reply = slot->reply;
    lock.unlock();
    core_->RemoveRequest(id);
    if (!got) {
      return DeadlineExceeded("no reply on " + std::string(topic) + " within " +
                              std::to_string(timeout.count()) + " ms");
    }
    return reply;
  }

  Status Reply(const Record& request, Message reply) override {
    const std::string* to = request.FindHeader("reply_to");
    if (!to) return InvalidArgument("record has no reply_to header");
    auto slot = core_->FindRequest(*to);
    if (!slot) return NotFound("requester " + *to + " is gone");
    auto r = std::make_shared<Record>();
    r->timestamp_ns = core_->env().NowMicros() * 1000;
    r->key = std::move(reply.key);
    r->headers = std::move(reply.headers);
    r->payload = std::move(reply.payload);
    {
      std::lock_guard<std::mutex> lock(slot->mu);
      if (slot->reply) return Conflict("request " + *to + " was already answered");
      slot->reply = std::move(r);
    }
    slot->cv.notify_all();
    return Status::Ok();
  }

 private:
  std::shared_ptr<BusCore> core_;
};

}  // namespace

Result<std::unique_ptr<Bus>> OpenEmbeddedBus(Env& env, EmbeddedBusOptions options) {
  auto core = std::make_shared<BusCore>(env, std::move(options));
  Status s = core->LoadTopics();
  if (!s.ok()) {
    core->Shutdown();
    return s;
  }
  return std::unique_ptr<Bus>(std::make_unique<EmbeddedBus>(std::move(core)));
}

}  // namespace atrium::bus
