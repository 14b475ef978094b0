// Conformance tests of the Bus interface. `BusBackendTest` cases run against every backend
// (the embedded bus and NATS JetStream; the NATS instance reads the server URL from
// ATRIUM_TEST_NATS_URL or $ATRIUM_BINARY_DIR/nats/url, written by the ctest fixture `nats`, and
// skips without one). `BusConformanceTest` cases test what only the embedded bus has: its WAL,
// ring, overflow policies, fault injection and metrics.
#include "atrium/bus/bus.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "atrium/bus/embedded_bus.h"
#include "atrium/bus/nats_bus.h"
#include "atrium/core/fault_env.h"
#include "atrium/core/testing.h"

namespace atrium::bus {
namespace {

using std::chrono::milliseconds;

Message Msg(std::string payload, std::string key = "", Headers headers = {}) {
  return Message{std::move(key), std::move(headers), std::move(payload)};
}

TopicOptions Durable(Durability d = Durability::kSync, int ring_pow = 8) {
  TopicOptions o;
  o.durability = d;
  o.ring_pow = ring_pow;
  return o;
}

TopicOptions InMemory(OverflowPolicy p = OverflowPolicy::kDropOldest, int ring_pow = 8) {
  TopicOptions o;
  o.durability = Durability::kMemory;
  o.overflow = p;
  o.ring_pow = ring_pow;
  return o;
}

// Collects `n` record deliveries (other events fail the test).
std::vector<Delivery> Take(Subscription& sub, size_t n, milliseconds timeout = milliseconds(2000)) {
  std::vector<Delivery> out;
  while (out.size() < n) {
    auto d = sub.Next(timeout);
    EXPECT_TRUE(d.ok()) << d.status().ToString() << " after " << out.size();
    if (!d.ok()) break;
    EXPECT_EQ(d->kind, Delivery::Kind::kRecord);
    out.push_back(std::move(*d));
  }
  return out;
}

// The URL of the test NATS server, or "" when there is none.
std::string TestNatsUrl() {
  if (const char* url = std::getenv("ATRIUM_TEST_NATS_URL"); url && *url) return url;
  const char* bin = std::getenv("ATRIUM_BINARY_DIR");
  if (!bin) return "";
  std::ifstream in(std::string(bin) + "/nats/url");
  std::string url;
  std::getline(in, url);
  return url;
}

class BusFixture : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  bool IsNats() const { return backend_ == "nats"; }

  // (Re)opens the bus; for NATS a new connection to the same streams (the "restart").
  void Reopen(bool repair = false) {
    bus_.reset();
    if (IsNats()) {
      NatsBusOptions o;
      o.url = nats_url_;
      o.stream_prefix = nats_prefix_;
      o.metrics = &metrics_;
      auto bus = OpenNatsBus(o);
      ASSERT_TRUE(bus.ok()) << bus.status().ToString();
      bus_ = std::move(bus).value();
      return;
    }
    EmbeddedBusOptions o;
    o.data_dir = dir_.path();
    o.repair = repair;
    o.metrics = &metrics_;
    auto bus = OpenEmbeddedBus(env_, o);
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    bus_ = std::move(bus).value();
  }

  std::unique_ptr<Subscription> Sub(std::string pattern,
                                    StartPosition start = StartPosition::Earliest(),
                                    Filter filter = Filter::All()) {
    auto s = bus_->Subscribe({std::move(pattern), std::move(filter), start});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  std::string backend_ = "embedded";
  std::string nats_url_;
  std::string nats_prefix_;  // unique per test case, so cases never see each other's streams
  testing::TempDir dir_;
  FaultInjectionEnv env_{Env::Default()};
  MetricsRegistry metrics_;
  std::unique_ptr<Bus> bus_;
};

// Embedded-only behaviour.
class BusConformanceTest : public BusFixture {
 protected:
  // The fdatasyncs of one topic's WAL (the bus's flush-duration histogram).
  Histogram& Syncs(const std::string& topic) {
    return metrics_
        .Histogram("bus_wal_flush_duration_seconds", "", {"topic"},
                   {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1})
        .WithLabels({topic});
  }
};

// Behaviour every backend must have.
class BusBackendTest : public BusFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    backend_ = GetParam();
    if (IsNats()) {
      nats_url_ = TestNatsUrl();
      if (nats_url_.empty()) GTEST_SKIP() << "no NATS server (scripts/nats-test start)";
      std::random_device rd;
      nats_prefix_ = "t" + std::to_string(rd()) + std::to_string(rd());
    }
    Reopen();
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, BusBackendTest, ::testing::Values("embedded", "nats"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST_P(BusBackendTest, PublishedRecordsArriveInOffsetOrder) {
  for (auto d : {Durability::kSync, Durability::kAsync, Durability::kInterval}) {
    std::string topic = "t." + std::string(DurabilityName(d));
    ASSERT_TRUE(bus_->CreateTopic(topic, Durable(d)).ok());
    auto sub = Sub(topic);
    for (int i = 0; i < 30; ++i) {
      auto off = bus_->Publish(topic, Msg("m" + std::to_string(i)));
      ASSERT_TRUE(off.ok()) << off.status().ToString();
      EXPECT_EQ(*off, static_cast<uint64_t>(i));
    }
    auto got = Take(*sub, 30);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].record->offset, i);
      EXPECT_EQ(got[i].record->payload, "m" + std::to_string(i));
      EXPECT_EQ(*got[i].topic, topic);
    }
  }
}

