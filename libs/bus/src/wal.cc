#include "atrium/bus/wal.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "atrium/bus/crc32c.h"
#include "atrium/bus/wal_format.h"
#include "atrium/bus/wal_record.h"
#include "atrium/core/thread_name.h"

namespace atrium::bus {
namespace wf = wal_format;
namespace {

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::string EncodeSegmentHeader(uint64_t base) {
  std::string h(wf::kSegmentMagic, sizeof(wf::kSegmentMagic));
  PutU32(&h, wf::kWalVersion);
  PutU32(&h, 0);
  PutU64(&h, base);
  PutU32(&h, wf::MaskCrc(Crc32c(h)));
  PutU32(&h, 0);
  return h;
}

// Empty when the header is valid for `base`, else what is wrong.
std::string CheckSegmentHeader(std::string_view data, uint64_t base) {
  if (std::memcmp(data.data(), wf::kSegmentMagic, sizeof(wf::kSegmentMagic)) != 0) {
    return "bad segment magic";
  }
  if (wf::UnmaskCrc(GetU32(data.data() + 24)) != Crc32c(data.substr(0, 24))) {
    return "segment header checksum mismatch";
  }
  if (GetU32(data.data() + 8) != wf::kWalVersion) return "unsupported WAL version";
  if (GetU64(data.data() + 16) != base) return "segment base offset does not match its name";
  return {};
}

// The largest offset of a valid record found by scanning `data` byte by byte from `from`
// (resynchronising after damage), or nullopt when there is none.
std::optional<uint64_t> MaxValidOffsetAfter(std::string_view data, size_t from) {
  std::optional<uint64_t> max;
  Record rec;
  for (size_t p = from; p + wf::kFrameHeaderSize + wf::kMinBodySize <= data.size();) {
    uint32_t len = GetU32(data.data() + p);
    if (len >= wf::kMinBodySize && len <= data.size() - p - wf::kFrameHeaderSize &&
        static_cast<uint8_t>(data[p + wf::kFrameHeaderSize]) ==
            static_cast<uint8_t>(wf::RecordType::kData)) {
      size_t n = 0;
      if (DecodeRecord(data.substr(p), &rec, &n) == DecodeResult::kOk) {
        max = std::max(max.value_or(0), rec.offset);
        p += n;
        continue;
      }
    }
    ++p;
  }
  return max;
}

bool ParseSegmentName(const std::string& name, uint64_t* base) {
  const size_t suffix = std::strlen(wf::kSegmentSuffix);
  if (name.size() != wf::kSegmentNameDigits + suffix) return false;
  if (name.compare(wf::kSegmentNameDigits, suffix, wf::kSegmentSuffix) != 0) return false;
  uint64_t v = 0;
  for (int i = 0; i < wf::kSegmentNameDigits; ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *base = v;
  return true;
}

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

WalOptions WalOptions::FromTopic(const TopicOptions& t, bool repair) {
  WalOptions o;
  o.durability = t.durability;
  o.interval = t.interval;
  o.segment_bytes = t.segment_bytes;
  o.retention = t.retention;
  o.max_batch_size = t.max_batch_size;
  o.max_batch_bytes = t.max_batch_bytes;
  o.commit_delay = t.commit_delay;
  o.repair = repair;
  return o;
}

Wal::Wal(Env& env, std::string dir, WalOptions options, WalMetrics metrics, BatchHook after_batch)
    : env_(env),
      dir_(std::move(dir)),
      options_(options),
      metrics_(metrics),
      after_batch_(std::move(after_batch)) {}

Wal::~Wal() { Close(); }

std::string Wal::SegmentPath(uint64_t base, const char* suffix) const {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu", static_cast<unsigned long long>(base));
  return JoinPath(dir_, std::string(name) + suffix);
}

Result<std::shared_ptr<Wal>> Wal::Open(Env& env, std::string dir, WalOptions options,
                                       WalMetrics metrics, BatchHook after_batch) {
  if (options.durability == Durability::kMemory) {
    return InvalidArgument("a WAL needs a durable policy (async, interval or sync)");
  }
  std::shared_ptr<Wal> wal(new Wal(env, std::move(dir), options, metrics, std::move(after_batch)));
  RETURN_IF_ERROR(wal->Recover());
  wal->last_sync_ = std::chrono::steady_clock::now();
  wal->writer_ = std::thread([w = wal.get()] {
    SetThreadName("bus-wal-write");
    w->WriterLoop();
  });
  if (options.durability == Durability::kSync) {
    wal->syncer_ = std::thread([w = wal.get()] {
      SetThreadName("bus-wal-sync");
      w->SyncerLoop();
    });
  }
  return wal;
}

Status Wal::Recover() {
  RETURN_IF_ERROR(env_.CreateDirs(dir_));
  ASSIGN_OR_RETURN(auto names, env_.ListDir(dir_));
  std::vector<uint64_t> bases;
  for (const auto& n : names) {
    uint64_t base;
    if (ParseSegmentName(n, &base)) bases.push_back(base);
  }
  std::sort(bases.begin(), bases.end());

  uint64_t min_next = 0;  // offsets at or above this are never used yet
  bool drop_rest = false;
  for (size_t i = 0; i < bases.size(); ++i) {
    Segment seg;
    seg.base = bases[i];
    seg.path = SegmentPath(seg.base, wf::kSegmentSuffix);
    min_next = std::max(min_next, seg.base);
    if (drop_rest) {
      // Repair: segments after the damage are cut, but their offsets stay used.
      auto data = env_.ReadFile(seg.path);
      if (data.ok()) {
        if (auto m = MaxValidOffsetAfter(*data, wf::kSegmentHeaderSize)) {
          min_next = std::max(min_next, *m + 1);
        }
        recovery_.repaired_bytes_dropped += data->size();
      }
      RETURN_IF_ERROR(env_.RemoveFile(seg.path));
      (void)env_.RemoveFile(SegmentPath(seg.base, wf::kIndexSuffix));
      continue;
    }
    uint64_t max_seen = 0;
    bool is_last = i + 1 == bases.size();
    Status s = ScanSegment(seg, is_last, &max_seen, &drop_rest);
    if (!s.ok()) return s;
    min_next = std::max(min_next, max_seen);
    if (seg.size == 0) continue;  // an incomplete header of the last segment: removed
    segments_.push_back(std::move(seg));
  }
  if (drop_rest) RETURN_IF_ERROR(env_.SyncDir(dir_));

  uint64_t end = segments_.empty() ? 0 : segments_.back().end_offset;
  next_offset_ = std::max(end, min_next);
  for (const auto& seg : segments_) total_bytes_ += seg.size;
  if (segments_.empty() || segments_.back().end_offset < next_offset_) {
    // Start a segment whose base keeps offsets above everything ever written.
    if (!segments_.empty()) {
      RETURN_IF_ERROR(OpenActiveForAppend());
      RETURN_IF_ERROR(file_->Sync());
    }
    RETURN_IF_ERROR(CreateSegment(next_offset_));
  } else {
    RETURN_IF_ERROR(OpenActiveForAppend());
  }
  if (metrics_.wal_bytes) metrics_.wal_bytes->Set(static_cast<double>(total_bytes_));
  return Status::Ok();
}

Status Wal::ScanSegment(Segment& seg, bool is_last, uint64_t* max_offset_seen, bool* drop_rest) {
  ASSIGN_OR_RETURN(std::string data, env_.ReadFile(seg.path));
  auto where = [&](uint64_t pos) {
    return "WAL segment " + seg.path + " at byte " + std::to_string(pos);
  };
  seg.end_offset = seg.base;
  if (data.size() < wf::kSegmentHeaderSize) {
    if (!is_last) return Internal("corrupt " + where(0) + ": incomplete segment header");
    // Crash while creating the segment: nothing in it was ever acknowledged.
    recovery_.torn_bytes_truncated += data.size();
    RETURN_IF_ERROR(env_.RemoveFile(seg.path));
    (void)env_.RemoveFile(SegmentPath(seg.base, wf::kIndexSuffix));
    RETURN_IF_ERROR(env_.SyncDir(dir_));
    *max_offset_seen = seg.base;
    seg.size = 0;
    return Status::Ok();
  }
  if (std::string err = CheckSegmentHeader(data, seg.base); !err.empty()) {
    return Internal("corrupt " + where(0) + ": " + err);
  }
  size_t pos = wf::kSegmentHeaderSize;
  uint64_t next_min = seg.base;
  seg.last_indexed_pos = 0;
  Record rec;
  std::string damage;
  while (pos < data.size()) {
    size_t n = 0;
    DecodeResult r = DecodeRecord(std::string_view(data).substr(pos), &rec, &n);
    if (r == DecodeResult::kOk && rec.offset < next_min) {
      damage = "offset " + std::to_string(rec.offset) + " is not above the previous record";
      r = DecodeResult::kCorrupt;
    }
    if (r == DecodeResult::kOk) {
      if (seg.index.empty() || pos - seg.last_indexed_pos >= wf::kIndexIntervalBytes) {
        seg.index.push_back({rec.offset, pos});
        seg.last_indexed_pos = pos;
      }
      seg.end_offset = rec.offset + 1;
      seg.max_ts_ns = std::max(seg.max_ts_ns, rec.timestamp_ns);
      next_min = rec.offset + 1;
      ++recovery_.records;
      pos += n;
      continue;
    }
    if (damage.empty()) {
      damage = r == DecodeResult::kIncomplete ? "incomplete record" : "bad length or checksum";
    }
    std::optional<uint64_t> later = MaxValidOffsetAfter(data, pos + 1);
    if (is_last && !later) {
      // A torn tail: the last write did not complete, so it was never acknowledged.
      recovery_.torn_bytes_truncated += data.size() - pos;
      RETURN_IF_ERROR(env_.TruncateFile(seg.path, pos));
      break;
    }
    if (!options_.repair) {
      return Internal("corrupt " + where(pos) + ": " + damage +
                      (later ? ", followed by valid records" : " in a sealed segment") +
                      "; refusing to open (open with repair to cut the log there, losing " +
                      std::to_string(data.size() - pos) +
                      " bytes of this segment and all later "
                      "segments)");
    }
    recovery_.repaired_bytes_dropped += data.size() - pos;
    if (later) next_min = std::max(next_min, *later + 1);
    RETURN_IF_ERROR(env_.TruncateFile(seg.path, pos));
    *drop_rest = true;
    break;
  }
  seg.size = std::min<uint64_t>(pos, data.size());
  *max_offset_seen = next_min;
  return WriteIndex(seg);
}

Status Wal::WriteIndex(const Segment& seg) {
  std::string expected;
  for (const auto& e : seg.index) {
    PutU64(&expected, e.offset);
    PutU64(&expected, e.position);
  }
  std::string path = SegmentPath(seg.base, wf::kIndexSuffix);
  auto existing = env_.ReadFile(path);
  if (existing.ok() && *existing == expected) return Status::Ok();
  ++recovery_.indexes_rebuilt;
  return WriteFileAtomic(env_, path, expected);
}

Status Wal::OpenActiveForAppend() {
  const Segment& seg = segments_.back();
  ASSIGN_OR_RETURN(file_, env_.NewAppendableFile(seg.path));
  ASSIGN_OR_RETURN(index_file_, env_.NewAppendableFile(SegmentPath(seg.base, wf::kIndexSuffix)));
  return Status::Ok();
}

Status Wal::CreateSegment(uint64_t base) {
  if (file_) {
    RETURN_IF_ERROR(file_->Sync());  // the sealed segment is complete on disk before the next
    RETURN_IF_ERROR(file_->Close());
    file_.reset();
  }
  if (index_file_) {
    (void)index_file_->Close();
    index_file_.reset();
  }
  Segment seg;
  seg.base = base;
  seg.end_offset = base;
  seg.path = SegmentPath(base, wf::kSegmentSuffix);
  ASSIGN_OR_RETURN(auto file, env_.NewWritableFile(seg.path));
  RETURN_IF_ERROR(file->Append(EncodeSegmentHeader(base)));
  RETURN_IF_ERROR(file->Sync());
  ASSIGN_OR_RETURN(auto index, env_.NewWritableFile(SegmentPath(base, wf::kIndexSuffix)));
  RETURN_IF_ERROR(env_.SyncDir(dir_));
  seg.size = wf::kSegmentHeaderSize;
  file_ = std::move(file);
  index_file_ = std::move(index);
  std::lock_guard<std::mutex> lock(mu_);
  total_bytes_ += seg.size;
  segments_.push_back(std::move(seg));
  return Status::Ok();
}

Status Wal::Append(std::vector<RecordPtr> records, DoneCallback&& done) {
  std::vector<const Record*> view;
  view.reserve(records.size());
  for (const auto& r : records) view.push_back(r.get());
  return Enqueue(Pending{std::move(view), std::move(records), {}}, std::move(done));
}

Status Wal::Append(std::vector<const Record*> records, DoneCallback&& done) {
  return Enqueue(Pending{std::move(records), {}, {}}, std::move(done));
}

Status Wal::Enqueue(Pending&& append, DoneCallback&& done) {
  if (append.records.empty()) return InvalidArgument("empty append");
  // Everything that reads the records happens before the lock, which the writer needs too.
  const uint64_t first = append.records.front()->offset;
  for (size_t i = 0; i < append.records.size(); ++i) {
    const Record* r = append.records[i];
    if (i > 0 && r->offset <= append.records[i - 1]->offset) {
      return Internal("WAL append with offset out of order");
    }
    append.bytes += r->payload.size() + 64;
  }
  const uint64_t end = append.records.back()->offset + 1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_.ok()) return Unavailable("WAL " + dir_ + " has failed: " + failed_.message());
    if (stop_) return Unavailable("WAL " + dir_ + " is closed");
    if (first < next_offset_) return Internal("WAL append with offset out of order");
    next_offset_ = end;
    append.done = std::move(done);
    pending_.push_back(std::move(append));
    // A busy writer takes this batch when it is done: no wake-up (and no system call) needed.
    if (!writer_idle_) return Status::Ok();
  }
  cv_.notify_one();
  return Status::Ok();
}

void Wal::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !writer_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (syncer_.joinable()) {  // after the writer: it drains the writer's last batch
    {
      std::lock_guard<std::mutex> lock(mu_);
      syncer_stop_ = true;
    }
    sync_cv_.notify_all();
    syncer_.join();
  }
  if (file_) {
    if (dirty_ && health().ok()) (void)file_->Sync();
    (void)file_->Close();
    file_.reset();
  }
  if (index_file_) {
    (void)index_file_->Close();
    index_file_.reset();
  }
}

