#include "atrium/bus/wal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "atrium/bus/crc32c.h"
#include "atrium/bus/wal_format.h"
#include "atrium/bus/wal_record.h"
#include "atrium/core/fault_env.h"
#include "atrium/core/testing.h"

namespace atrium::bus {
namespace {

RecordPtr MakeRecord(uint64_t offset, std::string payload, int64_t ts = 1000) {
  auto r = std::make_shared<Record>();
  r->offset = offset;
  r->timestamp_ns = ts;
  r->key = "k" + std::to_string(offset);
  r->headers = {{"h", "v" + std::to_string(offset)}};
  r->payload = std::move(payload);
  return r;
}

Status AppendSync(Wal& wal, std::vector<RecordPtr> records) {
  std::promise<Status> p;
  auto f = p.get_future();
  Status s = wal.Append(std::move(records), [&](Status st) { p.set_value(st); });
  if (!s.ok()) return s;
  return f.get();
}

Status AppendRange(Wal& wal, uint64_t from, uint64_t n, size_t payload_size = 16) {
  for (uint64_t o = from; o < from + n; ++o) {
    RETURN_IF_ERROR(AppendSync(wal, {MakeRecord(o, std::string(payload_size, 'a' + o % 26))}));
  }
  return Status::Ok();
}

std::vector<RecordPtr> ReadAll(std::shared_ptr<Wal> wal, uint64_t from = 0) {
  WalCursor c(wal, from);
  std::vector<RecordPtr> out;
  while (true) {
    auto r = c.Read(1000, wal->next_offset());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || r->records.empty()) break;
    for (auto& rec : r->records) out.push_back(rec);
  }
  return out;
}

std::string SegmentPath(const std::string& dir, uint64_t base, const char* suffix = ".wal") {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu", static_cast<unsigned long long>(base));
  return JoinPath(dir, std::string(name) + suffix);
}

TEST(Crc32cTest, MatchesKnownValueAndPortableImplementation) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  std::mt19937 rng(7);
  std::string data(1000, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (size_t n : {0, 1, 7, 8, 9, 63, 1000}) {
    EXPECT_EQ(Crc32cExtend(5, data.data(), n), Crc32cExtendPortable(5, data.data(), n)) << n;
  }
}

TEST(WalRecordTest, RoundTripsAndDetectsDamage) {
  Record r = *MakeRecord(42, "payload");
  std::string enc;
  EncodeRecord(r, &enc);
  EXPECT_EQ(enc.size(), EncodedRecordSize(r));
  Record out;
  size_t n = 0;
  ASSERT_EQ(DecodeRecord(enc, &out, &n), DecodeResult::kOk);
  EXPECT_EQ(n, enc.size());
  EXPECT_EQ(out.offset, 42u);
  EXPECT_EQ(out.key, "k42");
  EXPECT_EQ(out.headers, r.headers);
  EXPECT_EQ(out.payload, "payload");
  for (size_t cut = 0; cut < enc.size(); ++cut) {
    EXPECT_EQ(DecodeRecord(std::string_view(enc).substr(0, cut), &out, &n),
              DecodeResult::kIncomplete);
  }
  std::string bad = enc;
  bad[bad.size() - 2] ^= 0x10;
  EXPECT_EQ(DecodeRecord(bad, &out, &n), DecodeResult::kCorrupt);
}

TEST(WalTest, AppendedRecordsAreReadBackInOrderAndOffsetsSurviveReopen) {
  testing::TempDir dir;
  {
    auto wal = Wal::Open(Env::Default(), dir.path(), {});
    ASSERT_TRUE(wal.ok()) << wal.status().ToString();
    ASSERT_TRUE(AppendRange(**wal, 0, 20).ok());
    auto all = ReadAll(*wal);
    ASSERT_EQ(all.size(), 20u);
    for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(all[i]->offset, i);
  }
  auto wal = Wal::Open(Env::Default(), dir.path(), {});
  ASSERT_TRUE(wal.ok());
  EXPECT_EQ((*wal)->next_offset(), 20u);
  ASSERT_TRUE(AppendRange(**wal, 20, 5).ok());
  auto all = ReadAll(*wal, 18);
  ASSERT_EQ(all.size(), 7u);
  EXPECT_EQ(all.front()->offset, 18u);
  EXPECT_EQ(all.back()->payload, std::string(16, 'a' + 24));
}

TEST(WalTest, TornTailIsTruncatedOnOpen) {
  testing::TempDir dir;
  {
    auto wal = Wal::Open(Env::Default(), dir.path(), {});
    ASSERT_TRUE(AppendRange(**wal, 0, 10).ok());
  }
  // Half of an 11th record, as if the process died inside write().
  std::string enc;
  EncodeRecord(*MakeRecord(10, "never acknowledged"), &enc);
  auto f = Env::Default().NewAppendableFile(SegmentPath(dir.path(), 0));
  ASSERT_TRUE((*f)->Append(enc.substr(0, enc.size() / 2)).ok());
  ASSERT_TRUE((*f)->Close().ok());

  auto wal = Wal::Open(Env::Default(), dir.path(), {});
  ASSERT_TRUE(wal.ok()) << wal.status().ToString();
  EXPECT_EQ((*wal)->recovery().torn_bytes_truncated, enc.size() / 2);
  EXPECT_EQ((*wal)->next_offset(), 10u);
  EXPECT_EQ(ReadAll(*wal).size(), 10u);
  ASSERT_TRUE(AppendRange(**wal, 10, 1).ok());
  EXPECT_EQ(ReadAll(*wal).size(), 11u);
}

TEST(WalTest, FlippedBitMidSegmentIsRefusedAndRepairedOnlyOnRequest) {
  testing::TempDir dir;
  {
    auto wal = Wal::Open(Env::Default(), dir.path(), {});
    ASSERT_TRUE(AppendRange(**wal, 0, 10, 100).ok());
  }
  std::string path = SegmentPath(dir.path(), 0);
  auto data = Env::Default().ReadFile(path);
  ASSERT_TRUE(data.ok());
  const size_t frame = (data->size() - wal_format::kSegmentHeaderSize) / 10;
  const size_t bad_pos = wal_format::kSegmentHeaderSize + 5 * frame;
  (*data)[bad_pos + 60] ^= 0x04;  // inside record 5's body
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), path, *data).ok());

  auto refused = Wal::Open(Env::Default(), dir.path(), {});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(path), std::string::npos);
  EXPECT_NE(refused.status().message().find("at byte " + std::to_string(bad_pos)),
            std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("repair"), std::string::npos);

  WalOptions repair;
  repair.repair = true;
  auto wal = Wal::Open(Env::Default(), dir.path(), repair);
  ASSERT_TRUE(wal.ok()) << wal.status().ToString();
  auto all = ReadAll(*wal);
  ASSERT_EQ(all.size(), 5u);
  // Offsets of the cut records are never handed out again.
  EXPECT_EQ((*wal)->next_offset(), 10u);
  ASSERT_TRUE(AppendRange(**wal, 10, 1).ok());
  all = ReadAll(*wal);
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all.back()->offset, 10u);
  wal->reset();
  // The repaired log opens normally afterwards and keeps its offsets.
  auto again = Wal::Open(Env::Default(), dir.path(), {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->next_offset(), 11u);
}