TEST_P(BusBackendTest, BatchGetsContiguousOffsetsAndAsyncCompletion) {
  ASSERT_TRUE(bus_->CreateTopic("batch", Durable()).ok());
  auto r = bus_->PublishBatch("batch", {Msg("a"), Msg("b"), Msg("c")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 0u);
  EXPECT_EQ(r->count, 3u);
  auto f = bus_->PublishBatchFuture("batch", {Msg("d")});
  auto r2 = f.get();
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->first, 3u);
  EXPECT_EQ(bus_->Publish("nope", Msg("x")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(bus_->PublishBatch("batch", {}).status().code(), StatusCode::kInvalidArgument);
}

// Durable topics combine concurrent publishes (one publisher moves everyone's queued work into the
// ring and the WAL): every publish completes exactly once with its own contiguous range, the
// ranges tile the topic, each publisher's records keep its order, and all of it is on disk.
TEST_F(BusConformanceTest, ConcurrentDurablePublishesKeepEachPublishersOrder) {
  ASSERT_TRUE(bus_->CreateTopic("many", Durable(Durability::kSync, 6)).ok());
  constexpr int kThreads = 8;
  constexpr int kPublishes = 400;
  struct Done {
    std::atomic<int> calls{0};
    OffsetRange range{};
    bool ok = false;
  };
  std::vector<std::vector<Done>> done(kThreads);
  for (auto& d : done) d = std::vector<Done>(kPublishes);
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPublishes; ++i) {
        std::vector<Message> batch;
        for (int j = 0; j <= i % 3; ++j) {
          batch.push_back(Msg(std::to_string(t) + "/" + std::to_string(i) + "/" + std::to_string(j),
                              "k" + std::to_string(t)));
        }
        bus_->PublishBatchAsync("many", std::move(batch), [&, t, i](Result<OffsetRange> r) {
          Done& d = done[t][i];
          d.ok = r.ok();
          if (r.ok()) d.range = *r;
          d.calls.fetch_add(1);
          finished.fetch_add(1);
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 1000 && finished.load() < kThreads * kPublishes; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(finished.load(), kThreads * kPublishes);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (int t = 0; t < kThreads; ++t) {
    uint64_t last_end = 0;
    for (int i = 0; i < kPublishes; ++i) {
      const Done& d = done[t][i];
      ASSERT_EQ(d.calls.load(), 1) << t << "/" << i;
      ASSERT_TRUE(d.ok) << t << "/" << i;
      ASSERT_EQ(d.range.count, static_cast<uint64_t>(i % 3 + 1));
      EXPECT_GE(d.range.first, last_end) << "publisher " << t << " out of order at " << i;
      last_end = d.range.first + d.range.count;
      ranges.emplace_back(d.range.first, d.range.count);
    }
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t next = 0;
  for (const auto& [first, count] : ranges) {
    ASSERT_EQ(first, next);
    next += count;
  }
  // Reopened, the WAL holds each record where its publish was told it is.
  Reopen();
  auto sub = Sub("many");
  auto got = Take(*sub, next);
  ASSERT_EQ(got.size(), next);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPublishes; ++i) {
      const Done& d = done[t][i];
      for (uint64_t j = 0; j < d.range.count; ++j) {
        const Record& r = *got[d.range.first + j].record;
        EXPECT_EQ(r.offset, d.range.first + j);
        EXPECT_EQ(r.payload, std::to_string(t) + "/" + std::to_string(i) + "/" + std::to_string(j));
        EXPECT_EQ(r.key, "k" + std::to_string(t));
      }
    }
  }
}

TEST_P(BusBackendTest, OffsetsAreNeverReusedAcrossRestarts) {
  ASSERT_TRUE(bus_->CreateTopic("audit", Durable()).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bus_->Publish("audit", Msg("before")).ok());
  Reopen();
  auto off = bus_->Publish("audit", Msg("after"));
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(*off, 5u);
  auto sub = Sub("audit");
  auto got = Take(*sub, 6);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[4].record->payload, "before");
  EXPECT_EQ(got[5].record->payload, "after");
  auto stats = bus_->GetTopicStats("audit");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->next_offset, 6u);
  EXPECT_EQ(stats->options.durability, Durability::kSync);
}

TEST_P(BusBackendTest, FiltersSelectByKeyPrefixAndHeaders) {
  ASSERT_TRUE(bus_->CreateTopic("events", InMemory()).ok());
  auto keyed = Sub("events", StartPosition::Earliest(), Filter::KeyPrefix("user:"));
  auto combo =
      Sub("events", StartPosition::Earliest(),
          Filter::Or(Filter::And(Filter::KeyPrefix("user:"), Filter::HeaderEquals("kind", "login")),
                     Filter::HeaderEquals("kind", "alert")));
  ASSERT_TRUE(bus_->Publish("events", Msg("1", "user:1", {{"kind", "login"}})).ok());
  ASSERT_TRUE(bus_->Publish("events", Msg("2", "user:2", {{"kind", "logout"}})).ok());
  ASSERT_TRUE(bus_->Publish("events", Msg("3", "sys", {{"kind", "alert"}})).ok());
  ASSERT_TRUE(bus_->Publish("events", Msg("4", "sys", {})).ok());
  auto k = Take(*keyed, 2);
  EXPECT_EQ(k[0].record->payload, "1");
  EXPECT_EQ(k[1].record->payload, "2");
  EXPECT_EQ(keyed->Next(milliseconds(20)).status().code(), StatusCode::kDeadlineExceeded);
  auto c = Take(*combo, 2);
  EXPECT_EQ(c[0].record->payload, "1");
  EXPECT_EQ(c[1].record->payload, "3");
  EXPECT_EQ(combo->Next(milliseconds(20)).status().code(), StatusCode::kDeadlineExceeded);
}

TEST_P(BusBackendTest, PatternSubscriptionSpansMatchingTopicsIncludingNewOnes) {
  ASSERT_TRUE(bus_->CreateTopic("chat.a", InMemory()).ok());
  ASSERT_TRUE(bus_->CreateTopic("chat.a.deep", InMemory()).ok());
  ASSERT_TRUE(bus_->CreateTopic("other", InMemory()).ok());
  auto sub = Sub("chat.*");
  ASSERT_TRUE(bus_->Publish("chat.a", Msg("a")).ok());
  ASSERT_TRUE(bus_->Publish("chat.a.deep", Msg("deep")).ok());
  ASSERT_TRUE(bus_->Publish("other", Msg("other")).ok());
  ASSERT_TRUE(bus_->CreateTopic("chat.b", Durable()).ok());
  ASSERT_TRUE(bus_->Publish("chat.b", Msg("b")).ok());
  auto got = Take(*sub, 2);
  std::set<std::string> payloads;
  for (auto& d : got) payloads.insert(d.record->payload);
  EXPECT_EQ(payloads, (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(sub->Next(milliseconds(20)).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(TopicMatches("chat.>", "chat.a.deep"));
  EXPECT_FALSE(bus_->Subscribe({"chat.>.x", {}, {}}).ok());
}

TEST_P(BusBackendTest, StartPositionsEarliestLatestOffsetAndTime) {
  ASSERT_TRUE(bus_->CreateTopic("pos", Durable()).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(bus_->Publish("pos", Msg(std::to_string(i))).ok());
    std::this_thread::sleep_for(milliseconds(2));  // distinct timestamps on any clock
  }
  auto all = Sub("pos", StartPosition::Earliest());
  auto before = Take(*all, 5);
  ASSERT_EQ(before.size(), 5u);
  ASSERT_LT(before[1].record->timestamp_ns, before[2].record->timestamp_ns);
  auto earliest = Sub("pos", StartPosition::Earliest());
  auto latest = Sub("pos", StartPosition::Latest());
  auto at3 = Sub("pos", StartPosition::AtOffset(3));
  auto since = Sub("pos", StartPosition::AtTime(before[2].record->timestamp_ns));
  ASSERT_TRUE(bus_->Publish("pos", Msg("5")).ok());
  EXPECT_EQ(Take(*earliest, 1)[0].record->offset, 0u);
  EXPECT_EQ(Take(*latest, 1)[0].record->offset, 5u);
  EXPECT_EQ(Take(*at3, 1)[0].record->offset, 3u);
  EXPECT_EQ(Take(*since, 1)[0].record->offset, 2u);
}

TEST_F(BusConformanceTest, SubscriberBehindTheRingContinuesFromTheWal) {
  ASSERT_TRUE(bus_->CreateTopic("small", Durable(Durability::kAsync, 4)).ok());  // 16-slot ring
  std::vector<Message> batch;
  for (int i = 0; i < 16; ++i) batch.push_back(Msg("x" + std::to_string(i)));
  for (int round = 0; round < 10; ++round) ASSERT_TRUE(bus_->PublishBatch("small", batch).ok());
  auto sub = Sub("small");
  auto got = Take(*sub, 160);
  ASSERT_EQ(got.size(), 160u);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].record->offset, i);
    EXPECT_EQ(got[i].record->payload, "x" + std::to_string(i % 16));
  }
}

TEST_F(BusConformanceTest, LiveReaderKeepsUpAcrossRingWrapsAndSegmentRolls) {
  TopicOptions o = Durable(Durability::kAsync, 4);
  o.segment_bytes = 4096;
  ASSERT_TRUE(bus_->CreateTopic("live", o).ok());
  auto sub = Sub("live");
  constexpr int kCount = 3000;
  std::thread producer([&] {
    for (int i = 0; i < kCount; i += 10) {
      std::vector<Message> batch;
      for (int j = 0; j < 10; ++j) batch.push_back(Msg(std::string(50 + (i + j) % 100, 'l')));
      ASSERT_TRUE(bus_->PublishBatch("live", std::move(batch)).ok());
    }
  });
  auto got = Take(*sub, kCount, milliseconds(5000));
  producer.join();
  ASSERT_EQ(got.size(), static_cast<size_t>(kCount));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].record->offset, i);
    ASSERT_EQ(got[i].record->payload.size(), 50 + i % 100);
  }
}