void Wal::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (pending_.empty()) {
      if (stop_) break;
      writer_idle_ = true;  // Append wakes the writer only while this is set
      if (dirty_ && failed_.ok()) {
        auto due = last_sync_ + options_.interval;
        if (cv_.wait_until(lock, due) == std::cv_status::timeout && pending_.empty()) {
          lock.unlock();
          Status s = SyncActive();
          lock.lock();
          if (!s.ok() && failed_.ok()) failed_ = s;
        }
      } else if (options_.retention.max_age.count() > 0) {
        if (cv_.wait_for(lock, std::chrono::seconds(1)) == std::cv_status::timeout) {
          lock.unlock();
          ApplyRetention();
          lock.lock();
        }
      } else {
        cv_.wait(lock);
      }
      writer_idle_ = false;
      continue;
    }
    if (options_.commit_delay.count() > 0 && syncer_.joinable()) {
      // Group commit window: at most one batch per window. Appends made meanwhile do not wake
      // this thread (it is not idle); Close() does.
      const auto due = last_take_ + options_.commit_delay;
      while (!stop_ && std::chrono::steady_clock::now() < due) cv_.wait_until(lock, due);
      last_take_ = std::chrono::steady_clock::now();
    }
    std::vector<Pending> batch;
    size_t records = 0;
    uint64_t bytes = 0;
    while (!pending_.empty() && (batch.empty() || (records < options_.max_batch_size &&
                                                   bytes < options_.max_batch_bytes))) {
      bytes += pending_.front().bytes;
      records += pending_.front().records.size();
      batch.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    Status failed = failed_;
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    Status s = failed.ok() ? WriteBatch(batch)
                           : Unavailable("WAL " + dir_ + " has failed: " + failed.message());
    if (metrics_.batch_size) metrics_.batch_size->Observe(static_cast<double>(records));
    if (!s.ok() && failed.ok()) {
      lock.lock();
      failed_ = s;
      lock.unlock();
    }
    if (syncer_.joinable()) {
      // kSync. Under load (a large batch with more appends pending, or the syncer busy) the
      // batch is queued for the syncer, whose next fdatasync covers it and whatever else was
      // written meanwhile, and this thread goes on writing (it waits only when
      // kMaxQueuedSyncJobs batches are queued). Otherwise the writer syncs and acknowledges the
      // batch itself: for a small batch the hand-off's two thread wake-ups cost more than the
      // overlap saves.
      lock.lock();
      if (!sync_jobs_.empty() || syncing_ ||
          (!pending_.empty() && records >= options_.pipeline_min_records)) {
        taken_cv_.wait(lock, [&] { return sync_jobs_.size() < kMaxQueuedSyncJobs; });
        sync_jobs_.push_back(SyncJob{std::move(batch), s, start});
        sync_cv_.notify_one();
        lock.unlock();
      } else {
        // Read again: the syncer may have failed a sync since `failed` was read, and an
        // fdatasync after a failed one can succeed without the lost pages being on disk.
        Status failed_now = failed_;
        lock.unlock();  // the syncer is idle and only this thread gives it work
        SyncJob job{std::move(batch), s, start};
        FinishSyncJobs({&job, 1}, failed_now);
      }
    } else {
      for (auto& p : batch) {
        if (p.done) p.done(s);
      }
      if (s.ok() && after_batch_) after_batch_();
    }
    if (s.ok()) ApplyRetention();
    lock.lock();
  }
}