TEST(WalTest, MissingOrTruncatedIndexIsRebuilt) {
  testing::TempDir dir;
  WalOptions o;
  {
    auto wal = Wal::Open(Env::Default(), dir.path(), o);
    ASSERT_TRUE(AppendRange(**wal, 0, 40, 1000).ok());
  }
  std::string idx = SegmentPath(dir.path(), 0, ".idx");
  auto original = Env::Default().ReadFile(idx);
  ASSERT_TRUE(original.ok());
  ASSERT_GE(original->size(), 3 * wal_format::kIndexEntrySize);

  ASSERT_TRUE(Env::Default().RemoveFile(idx).ok());
  {
    auto wal = Wal::Open(Env::Default(), dir.path(), o);
    ASSERT_TRUE(wal.ok());
    EXPECT_EQ((*wal)->recovery().indexes_rebuilt, 1);
    EXPECT_EQ(ReadAll(*wal, 33).size(), 7u);
  }
  EXPECT_EQ(*Env::Default().ReadFile(idx), *original);

  ASSERT_TRUE(Env::Default().TruncateFile(idx, original->size() - 5).ok());
  auto wal = Wal::Open(Env::Default(), dir.path(), o);
  ASSERT_TRUE(wal.ok());
  EXPECT_EQ((*wal)->recovery().indexes_rebuilt, 1);
  EXPECT_EQ(*Env::Default().ReadFile(idx), *original);
  auto tail = ReadAll(*wal, 39);
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0]->offset, 39u);
}

