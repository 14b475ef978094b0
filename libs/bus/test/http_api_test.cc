// The bus over HTTP, end to end: a real http::Server on port 0, a real HttpClient, an embedded
// bus in a temp dir.
#include "atrium/bus/http_api.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "atrium/bus/embedded_bus.h"
#include "atrium/core/env.h"
#include "atrium/core/metrics.h"
#include "atrium/core/testing.h"
#include "atrium/http/client.h"
#include "atrium/http/router.h"
#include "atrium/http/server.h"

namespace atrium::bus {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

int64_t Num(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64()) return int64_t(v.as_uint64());
  ADD_FAILURE() << "not an integer: " << json::serialize(v);
  return -1;
}

struct Event {
  std::string id;
  std::string event;
  std::string data;
};

// Reads one SSE stream with HttpClient's streaming callbacks; Disconnect() drops the connection.
class SseReader {
 public:
  SseReader(http::HttpClient& client, std::string url, http::Headers headers = {}) {
    http::ClientRequest req;
    req.url = std::move(url);
    req.headers = std::move(headers);
    req.cancel = cancel_;
    req.on_headers = [this](int status, const http::Headers&) {
      std::lock_guard lock(mu_);
      status_ = status;
      cv_.notify_all();
    };
    req.on_data = [this](std::string_view chunk) {
      std::lock_guard lock(mu_);
      buffer_ += chunk;
      Parse();
      cv_.notify_all();
      return true;
    };
    client.Send(std::move(req), [this](Result<http::ClientResponse>) {
      std::lock_guard lock(mu_);
      finished_ = true;
      cv_.notify_all();
    });
  }
  ~SseReader() {
    Disconnect();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 10s, [this] { return finished_; });
  }

  int WaitStatus() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 10s, [this] { return status_ != 0 || finished_; });
    return status_;
  }
  // The events so far once there are at least `n` (or after the timeout).
  std::vector<Event> WaitEvents(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return events_.size() >= n || finished_; });
    return events_;
  }
  bool WaitFinished() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [this] { return finished_; });
  }
  void Disconnect() { cancel_->Cancel(); }

 private:
  void Parse() {  // requires mu_
    size_t end;
    while ((end = buffer_.find("\n\n")) != std::string::npos) {
      std::string block = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      Event e;
      bool any = false;
      size_t pos = 0;
      while (pos <= block.size()) {
        size_t nl = block.find('\n', pos);
        std::string line =
            block.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? block.size() + 1 : nl + 1;
        if (line.rfind("id: ", 0) == 0) e.id = line.substr(4), any = true;
        if (line.rfind("event: ", 0) == 0) e.event = line.substr(7), any = true;
        if (line.rfind("data: ", 0) == 0) e.data += line.substr(6), any = true;
      }
      if (any) events_.push_back(std::move(e));  // comments (heartbeats) are skipped
    }
  }

  std::shared_ptr<http::CancelToken> cancel_ = std::make_shared<http::CancelToken>();
  std::mutex mu_;
  std::condition_variable cv_;
  int status_ = 0;             // guarded by mu_
  bool finished_ = false;      // guarded by mu_
  std::string buffer_;         // guarded by mu_
  std::vector<Event> events_;  // guarded by mu_
};

class BusHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { Open({}); }
  void TearDown() override { Close(); }

  void Open(BusHttpOptions options) {
    auto bus = OpenEmbeddedBus(Env::Default(), {.data_dir = dir_.path()});
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    bus_ = std::move(*bus);
    api_ = std::make_unique<BusHttpApi>(*bus_, options);
    http::Router router;
    ASSERT_TRUE(api_->AddRoutes(router).ok());
    server_ = std::make_unique<http::Server>(
        http::ServerOptions{.port = 0, .io_threads = 2, .blocking_threads = 2}, std::move(router));
    ASSERT_TRUE(server_->Start().ok());
  }
  void Close() {
    if (server_) server_->Shutdown();
    server_.reset();
    api_.reset();
    bus_.reset();
  }

  std::string Url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  http::ClientResponse Send(const std::string& method, const std::string& path,
                            const std::string& body = "") {
    http::ClientRequest req{.method = method, .url = Url(path), .body = body};
    if (!body.empty()) req.headers.Set("content-type", "application/json");
    auto res = client_.SendSync(std::move(req));
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : http::ClientResponse{};
  }
  void CreateTopic(const std::string& name, const std::string& durability = "sync") {
    auto res = Send("POST", "/api/v1/bus/topics",
                    R"({"name":")" + name + R"(","durability":")" + durability + R"("})");
    ASSERT_EQ(res.status, 201) << res.body;
  }
  std::vector<uint64_t> Publish(const std::string& topic, const std::string& body) {
    auto res = Send("POST", "/api/v1/bus/topics/" + topic + "/messages", body);
    EXPECT_EQ(res.status, 200) << res.body;
    std::vector<uint64_t> out;
    if (res.status != 200) return out;
    json::value parsed = json::parse(res.body);
    for (const auto& v : parsed.at("offsets").as_array()) {
      out.push_back(Num(v));
    }
    return out;
  }
  void PublishN(const std::string& topic, int n, int first_label) {
    std::string body = R"({"messages":[)";
    for (int i = 0; i < n; ++i) {
      body += (i ? "," : "") + std::string(R"({"payload":"m)") + std::to_string(first_label + i) +
              "\"}";
    }
    body += "]}";
    ASSERT_EQ(Publish(topic, body).size(), size_t(n));
  }
  void WaitNoStreams() {
    for (int i = 0; i < 400 && api_->open_streams() > 0; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_EQ(api_->open_streams(), 0u);
  }
  static std::string ErrorMessage(const http::ClientResponse& res) {
    return std::string(json::parse(res.body).at("error").at("message").as_string());
  }

  testing::TempDir dir_;
  MetricsRegistry metrics_;  // outlives the API
  std::unique_ptr<Bus> bus_;
  std::unique_ptr<BusHttpApi> api_;
  std::unique_ptr<http::Server> server_;
  http::HttpClient client_;
};

TEST_F(BusHttpTest, CreateListAndStatsTopics) {
  auto res = Send("POST", "/api/v1/bus/topics",
                  R"({"name":"audit","durability":"interval","interval_ms":5,)"
                  R"("retention":{"max_bytes":1048576,"max_age_s":3600}})");
  ASSERT_EQ(res.status, 201) << res.body;
  auto created = json::parse(res.body).as_object();
  EXPECT_EQ(created.at("name").as_string(), "audit");
  EXPECT_EQ(created.at("durability").as_string(), "interval");
  EXPECT_EQ(Num(created.at("interval_ms")), 5);
  EXPECT_EQ(Num(created.at("retention").at("max_bytes")), 1048576);
  EXPECT_EQ(Num(created.at("retention").at("max_age_s")), 3600);
  // Idempotent with the same durability, Conflict with another.
  EXPECT_EQ(
      Send("POST", "/api/v1/bus/topics", R"({"name":"audit","durability":"interval"})").status,
      200);
  EXPECT_EQ(Send("POST", "/api/v1/bus/topics", R"({"name":"audit","durability":"sync"})").status,
            409);
  CreateTopic("chat.message.created", "memory");
  res = Send("POST", "/api/v1/bus/topics",
             R"({"name":"usage","durability":"sync","commit_delay_us":2000})");
  ASSERT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(Num(json::parse(res.body).at("commit_delay_us")), 2000);

  res = Send("GET", "/api/v1/bus/topics");
  ASSERT_EQ(res.status, 200);
  auto topics = json::parse(res.body).at("topics").as_array();
  ASSERT_EQ(topics.size(), 3u);

  PublishN("audit", 3, 0);
  res = Send("GET", "/api/v1/bus/topics/audit");
  ASSERT_EQ(res.status, 200);
  auto stats = json::parse(res.body).as_object();
  EXPECT_EQ(Num(stats.at("next_offset")), 3);
  EXPECT_EQ(stats.at("health").as_string(), "ok");
  EXPECT_EQ(Send("GET", "/api/v1/bus/topics/nope").status, 404);
}

TEST_F(BusHttpTest, PublishSingleAndBatchReturnOffsetsAfterDurability) {
  CreateTopic("orders");
  EXPECT_EQ(Publish("orders", R"({"messages":[{"payload":"one"}]})"), std::vector<uint64_t>{0});
  EXPECT_EQ(Publish("orders", R"({"messages":[{"key":"k","headers":{"a":"b"},"payload":"x"},)"
                              R"({"payload":null},{"payload_b64":"AP8="}]})"),
            (std::vector<uint64_t>{1, 2, 3}));
  // Acknowledged means durable: a reopened bus has every record.
  Close();
  auto bus = OpenEmbeddedBus(Env::Default(), {.data_dir = dir_.path()});
  ASSERT_TRUE(bus.ok());
  auto sub = (*bus)->Subscribe({.pattern = "orders", .start = StartPosition::Earliest()});
  ASSERT_TRUE(sub.ok());
  std::vector<std::string> payloads;
  for (int i = 0; i < 4; ++i) {
    auto d = (*sub)->Next(2s);
    ASSERT_TRUE(d.ok());
    payloads.push_back(d->record->payload);
    if (i == 1) {
      EXPECT_EQ(d->record->key, "k");
      ASSERT_NE(d->record->FindHeader("a"), nullptr);
    }
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{"one", "x", "", std::string("\0\xff", 2)}));
  (*sub)->Close();
  bus->reset();
  Open({});
}