void Wal::SyncerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<SyncJob> jobs;
  while (true) {
    sync_cv_.wait(lock, [&] { return !sync_jobs_.empty() || syncer_stop_; });
    if (sync_jobs_.empty()) break;  // stopped, and the writer's last batch is done
    // Everything written so far: one fdatasync covers it all.
    for (auto& job : sync_jobs_) jobs.push_back(std::move(job));
    sync_jobs_.clear();
    syncing_ = true;
    // A failure seen before this sync (an earlier sync, or a write) means the kernel may have
    // dropped dirty pages: nothing written since can be acknowledged, whatever fdatasync says.
    Status failed = failed_;
    lock.unlock();
    taken_cv_.notify_all();
    FinishSyncJobs(jobs, failed);
    jobs.clear();
    lock.lock();
    syncing_ = false;
    taken_cv_.notify_all();
  }
}

// `failed`: the WAL's failure as it was before this sync, read under mu_. Every job was written
// before the call (in order), so one fdatasync of the active file covers them all.
void Wal::FinishSyncJobs(std::span<SyncJob> jobs, const Status& failed) {
  Status synced;
  if (!failed.ok()) {
    synced = Unavailable("WAL " + dir_ + " has failed: " + failed.message());
  } else if (std::any_of(jobs.begin(), jobs.end(),
                         [](const SyncJob& j) { return j.written.ok(); })) {
    synced = SyncFlushed();
  }
  if (!synced.ok() && failed.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.ok()) failed_ = synced;
  }
  bool any_ok = false;
  for (SyncJob& job : jobs) {
    const Status& s = job.written.ok() ? synced : job.written;
    if (s.ok() && metrics_.batch_flush_duration) {
      metrics_.batch_flush_duration->Observe(SecondsSince(job.start));
    }
    for (auto& p : job.batch) {
      if (p.done) p.done(s);
    }
    any_ok = any_ok || s.ok();
    job.batch.clear();  // releases the records here, not under the lock
  }
  if (any_ok && after_batch_) after_batch_();
}

