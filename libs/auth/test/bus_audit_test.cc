// Audit records through the bus into the SQL audit log, exactly once per event.
#include "atrium/auth/bus_audit.h"

#include <gtest/gtest.h>

#include <thread>

#include "atrium/bus/embedded_bus.h"
#include "test_db.h"

namespace atrium::auth {
namespace {

class BusAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = testing::OpenTestDatabase(testing::Backend::kSqlite, tmp_, "bus_audit");
    ASSERT_NE(db_, nullptr);
    sql_ = std::make_unique<SqlAuditSink>(*db_);
    OpenBus();
  }
  void OpenBus() {
    auto b = bus::OpenEmbeddedBus(Env::Default(), {.data_dir = tmp_.path() + "/bus"});
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bus_ = std::move(*b);
  }
  static AuditRecord Sample(const std::string& action) {
    return AuditRecord{.at = 1'700'000'000'000'000,
                       .workspace_id = "w1",
                       .actor_type = "user",
                       .actor_id = "u1",
                       .action = action,
                       .resource_type = "key",
                       .resource_id = "k1",
                       .ip = "127.0.0.1",
                       .user_agent = "test \"agent\"",
                       .outcome = "success",
                       .details = R"({"n":1})"};
  }
  size_t Rows() {
    auto page = sql_->Query(AuditQuery{.workspace_id = "w1", .limit = 100});
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? page->records.size() : 0;
  }
  bool WaitForIndexed(AuditIndexer& indexer, uint64_t n) {
    for (int i = 0; i < 200 && indexer.indexed() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return indexer.indexed() >= n;
  }

  atrium::testing::TempDir tmp_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<SqlAuditSink> sql_;
  std::unique_ptr<bus::Bus> bus_;
};

TEST_F(BusAuditTest, RecordsFlowThroughTheBusIntoTheAuditLog) {
  auto sink = BusAuditSink::Create(*bus_);
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  auto indexer = AuditIndexer::Create(*bus_, *sql_);
  ASSERT_TRUE(indexer.ok()) << indexer.status().ToString();
  (*indexer)->Start();
  ASSERT_TRUE((*sink)->Record(Sample("key.create")).ok());
  ASSERT_TRUE((*sink)->Record(Sample("key.revoke")).ok());
  ASSERT_TRUE(WaitForIndexed(**indexer, 2));
  auto page = sql_->Query(AuditQuery{.workspace_id = "w1"});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->records.size(), 2u);
  EXPECT_EQ(page->records[0].action, "key.revoke");  // newest first
  EXPECT_EQ(page->records[1].user_agent, "test \"agent\"");
  EXPECT_EQ(page->records[1].details, R"({"n":1})");
  EXPECT_TRUE((*indexer)->last_error().ok());
}

TEST_F(BusAuditTest, RecordsPublishedWhileTheIndexerIsDownAreIndexedAfterARestart) {
  auto sink = BusAuditSink::Create(*bus_);
  ASSERT_TRUE(sink.ok());
  {
    auto indexer = AuditIndexer::Create(*bus_, *sql_);
    ASSERT_TRUE(indexer.ok());
    (*indexer)->Start();
    ASSERT_TRUE((*sink)->Record(Sample("auth.login")).ok());
    ASSERT_TRUE(WaitForIndexed(**indexer, 1));
  }
  ASSERT_TRUE((*sink)->Record(Sample("auth.logout")).ok());
  sink->reset();
  bus_.reset();
  OpenBus();  // the bus restarts too: the consumer's position survives
  auto indexer = AuditIndexer::Create(*bus_, *sql_);
  ASSERT_TRUE(indexer.ok()) << indexer.status().ToString();
  (*indexer)->Start();
  ASSERT_TRUE(WaitForIndexed(**indexer, 1));
  (*indexer)->Stop();
  EXPECT_EQ(Rows(), 2u);
}

TEST_F(BusAuditTest, TheSameEventIsRecordedOnce) {
  AuditRecord r = Sample("chat.delete");
  r.event_id = "audit:7";
  ASSERT_TRUE(sql_->Record(r).ok());
  ASSERT_TRUE(sql_->Record(r).ok());  // a redelivery
  r.event_id.clear();
  ASSERT_TRUE(sql_->Record(r).ok());  // records without an event id are never deduplicated
  ASSERT_TRUE(sql_->Record(r).ok());
  EXPECT_EQ(Rows(), 3u);
}

TEST(AuditCodecTest, RoundTripsAndRejectsGarbage) {
  AuditRecord r{.at = 5, .workspace_id = "w", .action = "a\n\"b\"", .details = "{}"};
  auto back = DecodeAuditRecord(EncodeAuditRecord(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->action, r.action);
  EXPECT_EQ(back->at, 5);
  EXPECT_EQ(DecodeAuditRecord("not json").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeAuditRecord(R"({"at":"x"})").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atrium::auth