TEST(WalTest, FailedSyncFailsTheAppendAndEveryLaterOne) {
  testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  auto wal = Wal::Open(env, dir.path(), {});
  ASSERT_TRUE(wal.ok());
  ASSERT_TRUE(AppendRange(**wal, 0, 3).ok());
  env.fail_syncs = 1;
  EXPECT_FALSE(AppendSync(**wal, {MakeRecord(3, "x")}).ok());
  EXPECT_FALSE((*wal)->health().ok());
  Status later = AppendSync(**wal, {MakeRecord(4, "y")});
  EXPECT_EQ(later.code(), StatusCode::kUnavailable);
  wal->reset();
  // What was acknowledged is still there after reopening.
  auto reopened = Wal::Open(Env::Default(), dir.path(), {});
  ASSERT_TRUE(reopened.ok());
  EXPECT_GE(ReadAll(*reopened).size(), 3u);
}

TEST(WalTest, FailedWriteFailsTheAppend) {
  testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  auto wal = Wal::Open(env, dir.path(), {});
  ASSERT_TRUE(wal.ok());
  env.fail_appends = 1;
  EXPECT_FALSE(AppendSync(**wal, {MakeRecord(0, "x")}).ok());
  EXPECT_EQ(AppendSync(**wal, {MakeRecord(1, "y")}).code(), StatusCode::kUnavailable);
}

// Writes only the first half of the next armed append, then fails (a short write: disk full).
class ShortWriteEnv : public FaultInjectionEnv {
 public:
  using FaultInjectionEnv::FaultInjectionEnv;
  std::atomic<int> short_writes{0};

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    ASSIGN_OR_RETURN(auto f, FaultInjectionEnv::NewWritableFile(p));
    return std::unique_ptr<WritableFile>(std::make_unique<File>(std::move(f), *this));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& p) override {
    ASSIGN_OR_RETURN(auto f, FaultInjectionEnv::NewAppendableFile(p));
    return std::unique_ptr<WritableFile>(std::make_unique<File>(std::move(f), *this));
  }

 private:
  class File final : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> base, ShortWriteEnv& env)
        : base_(std::move(base)), env_(env) {}
    Status Append(std::string_view data) override {
      if (!FaultInjectionEnv::Take(env_.short_writes)) return base_->Append(data);
      RETURN_IF_ERROR(base_->Append(data.substr(0, data.size() / 2)));
      (void)base_->Flush();
      return Internal("injected short write");
    }
    Status Flush() override { return base_->Flush(); }
    Status Sync() override { return base_->Sync(); }
    Status SyncFlushed() override { return base_->SyncFlushed(); }
    Status Close() override { return base_->Close(); }

   private:
    std::unique_ptr<WritableFile> base_;
    ShortWriteEnv& env_;
  };
};

TEST(WalTest, ShortWriteFailsTheAppendAndIsTruncatedOnReopen) {
  testing::TempDir dir;
  ShortWriteEnv env(Env::Default());
  {
    auto wal = Wal::Open(env, dir.path(), {});
    ASSERT_TRUE(wal.ok());
    ASSERT_TRUE(AppendRange(**wal, 0, 4, 200).ok());
    env.short_writes = 1;
    EXPECT_FALSE(AppendSync(**wal, {MakeRecord(4, std::string(200, 's'))}).ok());
    EXPECT_EQ(AppendSync(**wal, {MakeRecord(5, "t")}).code(), StatusCode::kUnavailable);
  }
  auto wal = Wal::Open(Env::Default(), dir.path(), {});
  ASSERT_TRUE(wal.ok()) << wal.status().ToString();
  EXPECT_GT((*wal)->recovery().torn_bytes_truncated, 0u);
  auto all = ReadAll(*wal);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ((*wal)->next_offset(), 4u);
}

