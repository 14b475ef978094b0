// Audit through the bus: one audit log for the whole platform.
//
// BusAuditSink publishes every record on the `audit` topic (sync durability: Record returns once
// the record is durable in the bus). AuditIndexer is the durable bus consumer that writes the
// records into the SQL audit log (SqlAuditSink) for the query API. Delivery is at-least-once;
// the indexer makes it exactly-once in the table by keying each row on "<topic>:<offset>".
// Both are thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "atrium/auth/audit.h"
#include "atrium/bus/bus.h"

namespace atrium::auth {

inline constexpr std::string_view kAuditTopic = "audit";

// JSON form of a record on the bus (the id and event_id are not carried).
std::string EncodeAuditRecord(const AuditRecord& record);
// InvalidArgument when `json` is not an encoded record.
Result<AuditRecord> DecodeAuditRecord(std::string_view json);

class BusAuditSink : public AuditSink {
 public:
  // Creates the topic (sync durability) when missing. `bus` must outlive the sink.
  static Result<std::unique_ptr<BusAuditSink>> Create(bus::Bus& bus,
                                                      std::string topic = std::string(kAuditTopic));
  Status Record(AuditRecord record) override;

 private:
  BusAuditSink(bus::Bus& bus, std::string topic) : bus_(bus), topic_(std::move(topic)) {}
  bus::Bus& bus_;
  std::string topic_;
};

class AuditIndexer {
 public:
  // Opens the durable consumer "audit-indexer" on `topic`. `bus` and `sink` must outlive it.
  static Result<std::unique_ptr<AuditIndexer>> Create(bus::Bus& bus, SqlAuditSink& sink,
                                                      std::string topic = std::string(kAuditTopic));
  ~AuditIndexer();  // Stop()
  AuditIndexer(const AuditIndexer&) = delete;
  AuditIndexer& operator=(const AuditIndexer&) = delete;

  // Starts the indexing thread.
  void Start();
  // Stops it after the record in hand; unacknowledged records are indexed after a restart.
  void Stop();
  // Records written to the table so far (tests, metrics).
  uint64_t indexed() const { return indexed_.load(); }
  // The last error of the indexing loop (ok when none).
  Status last_error() const;

 private:
  AuditIndexer(std::unique_ptr<bus::Consumer> consumer, SqlAuditSink& sink, std::string topic)
      : consumer_(std::move(consumer)), sink_(sink), topic_(std::move(topic)) {}
  void Run();

  std::unique_ptr<bus::Consumer> consumer_;
  SqlAuditSink& sink_;
  std::string topic_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> indexed_{0};
  mutable std::mutex mu_;
  Status last_error_;  // guarded by mu_
};

}  // namespace atrium::auth