TEST_F(BusConformanceTest, IntervalPolicySyncsInTheBackground) {
  TopicOptions o = Durable(Durability::kInterval);
  o.interval = milliseconds(20);
  ASSERT_TRUE(bus_->CreateTopic("tick", o).ok());
  auto& syncs = Syncs("tick");
  ASSERT_TRUE(bus_->Publish("tick", Msg("a")).ok());
  ASSERT_TRUE(bus_->Publish("tick", Msg("b")).ok());
  // No further publish: the writer must still fdatasync within the interval.
  for (int i = 0; i < 100 && syncs.Count() == 0; ++i) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_GE(syncs.Count(), 1u);
}

TEST_F(BusConformanceTest, SyncCommitDelayCoversAWindowsPublishesWithOneSync) {
  TopicOptions o = Durable(Durability::kSync);
  o.commit_delay = milliseconds(600);
  ASSERT_TRUE(bus_->CreateTopic("usage", o).ok());
  auto& syncs = Syncs("usage");
  // After a quiet spell a publish is written and synced at once.
  auto quiet_start = std::chrono::steady_clock::now();
  ASSERT_TRUE(bus_->Publish("usage", Msg("first")).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - quiet_start, milliseconds(500));
  EXPECT_EQ(syncs.Count(), 1u);
  // Publishes within the window wait for it, and one sync covers them all.
  constexpr int kPublishes = 40;
  std::atomic<int> ok{0}, calls{0};
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kPublishes; ++i) {
    std::vector<Message> one;
    one.push_back(Msg("m" + std::to_string(i)));
    bus_->PublishBatchAsync("usage", std::move(one), [&](Result<OffsetRange> r) {
      if (r.ok()) ++ok;
      ++calls;
    });
  }
  for (int i = 0; i < 1000 && calls.load() < kPublishes; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ok.load(), kPublishes);
  EXPECT_GE(waited, milliseconds(300));  // they were held for the window, not synced one by one
  EXPECT_LE(syncs.Count(), 3u);          // 1 + one per window (a slow machine may straddle two)
  // The window is part of the topic's stored options.
  Reopen();
  auto stats = bus_->GetTopicStats("usage");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->options.commit_delay, milliseconds(600));
  EXPECT_EQ(stats->next_offset, static_cast<uint64_t>(kPublishes + 1));
  // Closing the bus does not wait out a window: the last publishes are written and completed.
  ASSERT_TRUE(bus_->Publish("usage", Msg("opens a window")).ok());
  std::atomic<int> late{0};
  std::vector<Message> one;
  one.push_back(Msg("late"));
  bus_->PublishBatchAsync("usage", std::move(one), [&](Result<OffsetRange> r) {
    if (r.ok()) ++late;
  });
  Reopen();
  EXPECT_EQ(late.load(), 1);
  EXPECT_EQ(bus_->GetTopicStats("usage")->next_offset, static_cast<uint64_t>(kPublishes + 3));
}

