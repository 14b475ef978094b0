// Live updates across nodes: two TrackService instances ("nodes", each with its own HTTP server,
// series cache and live hub) share one database and one bus — the embedded bus shared in-process,
// or NATS JetStream with a connection per node (fixture `nats`). What is ingested through node A
// reaches SSE viewers connected to node B.
#include <random>

#include "atrium/bus/nats_bus.h"
#include "track_fixture.h"

namespace atrium::track::testing {
namespace {

class TrackTwoNodesTest : public TrackHttpTest {
 protected:
  struct Node {
    std::unique_ptr<TrackService> track;
    std::unique_ptr<http::Server> server;
    std::string base;
    ~Node() {
      if (server) server->Shutdown();
      track.reset();
    }
  };

  // Another node on the fixture's database, with live updates through `bus`.
  std::unique_ptr<Node> StartNode(bus::Bus& bus) {
    auto node = std::make_unique<Node>();
    auto t = TrackService::Create(TrackOptions{}, *db_, *blobs_, Env::Default(), auth_->sql_audit(),
                                  &bus);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return nullptr;
    node->track = std::move(*t);
    http::Router router;
    EXPECT_TRUE(node->track->AddRoutes(router).ok());
    node->server = StartServer(std::move(router));
    if (node->server == nullptr) return nullptr;
    node->base = "http://127.0.0.1:" + std::to_string(node->server->port());
    return node;
  }

  // Ingest, logs and status through `a`; viewers (events, log tail) and history on `b`.
  void ExpectLiveUpdatesCross(const std::string& a, const std::string& b) {
    Reply r = SendTo(a, "POST", "/api/v1/runs",
                     json::serialize(json::object{{"project", "live-two-nodes"}}));
    ASSERT_EQ(r.status, 201) << r.raw;
    const std::string run = r.Str("id");
    const std::string runs = "/api/v1/runs/" + run;
    auto post = [&](const std::string& path, const json::value& body) {
      return SendTo(a, "POST", runs + path, json::serialize(body));
    };
    auto points = [](int first, int n) {
      json::array out;
      for (int i = first; i < first + n; ++i) {
        out.push_back(json::object{{"key", "loss"}, {"step", i}, {"value", 1.0 / (i + 1)}});
      }
      return json::object{{"points", out}};
    };
    // History read on B first, so B's series cache holds the series.
    ASSERT_EQ(post("/metrics", points(0, 3)).status, 200);
    r = SendTo(b, "GET", runs + "/metrics/loss");
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body.at("total").as_int64(), 3);
    ASSERT_EQ(post("/logs", json::object{{"lines", json::array{json::object{{"message", "l1"}},
                                                               json::object{{"message", "l2"}},
                                                               json::object{{"message", "l3"}}}}})
                  .status,
              200);

    SseStream events(client_, b + runs + "/events", alice_.token);
    SseStream tail(client_, b + runs + "/logs/stream?cursor=1", alice_.token);
    ASSERT_TRUE(events.WaitFor("event: status")) << events.text();
    // The backlog after the cursor comes from the database.
    ASSERT_TRUE(tail.WaitFor("\"l3\"")) << tail.text();
    EXPECT_EQ(tail.Count("\"l1\""), 0u);

