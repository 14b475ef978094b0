// The chat service scaled out (docs/chat.md, "Events"; spec: "a message sent on node A reaches SSE
// clients on node B"): two nodes, each a ChatService behind its own http::Server with its own
// database pool, auth service and NATS connection, sharing one PostgreSQL database and one NATS
// JetStream server (the `pg` and `nats` ctest fixtures; the tests skip without them).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "atrium/auth/auth_service.h"
#include "atrium/bus/nats_bus.h"
#include "atrium/chat/chat_service.h"
#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "chat_test_client.h"
#include "test_db.h"

namespace atrium::chat {
namespace {
namespace json = boost::json;
using testing::Backend;
using testing::ChatApi;
using testing::Reply;
using testing::SseReader;
using testing::User;
using namespace std::chrono_literals;

constexpr std::string_view kEventsTopic = "chat.events";

// A subscription that hands each record out only `lag` after it was published: the reader of a
// node that is behind the others.
class LaggingSubscription : public bus::Subscription {
 public:
  LaggingSubscription(std::unique_ptr<bus::Subscription> inner, std::chrono::milliseconds lag)
      : inner_(std::move(inner)), lag_(lag) {}

  Result<bus::Delivery> Next(std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!held_) {
      auto d = inner_->Next(timeout);
      if (!d.ok() || d->kind != bus::Delivery::Kind::kRecord) return d;
      held_ = std::move(*d);
    }
    const auto due = std::chrono::system_clock::time_point(
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::nanoseconds(held_->record->timestamp_ns))) +
                     lag_;
    const auto wait = due - std::chrono::system_clock::now();
    if (wait > std::chrono::steady_clock::duration::zero()) {
      if (std::chrono::steady_clock::now() + wait > deadline) {
        std::this_thread::sleep_until(deadline);
        return DeadlineExceeded("record not due yet");
      }
      std::this_thread::sleep_for(wait);
    }
    bus::Delivery out = std::move(*held_);
    held_.reset();
    return out;
  }
  void Close() override { inner_->Close(); }

 private:
  std::unique_ptr<bus::Subscription> inner_;
  const std::chrono::milliseconds lag_;
  std::optional<bus::Delivery> held_;
};

// A node's bus: NATS, where the first subscription to the events topic (the hub's, opened when
// the service starts) may lag behind by `hub_lag`.
class NodeBus : public bus::Bus {
 public:
  NodeBus(std::unique_ptr<bus::Bus> inner, std::chrono::milliseconds hub_lag)
      : inner_(std::move(inner)), hub_lag_(hub_lag) {}

  Status CreateTopic(std::string_view name, const bus::TopicOptions& options) override {
    return inner_->CreateTopic(name, options);
  }
  Result<bus::TopicStats> GetTopicStats(std::string_view name) override {
    return inner_->GetTopicStats(name);
  }
  std::vector<std::string> ListTopics() override { return inner_->ListTopics(); }
  void PublishBatchAsync(std::string_view topic, std::vector<bus::Message> messages,
                         bus::PublishCallback done) override {
    inner_->PublishBatchAsync(topic, std::move(messages), std::move(done));
  }
  Result<std::unique_ptr<bus::Subscription>> Subscribe(bus::SubscribeOptions options) override {
    const bool lag =
        options.pattern == kEventsTopic && hub_lag_.count() > 0 && !hub_subscribed_.exchange(true);
    ASSIGN_OR_RETURN(auto sub, inner_->Subscribe(std::move(options)));
    if (!lag) return sub;
    return std::unique_ptr<bus::Subscription>(
        std::make_unique<LaggingSubscription>(std::move(sub), hub_lag_));
  }
  Result<std::unique_ptr<bus::Consumer>> OpenConsumer(bus::ConsumerOptions options) override {
    return inner_->OpenConsumer(std::move(options));
  }
  Result<bus::RecordPtr> Request(std::string_view topic, bus::Message request,
                                 std::chrono::milliseconds timeout, int priority) override {
    return inner_->Request(topic, std::move(request), timeout, priority);
  }
  Status Reply(const bus::Record& request, bus::Message reply) override {
    return inner_->Reply(request, std::move(reply));
  }

 private:
  std::unique_ptr<bus::Bus> inner_;
  const std::chrono::milliseconds hub_lag_;
  std::atomic<bool> hub_subscribed_{false};
};

// One `atrium` node: its own connections to the shared PostgreSQL and NATS, its own services.
// Members are destroyed bottom-up: the server before the chat service before the bus.
struct Node {
  std::unique_ptr<store::Database> db;
  std::unique_ptr<NodeBus> bus;
  std::unique_ptr<auth::AuthService> auth;
  MetricsRegistry metrics;
  std::unique_ptr<ChatService> chat;
  std::unique_ptr<http::Server> server;
  std::string base;