TEST_F(BusConformanceTest, UnackedRecordsComeAgainEachAfterItsOwnAckTimeout) {
  ASSERT_TRUE(bus_->CreateTopic("work", Durable()).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(bus_->Publish("work", Msg(std::to_string(i))).ok());
  ConsumerOptions o{"w", "work"};
  o.ack_timeout = milliseconds(150);
  auto c = bus_->OpenConsumer(o);
  ASSERT_TRUE(c.ok());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ((*c)->Next(milliseconds(1000))->record->offset, 0u);
  std::this_thread::sleep_for(milliseconds(60));
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_EQ((*c)->Next(milliseconds(1000))->record->offset, 1u);
  ASSERT_EQ((*c)->Next(milliseconds(1000))->record->offset, 2u);
  // Offset 0 expires first, then 1 and 2: each comes again after its own timeout, not before.
  auto again = (*c)->Next(milliseconds(1000));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->record->offset, 0u);
  EXPECT_EQ(again->delivery_count, 2u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(150));
  ASSERT_TRUE((*c)->Ack(0).ok());
  for (uint64_t want : {1u, 2u}) {
    auto d = (*c)->Next(milliseconds(1000));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->record->offset, want);
    EXPECT_EQ(d->delivery_count, 2u);
    EXPECT_GE(std::chrono::steady_clock::now() - t1, milliseconds(150));
  }
  ASSERT_TRUE((*c)->Ack(2).ok());
  ASSERT_TRUE((*c)->Ack(1).ok());
  EXPECT_EQ((*c)->Next(milliseconds(200)).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*c)->AckedPosition(), 3u);
}

TEST_F(BusConformanceTest, SubscribersShareOneImmutableRecordBuffer) {
  ASSERT_TRUE(bus_->CreateTopic("fan", Durable()).ok());
  auto a = Sub("fan");
  auto b = Sub("fan");
  ASSERT_TRUE(bus_->Publish("fan", Msg(std::string(1000, 'p'))).ok());
  auto da = Take(*a, 1);
  auto db = Take(*b, 1);
  EXPECT_EQ(da[0].record.get(), db[0].record.get());
}

TEST_F(BusConformanceTest, DropOldestMemoryTopicTellsTheLaggingSubscriber) {
  ASSERT_TRUE(bus_->CreateTopic("lossy", InMemory(OverflowPolicy::kDropOldest, 4)).ok());
  auto sub = Sub("lossy");
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(bus_->Publish("lossy", Msg("m")).ok());
  auto d = sub->Next(milliseconds(100));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, Delivery::Kind::kLagged);
  EXPECT_EQ(d->next_offset, 24u);
  EXPECT_EQ(Take(*sub, 1)[0].record->offset, 24u);
  EXPECT_EQ(metrics_.Counter("bus_drop_total", "", {"topic"}).WithLabels({"lossy"}).Value(), 24u);
}

TEST_F(BusConformanceTest, ErrorPolicyRejectsPublishWhenASubscriberIsAFullRingBehind) {
  ASSERT_TRUE(bus_->CreateTopic("strict", InMemory(OverflowPolicy::kError, 4)).ok());
  auto sub = Sub("strict");
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(bus_->Publish("strict", Msg("m")).ok());
  EXPECT_EQ(bus_->Publish("strict", Msg("m")).status().code(), StatusCode::kResourceExhausted);
  Take(*sub, 16);
  EXPECT_TRUE(bus_->Publish("strict", Msg("m")).ok());
}

TEST_F(BusConformanceTest, BlockPolicyPausesThePublisherUntilTheSubscriberCatchesUp) {
  TopicOptions o = InMemory(OverflowPolicy::kBlock, 4);
  o.pause_hi = 0.75;
  o.resume_lo = 0.25;
  ASSERT_TRUE(bus_->CreateTopic("flow", o).ok());
  auto sub = Sub("flow");
  std::atomic<int> published{0};
  std::thread producer([&] {
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(bus_->Publish("flow", Msg(std::to_string(i))).ok());
      ++published;
    }
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_LE(published.load(), 12);  // paused at 75% of 16
  auto got = Take(*sub, 40);
  producer.join();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].record->offset, i);  // nothing lost
}