TEST(WalTest, FailedSegmentCreationIsFatal) {
  testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  WalOptions o;
  o.segment_bytes = 4096;
  auto wal = Wal::Open(env, dir.path(), o);
  ASSERT_TRUE(wal.ok());
  env.fail_opens = -1;
  Status s;
  for (uint64_t i = 0; i < 20 && s.ok(); ++i)
    s = AppendSync(**wal, {MakeRecord(i, std::string(500, 'z'))});
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE((*wal)->health().ok());
}

TEST(WalTest, ConcurrentSyncAppendsShareFsyncs) {
  testing::TempDir dir;
  MetricsRegistry registry;
  auto& batches = registry.Histogram("b", "b", {}, {1, 2, 4, 8, 16, 32, 64}).Get();
  WalMetrics m;
  m.batch_size = &batches;
  auto wal = Wal::Open(Env::Default(), dir.path(), {}, m);
  ASSERT_TRUE(wal.ok());
  constexpr int kThreads = 8, kEach = 40;
  std::mutex order_mu;  // offsets must reach the WAL in order
  uint64_t next = 0;
  std::atomic<int> acked{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        std::promise<Status> p;
        auto f = p.get_future();
        {
          std::lock_guard<std::mutex> lock(order_mu);
          ASSERT_TRUE(
              (*wal)->Append({MakeRecord(next++, "p")}, [&](Status s) { p.set_value(s); }).ok());
        }
        if (f.get().ok()) ++acked;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(acked.load(), kThreads * kEach);
  EXPECT_LE(batches.Count(), static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(ReadAll(*wal).size(), static_cast<size_t>(kThreads * kEach));
}

TEST(WalTest, RetentionBySizeDeletesWholeOldSegmentsAndReadersAreTold) {
  testing::TempDir dir;
  WalOptions o;
  o.durability = Durability::kAsync;
  o.segment_bytes = 4096;
  o.retention.max_bytes = 16384;
  auto wal = Wal::Open(Env::Default(), dir.path(), o);
  ASSERT_TRUE(wal.ok());
  ASSERT_TRUE(AppendRange(**wal, 0, 200, 400).ok());
  for (int i = 0; i < 200 && (*wal)->total_bytes() > 16384u; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_LE((*wal)->total_bytes(), 16384u);
  const uint64_t first = (*wal)->first_offset();
  EXPECT_GT(first, 0u);
  WalCursor c(*wal, 0);
  auto r = c.Read(10, (*wal)->next_offset());
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->truncated_to.has_value());
  EXPECT_EQ(*r->truncated_to, first);
  r = c.Read(1000, (*wal)->next_offset());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->records.front()->offset, first);
  EXPECT_EQ(r->records.back()->offset, 199u);
  wal->reset();
  auto reopened = Wal::Open(Env::Default(), dir.path(), o);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->first_offset(), first);
  EXPECT_EQ((*reopened)->next_offset(), 200u);
}

TEST(WalTest, RetentionByAgeUsesTheEnvClock) {
  testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  env.fake_now_micros = 1'000'000'000;
  WalOptions o;
  o.segment_bytes = 4096;
  o.retention.max_age = std::chrono::seconds(60);
  auto wal = Wal::Open(env, dir.path(), o);
  ASSERT_TRUE(wal.ok());
  const int64_t ts = env.NowMicros() * 1000;
  for (uint64_t i = 0; i < 30; ++i) {
    ASSERT_TRUE(AppendSync(**wal, {MakeRecord(i, std::string(400, 'x'), ts)}).ok());
  }
  ASSERT_GT((*wal)->segment_count(), 2u);
  env.AdvanceMicros(120'000'000);
  ASSERT_TRUE(AppendSync(**wal, {MakeRecord(30, "new", env.NowMicros() * 1000)}).ok());
  // Retention runs on the writer thread right after the batch is acknowledged.
  for (int i = 0; i < 200 && (*wal)->segment_count() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ((*wal)->segment_count(), 1u);
  EXPECT_EQ(ReadAll(*wal, (*wal)->first_offset()).back()->offset, 30u);
}

TEST(WalTest, ReaderFollowsSegmentRolls) {
  testing::TempDir dir;
  WalOptions o;
  o.segment_bytes = 4096;
  auto wal = Wal::Open(Env::Default(), dir.path(), o);
  ASSERT_TRUE(wal.ok());
  WalCursor c(*wal, 0);
  ASSERT_TRUE(AppendRange(**wal, 0, 5, 300).ok());
  auto r = c.Read(100, (*wal)->next_offset());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->records.size(), 5u);
  ASSERT_TRUE(AppendRange(**wal, 5, 60, 300).ok());
  EXPECT_GT((*wal)->segment_count(), 3u);
  size_t total = 5;
  while (true) {
    r = c.Read(7, (*wal)->next_offset());
    ASSERT_TRUE(r.ok());
    if (r->records.empty()) break;
    for (auto& rec : r->records) EXPECT_EQ(rec->offset, total++);
  }
  EXPECT_EQ(total, 65u);
}