  void Stop() {
    if (server) server->Shutdown();
    server.reset();
    if (chat) chat->Stop();
    chat.reset();
  }
};

class ChatMultiNodeTest : public ::testing::Test {
 protected:
  // How far node B's hub reads the events topic behind the others.
  virtual std::chrono::milliseconds HubLagOfB() { return 0ms; }

  void SetUp() override {
    nats_url_ = atrium::testing::FixtureUrl("nats", "ATRIUM_TEST_NATS_URL");
    if (nats_url_.empty()) GTEST_SKIP() << "no NATS server (run through ctest, fixture nats)";
    std::string url;
    auto first = testing::OpenTestDatabase(Backend::kPostgres, tmp_, "chat_multinode_test", &url);
    if (first == nullptr)
      GTEST_SKIP() << "PostgreSQL not configured (run through ctest, fixture pg)";
    auto second = store::OpenDatabase(url, {.pool_size = 4});
    ASSERT_TRUE(second.ok()) << second.status().ToString();
    std::random_device rd;
    prefix_ = "chat" + std::to_string(rd()) + std::to_string(rd());  // this test's streams only
    ASSERT_NO_FATAL_FAILURE(StartNode(a_, std::move(first), 0ms));
    ASSERT_NO_FATAL_FAILURE(StartNode(b_, std::move(*second), HubLagOfB()));
  }

  void TearDown() override {
    b_.Stop();
    a_.Stop();
  }

  void StartNode(Node& node, std::unique_ptr<store::Database> db, std::chrono::milliseconds lag) {
    node.db = std::move(db);
    auto nats = bus::OpenNatsBus({.url = nats_url_, .stream_prefix = prefix_});
    ASSERT_TRUE(nats.ok()) << nats.status().ToString();
    node.bus = std::make_unique<NodeBus>(std::move(*nats), lag);
    auth::AuthOptions o;
    o.jwt_secret = std::string(40, 's');  // one secret for the deployment: tokens work anywhere
    o.password_cost = auth::PasswordCost::kTest;
    o.revocation_sync = std::chrono::milliseconds(0);
    o.rate_limits = {{"auth", *auth::ParseRateLimit("100000/1m")},
                     {"login", *auth::ParseRateLimit("100000/1m")},
                     {"api", *auth::ParseRateLimit("100000/1m")}};
    auto auth = auth::AuthService::Create(o, *node.db, Env::Default());
    ASSERT_TRUE(auth.ok()) << auth.status().ToString();
    node.auth = std::move(*auth);
    ChatOptions options;
    options.heartbeat = 1s;
    auth::AuthService* a = node.auth.get();
    auto chat = ChatService::Create(
        options, *node.db, *node.bus, Env::Default(),
        [a](const http::Request& req) { return a->Authenticate(req); }, &node.metrics);
    ASSERT_TRUE(chat.ok()) << chat.status().ToString();
    node.chat = std::move(*chat);
    http::Router router;
    ASSERT_TRUE(node.auth->AddRoutes(router).ok());
    ASSERT_TRUE(node.chat->AddRoutes(router).ok());
    node.server = std::make_unique<http::Server>(
        http::ServerOptions{.port = 0, .io_threads = 2, .blocking_threads = 16}, std::move(router),
        nullptr, &node.metrics);
    node.server->Use(node.auth->auth_middleware());
    node.server->Use(node.auth->rate_limit_middleware());
    ASSERT_TRUE(node.server->Start().ok());
    node.base = "http://127.0.0.1:" + std::to_string(node.server->port());
  }

  ChatApi Api(Node& node) { return ChatApi(client_, node.base); }

