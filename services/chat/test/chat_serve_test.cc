// The chat service inside the real binary: `atrium serve --services chat` (the bus opened for
// chat alone), a message sent over HTTP reaches an EventSource-style stream opened with a ticket,
// search finds it, /health lists the chat checks, and SIGTERM shuts everything down cleanly.
#include <gtest/gtest.h>
#include <signal.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/json.hpp>

#include "../../../apps/atrium/test/child_process.h"
#include "atrium/core/testing.h"
#include "atrium/http/client.h"

namespace atrium::chat {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

class ChatServeTest : public ::testing::Test {
 protected:
  json::value Call(const std::string& method, const std::string& url, const json::value& body,
                   const std::string& token, int expect) {
    http::ClientRequest req{.method = method, .url = url};
    if (!body.is_null()) {
      req.body = json::serialize(body);
      req.headers.Set("content-type", "application/json");
    }
    if (!token.empty()) req.headers.Set("authorization", "Bearer " + token);
    auto r = client_.SendSync(std::move(req));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    EXPECT_EQ(r->status, expect) << method << " " << url << ": " << r->body;
    boost::system::error_code ec;
    return json::parse(r->body, ec);
  }
  atrium::testing::TempDir dir_;
  http::HttpClient client_;
};

TEST_F(ChatServeTest, MessageReachesTicketStreamAndSearchInTheBinary) {
  auto c = atrium::testing::AtriumChild::Spawn(
      {"serve", "--port", "0", "--data-dir", dir_.path() + "/data", "--services", "chat"},
      {"ATRIUM_AUTH__PASSWORD_HASH_COST=test"});
  std::string url = c.WaitForUrl();
  ASSERT_FALSE(url.empty()) << c.err;

  json::value session =
      Call("POST", url + "/api/v1/auth/register",
           json::object{{"email", "a@example.com"}, {"password", "password-123"}, {"name", "A"}},
           "", 201);
  ASSERT_TRUE(session.is_object());
  std::string token(session.at("access_token").as_string());
  json::value chat =
      Call("POST", url + "/api/v1/chats",
           json::object{{"type", "public_channel"}, {"name", "general"}}, token, 201);
  std::string chat_id(chat.at("id").as_string());
  json::value ticket = Call("POST", url + "/api/v1/events/ticket", json::object{}, token, 200);

  std::mutex mu;
  std::condition_variable cv;
  std::string received;
  bool ready = false;
  auto cancel = std::make_shared<http::CancelToken>();
  http::ClientRequest sse{
      .url = url + "/api/v1/events?ticket=" + std::string(ticket.at("ticket").as_string())};
  sse.cancel = cancel;
  sse.on_data = [&](std::string_view chunk) {
    std::lock_guard lock(mu);
    received += chunk;
    ready = received.find("event: ready") != std::string::npos;
    cv.notify_all();
    return true;
  };
  std::atomic<bool> done{false};
  client_.Send(std::move(sse), [&](Result<http::ClientResponse>) {
    done = true;
    cv.notify_all();
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return ready; })) << received;
  }
  Call("POST", url + "/api/v1/chats/" + chat_id + "/messages",
       json::object{{"content", "hello from the binary"}}, token, 201);
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, 10s, [&] {
      return received.find("event: message.created") != std::string::npos;
    })) << received;
    EXPECT_NE(received.find("hello from the binary"), std::string::npos);
  }
  bool found = false;
  for (int i = 0; i < 100 && !found; ++i) {
    json::value r = Call("GET", url + "/api/v1/search/messages?q=binar", nullptr, token, 200);
    found = r.is_object() && r.at("results").as_array().size() == 1;
    if (!found) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(found);
  auto health = client_.SendSync(http::ClientRequest{.url = url + "/health"});
  ASSERT_TRUE(health.ok());
  EXPECT_NE(health->body.find("\"chat_events\":{\"status\":\"ok\""), std::string::npos)
      << health->body;
  EXPECT_NE(health->body.find("\"chat_search_indexer\""), std::string::npos);
  EXPECT_NE(health->body.find("\"lag_records\":"), std::string::npos) << health->body;
  EXPECT_NE(health->body.find("\"lag_seconds\":"), std::string::npos) << health->body;
  EXPECT_NE(health->body.find("\"bus\""), std::string::npos);

  kill(c.pid, SIGTERM);
  EXPECT_EQ(c.Wait(), 0) << c.err;
  // `serve` raised RLIMIT_NOFILE to the hard limit (10k SSE streams need as many sockets).
  EXPECT_NE(c.err.find("open file limit"), std::string::npos) << c.err;
  cancel->Cancel();
  for (int i = 0; i < 100 && !done; ++i) std::this_thread::sleep_for(20ms);
}

}  // namespace
}  // namespace atrium::chat