TEST_F(BusConformanceTest, BlockPolicyResumesEveryBlockedPublisher) {
  // Several publishers pause at once; the reader catching up must wake all of them, not only
  // the first one that paused (which clears the paused state when it resumes).
  TopicOptions o = InMemory(OverflowPolicy::kBlock, 4);
  o.pause_hi = 0.5;
  o.resume_lo = 0.25;
  ASSERT_TRUE(bus_->CreateTopic("many", o).ok());
  auto sub = Sub("many");
  constexpr int kPublishers = 4, kEach = 200;
  std::vector<std::thread> producers;
  for (int p = 0; p < kPublishers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kEach; ++i) {
        ASSERT_TRUE(bus_->Publish("many", Msg(std::to_string(p))).ok());
      }
    });
  }
  size_t got = 0;
  while (got < size_t{kPublishers * kEach}) {
    auto d = sub->Next(milliseconds(2000));
    ASSERT_TRUE(d.ok()) << "after " << got << " records: " << d.status().ToString();
    EXPECT_EQ(d->record->offset, got);
    ++got;
    if (got % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));  // a slow reader
  }
  for (auto& t : producers) t.join();
}

TEST_P(BusBackendTest, DurableConsumerPositionSurvivesRestart) {
  ASSERT_TRUE(bus_->CreateTopic("jobs", Durable()).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bus_->Publish("jobs", Msg("j" + std::to_string(i))).ok());
  {
    auto c = bus_->OpenConsumer({"worker", "jobs"});
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(bus_->OpenConsumer({"worker", "jobs"}).status().code(), StatusCode::kConflict);
    for (uint64_t i = 0; i < 4; ++i) {
      auto d = (*c)->Next(milliseconds(1000));
      ASSERT_TRUE(d.ok());
      EXPECT_EQ(d->record->offset, i);
      if (i < 3) {
        ASSERT_TRUE((*c)->Ack(i).ok());
      }
    }
    EXPECT_EQ((*c)->AckedPosition(), 3u);
    auto lag = metrics_.Gauge("bus_backlog_lag", "", {"topic", "consumer"})
                   .WithLabels({"jobs", "worker"})
                   .Value();
    EXPECT_EQ(lag, 2.0);
  }
  Reopen();
  auto c = bus_->OpenConsumer({"worker", "jobs"});
  ASSERT_TRUE(c.ok());
  auto d = (*c)->Next(milliseconds(1000));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->record->offset, 3u);  // unacked, delivered again (at least once)
  EXPECT_EQ(d->record->payload, "j3");
}

// The calling thread's voluntary context switches so far (Linux), or -1.
long VoluntarySwitches() {
  std::ifstream in("/proc/thread-self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stol(line.substr(24));
  }
  return -1;
}

// Runs `wait` (a Next that should time out) on a thread while 150 records are published, one
// per millisecond, to the memory topic "busy". Returns the waiting thread's voluntary context
// switches (-1 where unknown) and sets `waited` to what `wait` returned.
long SwitchesWhileAnotherTopicIsBusy(Bus& bus, const std::function<Status()>& wait,
                                     Status* waited) {
  long switches = -1;
  std::atomic<bool> waiting{false};
  std::thread reader([&] {
    const long before = VoluntarySwitches();
    waiting = true;
    *waited = wait();
    if (before >= 0) switches = VoluntarySwitches() - before;
  });
  while (!waiting) std::this_thread::yield();
  for (int i = 0; i < 150; ++i) {
    EXPECT_TRUE(bus.Publish("busy", Msg("x")).ok());
    std::this_thread::sleep_for(milliseconds(1));
  }
  reader.join();
  return switches;
}

// A durable consumer sleeps on its own topic: another topic's traffic does not wake it (it used
// to wake, and go back to sleep, for every batch published anywhere on the bus), while its own
// topic's records still reach it at once.
TEST_F(BusConformanceTest, AConsumerSleepsThroughOtherTopicsTraffic) {
  ASSERT_TRUE(bus_->CreateTopic("quiet", Durable()).ok());
  ASSERT_TRUE(bus_->CreateTopic("busy", InMemory()).ok());
  auto c = bus_->OpenConsumer({"sleeper", "quiet"});
  ASSERT_TRUE(c.ok());
  Status waited;
  const long switches = SwitchesWhileAnotherTopicIsBusy(
      *bus_, [&] { return (*c)->Next(milliseconds(400)).status(); }, &waited);
  EXPECT_EQ(waited.code(), StatusCode::kDeadlineExceeded);
  if (switches >= 0) {
    EXPECT_LT(switches, 40) << "woken by another topic's publishes";
  }
  // Its own topic wakes it.
  std::thread publisher([&] {
    std::this_thread::sleep_for(milliseconds(30));
    EXPECT_TRUE(bus_->Publish("quiet", Msg("q")).ok());
  });
  auto start = std::chrono::steady_clock::now();
  auto d = (*c)->Next(milliseconds(5000));
  publisher.join();
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->record->payload, "q");
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
}

