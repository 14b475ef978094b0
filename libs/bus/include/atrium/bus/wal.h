// Wal: the segmented write-ahead log of one durable topic (format: docs/formats/wal.md).
//
// Appends go to a queue drained by one writer thread per WAL. The writer takes everything that is
// pending (up to the batch limits), writes it, and then applies the durability policy once for the
// whole batch: with kSync one fdatasync covers every publisher of the batch (group commit), and
// only then are their callbacks run. A failed write or sync is fatal: the failing appends get the
// error, every later Append fails with Unavailable, and nothing after the failure is ever
// acknowledged (the kernel may have dropped the dirty pages, so retrying could lie).
//
// Under load kSync runs the group commit as a two-stage pipeline: the writer thread encodes and
// writes batches while a syncer thread runs one fdatasync for every batch written so far and then
// their callbacks. Neither stage waits for the other (up to kMaxQueuedSyncJobs written batches
// may queue for the syncer), so a sync covers whatever the writer wrote during the previous
// sync and its callbacks, and a segment roll waits until the syncer is idle. Otherwise (nothing
// else pending, or a batch smaller than `pipeline_min_records`, with the syncer idle) the writer
// syncs and acknowledges the batch itself, which saves two thread hand-offs per batch.
//
// Open() recovers: it checks every segment's header and every record's CRC, truncates a torn tail
// (an incomplete or damaged last record of the last segment with nothing valid after it) and
// refuses to open on damage followed by valid records, naming the file and byte position, unless
// `repair` is set (then the log is cut at the damage and the next offset stays above every offset
// seen, so offsets are never reused). Sparse index files are rebuilt when missing or stale.
//
// Thread-safe. Cursors keep the Wal alive (shared ownership).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "atrium/bus/options.h"
#include "atrium/bus/record.h"
#include "atrium/core/env.h"
#include "atrium/core/metrics.h"
#include "atrium/core/status.h"

namespace atrium::bus {

struct WalOptions {
  Durability durability = Durability::kSync;  // kMemory is invalid for a WAL
  std::chrono::milliseconds interval{10};
  uint64_t segment_bytes = 64ull << 20;
  Retention retention;
  size_t max_batch_size = 4096;
  uint64_t max_batch_bytes = 8ull << 20;
  // kSync: the smallest batch the writer hands to the syncer when more appends are waiting
  // (smaller ones it syncs and acknowledges itself: there the hand-off costs more than it saves).
  size_t pipeline_min_records = 256;
  // kSync: group commit window (TopicOptions::commit_delay).
  std::chrono::microseconds commit_delay{0};
  bool repair = false;

  static WalOptions FromTopic(const TopicOptions& t, bool repair);
};

// Optional metrics of one WAL (null members are skipped). They must outlive the Wal.
struct WalMetrics {
  Gauge* wal_bytes = nullptr;
  Histogram* flush_duration = nullptr;        // each fdatasync
  Histogram* batch_size = nullptr;            // records per writer batch
  Histogram* batch_flush_duration = nullptr;  // write + sync of a batch
};

// What Open() found and did.
struct WalRecoveryReport {
  uint64_t torn_bytes_truncated = 0;
  uint64_t repaired_bytes_dropped = 0;
  int indexes_rebuilt = 0;
  uint64_t records = 0;
};

struct WalReadResult {
  std::vector<RecordPtr> records;
  // Set when the requested offset is behind retention: the first offset still available (the
  // cursor has moved there; the caller must tell its reader).
  std::optional<uint64_t> truncated_to;
};

class Wal;

// Sequential reader over a Wal from a given offset. Not thread-safe.
class WalCursor {
 public:
  WalCursor(std::shared_ptr<Wal> wal, uint64_t from);
  ~WalCursor();
  // Up to `max_records` records with offsets in [position(), end_exclusive). `end_exclusive` must
  // not exceed what the writer has acknowledged. Internal on a damaged record.
  Result<WalReadResult> Read(size_t max_records, uint64_t end_exclusive);
  uint64_t position() const { return next_; }

 private:
  Status OpenSegment(std::optional<uint64_t>* truncated_to);
  std::shared_ptr<Wal> wal_;
  uint64_t next_;
  std::unique_ptr<SequentialFile> file_;
  std::string path_;
  uint64_t seg_base_ = 0;    // base offset of the open segment
  bool seg_last_ = false;    // it was the active segment
  uint64_t later_base_ = 0;  // base of the following segment (when not last)
  uint64_t file_pos_ = 0;    // file position of buf_[0]
  std::string buf_;
  size_t buf_pos_ = 0;
};

class Wal : public std::enable_shared_from_this<Wal> {
 public:
  using DoneCallback = std::function<void(Status)>;

  // Runs on the WAL's thread after the callbacks of a batch that met the durability policy (the
  // bus wakes its readers there once per batch instead of once per append).
  using BatchHook = std::function<void()>;