    // A batch through A: one `metrics` event on B with every point.
    ASSERT_EQ(post("/metrics", points(3, 5)).status, 200);
    ASSERT_TRUE(events.WaitFor("\"step\":7")) << events.text();
    // (An event of the batch before may come first: it was in flight when the viewer came.)
    std::string text = events.text();
    size_t end = text.find("\n\n", text.find("\"step\":7"));
    size_t start = text.rfind("event: ", text.find("\"step\":7"));
    ASSERT_NE(start, std::string::npos);
    std::string batch = text.substr(start, end - start);
    EXPECT_EQ(batch.rfind("event: metrics\n", 0), 0u) << batch;
    EXPECT_NE(batch.find("{\"key\":\"loss\",\"step\":3,\"value\":0.25,\"timestamp\":"),
              std::string::npos)
        << batch;
    for (int step = 3; step <= 7; ++step) {
      EXPECT_NE(batch.find("\"step\":" + std::to_string(step) + ","), std::string::npos) << batch;
    }
    // Logs through A: live on B, each line once, with its seq as the event id.
    ASSERT_EQ(
        post("/logs", json::object{{"lines", json::array{json::object{{"message", "l4"}}}}}).status,
        200);
    EXPECT_TRUE(tail.WaitFor("id: 4\nevent: log")) << tail.text();
    EXPECT_EQ(tail.Count("\"l2\""), 1u);
    EXPECT_EQ(tail.Count("\"l3\""), 1u);
    // The events stream carries log lines too.
    EXPECT_TRUE(events.WaitFor("\"l4\"")) << events.text();
    // Status through A.
    ASSERT_EQ(post("/finish", json::object{}).status, 200);
    EXPECT_TRUE(events.WaitFor("\"finished\"")) << events.text();
    // B's cached history is not stale: the summary's version moved on A.
    r = SendTo(b, "GET", runs + "/metrics/loss");
    EXPECT_EQ(r.body.at("total").as_int64(), 8) << r.raw;
  }
};

TEST_P(TrackTwoNodesTest, PointsIngestedOnOneNodeReachViewersOnAnother) {
  auto node_b = StartNode(*bus_);  // the fixture's node is A; they share its embedded bus
  ASSERT_NE(node_b, nullptr);
  ExpectLiveUpdatesCross(base_, node_b->base);
  ExpectLiveUpdatesCross(node_b->base, base_);
}

// The URL of the test NATS server (fixture `nats`), or "".
std::string TestNatsUrl() { return atrium::testing::FixtureUrl("nats", "ATRIUM_TEST_NATS_URL"); }

TEST_P(TrackTwoNodesTest, PointsIngestedOnOneNodeReachViewersOnAnotherOverNats) {
  std::string url = TestNatsUrl();
  if (url.empty()) GTEST_SKIP() << "no NATS server (run through ctest, fixture nats)";
  std::random_device rd;
  const std::string prefix = "track" + std::to_string(rd()) + std::to_string(rd());
  // One connection per node, as separate processes would have.
  auto bus_a = bus::OpenNatsBus({.url = url, .stream_prefix = prefix});
  auto bus_b = bus::OpenNatsBus({.url = url, .stream_prefix = prefix});
  ASSERT_TRUE(bus_a.ok()) << bus_a.status().ToString();
  ASSERT_TRUE(bus_b.ok()) << bus_b.status().ToString();
  {
    auto node_a = StartNode(**bus_a);
    auto node_b = StartNode(**bus_b);
    ASSERT_NE(node_a, nullptr);
    ASSERT_NE(node_b, nullptr);
    ExpectLiveUpdatesCross(node_a->base, node_b->base);
  }
}

TEST_P(TrackTwoNodesTest, WithoutABusLiveUpdatesStayInTheProcess) {
  auto t = TrackService::Create(TrackOptions{}, *db_, *blobs_, Env::Default(), auth_->sql_audit(),
                                /*bus=*/nullptr);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  Node node;
  node.track = std::move(*t);
  http::Router router;
  ASSERT_TRUE(node.track->AddRoutes(router).ok());
  node.server = StartServer(std::move(router));
  ASSERT_NE(node.server, nullptr);
  node.base = "http://127.0.0.1:" + std::to_string(node.server->port());
  ExpectLiveUpdatesCross(node.base, node.base);
}

// A bus that accepts topics and subscriptions but fails every publish (a NATS server gone).
class FailingPublishBus : public bus::Bus {
 public:
  class IdleSubscription : public bus::Subscription {
   public:
    Result<bus::Delivery> Next(std::chrono::milliseconds timeout) override {
      std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(20)));
      return DeadlineExceeded("nothing");
    }
    void Close() override {}
  };
  Status CreateTopic(std::string_view, const bus::TopicOptions&) override { return Status::Ok(); }
  Result<bus::TopicStats> GetTopicStats(std::string_view) override { return bus::TopicStats{}; }
  std::vector<std::string> ListTopics() override { return {}; }
  void PublishBatchAsync(std::string_view, std::vector<bus::Message>,
                         bus::PublishCallback done) override {
    ++publishes;
    done(Unavailable("the bus is down"));
  }
  Result<std::unique_ptr<bus::Subscription>> Subscribe(bus::SubscribeOptions) override {
    return std::unique_ptr<bus::Subscription>(std::make_unique<IdleSubscription>());
  }
  Result<std::unique_ptr<bus::Consumer>> OpenConsumer(bus::ConsumerOptions) override {
    return Unavailable("no consumers");
  }
  Result<bus::RecordPtr> Request(std::string_view, bus::Message, std::chrono::milliseconds,
                                 int) override {
    return Unavailable("no requests");
  }
  Status Reply(const bus::Record&, bus::Message) override { return Unavailable("no replies"); }
  std::atomic<int> publishes{0};
};

// Live updates are best effort: when the bus cannot take them, ingest, logs and finish still
// succeed (the data is committed).
TEST_P(TrackTwoNodesTest, AFailingBusDoesNotFailRequests) {
  FailingPublishBus failing;
  auto node = StartNode(failing);
  ASSERT_NE(node, nullptr);
  Reply r = SendTo(node->base, "POST", "/api/v1/runs",
                   json::serialize(json::object{{"project", "down"}}));
  ASSERT_EQ(r.status, 201) << r.raw;
  const std::string runs = "/api/v1/runs/" + r.Str("id");
  SseStream events(client_, node->base + runs + "/events", alice_.token);
  ASSERT_TRUE(events.WaitFor("event: status"));
  r = SendTo(
      node->base, "POST", runs + "/metrics",
      json::serialize(json::object{
          {"points", json::array{json::object{{"key", "loss"}, {"step", 1}, {"value", 2}}}}}));
  EXPECT_EQ(r.status, 200) << r.raw;
  r = SendTo(node->base, "POST", runs + "/logs",
             json::serialize(json::object{{"lines", json::array{json::object{{"message", "x"}}}}}));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(SendTo(node->base, "POST", runs + "/finish", "{}").status, 200);
  EXPECT_EQ(failing.publishes.load(), 3);
  EXPECT_EQ(SendTo(node->base, "GET", runs + "/metrics/loss").body.at("total").as_int64(), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, TrackTwoNodesTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

}  // namespace
}  // namespace atrium::track::testing