// The same for a subscription to one topic by name; a pattern with wildcards still sees new
// topics appear.
TEST_F(BusConformanceTest, ASubscriptionToOneTopicSleepsThroughOtherTopicsTraffic) {
  ASSERT_TRUE(bus_->CreateTopic("quiet", Durable()).ok());
  ASSERT_TRUE(bus_->CreateTopic("busy", InMemory()).ok());
  auto sub = Sub("quiet");
  auto wide = Sub("q.*");
  Status waited;
  const long switches = SwitchesWhileAnotherTopicIsBusy(
      *bus_, [&] { return sub->Next(milliseconds(400)).status(); }, &waited);
  EXPECT_EQ(waited.code(), StatusCode::kDeadlineExceeded);
  if (switches >= 0) {
    EXPECT_LT(switches, 40) << "woken by another topic's publishes";
  }
  ASSERT_TRUE(bus_->Publish("quiet", Msg("q")).ok());
  auto got = Take(*sub, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].record->payload, "q");
  // A topic created while the wildcard subscription waits reaches it.
  std::thread creator([&] {
    std::this_thread::sleep_for(milliseconds(30));
    EXPECT_TRUE(bus_->CreateTopic("q.late", Durable()).ok());
    EXPECT_TRUE(bus_->Publish("q.late", Msg("late")).ok());
  });
  auto late = Take(*wide, 1, milliseconds(5000));
  creator.join();
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].record->payload, "late");
}

TEST_P(BusBackendTest, UnackedRecordIsRedeliveredAfterTheAckTimeout) {
  ASSERT_TRUE(bus_->CreateTopic("retry", Durable()).ok());
  ASSERT_TRUE(bus_->Publish("retry", Msg("once")).ok());
  ConsumerOptions o{"r", "retry"};
  o.ack_timeout = milliseconds(40);
  auto c = bus_->OpenConsumer(o);
  ASSERT_TRUE(c.ok());
  auto first = (*c)->Next(milliseconds(1000));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->delivery_count, 1u);
  auto again = (*c)->Next(milliseconds(1000));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->record->offset, 0u);
  EXPECT_EQ(again->delivery_count, 2u);
  ASSERT_TRUE((*c)->Ack(0).ok());
  EXPECT_EQ((*c)->Next(milliseconds(80)).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(metrics_.Counter("bus_redelivery_total", "", {"topic", "consumer"})
                .WithLabels({"retry", "r"})
                .Value(),
            1u);
}

TEST_P(BusBackendTest, RecordGoesToDeadLetterTopicAfterMaxDeliver) {
  ASSERT_TRUE(bus_->CreateTopic("pay", Durable()).ok());
  ASSERT_TRUE(bus_->Publish("pay", Msg("poison", "k1")).ok());
  ASSERT_TRUE(bus_->Publish("pay", Msg("fine")).ok());
  ConsumerOptions o{"payer", "pay"};
  o.ack_timeout = milliseconds(20);
  o.max_deliver = 2;
  auto c = bus_->OpenConsumer(o);
  ASSERT_TRUE(c.ok());
  int poison_deliveries = 0;
  for (int i = 0; i < 10; ++i) {
    auto d = (*c)->Next(milliseconds(200));
    if (!d.ok()) break;
    if (d->record->payload == "poison") {
      ++poison_deliveries;
    } else {
      ASSERT_TRUE((*c)->Ack(d->record->offset).ok());
    }
  }
  EXPECT_EQ(poison_deliveries, 2);
  EXPECT_EQ((*c)->AckedPosition(), 2u);
  auto dlq = Sub("pay.dlq");
  auto dead = Take(*dlq, 1);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].record->payload, "poison");
  EXPECT_EQ(dead[0].record->key, "k1");
  EXPECT_EQ(*dead[0].record->FindHeader("x-original-offset"), "0");
}

TEST_P(BusBackendTest, RequestGetsReplyOrDeadlineExceeded) {
  ASSERT_TRUE(bus_->CreateTopic("rpc.echo", InMemory()).ok());
  auto sub = Sub("rpc.echo", StartPosition::Latest());
  std::thread responder([&] {
    auto d = sub->Next(milliseconds(2000));
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d->record->FindHeader("priority"), "2");
    ASSERT_TRUE(bus_->Reply(*d->record, Msg("re:" + d->record->payload)).ok());
  });
  auto reply = bus_->Request("rpc.echo", Msg("hi"), milliseconds(2000), 2);
  responder.join();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ((*reply)->payload, "re:hi");

  auto start = std::chrono::steady_clock::now();
  auto none = bus_->Request("rpc.echo", Msg("anyone?"), milliseconds(50));
  EXPECT_EQ(none.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  auto late = sub->Next(milliseconds(100));
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(bus_->Reply(*late->record, Msg("late")).code(), StatusCode::kNotFound);
}

