// The chat tests' HTTP client side: JSON replies, users, a streaming SSE reader and ChatApi
// (the chat routes of one node), shared by the single-node and multi-node tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "atrium/http/client.h"

namespace atrium::chat::testing {

namespace json = boost::json;

struct Reply {
  int status = 0;
  json::value body;
  std::string raw;

  std::string Str(std::string_view field) const {
    if (!body.is_object() || !body.as_object().contains(field)) return "";
    const auto& v = body.at(field);
    return v.is_string() ? std::string(v.as_string()) : json::serialize(v);
  }
  int64_t Int(std::string_view field) const {
    if (!body.is_object() || !body.as_object().contains(field)) return -1;
    return body.at(field).to_number<int64_t>();
  }
  std::string Error() const {
    if (!body.is_object() || !body.as_object().contains("error")) return "";
    return std::string(body.at("error").at("message").as_string());
  }
};

struct User {
  std::string id, token, workspace_id;
};

struct SseEventRead {
  std::string id, event, data;
};

// A streaming SSE client over HttpClient: collects events as they arrive.
class SseReader {
 public:
  SseReader(http::HttpClient& client, const std::string& url,
            std::vector<std::pair<std::string, std::string>> headers) {
    http::ClientRequest req;
    req.url = url;
    for (auto& [k, v] : headers) req.headers.Set(k, v);
    req.read_timeout = std::chrono::seconds(60);
    req.cancel = token_;
    req.on_headers = [this](int status, const http::Headers&) {
      std::lock_guard lock(mu_);
      status_ = status;
      cv_.notify_all();
    };
    req.on_data = [this](std::string_view chunk) {
      std::lock_guard lock(mu_);
      buf_ += chunk;
      Parse();
      cv_.notify_all();
      return true;
    };
    client.Send(std::move(req), [this](Result<http::ClientResponse> r) {
      std::lock_guard lock(mu_);
      if (r.ok() && status_ == 0) status_ = r->status;
      if (r.ok() && !r->body.empty()) body_ = r->body;
      done_ = true;
      cv_.notify_all();
    });
  }
  ~SseReader() { Close(); }

  int WaitStatus() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return status_ != 0 || done_; });
    return status_;
  }
  // Waits until `n` events named `name` arrived (or the timeout); returns those seen.
  std::vector<SseEventRead> WaitFor(const std::string& name, size_t n,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return CountLocked(name) >= n || done_; });
    std::vector<SseEventRead> out;
    for (const auto& e : events_) {
      if (e.event == name) out.push_back(e);
    }
    return out;
  }
  std::vector<SseEventRead> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  bool done() {
    std::lock_guard lock(mu_);
    return done_;
  }
  void Close() {
    token_->Cancel();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return done_; });
  }

 private:
  size_t CountLocked(const std::string& name) const {
    size_t n = 0;
    for (const auto& e : events_) n += e.event == name;
    return n;
  }
  void Parse() {
    size_t end;
    while ((end = buf_.find("\n\n")) != std::string::npos) {
      std::string block = buf_.substr(0, end);
      buf_.erase(0, end + 2);
      SseEventRead e;
      bool any = false;
      size_t pos = 0;
      while (pos <= block.size()) {
        size_t nl = block.find('\n', pos);
        std::string line =
            block.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? block.size() + 1 : nl + 1;
        if (line.empty() || line[0] == ':') continue;
        any = true;
        size_t colon = line.find(':');
        std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        if (field == "id") e.id = value;
        if (field == "event") e.event = value;
        if (field == "data") e.data += (e.data.empty() ? "" : "\n") + value;
      }
      if (any) events_.push_back(std::move(e));
    }
  }

  std::shared_ptr<http::CancelToken> token_ = std::make_shared<http::CancelToken>();
  std::mutex mu_;
  std::condition_variable cv_;
  int status_ = 0;                    // guarded by mu_
  bool done_ = false;                 // guarded by mu_
  std::string buf_, body_;            // guarded by mu_
  std::vector<SseEventRead> events_;  // guarded by mu_
};