void Wal::WaitSyncerIdle() {
  if (!syncer_.joinable()) return;
  std::unique_lock<std::mutex> lock(mu_);
  taken_cv_.wait(lock, [&] { return sync_jobs_.empty() && !syncing_; });
}

// Syncer (kSync) or writer thread: what the writer flushed becomes durable.
Status Wal::SyncFlushed() {
  auto start = std::chrono::steady_clock::now();
  Status s = file_->SyncFlushed();
  if (metrics_.flush_duration) metrics_.flush_duration->Observe(SecondsSince(start));
  return s;
}

// Writer thread (kAsync, kInterval).
Status Wal::SyncActive() {
  Status s = SyncFlushed();
  last_sync_ = std::chrono::steady_clock::now();
  if (s.ok()) dirty_ = false;
  return s;
}

Status Wal::WriteBatch(const std::vector<Pending>& batch) {
  auto start = std::chrono::steady_clock::now();
  buf_.clear();
  index_buf_.clear();
  // Snapshot of the active segment's counters; published under mu_ after each write.
  Segment* active;
  uint64_t size, end_offset, last_indexed;
  int64_t max_ts;
  std::vector<IndexEntry> new_index;
  {
    std::lock_guard<std::mutex> lock(mu_);
    active = &segments_.back();
    size = active->size;
    end_offset = active->end_offset;
    last_indexed = active->last_indexed_pos;
    max_ts = active->max_ts_ns;
  }
  auto publish = [&]() -> Status {
    if (!buf_.empty()) {
      RETURN_IF_ERROR(file_->Append(buf_));
      RETURN_IF_ERROR(file_->Flush());
    }
    if (!index_buf_.empty()) {
      RETURN_IF_ERROR(index_file_->Append(index_buf_));
      RETURN_IF_ERROR(index_file_->Flush());
    }
    std::lock_guard<std::mutex> lock(mu_);
    total_bytes_ += size - active->size;
    active->size = size;
    active->end_offset = end_offset;
    active->last_indexed_pos = last_indexed;
    active->max_ts_ns = max_ts;
    active->index.insert(active->index.end(), new_index.begin(), new_index.end());
    new_index.clear();
    buf_.clear();
    index_buf_.clear();
    return Status::Ok();
  };
  for (const auto& p : batch) {
    for (const auto& r : p.records) {
      size_t n = EncodedRecordSize(*r);
      if (end_offset > active->base && size + n > options_.segment_bytes) {
        RETURN_IF_ERROR(publish());
        WaitSyncerIdle();  // it may be syncing the file CreateSegment closes
        RETURN_IF_ERROR(CreateSegment(r->offset));
        std::lock_guard<std::mutex> lock(mu_);
        active = &segments_.back();
        size = active->size;
        end_offset = active->end_offset;
        last_indexed = 0;
        max_ts = 0;
      }
      if (end_offset == active->base || size - last_indexed >= wf::kIndexIntervalBytes) {
        new_index.push_back({r->offset, size});
        PutU64(&index_buf_, r->offset);
        PutU64(&index_buf_, size);
        last_indexed = size;
      }
      EncodeRecord(*r, &buf_);
      size += n;
      end_offset = r->offset + 1;
      max_ts = std::max(max_ts, r->timestamp_ns);
    }
  }
  // Data first, then the in-memory view readers use: readers only see written bytes.
  if (!buf_.empty()) RETURN_IF_ERROR(file_->Append(buf_));
  RETURN_IF_ERROR(file_->Flush());
  switch (options_.durability) {
    case Durability::kSync:
      break;  // SyncerLoop syncs the batch once it holds it
    case Durability::kInterval:
      dirty_ = true;
      if (std::chrono::steady_clock::now() - last_sync_ >= options_.interval) {
        RETURN_IF_ERROR(SyncActive());
      }
      break;
    default:
      break;
  }
  buf_.clear();
  RETURN_IF_ERROR(publish());
  if (metrics_.batch_flush_duration && options_.durability != Durability::kSync) {
    metrics_.batch_flush_duration->Observe(SecondsSince(start));  // kSync: SyncerLoop
  }
  if (metrics_.wal_bytes) metrics_.wal_bytes->Set(static_cast<double>(total_bytes()));
  return Status::Ok();
}