// kSync's pipeline: the writer writes the next batch while the syncer syncs the last one. Many
// appends in flight across small segments: every callback runs once, in offset order, and every
// acknowledged record is there after reopening.
TEST(WalTest, PipelinedSyncAcknowledgesInOrderAcrossSegmentRolls) {
  testing::TempDir dir;
  WalOptions o;
  o.segment_bytes = 8192;
  o.max_batch_size = 16;
  o.pipeline_min_records = 1;  // every batch with appends waiting goes to the syncer
  constexpr uint64_t kRecords = 2000;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> acked;  // guarded by mu
  {
    auto wal = Wal::Open(Env::Default(), dir.path(), o);
    ASSERT_TRUE(wal.ok());
    for (uint64_t i = 0; i < kRecords; ++i) {
      ASSERT_TRUE((*wal)
                      ->Append({MakeRecord(i, std::string(100, 'p'))},
                               [&, i](Status s) {
                                 ASSERT_TRUE(s.ok()) << s.ToString();
                                 std::lock_guard lock(mu);
                                 acked.push_back(i);
                                 cv.notify_all();
                               })
                      .ok());
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return acked.size() == kRecords; });
    EXPECT_GT((*wal)->segment_count(), 10u);
  }
  for (uint64_t i = 0; i < kRecords; ++i) ASSERT_EQ(acked[i], i);
  auto reopened = Wal::Open(Env::Default(), dir.path(), o);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto all = ReadAll(*reopened);
  ASSERT_EQ(all.size(), kRecords);
  for (uint64_t i = 0; i < kRecords; ++i) EXPECT_EQ(all[i]->offset, i);
}

// A sync that fails while later batches are already written: nothing from the failed sync on is
// acknowledged, and the acknowledged prefix is intact after reopening.
TEST(WalTest, FailedPipelinedSyncAcknowledgesNothingAfterIt) {
  testing::TempDir dir;
  FaultInjectionEnv env(Env::Default());
  WalOptions o;
  o.max_batch_size = 8;
  o.pipeline_min_records = 1;
  constexpr uint64_t kRecords = 600;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<uint64_t, bool>> results;  // guarded by mu
  {
    auto wal = Wal::Open(env, dir.path(), o);
    ASSERT_TRUE(wal.ok());
    for (uint64_t i = 0; i < kRecords; ++i) {
      if (i == 200) env.fail_syncs = 1;
      Status s = (*wal)->Append({MakeRecord(i, "q")}, [&, i](Status st) {
        std::lock_guard lock(mu);
        results.emplace_back(i, st.ok());
        cv.notify_all();
      });
      if (!s.ok()) {
        EXPECT_EQ(s.code(), StatusCode::kUnavailable);
        std::lock_guard lock(mu);
        results.emplace_back(i, false);
      }
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return results.size() == kRecords; });
    EXPECT_FALSE((*wal)->health().ok());
  }
  std::sort(results.begin(), results.end());
  uint64_t acked = 0;
  while (acked < kRecords && results[acked].second) ++acked;
  EXPECT_LT(acked, kRecords);
  for (uint64_t i = acked; i < kRecords; ++i) EXPECT_FALSE(results[i].second) << i;
  auto reopened = Wal::Open(Env::Default(), dir.path(), o);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto all = ReadAll(*reopened);
  ASSERT_GE(all.size(), acked);
  for (uint64_t i = 0; i < acked; ++i) EXPECT_EQ(all[i]->offset, i);
}

}  // namespace
}  // namespace atrium::bus