  // Opens (creating `dir` if needed) and recovers the WAL in `dir`. `env` must outlive the Wal.
  static Result<std::shared_ptr<Wal>> Open(Env& env, std::string dir, WalOptions options,
                                           WalMetrics metrics = {}, BatchHook after_batch = {});
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Queues records for the writer. Their offsets must be strictly increasing and start at or
  // above next_offset(). `done` runs on the writer thread once the batch holding them satisfies
  // the durability policy, or with the error. Unavailable (and `done` is not called) when the WAL
  // has failed or is closed; `done` is then left to the caller (it is moved from only on success).
  Status Append(std::vector<RecordPtr> records, DoneCallback&& done);
  // The same for records the caller keeps alive and unchanged until `done` has run (the bus's
  // batches already own theirs: no reference count per record).
  Status Append(std::vector<const Record*> records, DoneCallback&& done);

  // Writes what is pending and stops the writer. Later Appends fail. Idempotent.
  void Close();

  uint64_t next_offset() const;   // the smallest offset the next Append may use
  uint64_t first_offset() const;  // the oldest offset still retained
  uint64_t total_bytes() const;
  size_t segment_count() const;
  Status health() const;  // ok, or the fatal error
  const WalRecoveryReport& recovery() const { return recovery_; }
  const std::string& dir() const { return dir_; }

 private:
  friend class WalCursor;
  struct IndexEntry {
    uint64_t offset;
    uint64_t position;
  };
  struct Segment {
    uint64_t base = 0;
    std::string path;
    uint64_t size = 0;        // bytes, header included
    uint64_t end_offset = 0;  // last record's offset + 1 (base when empty)
    int64_t max_ts_ns = 0;
    uint64_t last_indexed_pos = 0;
    std::vector<IndexEntry> index;
  };
  struct Pending {
    std::vector<const Record*> records;
    std::vector<RecordPtr> owned;  // what keeps `records` alive, when the WAL holds them
    DoneCallback done;
    uint64_t bytes = 0;  // for the writer's batch limit: payloads plus 64 per record
  };
  struct SegmentView {
    uint64_t base = 0;
    std::string path;
    uint64_t start_pos = 0;  // where to start decoding
    uint64_t end_offset = 0;
    bool last = false;
    uint64_t later_base = 0;
  };

  Wal(Env& env, std::string dir, WalOptions options, WalMetrics metrics, BatchHook after_batch);
  Status Recover();
  Status ScanSegment(Segment& seg, bool is_last, uint64_t* max_offset_seen, bool* drop_rest);
  Status WriteIndex(const Segment& seg);
  Status CreateSegment(uint64_t base);  // writer thread or Open
  Status OpenActiveForAppend();
  Status Enqueue(Pending&& append, DoneCallback&& done);  // both Appends
  // A written batch waiting for the syncer (kSync).
  struct SyncJob {
    std::vector<Pending> batch;
    Status written;  // the write's outcome: only an ok batch can be acknowledged
    std::chrono::steady_clock::time_point start;
  };
  void WriterLoop();
  void SyncerLoop();
  // One sync for all of `jobs`, then their callbacks in order.
  void FinishSyncJobs(std::span<SyncJob> jobs, const Status& failed);
  // Written batches that may wait for the syncer before the writer waits too.
  static constexpr size_t kMaxQueuedSyncJobs = 8;
  Status WriteBatch(const std::vector<Pending>& batch);
  Status SyncFlushed();   // fdatasync of the active file, timed
  Status SyncActive();    // SyncFlushed, and the interval policy's bookkeeping
  void WaitSyncerIdle();  // writer: before it replaces file_
  void ApplyRetention();
  // Under mu_: where to read `offset`; nullopt when it is behind retention.
  std::optional<SegmentView> Locate(uint64_t offset) const;
  std::string SegmentPath(uint64_t base, const char* suffix) const;

  Env& env_;
  const std::string dir_;
  const WalOptions options_;
  const WalMetrics metrics_;
  const BatchHook after_batch_;
  WalRecoveryReport recovery_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Segment> segments_;  // guarded by mu_; back() is the active segment
  std::deque<Pending> pending_;   // guarded by mu_
  uint64_t next_offset_ = 0;      // guarded by mu_
  uint64_t total_bytes_ = 0;      // guarded by mu_
  Status failed_;                 // guarded by mu_
  bool stop_ = false;             // guarded by mu_
  bool writer_idle_ = false;      // guarded by mu_: the writer waits for appends on cv_
  std::thread writer_;
  // kSync pipeline: the writer queues written batches for the syncer, which takes all of them,
  // syncs the active file once and runs their callbacks.
  std::condition_variable sync_cv_;   // syncer: a job was queued, or stop
  std::condition_variable taken_cv_;  // writer: the syncer took the jobs, or went idle
  std::vector<SyncJob> sync_jobs_;    // guarded by mu_
  bool syncing_ = false;              // guarded by mu_: the syncer holds jobs
  bool syncer_stop_ = false;          // guarded by mu_
  std::thread syncer_;

  // Writer thread only (and Open before the thread starts). The syncer also calls
  // file_->SyncFlushed() while it holds a job; the writer replaces file_ only when it is idle.
  std::unique_ptr<WritableFile> file_;
  std::unique_ptr<WritableFile> index_file_;
  bool dirty_ = false;  // written but not synced (kInterval)
  std::chrono::steady_clock::time_point last_sync_;
  std::chrono::steady_clock::time_point last_take_;  // when the last batch was taken (kSync)
  std::string buf_;
  std::string index_buf_;
};

}  // namespace atrium::bus