void Wal::ApplyRetention() {
  const Retention& r = options_.retention;
  if (r.max_bytes == 0 && r.max_age.count() == 0) return;
  const int64_t now_ns = env_.NowMicros() * 1000;
  std::vector<std::string> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (segments_.size() > 1) {
      const Segment& oldest = segments_.front();
      bool too_big = r.max_bytes > 0 && total_bytes_ > r.max_bytes;
      bool too_old = r.max_age.count() > 0 &&
                     now_ns - oldest.max_ts_ns >
                         std::chrono::duration_cast<std::chrono::nanoseconds>(r.max_age).count();
      if (!too_big && !too_old) break;
      total_bytes_ -= oldest.size;
      doomed.push_back(oldest.path);
      doomed.push_back(SegmentPath(oldest.base, wf::kIndexSuffix));
      segments_.pop_front();
    }
  }
  if (doomed.empty()) return;
  for (const auto& p : doomed) (void)env_.RemoveFile(p);
  (void)env_.SyncDir(dir_);
  if (metrics_.wal_bytes) metrics_.wal_bytes->Set(static_cast<double>(total_bytes()));
}

uint64_t Wal::next_offset() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_offset_;
}
uint64_t Wal::first_offset() const {
  std::lock_guard<std::mutex> lock(mu_);
  return segments_.front().base;
}
uint64_t Wal::total_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_bytes_;
}
size_t Wal::segment_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return segments_.size();
}
Status Wal::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