TEST_F(BusConformanceTest, FailedSyncFailsPublishAndTheTopicStaysUnavailable) {
  ASSERT_TRUE(bus_->CreateTopic("fragile", Durable()).ok());
  auto sub = Sub("fragile");
  ASSERT_TRUE(bus_->Publish("fragile", Msg("ok")).ok());
  env_.fail_syncs = 1;
  EXPECT_FALSE(bus_->Publish("fragile", Msg("lost")).ok());
  EXPECT_EQ(bus_->Publish("fragile", Msg("later")).status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(bus_->GetTopicStats("fragile")->health.ok());
  // Subscribers never see what was not acknowledged.
  EXPECT_EQ(Take(*sub, 1)[0].record->payload, "ok");
  EXPECT_EQ(sub->Next(milliseconds(30)).status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(BusConformanceTest, FailedWriteFailsPublish) {
  ASSERT_TRUE(bus_->CreateTopic("fragile", Durable()).ok());
  env_.fail_appends = 1;
  EXPECT_FALSE(bus_->Publish("fragile", Msg("lost")).ok());
  EXPECT_EQ(bus_->Publish("fragile", Msg("later")).status().code(), StatusCode::kUnavailable);
}

TEST_F(BusConformanceTest, CorruptTopicRefusesToOpenUnlessRepairIsRequested) {
  ASSERT_TRUE(bus_->CreateTopic("ledger", Durable()).ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(bus_->Publish("ledger", Msg(std::string(100, 'L'))).ok());
  bus_.reset();
  std::string seg =
      JoinPath(JoinPath(JoinPath(dir_.path(), "topics"), "ledger"), "00000000000000000000.wal");
  auto data = Env::Default().ReadFile(seg);
  ASSERT_TRUE(data.ok());
  (*data)[100] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), seg, *data).ok());
  EmbeddedBusOptions o;
  o.data_dir = dir_.path();
  auto refused = OpenEmbeddedBus(env_, o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("ledger"), std::string::npos);
  EXPECT_NE(refused.status().message().find("at byte"), std::string::npos);
  Reopen(/*repair=*/true);
  EXPECT_EQ(*bus_->Publish("ledger", Msg("new")), 6u);
}

TEST_F(BusConformanceTest, ReaderBehindRetentionIsToldTheFirstAvailableOffset) {
  TopicOptions o = Durable(Durability::kAsync, 4);
  o.segment_bytes = 4096;
  o.retention.max_bytes = 8192;
  ASSERT_TRUE(bus_->CreateTopic("short", o).ok());
  auto sub = Sub("short", StartPosition::AtOffset(0));
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(bus_->Publish("short", Msg(std::string(300, 's'))).ok());
  uint64_t first = 0;
  for (int i = 0; i < 200 && first == 0; ++i) {
    first = bus_->GetTopicStats("short")->first_offset;
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_GT(first, 0u);
  auto d = sub->Next(milliseconds(100));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kind, Delivery::Kind::kTruncated);
  EXPECT_GE(d->next_offset, first);
  auto next = sub->Next(milliseconds(100));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->record->offset, d->next_offset);
}

TEST_F(BusConformanceTest, MetricsAreRecorded) {
  ASSERT_TRUE(bus_->CreateTopic("m", Durable()).ok());
  ASSERT_TRUE(bus_->PublishBatch("m", {Msg("a"), Msg("b")}).ok());
  std::string text = metrics_.ExpositionText();
  EXPECT_NE(text.find("bus_publish_total{topic=\"m\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("bus_wal_bytes{topic=\"m\"}"), std::string::npos);
  EXPECT_NE(text.find("bus_wal_flush_duration_seconds_count{topic=\"m\"}"), std::string::npos);
  EXPECT_NE(text.find("bus_batch_size_count{topic=\"m\"}"), std::string::npos);
  EXPECT_NE(text.find("bus_ring_used{topic=\"m\"} 2"), std::string::npos);
}

TEST_P(BusBackendTest, SubscriptionOutlivingTheBusReportsCancelled) {
  ASSERT_TRUE(bus_->CreateTopic("gone", Durable()).ok());
  auto sub = Sub("gone");
  auto consumer = bus_->OpenConsumer({"c", "gone"});
  ASSERT_TRUE(consumer.ok());
  bus_.reset();
  EXPECT_EQ(sub->Next(milliseconds(10)).status().code(), StatusCode::kCancelled);
  EXPECT_EQ((*consumer)->Next(milliseconds(10)).status().code(), StatusCode::kCancelled);
}

TEST_P(BusBackendTest, LargeBatchKeepsOrderKeysAndHeaders) {
  ASSERT_TRUE(bus_->CreateTopic("bulk", Durable(Durability::kAsync, 10)).ok());
  std::vector<Message> batch;
  for (int i = 0; i < 500; ++i) {
    batch.push_back(Msg("p" + std::to_string(i), "k" + std::to_string(i),
                        {{"n", std::to_string(i)}, {"tag", "a"}, {"tag", "b"}}));
  }
  auto r = bus_->PublishBatch("bulk", std::move(batch));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->first, 0u);
  EXPECT_EQ(r->count, 500u);
  auto sub = Sub("bulk");
  auto got = Take(*sub, 500);
  ASSERT_EQ(got.size(), 500u);
  for (size_t i = 0; i < got.size(); ++i) {
    const Record& rec = *got[i].record;
    ASSERT_EQ(rec.offset, i);
    EXPECT_EQ(rec.payload, "p" + std::to_string(i));
    EXPECT_EQ(rec.key, "k" + std::to_string(i));
    ASSERT_NE(rec.FindHeader("n"), nullptr);
    EXPECT_EQ(*rec.FindHeader("n"), std::to_string(i));
    EXPECT_EQ(*rec.FindHeader("tag"), "a");  // repeated names keep their order
    EXPECT_EQ(rec.headers.size(), 3u);
  }
  auto stats = bus_->GetTopicStats("bulk");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->next_offset, 500u);
  EXPECT_EQ(bus_->ListTopics(), std::vector<std::string>{"bulk"});
}

TEST_P(BusBackendTest, ConsumerFilterAcknowledgesNonMatchingRecords) {
  ASSERT_TRUE(bus_->CreateTopic("mixed", Durable()).ok());
  ASSERT_TRUE(bus_->Publish("mixed", Msg("a", "x:1")).ok());
  ASSERT_TRUE(bus_->Publish("mixed", Msg("b", "y:1")).ok());
  ASSERT_TRUE(bus_->Publish("mixed", Msg("c", "x:2")).ok());
  ConsumerOptions o{"picky", "mixed", Filter::KeyPrefix("x:")};
  auto c = bus_->OpenConsumer(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (std::string want : {"a", "c"}) {
    auto d = (*c)->Next(milliseconds(1000));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->record->payload, want);
    ASSERT_TRUE((*c)->Ack(d->record->offset).ok());
  }
  EXPECT_EQ((*c)->Ack(1).code(), StatusCode::kNotFound);
  EXPECT_EQ((*c)->Next(milliseconds(50)).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*c)->AckedPosition(), 3u);
}