  // Waits until the shared search indexer has processed everything, as both nodes see it.
  void WaitIndexed() {
    for (int i = 0; i < 500; ++i) {
      if (a_.chat->indexer_state().lag_records == 0 && b_.chat->indexer_state().lag_records == 0) {
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "the search indexer did not catch up";
  }

  atrium::testing::TempDir tmp_;
  std::string nats_url_, prefix_;
  Node a_, b_;
  http::HttpClient client_{http::ClientOptions{.threads = 2}};
};

std::vector<std::string> Contents(const std::vector<testing::SseEventRead>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.emplace_back(json::parse(e.data).at("content").as_string());
  return out;
}

TEST_F(ChatMultiNodeTest, MessageSentOnOneNodeReachesStreamsOnTheOther) {
  ChatApi A = Api(a_), B = Api(b_);
  User a = A.Owner("a@example.com");
  User b = B.Member(a, "b@example.com");  // a's token, issued by A, works on B
  auto b_on_b = B.Stream(b);
  auto b_on_a = A.Stream(b);  // the same user on both nodes (two devices)
  auto a_on_a = A.Stream(a);
  std::string dm = A.ChatId(a, "direct", "", {b.id});
  std::vector<std::string> sent;
  for (int i = 0; i < 20; ++i) {
    sent.push_back("m" + std::to_string(i));
    ASSERT_EQ(A.SendMessage(a, dm, sent.back()).status, 201);
  }
  EXPECT_EQ(b_on_b->WaitFor("chat.created", 1).size(), 1u);
  auto on_b = b_on_b->WaitFor("message.created", 20);
  auto on_a = b_on_a->WaitFor("message.created", 20);
  ASSERT_EQ(on_b.size(), 20u);
  ASSERT_EQ(on_a.size(), 20u);
  EXPECT_EQ(Contents(on_b), sent);
  // The ids are offsets of the one shared topic: the same event has the same id on every node.
  for (size_t i = 0; i < on_b.size(); ++i) {
    EXPECT_FALSE(on_b[i].id.empty());
    EXPECT_EQ(on_b[i].id, on_a[i].id) << i;
  }
  // And the other way round.
  ASSERT_EQ(B.SendMessage(b, dm, "from B").status, 201);
  auto back = a_on_a->WaitFor("message.created", 21);
  ASSERT_EQ(back.size(), 21u);
  EXPECT_EQ(json::parse(back.back().data).at("content").as_string(), "from B");
  // Each stream got each event once.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(b_on_b->WaitFor("message.created", 21, 0ms).size(), 21u);
  EXPECT_EQ(b_on_a->WaitFor("message.created", 21, 0ms).size(), 21u);
  EXPECT_EQ(a_.chat->open_streams(), 2u);
  EXPECT_EQ(b_.chat->open_streams(), 1u);
}

TEST_F(ChatMultiNodeTest, LastEventIdFromOneNodeResumesOnTheOther) {
  ChatApi A = Api(a_), B = Api(b_);
  User a = A.Owner("a@example.com");
  User b = A.Member(a, "b@example.com");
  std::string dm = A.ChatId(a, "direct", "", {b.id});
  std::string last_id;
  {
    auto on_a = A.Stream(b);
    ASSERT_EQ(A.SendMessage(a, dm, "before").status, 201);
    auto got = on_a->WaitFor("message.created", 1);
    ASSERT_EQ(got.size(), 1u);
    last_id = got[0].id;
  }  // the client loses node A
  std::vector<std::string> missed;
  for (int i = 0; i < 30; ++i) {  // sent through both nodes meanwhile
    missed.push_back("m" + std::to_string(i));
    ASSERT_EQ((i % 2 == 0 ? A : B).SendMessage(a, dm, missed.back()).status, 201);
  }
  auto resumed = B.Stream(b, last_id);  // the load balancer sends it to node B
  auto got = resumed->WaitFor("message.created", 30);
  ASSERT_EQ(got.size(), 30u);
  EXPECT_EQ(Contents(got), missed);
  uint64_t prev = std::stoull(last_id);
  for (const auto& e : got) {
    EXPECT_GT(std::stoull(e.id), prev);
    prev = std::stoull(e.id);
  }
  ASSERT_EQ(A.SendMessage(a, dm, "live").status, 201);
  auto all = resumed->WaitFor("message.created", 31);
  ASSERT_EQ(all.size(), 31u);
  EXPECT_EQ(json::parse(all.back().data).at("content").as_string(), "live");
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(resumed->WaitFor("message.created", 31, 0ms).size(), 31u);  // no duplicates
  EXPECT_TRUE(resumed->WaitFor("resync", 1, 0ms).empty());
}

TEST_F(ChatMultiNodeTest, TicketIssuedOnOneNodeOpensAStreamOnTheOther) {
  ChatApi A = Api(a_), B = Api(b_);
  User a = A.Owner("a@example.com");
  User b = A.Member(a, "b@example.com");
  std::string dm = A.ChatId(a, "direct", "", {b.id});
  Reply t = A.Post("/api/v1/events/ticket", json::object{}, b);
  ASSERT_EQ(t.status, 200) << t.raw;
  const std::string path = "/api/v1/events?ticket=" + t.Str("ticket");
  SseReader on_b(client_, B.base() + path, {});
  ASSERT_EQ(on_b.WaitStatus(), 200);
  ASSERT_EQ(on_b.WaitFor("ready", 1).size(), 1u);
  ASSERT_EQ(A.SendMessage(a, dm, "through the ticket").status, 201);
  auto got = on_b.WaitFor("message.created", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].data).at("content").as_string(), "through the ticket");
  // Single use across the nodes: redeemed on B, refused on A (and on B).
  SseReader reused_on_a(client_, A.base() + path, {});
  EXPECT_EQ(reused_on_a.WaitStatus(), 401);
  SseReader reused_on_b(client_, B.base() + path, {});
  EXPECT_EQ(reused_on_b.WaitStatus(), 401);
}