// Polls a stream until an event of `type` whose data satisfies `pred` arrived.
inline std::optional<SseEventRead> WaitForMatch(
    SseReader& s, const std::string& type, const std::function<bool(const json::object&)>& pred,
    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    for (const auto& e : s.events()) {
      if (e.event != type) continue;
      boost::system::error_code ec;
      json::value v = json::parse(e.data, ec);
      if (!ec && v.is_object() && pred(v.as_object())) return e;
    }
    if (std::chrono::steady_clock::now() >= deadline || s.done()) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

inline bool Field(const json::object& o, std::string_view k, std::string_view v) {
  const json::value* f = o.if_contains(k);
  return f != nullptr && f->is_string() && f->as_string() == v;
}

// The chat API of one node (a base URL) as the tests use it: JSON requests with a bearer token,
// users and workspaces through the auth routes, chats, messages, streams and search.
class ChatApi {
 public:
  ChatApi(http::HttpClient& client, std::string base) : client_(client), base_(std::move(base)) {}

  const std::string& base() const { return base_; }

  Reply Send(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& token = "",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::ClientRequest req;
    req.method = method;
    req.url = base_ + path;
    req.body = body;
    if (!body.empty()) req.headers.Set("content-type", "application/json");
    if (!token.empty()) req.headers.Set("authorization", "Bearer " + token);
    for (auto& [k, v] : headers) req.headers.Set(k, v);
    auto r = client_.SendSync(std::move(req));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    Reply out;
    if (!r.ok()) return out;
    out.status = r->status;
    out.raw = r->body;
    boost::system::error_code ec;
    out.body = json::parse(r->body, ec);
    return out;
  }
  Reply Post(const std::string& path, const json::value& body, const User& u) {
    return Send("POST", path, json::serialize(body), u.token);
  }
  Reply Get(const std::string& path, const User& u) { return Send("GET", path, "", u.token); }

  static User FromSession(const Reply& r) {
    User u;
    EXPECT_TRUE(r.body.is_object()) << r.raw;
    if (!r.body.is_object()) return u;
    u.id = std::string(r.body.at("user").at("id").as_string());
    u.workspace_id = std::string(r.body.at("workspace").at("id").as_string());
    u.token = std::string(r.body.at("access_token").as_string());
    return u;
  }

  // A user with a workspace of its own.
  User Owner(const std::string& email, const std::string& name = "Owner") {
    Reply r = Send("POST", "/api/v1/auth/register",
                   json::serialize(json::object{
                       {"email", email}, {"password", "password-123"}, {"name", name}}));
    EXPECT_EQ(r.status, 201) << r.raw;
    return FromSession(r);
  }
  // A user invited into `owner`'s workspace.
  User Member(const User& owner, const std::string& email, const std::string& name = "Member") {
    Reply inv = Post("/api/v1/workspaces/" + owner.workspace_id + "/invites",
                     json::object{{"role", "member"}}, owner);
    EXPECT_EQ(inv.status, 201) << inv.raw;
    Reply r = Send("POST", "/api/v1/auth/register",
                   json::serialize(json::object{{"email", email},
                                                {"password", "password-123"},
                                                {"name", name},
                                                {"invite_code", inv.Str("code")}}));
    EXPECT_EQ(r.status, 201) << r.raw;
    return FromSession(r);
  }

  Reply CreateChat(const User& u, const std::string& type, const std::string& name,
                   std::vector<std::string> members) {
    json::array m;
    for (auto& id : members) m.emplace_back(id);
    json::object body{{"type", type}, {"members", std::move(m)}};
    if (!name.empty()) body["name"] = name;
    return Post("/api/v1/chats", body, u);
  }
  std::string ChatId(const User& u, const std::string& type, const std::string& name,
                     std::vector<std::string> members) {
    Reply r = CreateChat(u, type, name, std::move(members));
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.Str("id");
  }
  Reply SendMessage(const User& u, const std::string& chat, const std::string& content,
                    const std::string& key = "") {
    json::object body{{"content", content}};
    if (!key.empty()) body["idempotency_key"] = key;
    return Post("/api/v1/chats/" + chat + "/messages", body, u);
  }
  std::vector<json::object> Messages(const User& u, const std::string& chat,
                                     const std::string& query = "") {
    Reply r = Get("/api/v1/chats/" + chat + "/messages" + query, u);
    EXPECT_EQ(r.status, 200) << r.raw;
    std::vector<json::object> out;
    if (r.status != 200) return out;
    for (const auto& m : r.body.at("messages").as_array()) out.push_back(m.as_object());
    return out;
  }
  // A stream of `u`'s events, live (its `ready` event arrived).
  std::unique_ptr<SseReader> Stream(const User& u, const std::string& last_event_id = "") {
    std::vector<std::pair<std::string, std::string>> h{{"authorization", "Bearer " + u.token}};
    if (!last_event_id.empty()) h.emplace_back("last-event-id", last_event_id);
    auto s = std::make_unique<SseReader>(client_, base_ + "/api/v1/events", h);
    EXPECT_EQ(s->WaitStatus(), 200);
    EXPECT_FALSE(s->WaitFor("ready", 1).empty());
    return s;
  }
  std::vector<json::object> SearchResults(const User& u, const std::string& query) {
    Reply r = Get("/api/v1/search/messages?" + query, u);
    EXPECT_EQ(r.status, 200) << r.raw;
    std::vector<json::object> out;
    if (r.status != 200) return out;
    for (const auto& m : r.body.at("results").as_array()) out.push_back(m.as_object());
    return out;
  }

 private:
  http::HttpClient& client_;
  std::string base_;
};

}  // namespace atrium::chat::testing