TEST_P(BusBackendTest, CreateTopicIsIdempotentButRefusesAnotherDurability) {
  ASSERT_TRUE(bus_->CreateTopic("dur", Durable(Durability::kSync)).ok());
  EXPECT_TRUE(bus_->CreateTopic("dur", Durable(Durability::kSync)).ok());
  EXPECT_EQ(bus_->CreateTopic("dur", InMemory()).code(), StatusCode::kConflict);
  EXPECT_EQ(bus_->CreateTopic("../etc", InMemory()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bus_->GetTopicStats("none").status().code(), StatusCode::kNotFound);
}

TEST_P(BusBackendTest, SubscriptionToATopicNotYetCreatedReadsItFromItsStart) {
  auto early = Sub("later");
  ASSERT_NE(early, nullptr);
  ASSERT_TRUE(bus_->CreateTopic("later", InMemory()).ok());
  ASSERT_TRUE(bus_->Publish("later", Msg("first")).ok());
  auto got = Take(*early, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].record->payload, "first");
  EXPECT_EQ(got[0].record->offset, 0u);
}

TEST(NatsBusTest, UnreachableServerIsUnavailable) {
  // A port nobody listens on: bind one, then close it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  int port = ntohs(addr.sin_port);
  NatsBusOptions o;
  o.url = "nats://127.0.0.1:" + std::to_string(port);
  o.connect_timeout = milliseconds(500);
  auto bus = OpenNatsBus(o);
  ASSERT_FALSE(bus.ok());
  EXPECT_EQ(bus.status().code(), StatusCode::kUnavailable) << bus.status().ToString();
  o.stream_prefix = "bad.prefix";
  EXPECT_EQ(OpenNatsBus(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(NatsBusTest, LosingTheServerFailsPublishWithUnavailable) {
  const char* src = std::getenv("ATRIUM_SOURCE_DIR");
  if (!src || TestNatsUrl().empty()) GTEST_SKIP() << "no NATS server";
#if defined(__SANITIZE_THREAD__)
  // libnats (not instrumented) frees buffers on its reconnect thread that a publish on a lost
  // connection reads; TSan reports it inside libnats on every run.
  GTEST_SKIP() << "libnats's reconnect path is not TSan-clean";
#endif
  // A private server: this test stops it.
  testing::TempDir dir;
  std::string script = std::string(src) + "/scripts/nats-test";
  std::string server_dir = JoinPath(dir.path(), "nats");
  ASSERT_EQ(std::system((script + " start " + server_dir + " >/dev/null").c_str()), 0);
  std::ifstream in(JoinPath(server_dir, "url"));
  std::string url;
  std::getline(in, url);
  ASSERT_FALSE(url.empty());
  NatsBusOptions o;
  o.url = url;
  o.api_timeout = milliseconds(500);
  auto bus = OpenNatsBus(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  ASSERT_TRUE((*bus)->CreateTopic("t", Durable()).ok());
  ASSERT_TRUE((*bus)->Publish("t", Msg("before")).ok());
  ASSERT_EQ(std::system((script + " stop " + server_dir).c_str()), 0);
  auto start = std::chrono::steady_clock::now();
  auto r = (*bus)->Publish("t", Msg("after"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(3000));
  EXPECT_EQ((*bus)->GetTopicStats("t").status().code(), StatusCode::kUnavailable);
}

TEST(BusOptionsTest, PresetsCarryTheSeedValues) {
  auto p = PresetTopicOptions("low_latency");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ring_pow, 19);
  EXPECT_EQ(p->interval, milliseconds(1));
  EXPECT_EQ(p->retention.max_bytes, 4ull << 30);
  EXPECT_DOUBLE_EQ(p->pause_hi, 0.80);
  EXPECT_DOUBLE_EQ(p->resume_lo, 0.60);
  for (auto name : {"default", "high_throughput", "memory_optimized"}) {
    auto o = PresetTopicOptions(name);
    ASSERT_TRUE(o.ok()) << name;
    EXPECT_TRUE(o->Validate().ok());
  }
  EXPECT_EQ(PresetTopicOptions("turbo").status().code(), StatusCode::kNotFound);
}

TEST(BusOptionsTest, TopicNamesAndOptionsAreValidated) {
  FaultInjectionEnv env(Env::Default());
  auto bus = OpenEmbeddedBus(env, {});
  ASSERT_TRUE(bus.ok());
  EXPECT_EQ((*bus)->CreateTopic("../etc", InMemory()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*bus)->CreateTopic("durable", Durable()).code(), StatusCode::kInvalidArgument);
  TopicOptions bad = InMemory();
  bad.ring_pow = 40;
  EXPECT_EQ((*bus)->CreateTopic("x", bad).code(), StatusCode::kInvalidArgument);
  TopicOptions delayed = Durable(Durability::kAsync);
  delayed.commit_delay = std::chrono::milliseconds(1);
  EXPECT_EQ(delayed.Validate().message(), "commit_delay_us: applies to sync topics only");
  delayed.durability = Durability::kSync;
  EXPECT_TRUE(delayed.Validate().ok());
  delayed.commit_delay = std::chrono::seconds(2);
  EXPECT_EQ(delayed.Validate().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*bus)->CreateTopic("x", InMemory()).ok());
  EXPECT_TRUE((*bus)->CreateTopic("x", InMemory()).ok());
}

}  // namespace
}  // namespace atrium::bus