TEST_F(ChatMultiNodeTest, EachMessageIsIndexedOnceAcrossNodes) {
  ChatApi A = Api(a_), B = Api(b_);
  User a = A.Owner("a@example.com");
  User b = A.Member(a, "b@example.com");
  User c = A.Member(a, "c@example.com");
  std::string g = A.ChatId(a, "group", "stars", {b.id, c.id});
  std::set<int64_t> sent;
  for (int i = 0; i < 40; ++i) {
    Reply r =
        (i % 2 == 0 ? A : B).SendMessage(i % 3 == 0 ? a : b, g, "nebula " + std::to_string(i));
    ASSERT_EQ(r.status, 201) << r.raw;
    sent.insert(r.Int("id"));
  }
  WaitIndexed();
  for (ChatApi* node : {&A, &B}) {
    auto results = node->SearchResults(c, "q=nebula&limit=100");
    std::set<int64_t> found;
    for (const auto& o : results) found.insert(o.at("id").to_number<int64_t>());
    EXPECT_EQ(results.size(), 40u) << node->base();  // no duplicates
    EXPECT_EQ(found, sent) << node->base();
  }
  // Both nodes run the indexer as one durable consumer: every record of the topic was applied
  // by exactly one of them.
  auto stats = a_.bus->GetTopicStats(kEventsTopic);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  const uint64_t applied = a_.chat->indexer_state().indexed + b_.chat->indexer_state().indexed;
  EXPECT_EQ(applied, stats->next_offset - stats->first_offset);
  EXPECT_TRUE(a_.chat->indexer_state().last_error.ok());
  EXPECT_TRUE(b_.chat->indexer_state().last_error.ok());
  // An edit through one node is found, once, through the other.
  const int64_t first = *sent.begin();
  ASSERT_EQ(B.Send("PATCH", "/api/v1/chats/" + g + "/messages/" + std::to_string(first),
                   json::serialize(json::object{{"content", "supernova"}}), a.token)
                .status,
            200);
  WaitIndexed();
  auto edited = A.SearchResults(c, "q=supernova");
  ASSERT_EQ(edited.size(), 1u);
  EXPECT_EQ(edited[0].at("id").to_number<int64_t>(), first);
  EXPECT_EQ(A.SearchResults(c, "q=nebula&limit=100").size(), 39u);
}

// Node B's hub reads the topic a second behind node A's.
class ChatLaggingNodeTest : public ChatMultiNodeTest {
 protected:
  std::chrono::milliseconds HubLagOfB() override { return 1000ms; }
};

TEST_F(ChatLaggingNodeTest, LastEventIdAheadOfTheNodesHubResumesWithoutResync) {
  ChatApi A = Api(a_), B = Api(b_);
  User a = A.Owner("a@example.com");
  User b = A.Member(a, "b@example.com");
  std::string dm = A.ChatId(a, "direct", "", {b.id});
  auto on_a = A.Stream(b);
  auto watcher_on_b = B.Stream(a);  // shows when B's hub has read a record
  ASSERT_EQ(A.SendMessage(a, dm, "one").status, 201);
  auto got = on_a->WaitFor("message.created", 1);
  ASSERT_EQ(got.size(), 1u);
  const std::string id = got[0].id;
  // The client moves to B at once, with an id B's hub has not read yet.
  ASSERT_TRUE(watcher_on_b->WaitFor("message.created", 1, 0ms).empty())
      << "node B's hub was not behind; the test shows nothing";
  auto resumed = B.Stream(b, id);
  ASSERT_EQ(A.SendMessage(a, dm, "two").status, 201);
  auto after = resumed->WaitFor("message.created", 1, 10s);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(json::parse(after[0].data).at("content").as_string(), "two");  // not "one" again
  EXPECT_GT(std::stoull(after[0].id), std::stoull(id));
  EXPECT_EQ(watcher_on_b->WaitFor("message.created", 2).size(), 2u);  // B has read both now
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(resumed->WaitFor("message.created", 1, 0ms).size(), 1u);
  EXPECT_TRUE(resumed->WaitFor("resync", 1, 0ms).empty());
  // An id beyond the topic's end is still refused.
  SseReader future(client_, B.base() + "/api/v1/events",
                   {{"authorization", "Bearer " + b.token}, {"last-event-id", "999999999"}});
  auto resync = future.WaitFor("resync", 1);
  ASSERT_EQ(resync.size(), 1u);
  EXPECT_NE(resync[0].data.find("unknown_id"), std::string::npos);
}

}  // namespace
}  // namespace atrium::chat