TEST_F(BusHttpTest, BadInputIs400NamingTheField) {
  CreateTopic("t");
  auto publish = [&](const std::string& body) {
    return Send("POST", "/api/v1/bus/topics/t/messages", body);
  };
  auto res = publish(R"({"messages":[{"payload":"a"},{"payload":"b"},{"payload_b64":"%%"}]})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(ErrorMessage(res), "messages[2].payload_b64: invalid base64");
  res = publish(R"({"messages":[]})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(ErrorMessage(res), "messages: must not be empty");
  res = publish(R"({"messages":[{"headers":{"x":1}}]})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(ErrorMessage(res), "messages[0].headers.x: must be a string");
  res = publish(R"({"messages":[{"payload":"a","payload_b64":"YQ=="}]})");
  EXPECT_EQ(res.status, 400);
  res = publish(R"({"messages":[{"payload":"a","extra":1}]})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(ErrorMessage(res), "messages[0].extra: unknown field");
  EXPECT_EQ(publish("not json").status, 400);
  EXPECT_EQ(publish(R"({"messages":[{"key":7}]})").status, 400);
  EXPECT_EQ(Send("POST", "/api/v1/bus/topics/missing/messages", R"({"messages":[{}]})").status,
            404);
  res = Send("POST", "/api/v1/bus/topics", R"({"name":"x","durability":"fast"})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(ErrorMessage(res), "durability: must be memory, async, interval or sync");
  res = Send("POST", "/api/v1/bus/topics",
             R"({"name":"x","durability":"async","commit_delay_us":500})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(ErrorMessage(res), "commit_delay_us: applies to sync topics only");
  res = Send("POST", "/api/v1/bus/topics",
             R"({"name":"x","durability":"sync","commit_delay_us":1000001})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(ErrorMessage(res), "commit_delay_us: must be 0..1000000");
  res = Send("POST", "/api/v1/bus/topics",
             R"({"name":"x","durability":"sync","commit_delay_us":18446744073709551615})");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(ErrorMessage(res), "commit_delay_us: must be 0..1000000");
  EXPECT_EQ(Send("POST", "/api/v1/bus/topics", R"({"name":"a..b"})").status, 400);
  EXPECT_EQ(Send("GET", "/api/v1/bus/topics/t/messages?from=soon").status, 400);
  EXPECT_EQ(Send("GET", "/api/v1/bus/topics/missing/messages").status, 404);
  EXPECT_EQ(Send("POST", "/api/v1/bus/consumers/c/ack", R"({"topic":"t"})").status, 400);
}

TEST_F(BusHttpTest, SseStreamCarriesOffsetsAsIdsAndRecordsAsJson) {
  CreateTopic("events");
  Publish("events", R"({"messages":[{"key":"room:1","headers":{"kind":"text"},"payload":"hi"},)"
                    R"({"payload_b64":"AP8="}]})");
  SseReader reader(client_, Url("/api/v1/bus/topics/events/messages?from=earliest"));
  ASSERT_EQ(reader.WaitStatus(), 200);
  auto events = reader.WaitEvents(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id, "0");
  EXPECT_EQ(events[0].event, "message");
  auto first = json::parse(events[0].data).as_object();
  EXPECT_EQ(Num(first.at("offset")), 0);
  EXPECT_GT(Num(first.at("timestamp")), 0);
  EXPECT_EQ(first.at("key").as_string(), "room:1");
  EXPECT_EQ(first.at("headers").at("kind").as_string(), "text");
  EXPECT_EQ(first.at("payload").as_string(), "hi");
  auto second = json::parse(events[1].data).as_object();
  EXPECT_EQ(events[1].id, "1");
  EXPECT_FALSE(second.contains("payload"));
  EXPECT_EQ(second.at("payload_b64").as_string(), "AP8=");
  // Live records follow.
  Publish("events", R"({"messages":[{"payload":"live"},{"payload":"live2"}]})");
  events = reader.WaitEvents(4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2].id, "2");
  EXPECT_EQ(events[3].id, "3");
  // from=latest skips what exists.
  SseReader latest(client_, Url("/api/v1/bus/topics/events/messages?from=latest"));
  ASSERT_EQ(latest.WaitStatus(), 200);
  std::this_thread::sleep_for(100ms);  // the stream's position is taken when it opens
  Publish("events", R"({"messages":[{"payload":"new"}]})");
  auto got = latest.WaitEvents(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, "4");
}

TEST_F(BusHttpTest, ReconnectWithLastEventIdResumesExactly) {
  CreateTopic("feed");
  PublishN("feed", 10, 0);
  std::string last_id;
  {
    SseReader reader(client_, Url("/api/v1/bus/topics/feed/messages?from=earliest"));
    auto events = reader.WaitEvents(10);
    ASSERT_EQ(events.size(), 10u);
    last_id = events.back().id;
    reader.Disconnect();
  }
  EXPECT_EQ(last_id, "9");
  WaitNoStreams();  // the reader thread noticed the disconnect and stopped
  PublishN("feed", 100, 10);
  http::Headers headers;
  headers.Set("Last-Event-ID", last_id);
  SseReader reader(client_, Url("/api/v1/bus/topics/feed/messages?from=latest"), headers);
  auto events = reader.WaitEvents(100);
  ASSERT_EQ(events.size(), 100u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].id, std::to_string(10 + i));
    EXPECT_EQ(json::parse(events[i].data).at("payload").as_string(), "m" + std::to_string(10 + i));
  }
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(reader.WaitEvents(101, 0ms).size(), 100u);  // nothing more, nothing twice
}

TEST_F(BusHttpTest, DurableConsumerAcksAndResumesAfterReconnect) {
  CreateTopic("jobs");
  PublishN("jobs", 3, 0);
  const std::string url = Url("/api/v1/bus/topics/jobs/messages?consumer=worker&from=earliest");
  {
    SseReader reader(client_, url);
    auto events = reader.WaitEvents(3);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(Num(json::parse(events[0].data).at("delivery_count")), 1);
    // The name is taken while the stream is open.
    EXPECT_EQ(Send("GET", "/api/v1/bus/topics/jobs/messages?consumer=worker").status, 409);
    for (const char* offset : {"0", "1", "2"}) {
      auto res = Send("POST", "/api/v1/bus/consumers/worker/ack",
                      std::string(R"({"topic":"jobs","offset":)") + offset + "}");
      EXPECT_EQ(res.status, 204) << res.body;
    }
    EXPECT_EQ(
        Send("POST", "/api/v1/bus/consumers/worker/ack", R"({"topic":"jobs","offset":2})").status,
        404);  // no longer outstanding
    EXPECT_EQ(
        Send("POST", "/api/v1/bus/consumers/worker/ack", R"({"topic":"other","offset":0})").status,
        404);
    reader.Disconnect();
  }
  WaitNoStreams();
  EXPECT_EQ(
      Send("POST", "/api/v1/bus/consumers/worker/ack", R"({"topic":"jobs","offset":0})").status,
      404);  // no open stream
  PublishN("jobs", 2, 3);
  SseReader reader(client_, url);
  auto events = reader.WaitEvents(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id, "3");  // acked records are not delivered again
  EXPECT_EQ(events[1].id, "4");
}

TEST_F(BusHttpTest, ClientTooSlowForTheQueueGetsResyncWithNextOffset) {
  Close();
  Open({.sse_max_queued_bytes = 16, .metrics = &metrics_});  // every event is larger
  CreateTopic("big");
  PublishN("big", 2, 0);
  SseReader reader(client_, Url("/api/v1/bus/topics/big/messages?from=earliest"));
  ASSERT_TRUE(reader.WaitFinished());
  auto events = reader.WaitEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "resync");
  EXPECT_EQ(Num(json::parse(events[0].data).at("next_offset")), 0);
  EXPECT_NE(metrics_.ExpositionText().find("bus_sse_resync_total{topic=\"big\"} 1"),
            std::string::npos)
      << metrics_.ExpositionText();
}

TEST_F(BusHttpTest, RoutesCarryTheBusScopes) {
  http::Router router;
  ASSERT_TRUE(api_->AddRoutes(router).ok());
  int checked = 0;
  for (const http::Route* r : router.routes()) {
    std::string want = r->pattern.find("/messages") != std::string::npos
                           ? (r->method == "POST" ? "bus:publish" : "bus:subscribe")
                       : r->pattern.find("/ack") != std::string::npos ? "bus:subscribe"
                                                                      : "admin";
    EXPECT_EQ(r->options.auth_scope, want) << r->method << " " << r->pattern;
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

}  // namespace
}  // namespace atrium::bus