std::optional<Wal::SegmentView> Wal::Locate(uint64_t offset) const {
  if (segments_.empty() || offset < segments_.front().base) return std::nullopt;
  auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                             [](uint64_t o, const Segment& s) { return o < s.base; });
  --it;
  SegmentView v;
  v.base = it->base;
  v.path = it->path;
  v.end_offset = it->end_offset;
  v.start_pos = wf::kSegmentHeaderSize;
  for (const auto& e : it->index) {
    if (e.offset > offset) break;
    v.start_pos = e.position;
  }
  auto next = it + 1;
  v.last = next == segments_.end();
  v.later_base = v.last ? 0 : next->base;
  return v;
}

WalCursor::WalCursor(std::shared_ptr<Wal> wal, uint64_t from) : wal_(std::move(wal)), next_(from) {}
WalCursor::~WalCursor() = default;

Status WalCursor::OpenSegment(std::optional<uint64_t>* truncated_to) {
  std::optional<Wal::SegmentView> view;
  uint64_t first;
  {
    std::lock_guard<std::mutex> lock(wal_->mu_);
    view = wal_->Locate(next_);
    first = wal_->segments_.front().base;
  }
  if (!view) {
    *truncated_to = first;
    next_ = first;
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(file_, wal_->env_.NewSequentialFile(view->path));
  path_ = view->path;
  seg_base_ = view->base;
  seg_last_ = view->last;
  later_base_ = view->later_base;
  // Skip to the index entry at or before next_ (SequentialFile cannot seek).
  uint64_t skipped = 0;
  std::string chunk;
  while (skipped < view->start_pos) {
    RETURN_IF_ERROR(file_->Read(std::min<uint64_t>(view->start_pos - skipped, 1 << 16), &chunk));
    if (chunk.empty()) return Internal("WAL segment " + path_ + " is shorter than its index");
    skipped += chunk.size();
  }
  file_pos_ = skipped;
  buf_.clear();
  buf_pos_ = 0;
  return Status::Ok();
}

Result<WalReadResult> WalCursor::Read(size_t max_records, uint64_t end_exclusive) {
  WalReadResult out;
  std::string chunk;
  Record rec;
  while (out.records.size() < max_records && next_ < end_exclusive) {
    if (!file_) {
      RETURN_IF_ERROR(OpenSegment(&out.truncated_to));
      if (out.truncated_to) return out;
      continue;
    }
    size_t n = 0;
    DecodeResult r = DecodeRecord(std::string_view(buf_).substr(buf_pos_), &rec, &n);
    if (r == DecodeResult::kOk) {
      if (rec.offset >= end_exclusive) {
        next_ = end_exclusive;  // past the limit (offsets have a gap here): leave it for later
        break;
      }
      buf_pos_ += n;
      if (rec.offset >= next_) {
        next_ = rec.offset + 1;
        out.records.push_back(std::make_shared<const Record>(std::move(rec)));
        rec = Record();
      }
      continue;
    }
    if (r == DecodeResult::kCorrupt) {
      return Internal("corrupt record in WAL segment " + path_ + " at byte " +
                      std::to_string(file_pos_ + buf_pos_));
    }
    // Incomplete: read more of the file.
    if (buf_pos_ > 0) {
      file_pos_ += buf_pos_;
      buf_.erase(0, buf_pos_);
      buf_pos_ = 0;
    }
    RETURN_IF_ERROR(file_->Read(1 << 16, &chunk));
    if (!chunk.empty()) {
      buf_.append(chunk);
      continue;
    }
    // End of the file.
    if (seg_last_) {
      // The active segment when we opened it. If it is still active, nothing more is written
      // yet. If it was sealed meanwhile, bytes may have been appended since our last read: read
      // again (it is complete now) before moving to the next segment.
      std::lock_guard<std::mutex> lock(wal_->mu_);
      if (wal_->segments_.back().path == path_) break;
      auto v = wal_->Locate(seg_base_);
      seg_last_ = false;
      later_base_ = v && v->path == path_ ? v->later_base : 0;
      continue;
    }
    file_.reset();
    // Offsets between this segment's last record and the next base do not exist (a repair).
    if (next_ < later_base_) next_ = later_base_;
  }
  return out;
}

}  // namespace atrium::bus
