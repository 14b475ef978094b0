// The bus: named, ordered, append-only topics with offsets, subscriptions and durable consumers.
//
// `Bus` is the interface the rest of Atrium programs against; `OpenEmbeddedBus` (embedded_bus.h)
// is the in-process implementation over per-topic WALs, and `OpenNatsBus` (nats_bus.h)
// implements the same interface over NATS JetStream. Usage, policies and guarantees: docs/bus.md.
//
// Every method is thread-safe. Subscriptions and consumers are used by one thread at a time and
// may outlive the Bus object (they then report Cancelled).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/bus/filter.h"
#include "atrium/bus/options.h"
#include "atrium/bus/record.h"
#include "atrium/core/status.h"

namespace atrium::bus {

// Offsets [first, first + count) given to one published batch.
struct OffsetRange {
  uint64_t first = 0;
  uint64_t count = 0;
};

// Runs once when the batch meets its topic's durability policy (or fails): on the topic's WAL
// writer thread for durable topics, on the publishing thread for memory topics (NATS: on the
// PubAck thread, or the publishing thread for errors found before sending). It must not block
// for long and must not wait for another publish to the same topic (that would stall the writer).
using PublishCallback = std::function<void(Result<OffsetRange>)>;

struct StartPosition {
  enum class Kind { kEarliest, kLatest, kOffset, kTime };
  Kind kind = Kind::kLatest;
  uint64_t offset = 0;       // kOffset
  int64_t timestamp_ns = 0;  // kTime: first record with timestamp >= this

  static StartPosition Earliest() { return {Kind::kEarliest}; }
  static StartPosition Latest() { return {Kind::kLatest}; }
  static StartPosition AtOffset(uint64_t o) { return {Kind::kOffset, o}; }
  static StartPosition AtTime(int64_t ns) { return {Kind::kTime, 0, ns}; }
};

// One event of a subscription or consumer.
struct Delivery {
  enum class Kind {
    kRecord,     // `record` is the next matching record of `topic`
    kTruncated,  // the reader was behind retention; it continues at `next_offset`
    kLagged,     // a drop_oldest memory topic overwrote records; it continues at `next_offset`
  };
  Kind kind = Kind::kRecord;
  std::shared_ptr<const std::string> topic;
  RecordPtr record;             // kRecord
  uint64_t next_offset = 0;     // kTruncated, kLagged
  uint32_t delivery_count = 1;  // consumers: 1 on the first delivery, +1 per redelivery
};

struct SubscribeOptions {
  std::string pattern;  // a topic name or pattern (filter.h)
  Filter filter;
  StartPosition start = StartPosition::Latest();
};

// An ephemeral reader: its position lives only in memory.
class Subscription {
 public:
  virtual ~Subscription() = default;
  // The next event, waiting up to `timeout`. DeadlineExceeded when nothing arrived, Cancelled
  // after Close() or when the bus is gone, Unavailable/Internal when a WAL read fails.
  virtual Result<Delivery> Next(std::chrono::milliseconds timeout) = 0;
  virtual void Close() = 0;
};

struct ConsumerOptions {
  std::string name;   // [A-Za-z0-9_-]+, unique per bus; its position survives restarts
  std::string topic;  // one topic (not a pattern)
  Filter filter;      // non-matching records are acknowledged automatically
  StartPosition start = StartPosition::Earliest();  // when the consumer has no saved position
  std::chrono::milliseconds ack_timeout{30000};
  uint32_t max_deliver = 5;       // deliveries before a record goes to the dead-letter topic
  std::string dead_letter_topic;  // empty: "<topic>.dlq" (created as a sync topic if needed)
};

// A durable named consumer with at-least-once delivery: a record is redelivered when not acked
// within ack_timeout, and moved to the dead-letter topic after max_deliver deliveries.
class Consumer {
 public:
  virtual ~Consumer() = default;
  virtual Result<Delivery> Next(std::chrono::milliseconds timeout) = 0;
  // Acknowledges a delivered record. NotFound when it is not outstanding.
  virtual Status Ack(uint64_t offset) = 0;
  // Every offset below this one is acknowledged (what survives a restart).
  virtual uint64_t AckedPosition() const = 0;
  virtual void Close() = 0;
};

struct TopicStats {
  std::string name;
  TopicOptions options;
  uint64_t first_offset = 0;  // oldest still readable
  uint64_t next_offset = 0;   // the offset the next record will get
  uint64_t wal_bytes = 0;
  size_t wal_segments = 0;
  Status health;  // not ok once the topic's WAL failed
};

class Bus {
 public:
  virtual ~Bus() = default;

  // Creates a topic; ok when it exists with the same durability (its other options stay).
  // InvalidArgument for a bad name or options, Conflict for another durability.
  virtual Status CreateTopic(std::string_view name, const TopicOptions& options) = 0;
  virtual Result<TopicStats> GetTopicStats(std::string_view name) = 0;
  virtual std::vector<std::string> ListTopics() = 0;

  // Publishes a batch; `done` gets its offsets once the topic's durability policy is met.
  // Errors: NotFound (no topic), Unavailable (the WAL failed), ResourceExhausted (a full memory
  // topic with the `error` policy), InvalidArgument (empty or too large batch).
  virtual void PublishBatchAsync(std::string_view topic, std::vector<Message> messages,
                                 PublishCallback done) = 0;

  virtual Result<std::unique_ptr<Subscription>> Subscribe(SubscribeOptions options) = 0;
  virtual Result<std::unique_ptr<Consumer>> OpenConsumer(ConsumerOptions options) = 0;

  // Publishes `request` on `topic` (headers `reply_to` and `priority` are added) and waits for a
  // Reply. DeadlineExceeded after `timeout`. Priority 0..3 travels as a header.
  virtual Result<RecordPtr> Request(std::string_view topic, Message request,
                                    std::chrono::milliseconds timeout, int priority = 0) = 0;
  // Answers a record received from Request. NotFound when the requester has given up.
  virtual Status Reply(const Record& request, Message reply) = 0;

  // Conveniences over PublishBatchAsync.
  Result<uint64_t> Publish(std::string_view topic, Message message);
  Result<OffsetRange> PublishBatch(std::string_view topic, std::vector<Message> messages);
  std::future<Result<OffsetRange>> PublishBatchFuture(std::string_view topic,
                                                      std::vector<Message> messages);
};

}  // namespace atrium::bus
