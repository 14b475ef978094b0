// End-to-end tests of the chat service over HTTP (an in-process http::Server on port 0 with the
// auth middleware), on SQLite and PostgreSQL: member rules, permissions, idempotency and sequence
// numbers under concurrency, read state, SSE resume / fan-out / slow clients, tickets, search.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <boost/json.hpp>

#include "atrium/auth/auth_service.h"
#include "atrium/bus/embedded_bus.h"
#include "atrium/chat/chat_service.h"
#include "atrium/core/fault_env.h"
#include "atrium/http/client.h"
#include "atrium/http/server.h"
#include "atrium/store/fs_blob_store.h"
#include "chat_test_client.h"
#include "test_db.h"

namespace atrium::chat {
namespace {
namespace json = boost::json;
using testing::Backend;
using testing::ChatApi;
using testing::Field;
using testing::Reply;
using testing::SseEventRead;
using testing::SseReader;
using testing::User;
using testing::WaitForMatch;
using namespace std::chrono_literals;

class ChatHttpTest : public ::testing::TestWithParam<Backend> {
 protected:
  virtual ChatOptions Options() {
    ChatOptions o;
    o.heartbeat = 1s;
    return o;
  }

  void SetUp() override {
    db_ = testing::OpenTestDatabase(GetParam(), tmp_, "chat_http_test");
    if (db_ == nullptr) GTEST_SKIP() << "PostgreSQL not configured (run through ctest, fixture pg)";
    auto b = bus::OpenEmbeddedBus(Env::Default(), {.data_dir = tmp_.path() + "/bus"});
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bus_ = std::move(*b);
    auth::AuthOptions o;
    o.jwt_secret = std::string(40, 's');
    o.password_cost = auth::PasswordCost::kTest;
    o.revocation_sync = std::chrono::milliseconds(0);
    o.rate_limits = {{"auth", *auth::ParseRateLimit("100000/1m")},
                     {"login", *auth::ParseRateLimit("100000/1m")},
                     {"api", *auth::ParseRateLimit("100000/1m")}};
    auto svc = auth::AuthService::Create(o, *db_, Env::Default());
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
    auth_ = std::move(*svc);
    auto blobs = store::FsBlobStore::Create(Env::Default(), tmp_.path() + "/blobs");
    ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    StartChat();
  }

  // The bus the chat service publishes to (a test may interpose on it).
  virtual bus::Bus& ChatBus() { return *bus_; }
  // The chat service's Env (a test may give it a fake clock).
  virtual Env& ChatEnv() { return Env::Default(); }

  // Creates the chat service and the HTTP server in front of it (again after StopChat, then
  // with another registry: metric callbacks are registered once per registry).
  void StartChat(MetricsRegistry* metrics = nullptr) {
    if (metrics == nullptr) metrics = &metrics_;
    auth::AuthService* a = auth_.get();
    ChatOptions options = Options();
    if (options.blobs == nullptr) options.blobs = blobs_.get();
    auto chat = ChatService::Create(
        options, *db_, ChatBus(), ChatEnv(),
        [a](const http::Request& req) { return a->Authenticate(req); }, metrics);
    ASSERT_TRUE(chat.ok()) << chat.status().ToString();
    chat_ = std::move(*chat);
    http::Router router;
    ASSERT_TRUE(auth_->AddRoutes(router).ok());
    ASSERT_TRUE(chat_->AddRoutes(router).ok());
    server_ = std::make_unique<http::Server>(
        http::ServerOptions{.port = 0, .io_threads = 2, .blocking_threads = 24}, std::move(router),
        nullptr, metrics);
    server_->Use(auth_->auth_middleware());
    server_->Use(auth_->rate_limit_middleware());
    ASSERT_TRUE(server_->Start().ok());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  // Stops the server and the chat service (as a crash would, minus the process exit).
  void StopChat() {
    if (server_) server_->Shutdown();
    server_.reset();
    if (chat_) chat_->Stop();
    chat_.reset();
  }

  void TearDown() override {
    StopChat();
    auth_.reset();
    bus_.reset();
  }

  // The chat API of the running server (its port changes when the chat restarts).
  ChatApi Api() { return ChatApi(client_, base_); }
  Reply Send(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& token = "",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    return Api().Send(method, path, body, token, std::move(headers));
  }
  Reply Post(const std::string& path, const json::value& body, const User& u) {
    return Api().Post(path, body, u);
  }
  Reply Get(const std::string& path, const User& u) { return Api().Get(path, u); }
  User Owner(const std::string& email, const std::string& name = "Owner") {
    return Api().Owner(email, name);
  }
  User Member(const User& owner, const std::string& email, const std::string& name = "Member") {
    return Api().Member(owner, email, name);
  }
  Reply CreateChat(const User& u, const std::string& type, const std::string& name,
                   std::vector<std::string> members) {
    return Api().CreateChat(u, type, name, std::move(members));
  }
  std::string ChatId(const User& u, const std::string& type, const std::string& name,
                     std::vector<std::string> members) {
    return Api().ChatId(u, type, name, std::move(members));
  }
  Reply SendMessage(const User& u, const std::string& chat, const std::string& content,
                    const std::string& key = "") {
    return Api().SendMessage(u, chat, content, key);
  }
  std::vector<json::object> Messages(const User& u, const std::string& chat,
                                     const std::string& query = "") {
    return Api().Messages(u, chat, query);
  }
  std::unique_ptr<SseReader> Stream(const User& u, const std::string& last_event_id = "") {
    return Api().Stream(u, last_event_id);
  }
  std::vector<json::object> SearchResults(const User& u, const std::string& query) {
    return Api().SearchResults(u, query);
  }
  // Polls until the indexer has processed everything published so far.
  void WaitIndexed() {
    for (int i = 0; i < 200; ++i) {
      if (chat_->indexer_state().lag_records == 0) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "indexer did not catch up";
  }

  atrium::testing::TempDir tmp_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<bus::Bus> bus_;
  std::unique_ptr<store::FsBlobStore> blobs_;
  MetricsRegistry metrics_;
  std::unique_ptr<auth::AuthService> auth_;
  std::unique_ptr<ChatService> chat_;
  std::unique_ptr<http::Server> server_;
  http::HttpClient client_{http::ClientOptions{.threads = 2}};
  std::string base_;
};

// ---- member rules ----

TEST_P(ChatHttpTest, DirectChatsHaveExactlyTwoMembersOnePerPair) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  Reply none = CreateChat(a, "direct", "", {});
  EXPECT_EQ(none.status, 400);
  EXPECT_NE(none.Error().find("exactly two members"), std::string::npos) << none.raw;
  EXPECT_EQ(CreateChat(a, "direct", "", {b.id, c.id}).status, 400);
  Reply named = CreateChat(a, "direct", "dm", {b.id});
  EXPECT_EQ(named.status, 400);
  EXPECT_NE(named.Error().find("name"), std::string::npos);
  Reply ok = CreateChat(a, "direct", "", {b.id});
  ASSERT_EQ(ok.status, 201) << ok.raw;
  EXPECT_EQ(ok.Int("member_count"), 2);
  Reply again = CreateChat(b, "direct", "", {a.id});  // the same pair from the other side
  EXPECT_EQ(again.status, 409);
  EXPECT_NE(again.Error().find("already exists"), std::string::npos) << again.raw;
  std::string id = ok.Str("id");
  Reply leave = Post("/api/v1/chats/" + id + "/leave", json::object{}, b);
  EXPECT_EQ(leave.status, 400);
  Reply add =
      Post("/api/v1/chats/" + id + "/members", json::object{{"user_ids", json::array{c.id}}}, a);
  EXPECT_EQ(add.status, 400);
  EXPECT_NE(add.Error().find("direct"), std::string::npos);
  // A user of another workspace does not exist here.
  User stranger = Owner("s@example.com");
  Reply foreign = CreateChat(a, "direct", "", {stranger.id});
  EXPECT_EQ(foreign.status, 404);
  EXPECT_NE(foreign.Error().find("members"), std::string::npos);
}

TEST_P(ChatHttpTest, GroupAndChannelRules) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  Reply small = CreateChat(a, "group", "", {b.id});
  EXPECT_EQ(small.status, 400);
  EXPECT_NE(small.Error().find("at least three"), std::string::npos);
  EXPECT_EQ(CreateChat(a, "group", "", {b.id, c.id}).status, 201);
  Reply unnamed = CreateChat(a, "public_channel", "", {});
  EXPECT_EQ(unnamed.status, 400);
  EXPECT_NE(unnamed.Error().find("name: required"), std::string::npos);
  EXPECT_EQ(CreateChat(a, "bogus", "x", {}).status, 400);
  std::string general = ChatId(a, "public_channel", "General", {});
  Reply dup = CreateChat(b, "private_channel", "general", {});
  EXPECT_EQ(dup.status, 409);
  EXPECT_NE(dup.Error().find("already exists"), std::string::npos);
  // Names are unique per workspace only.
  User other = Owner("o@example.com");
  EXPECT_EQ(CreateChat(other, "public_channel", "General", {}).status, 201);

  // Public channels: anyone joins and leaves.
  EXPECT_EQ(Post("/api/v1/chats/" + general + "/join", json::object{}, b).status, 200);
  EXPECT_EQ(Get("/api/v1/chats/" + general, b).Str("role"), "member");
  EXPECT_EQ(Post("/api/v1/chats/" + general + "/leave", json::object{}, b).status, 204);

  // Private channels: by invitation of the owner or admins.
  std::string secret = ChatId(a, "private_channel", "secret", {});
  Reply join = Post("/api/v1/chats/" + secret + "/join", json::object{}, b);
  EXPECT_EQ(join.status, 404);  // invisible to non-members
  EXPECT_EQ(
      Post("/api/v1/chats/" + secret + "/members", json::object{{"user_ids", json::array{b.id}}}, a)
          .status,
      200);
  Reply by_member = Post("/api/v1/chats/" + secret + "/members",
                         json::object{{"user_ids", json::array{c.id}}}, b);
  EXPECT_EQ(by_member.status, 403);
  EXPECT_NE(by_member.Error().find("owner or admins"), std::string::npos);
  EXPECT_EQ(Send("PATCH", "/api/v1/chats/" + secret + "/members/" + b.id,
                 json::serialize(json::object{{"role", "admin"}}), a.token)
                .status,
            204);
  EXPECT_EQ(
      Post("/api/v1/chats/" + secret + "/members", json::object{{"user_ids", json::array{c.id}}}, b)
          .status,
      200);
  Reply rename = Send("PATCH", "/api/v1/chats/" + secret,
                      json::serialize(json::object{{"name", "Secret Plans"}}), c.token);
  EXPECT_EQ(rename.status, 403);
  EXPECT_EQ(Send("PATCH", "/api/v1/chats/" + secret,
                 json::serialize(json::object{{"name", "Secret Plans"}}), b.token)
                .Str("name"),
            "Secret Plans");
  // The owner leaves only after transferring ownership.
  Reply owner_leaves = Post("/api/v1/chats/" + secret + "/leave", json::object{}, a);
  EXPECT_EQ(owner_leaves.status, 400);
  EXPECT_NE(owner_leaves.Error().find("transfer"), std::string::npos);
  EXPECT_EQ(Send("DELETE", "/api/v1/chats/" + secret, "", b.token).status, 403);
  EXPECT_EQ(Post("/api/v1/chats/" + secret + "/transfer", json::object{{"user_id", c.id}}, a)
                .Str("owner_id"),
            c.id);
  EXPECT_EQ(Post("/api/v1/chats/" + secret + "/leave", json::object{}, a).status, 204);
  // Archive makes it read-only; delete makes it disappear (and frees the name).
  EXPECT_EQ(Post("/api/v1/chats/" + secret + "/archive", json::object{}, c).status, 200);
  Reply archived = SendMessage(c, secret, "hello");
  EXPECT_EQ(archived.status, 409);
  EXPECT_NE(archived.Error().find("archived"), std::string::npos);
  EXPECT_EQ(Send("DELETE", "/api/v1/chats/" + secret, "", c.token).status, 204);
  EXPECT_EQ(Get("/api/v1/chats/" + secret, c).status, 404);
  EXPECT_EQ(CreateChat(a, "public_channel", "Secret Plans", {}).status, 201);
}

TEST_P(ChatHttpTest, OnlyPublicChannelsAreJoinedAndDirectMembersCannotBeRemoved) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  User d = Member(a, "d@example.com");
  std::string g = ChatId(a, "group", "", {b.id, c.id});
  std::string dm = ChatId(a, "direct", "", {b.id});
  // Groups and direct chats do not exist for non-members, so there is nothing to join.
  Reply join_group = Post("/api/v1/chats/" + g + "/join", json::object{}, d);
  EXPECT_EQ(join_group.status, 404) << join_group.raw;
  EXPECT_NE(join_group.Error().find("not found"), std::string::npos) << join_group.raw;
  EXPECT_EQ(Post("/api/v1/chats/" + dm + "/join", json::object{}, c).status, 404);
  // A member "joining" again changes nothing.
  Reply again = Post("/api/v1/chats/" + g + "/join", json::object{}, b);
  EXPECT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.Int("member_count"), 3);
  // Direct chats keep their two members.
  Reply remove = Send("DELETE", "/api/v1/chats/" + dm + "/members/" + b.id, "", a.token);
  EXPECT_EQ(remove.status, 400) << remove.raw;
  EXPECT_NE(remove.Error().find("members of a direct chat cannot be removed"), std::string::npos)
      << remove.raw;
  Reply self = Send("DELETE", "/api/v1/chats/" + dm + "/members/" + a.id, "", a.token);
  EXPECT_EQ(self.status, 400) << self.raw;  // removing oneself is leaving
  EXPECT_NE(self.Error().find("cannot be left"), std::string::npos) << self.raw;
  EXPECT_EQ(Get("/api/v1/chats/" + dm, a).Int("member_count"), 2);
  // In a group, plain members cannot remove others.
  Reply by_member = Send("DELETE", "/api/v1/chats/" + g + "/members/" + b.id, "", c.token);
  EXPECT_EQ(by_member.status, 403) << by_member.raw;
  EXPECT_NE(by_member.Error().find("owner or admins"), std::string::npos) << by_member.raw;
}

// The three-member minimum is a creation rule (docs/chat.md): members may leave or be removed
// afterwards, as in Slack's and Mattermost's group messages.
TEST_P(ChatHttpTest, GroupsNeedThreeMembersAtCreationOnly) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string g = ChatId(a, "group", "", {b.id, c.id});
  EXPECT_EQ(Post("/api/v1/chats/" + g + "/leave", json::object{}, c).status, 204);
  EXPECT_EQ(Get("/api/v1/chats/" + g, a).Int("member_count"), 2);
  EXPECT_EQ(Send("DELETE", "/api/v1/chats/" + g + "/members/" + b.id, "", a.token).status, 204);
  EXPECT_EQ(Get("/api/v1/chats/" + g, a).Int("member_count"), 1);
  EXPECT_EQ(SendMessage(a, g, "still here").status, 201);
  EXPECT_EQ(Get("/api/v1/chats/" + g, b).status, 404);  // b is out
  // Members can be added back.
  EXPECT_EQ(
      Post("/api/v1/chats/" + g + "/members", json::object{{"user_ids", json::array{b.id}}}, a)
          .status,
      200);
  EXPECT_EQ(Get("/api/v1/chats/" + g, b).Int("member_count"), 2);
}

TEST_P(ChatHttpTest, BrowsingPublicChannelsShowsWhichOnesAreJoined) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string general = ChatId(a, "public_channel", "general", {});
  std::string random = ChatId(b, "public_channel", "Random", {});
  ChatId(a, "private_channel", "secret", {});  // not listed
  ChatId(a, "group", "", {b.id, Member(a, "c@example.com").id});
  auto browse = [&](const User& u) {
    std::map<std::string, json::object> out;
    Reply r = Get("/api/v1/chats/public", u);
    EXPECT_EQ(r.status, 200) << r.raw;
    if (r.status != 200) return out;
    std::vector<std::string> names;
    for (const auto& c : r.body.at("chats").as_array()) {
      names.emplace_back(c.at("name").as_string());
      out[std::string(c.at("id").as_string())] = c.as_object();
    }
    EXPECT_EQ(names, (std::vector<std::string>{"general", "Random"}));  // by name, any case
    return out;
  };
  auto seen = browse(b);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_FALSE(seen[general].at("joined").as_bool());
  EXPECT_FALSE(seen[general].contains("role"));
  EXPECT_EQ(seen[general].at("member_count").as_int64(), 1);
  EXPECT_TRUE(seen[random].at("joined").as_bool());
  EXPECT_EQ(seen[random].at("role").as_string(), "owner");
  ASSERT_EQ(Post("/api/v1/chats/" + general + "/join", json::object{}, b).status, 200);
  seen = browse(b);
  EXPECT_TRUE(seen[general].at("joined").as_bool());
  EXPECT_EQ(seen[general].at("role").as_string(), "member");
  EXPECT_EQ(seen[general].at("member_count").as_int64(), 2);
  // The owner of `general` sees `random` as not joined.
  seen = browse(a);
  EXPECT_TRUE(seen[general].at("joined").as_bool());
  EXPECT_FALSE(seen[random].at("joined").as_bool());
}

TEST_P(ChatHttpTest, UnarchiveMakesAChatWritableAgain) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string ch = ChatId(a, "private_channel", "ops", {b.id});
  auto sb = Stream(b);
  Reply by_member = Post("/api/v1/chats/" + ch + "/archive", json::object{}, b);
  EXPECT_EQ(by_member.status, 403);
  EXPECT_NE(by_member.Error().find("only the chat's owner"), std::string::npos) << by_member.raw;
  Reply archived = Post("/api/v1/chats/" + ch + "/archive", json::object{}, a);
  ASSERT_EQ(archived.status, 200) << archived.raw;
  EXPECT_EQ(archived.Str("archived"), "true");
  EXPECT_EQ(SendMessage(b, ch, "while archived").status, 409);
  EXPECT_EQ(Post("/api/v1/chats/" + ch + "/unarchive", json::object{}, b).status, 403);
  Reply unarchived = Post("/api/v1/chats/" + ch + "/unarchive", json::object{}, a);
  ASSERT_EQ(unarchived.status, 200) << unarchived.raw;
  EXPECT_EQ(unarchived.Str("archived"), "false");
  EXPECT_EQ(Get("/api/v1/chats/" + ch, b).Str("archived"), "false");
  EXPECT_EQ(SendMessage(b, ch, "writable again").status, 201);
  // Members hear of both changes.
  auto updates = sb->WaitFor("chat.updated", 2);
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_TRUE(json::parse(updates[0].data).at("archived").as_bool());
  EXPECT_FALSE(json::parse(updates[1].data).at("archived").as_bool());
}

// ---- permissions ----

TEST_P(ChatHttpTest, NonMembersCannotReadAndOtherWorkspacesAreInvisible) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string priv = ChatId(a, "private_channel", "priv", {b.id});
  ASSERT_EQ(SendMessage(a, priv, "secret words").status, 201);
  EXPECT_EQ(Get("/api/v1/chats/" + priv, c).status, 404);
  EXPECT_EQ(Get("/api/v1/chats/" + priv + "/messages", c).status, 404);
  EXPECT_EQ(SendMessage(c, priv, "let me in").status, 404);
  EXPECT_EQ(Get("/api/v1/chats/" + priv + "/members", c).status, 404);

  // Public channels are readable by the workspace; sending needs membership.
  std::string pub = ChatId(a, "public_channel", "pub", {});
  ASSERT_EQ(SendMessage(a, pub, "public words").status, 201);
  EXPECT_EQ(Messages(c, pub).size(), 1u);
  Reply not_joined = SendMessage(c, pub, "hi");
  EXPECT_EQ(not_joined.status, 403);
  EXPECT_NE(not_joined.Error().find("join"), std::string::npos);

  // Another workspace sees nothing, not even public channels.
  User x = Owner("x@example.com");
  EXPECT_EQ(Get("/api/v1/chats/" + pub, x).status, 404);
  EXPECT_EQ(Get("/api/v1/chats/" + pub + "/messages", x).status, 404);
  EXPECT_EQ(Post("/api/v1/chats/" + pub + "/join", json::object{}, x).status, 404);
  EXPECT_TRUE(Get("/api/v1/chats", x).body.at("chats").as_array().empty());
  EXPECT_TRUE(Get("/api/v1/chats/public", x).body.at("chats").as_array().empty());
  // No credentials: 401.
  EXPECT_EQ(Send("GET", "/api/v1/chats").status, 401);
}

// ---- messages ----

TEST_P(ChatHttpTest, MessagesEditDeleteReactionsThreadsPinsAndReadState) {
  User a = Owner("a@example.com", "Alice");
  User b = Member(a, "bob@example.com", "Bob Stone");
  User c = Member(a, "carol@example.com", "Carol");
  std::string g = ChatId(a, "group", "team", {b.id, c.id});
  EXPECT_EQ(SendMessage(a, g, "").status, 400);
  EXPECT_EQ(SendMessage(a, g, std::string(10001, 'x')).status, 400);
  EXPECT_EQ(SendMessage(a, g, std::string(10000, 'x')).status, 201);
  Reply m1 = SendMessage(a, g, "hi @bob and @bobstone and @nobody");
  ASSERT_EQ(m1.status, 201) << m1.raw;
  EXPECT_EQ(m1.Int("seq"), 2);
  EXPECT_EQ(json::serialize(m1.body.at("mentions")), "[\"" + b.id + "\"]");
  int64_t id1 = m1.Int("id");
  Reply reply = Post("/api/v1/chats/" + g + "/messages",
                     json::object{{"content", "a reply"}, {"reply_to", id1}}, b);
  ASSERT_EQ(reply.status, 201) << reply.raw;
  Reply bad_reply = Post("/api/v1/chats/" + g + "/messages",
                         json::object{{"content", "x"}, {"reply_to", 999999}}, b);
  EXPECT_EQ(bad_reply.status, 404);
  EXPECT_NE(bad_reply.Error().find("reply_to"), std::string::npos);
  std::string msg = "/api/v1/chats/" + g + "/messages/" + std::to_string(id1);
  Reply thread = Get(msg + "/thread", c);
  EXPECT_EQ(thread.body.at("root").at("reply_count").as_int64(), 1);
  EXPECT_EQ(thread.body.at("replies").as_array().size(), 1u);

  // Edit: sender only, history kept.
  EXPECT_EQ(Send("PATCH", msg, json::serialize(json::object{{"content", "x"}}), b.token).status,
            403);
  Reply edited =
      Send("PATCH", msg, json::serialize(json::object{{"content", "hello @carol"}}), a.token);
  EXPECT_EQ(edited.status, 200);
  EXPECT_NE(edited.Str("edited_at"), "null");
  EXPECT_EQ(json::serialize(edited.body.at("mentions")), "[\"" + c.id + "\"]");
  Reply history = Get(msg + "/history", b);
  ASSERT_EQ(history.body.at("history").as_array().size(), 1u);
  EXPECT_EQ(history.body.at("history").at(0).at("content").as_string(),
            "hi @bob and @bobstone and @nobody");

  // Reactions and pins.
  EXPECT_EQ(Send("PUT", msg + "/reactions/%F0%9F%91%8D", "", b.token).status, 200);
  Reply reacted = Send("PUT", msg + "/reactions/%F0%9F%91%8D", "", c.token);
  EXPECT_EQ(reacted.body.at("reactions").at(0).at("count").as_int64(), 2);
  EXPECT_EQ(Send("DELETE", msg + "/reactions/%F0%9F%91%8D", "", c.token)
                .body.at("reactions")
                .at(0)
                .at("count")
                .as_int64(),
            1);
  EXPECT_EQ(Post(msg + "/pin", json::object{}, c).status, 200);
  EXPECT_EQ(Get("/api/v1/chats/" + g + "/pins", a).body.at("messages").as_array().size(), 1u);

  // Read state: unread and mention counts, receipts.
  Reply chat_c = Get("/api/v1/chats/" + g, c);
  EXPECT_EQ(chat_c.Int("unread_count"), 3);
  EXPECT_EQ(chat_c.Int("mention_count"), 1);
  Reply read = Post("/api/v1/chats/" + g + "/read", json::object{{"seq", 2}}, c);
  EXPECT_EQ(read.Int("unread_count"), 1);
  EXPECT_EQ(read.Int("mention_count"), 0);
  EXPECT_EQ(Post("/api/v1/chats/" + g + "/read", json::object{{"seq", 99}}, c).status, 400);
  Reply seen = Get(msg + "/receipts", a);
  ASSERT_EQ(seen.body.at("seen_by").as_array().size(), 1u);
  EXPECT_EQ(seen.body.at("seen_by").at(0).at("user_id").as_string(), c.id);
  Reply list = Get("/api/v1/chats", c);
  ASSERT_EQ(list.body.at("chats").as_array().size(), 1u);
  EXPECT_EQ(list.body.at("chats").at(0).at("last_message").at("content").as_string(), "a reply");

  // Delete: tombstone, sender or admins only.
  EXPECT_EQ(Send("DELETE", msg, "", c.token).status, 403);
  EXPECT_EQ(Send("DELETE", msg, "", a.token).status, 204);
  Reply gone = Get(msg, b);
  EXPECT_EQ(gone.Str("deleted"), "true");
  EXPECT_EQ(gone.Str("content"), "");
  EXPECT_TRUE(Get(msg + "/history", b).body.at("history").as_array().empty());

  // Cursor pagination by seq.
  for (int i = 0; i < 10; ++i) ASSERT_EQ(SendMessage(b, g, "n" + std::to_string(i)).status, 201);
  auto latest = Messages(a, g, "?limit=5");
  ASSERT_EQ(latest.size(), 5u);
  EXPECT_EQ(latest.front().at("seq").as_int64(), 9);
  EXPECT_EQ(latest.back().at("seq").as_int64(), 13);
  auto older = Messages(a, g, "?before=9&limit=100");
  ASSERT_EQ(older.size(), 8u);
  EXPECT_EQ(older.back().at("seq").as_int64(), 8);
  auto newer = Messages(a, g, "?after=11");
  ASSERT_EQ(newer.size(), 2u);
  auto around = Messages(a, g, "?around=7&limit=4");
  ASSERT_EQ(around.size(), 4u);
  EXPECT_EQ(around.front().at("seq").as_int64(), 5);
  EXPECT_EQ(around.back().at("seq").as_int64(), 8);
  EXPECT_EQ(Get("/api/v1/chats/" + g + "/messages?limit=101", a).status, 400);
  EXPECT_EQ(Get("/api/v1/chats/" + g + "/messages?before=3&after=1", a).status, 400);
}

TEST_P(ChatHttpTest, UnpinRemovesAMessageFromThePins) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string dm = ChatId(a, "direct", "", {b.id});
  Reply m1 = SendMessage(a, dm, "pin me");
  Reply m2 = SendMessage(a, dm, "pin me too");
  ASSERT_EQ(m1.status, 201);
  ASSERT_EQ(m2.status, 201);
  std::string pin1 = "/api/v1/chats/" + dm + "/messages/" + std::to_string(m1.Int("id")) + "/pin";
  std::string pin2 = "/api/v1/chats/" + dm + "/messages/" + std::to_string(m2.Int("id")) + "/pin";
  auto sa = Stream(a);
  Reply pinned = Post(pin1, json::object{}, b);
  ASSERT_EQ(pinned.status, 200) << pinned.raw;
  EXPECT_EQ(pinned.Str("pinned"), "true");
  EXPECT_EQ(pinned.Str("pinned_by"), b.id);
  ASSERT_EQ(Post(pin2, json::object{}, a).status, 200);
  EXPECT_EQ(Get("/api/v1/chats/" + dm + "/pins", a).body.at("messages").as_array().size(), 2u);
  Reply unpinned = Send("DELETE", pin1, "", a.token);
  ASSERT_EQ(unpinned.status, 200) << unpinned.raw;
  EXPECT_EQ(unpinned.Str("pinned"), "false");
  EXPECT_EQ(unpinned.Str("pinned_by"), "");  // absent once unpinned
  Reply pins = Get("/api/v1/chats/" + dm + "/pins", b);
  ASSERT_EQ(pins.body.at("messages").as_array().size(), 1u);
  EXPECT_EQ(pins.body.at("messages").at(0).at("id").as_int64(), m2.Int("id"));
  EXPECT_EQ(
      Get("/api/v1/chats/" + dm + "/messages/" + std::to_string(m1.Int("id")), b).Str("pinned"),
      "false");
  // Unpinning again is harmless; the stream saw pin, pin, unpin.
  EXPECT_EQ(Send("DELETE", pin1, "", a.token).Str("pinned"), "false");
  auto updates = sa->WaitFor("message.updated", 3);
  ASSERT_GE(updates.size(), 3u);
  EXPECT_FALSE(json::parse(updates[2].data).at("pinned").as_bool());
  EXPECT_EQ(json::parse(updates[2].data).at("id").as_int64(), m1.Int("id"));
}

TEST_P(ChatHttpTest, ConcurrentSendsWithOneIdempotencyKeyCreateExactlyOneMessage) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string chat = ChatId(a, "direct", "", {b.id});
  auto stream = Stream(b);
  constexpr int kSenders = 20;
  std::vector<Reply> replies(kSenders);
  std::vector<std::thread> threads;
  std::latch start(kSenders);  // every sender is ready before any sends
  for (int i = 0; i < kSenders; ++i) {
    threads.emplace_back([&, i] {
      // Each thread has its own client (own connections), so the requests really overlap.
      http::HttpClient client(http::ClientOptions{.threads = 1});
      http::ClientRequest req;
      req.method = "POST";
      req.url = base_ + "/api/v1/chats/" + chat + "/messages";
      req.body = json::serialize(json::object{{"content", "once"}, {"idempotency_key", "key-1"}});
      req.headers.Set("content-type", "application/json");
      req.headers.Set("authorization", "Bearer " + a.token);
      start.arrive_and_wait();
      auto r = client.SendSync(std::move(req));
      if (!r.ok()) return;
      replies[i].status = r->status;
      replies[i].raw = r->body;
      boost::system::error_code ec;
      replies[i].body = json::parse(r->body, ec);
    });
  }
  for (auto& t : threads) t.join();
  int created = 0;
  std::set<int64_t> ids;
  for (const auto& r : replies) {
    ASSERT_TRUE(r.status == 201 || r.status == 200) << r.status << " " << r.raw;
    created += r.status == 201;
    ids.insert(r.Int("id"));
  }
  EXPECT_EQ(created, 1);
  ASSERT_EQ(ids.size(), 1u);
  auto all = Messages(a, chat);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].at("id").as_int64(), *ids.begin());
  EXPECT_EQ(all[0].at("seq").as_int64(), 1);
  // Exactly one message.created reached the stream: published once, after the commit. A later
  // message marks the end (events of one chat arrive in order).
  ASSERT_EQ(SendMessage(a, chat, "marker").status, 201);
  auto events = stream->WaitFor("message.created", 2);
  ASSERT_EQ(events.size(), 2u);
  std::this_thread::sleep_for(100ms);
  events = stream->WaitFor("message.created", 2, 0ms);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(json::parse(events[0].data).at("id").as_int64(), *ids.begin());
  EXPECT_EQ(json::parse(events[1].data).at("content").as_string(), "marker");
  // Keys are per (chat, sender): the same key from another sender is another message.
  EXPECT_EQ(SendMessage(b, chat, "once", "key-1").status, 201);
  EXPECT_EQ(SendMessage(a, chat, "again", "key-1").Int("id"), *ids.begin());
  EXPECT_EQ(Messages(a, chat).back().at("seq").as_int64(), 3);  // no seq was burnt
}

TEST_P(ChatHttpTest, SequenceNumbersAreGapFreeUnderConcurrentSenders) {
  User a = Owner("a@example.com");
  constexpr int kThreads = 8, kEach = 25;
  std::vector<User> users{a};  // 8 distinct senders
  std::vector<std::string> others;
  for (int i = 1; i < kThreads; ++i) {
    users.push_back(Member(a, "u" + std::to_string(i) + "@example.com"));
    others.push_back(users.back().id);
  }
  std::string g = ChatId(a, "group", "busy", others);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::latch start(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      http::HttpClient client(http::ClientOptions{.threads = 1});
      start.arrive_and_wait();
      for (int i = 0; i < kEach; ++i) {
        http::ClientRequest req;
        req.method = "POST";
        req.url = base_ + "/api/v1/chats/" + g + "/messages";
        req.body = json::serialize(json::object{{"content", "m"}});
        req.headers.Set("content-type", "application/json");
        req.headers.Set("authorization", "Bearer " + users[t].token);
        auto r = client.SendSync(std::move(req));
        if (!r.ok() || r->status != 201) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::vector<int64_t> seqs;
  std::map<std::string, int> per_sender;
  int64_t after = 0;
  while (true) {
    auto page = Messages(a, g, "?after=" + std::to_string(after) + "&limit=100");
    if (page.empty()) break;
    for (const auto& m : page) {
      seqs.push_back(m.at("seq").as_int64());
      ++per_sender[std::string(m.at("sender_id").as_string())];
    }
    after = seqs.back();
  }
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kThreads * kEach));
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], static_cast<int64_t>(i + 1));
  EXPECT_EQ(per_sender.size(), static_cast<size_t>(kThreads));
  for (const auto& [sender, n] : per_sender) EXPECT_EQ(n, kEach) << sender;
}

// ---- realtime ----

TEST_P(ChatHttpTest, LastEventIdResumesExactlyTheMissedEventsInOrder) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string chat = ChatId(a, "direct", "", {b.id});
  std::string last_id;
  {
    auto stream = Stream(b);
    ASSERT_EQ(SendMessage(a, chat, "before").status, 201);
    auto got = stream->WaitFor("message.created", 1);
    ASSERT_EQ(got.size(), 1u);
    last_id = got[0].id;
    ASSERT_FALSE(last_id.empty());
  }  // disconnected
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(SendMessage(a, chat, "m" + std::to_string(i)).status, 201);
  }
  auto resumed = Stream(b, last_id);
  auto got = resumed->WaitFor("message.created", 100);
  ASSERT_EQ(got.size(), 100u);
  uint64_t prev = std::stoull(last_id);
  for (int i = 0; i < 100; ++i) {
    json::value data = json::parse(got[i].data);
    EXPECT_EQ(data.at("content").as_string(), "m" + std::to_string(i));
    uint64_t id = std::stoull(got[i].id);
    EXPECT_GT(id, prev);
    prev = id;
  }
  // Live events continue after the replay, with ids still increasing.
  ASSERT_EQ(SendMessage(a, chat, "live").status, 201);
  auto more = resumed->WaitFor("message.created", 101);
  ASSERT_EQ(more.size(), 101u);
  EXPECT_GT(std::stoull(more.back().id), prev);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(resumed->WaitFor("message.created", 101, 0ms).size(), 101u);  // no duplicates

  // An id from the future gets resync.
  SseReader future(client_, base_ + "/api/v1/events",
                   {{"authorization", "Bearer " + b.token}, {"last-event-id", "999999999"}});
  EXPECT_EQ(future.WaitFor("resync", 1).size(), 1u);
}

TEST_P(ChatHttpTest, EveryStreamOfAUserReceivesEveryEvent) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  auto tab1 = Stream(b);
  auto tab2 = Stream(b);
  auto other = Stream(c);
  auto typist = Stream(a);
  std::string g = ChatId(a, "group", "", {b.id, c.id});
  for (int i = 0; i < 50; ++i) ASSERT_EQ(SendMessage(a, g, "m" + std::to_string(i)).status, 201);
  EXPECT_EQ(tab1->WaitFor("chat.created", 1).size(), 1u);
  EXPECT_EQ(tab1->WaitFor("message.created", 50).size(), 50u);
  EXPECT_EQ(tab2->WaitFor("message.created", 50).size(), 50u);
  EXPECT_EQ(other->WaitFor("message.created", 50).size(), 50u);
  // Typing reaches the others, rate limited, without ids.
  EXPECT_EQ(Post("/api/v1/chats/" + g + "/typing", json::object{}, a).status, 204);
  Reply again = Post("/api/v1/chats/" + g + "/typing", json::object{}, a);
  EXPECT_EQ(again.status, 429);
  auto typing = tab2->WaitFor("typing", 1);
  ASSERT_EQ(typing.size(), 1u);
  EXPECT_TRUE(typing[0].id.empty());
  EXPECT_EQ(tab1->WaitFor("typing", 1).size(), 1u);
  EXPECT_TRUE(typist->WaitFor("typing", 1, 200ms).empty());  // not to the typist
  EXPECT_EQ(chat_->open_streams(), 4u);
}

TEST_P(ChatHttpTest, EveryEventTypeReachesTheStreamsOfItsAudience) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  User d = Member(a, "d@example.com");
  auto sb = Stream(b);
  std::string g = ChatId(a, "group", "team", {b.id, c.id});
  ASSERT_EQ(Send("PATCH", "/api/v1/chats/" + g, json::serialize(json::object{{"name", "Team 2"}}),
                 a.token)
                .status,
            200);
  Reply m = SendMessage(a, g, "hello");
  ASSERT_EQ(m.status, 201);
  std::string msg = "/api/v1/chats/" + g + "/messages/" + std::to_string(m.Int("id"));
  ASSERT_EQ(
      Send("PATCH", msg, json::serialize(json::object{{"content", "hello again"}}), a.token).status,
      200);
  ASSERT_EQ(Send("PUT", msg + "/reactions/ok", "", c.token).status, 200);
  ASSERT_EQ(Send("DELETE", msg + "/reactions/ok", "", c.token).status, 200);
  ASSERT_EQ(Post("/api/v1/chats/" + g + "/read", json::object{{"seq", 1}}, c).status, 200);
  ASSERT_EQ(Send("PATCH", "/api/v1/chats/" + g + "/members/" + c.id,
                 json::serialize(json::object{{"role", "admin"}}), a.token)
                .status,
            204);
  ASSERT_EQ(Post("/api/v1/chats/" + g + "/typing", json::object{}, a).status, 204);
  ASSERT_EQ(Send("DELETE", msg, "", a.token).status, 204);
  std::string pub = ChatId(a, "public_channel", "pub", {});
  ASSERT_EQ(Post("/api/v1/chats/" + pub + "/join", json::object{}, b).status, 200);
  ASSERT_EQ(Post("/api/v1/chats/" + pub + "/join", json::object{}, d).status, 200);
  ASSERT_EQ(Post("/api/v1/chats/" + pub + "/leave", json::object{}, d).status, 204);
  {
    auto sd = Stream(d);  // d's first stream: online for the workspace
    EXPECT_TRUE(WaitForMatch(*sb, "presence", [&](const json::object& o) {
      return Field(o, "user_id", d.id) && Field(o, "status", "online");
    }));
  }  // d's last stream closes: offline
  EXPECT_TRUE(WaitForMatch(*sb, "presence", [&](const json::object& o) {
    return Field(o, "user_id", d.id) && Field(o, "status", "offline");
  }));
  ASSERT_EQ(Send("DELETE", "/api/v1/chats/" + g, "", a.token).status, 204);

  auto is_g = [&](const json::object& o) { return Field(o, "chat_id", g); };
  auto is_pub = [&](const json::object& o) { return Field(o, "chat_id", pub); };
  EXPECT_TRUE(WaitForMatch(*sb, "chat.created", [&](auto& o) { return Field(o, "id", g); }));
  EXPECT_TRUE(
      WaitForMatch(*sb, "chat.updated", [&](auto& o) { return Field(o, "name", "Team 2"); }));
  EXPECT_TRUE(WaitForMatch(*sb, "message.created", is_g));
  EXPECT_TRUE(WaitForMatch(*sb, "message.updated",
                           [&](auto& o) { return Field(o, "content", "hello again"); }));
  EXPECT_TRUE(WaitForMatch(*sb, "reaction.added", [&](auto& o) {
    return is_g(o) && Field(o, "user_id", c.id) && Field(o, "emoji", "ok");
  }));
  EXPECT_TRUE(WaitForMatch(*sb, "reaction.removed", is_g));
  EXPECT_TRUE(WaitForMatch(*sb, "read.updated", [&](auto& o) {
    return is_g(o) && Field(o, "user_id", c.id) && o.at("last_read_seq").as_int64() == 1;
  }));
  EXPECT_TRUE(WaitForMatch(*sb, "member.updated",
                           [&](auto& o) { return is_g(o) && Field(o, "user_id", c.id); }));
  EXPECT_TRUE(WaitForMatch(*sb, "typing", [&](auto& o) {
    return is_g(o) && Field(o, "user_id", a.id) && o.at("expires_in_ms").as_int64() > 0;
  }));
  EXPECT_TRUE(WaitForMatch(*sb, "message.deleted", is_g));
  EXPECT_TRUE(WaitForMatch(*sb, "member.joined",
                           [&](auto& o) { return is_pub(o) && Field(o, "user_id", d.id); }));
  EXPECT_TRUE(WaitForMatch(*sb, "member.left",
                           [&](auto& o) { return is_pub(o) && Field(o, "user_id", d.id); }));
  EXPECT_TRUE(WaitForMatch(*sb, "chat.deleted", [&](auto& o) { return Field(o, "id", g); }));
  // Stored events carry an id (resumable); typing and presence do not.
  for (const auto& e : sb->events()) {
    if (e.event == "ready") continue;
    EXPECT_EQ(e.id.empty(), e.event == "typing" || e.event == "presence") << e.event;
  }
}

TEST_P(ChatHttpTest, PublicChannelChangesReachTheWholeWorkspace) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");  // in the workspace, in none of its chats
  User x = Owner("x@example.com");      // another workspace
  auto sc = Stream(c);
  auto sx = Stream(x);
  std::string priv = ChatId(a, "private_channel", "hidden", {b.id});
  std::string dm = ChatId(a, "direct", "", {b.id});
  std::string pub = ChatId(a, "public_channel", "town-square", {});
  ASSERT_EQ(Send("PATCH", "/api/v1/chats/" + pub,
                 json::serialize(json::object{{"name", "Town Square"}}), a.token)
                .status,
            200);
  auto created = WaitForMatch(*sc, "chat.created", [&](auto& o) { return Field(o, "id", pub); });
  ASSERT_TRUE(created);
  // Enough to show the channel and offer to join it.
  json::value data = json::parse(created->data);
  EXPECT_EQ(data.at("type").as_string(), "public_channel");
  EXPECT_EQ(data.at("name").as_string(), "town-square");
  EXPECT_FALSE(data.as_object().contains("role"));
  EXPECT_TRUE(WaitForMatch(*sc, "chat.updated", [&](auto& o) {
    return Field(o, "id", pub) && Field(o, "name", "Town Square");
  }));
  EXPECT_EQ(Post("/api/v1/chats/" + pub + "/join", json::object{}, c).status, 200);
  ASSERT_EQ(Send("DELETE", "/api/v1/chats/" + pub, "", a.token).status, 204);
  EXPECT_TRUE(WaitForMatch(*sc, "chat.deleted", [&](auto& o) { return Field(o, "id", pub); }));
  // The private channel and the direct chat (created before, so their events came first) did
  // not reach c.
  for (const auto& e : sc->events()) {
    EXPECT_EQ(e.data.find(priv), std::string::npos) << e.event << " " << e.data;
    EXPECT_EQ(e.data.find(dm), std::string::npos) << e.event << " " << e.data;
  }
  // Another workspace hears nothing of it: its own channel is the first chat event it gets.
  std::string mine = ChatId(x, "public_channel", "elsewhere", {});
  auto x_created = sx->WaitFor("chat.created", 1);
  ASSERT_EQ(x_created.size(), 1u);
  EXPECT_EQ(json::parse(x_created[0].data).at("id").as_string(), mine);
  for (const auto& e : sx->events()) EXPECT_EQ(e.data.find(pub), std::string::npos) << e.data;
}

// Short ephemeral intervals: typing and presence rate limits and expiry.
class ChatEphemeralTest : public ChatHttpTest {
 protected:
  ChatOptions Options() override {
    ChatOptions o = ChatHttpTest::Options();
    o.typing_interval = 300ms;
    o.typing_ttl = 2000ms;
    o.presence_interval = 300ms;
    o.presence_ttl = 600ms;
    return o;
  }
};

TEST_P(ChatEphemeralTest, TypingIsRateLimitedAndCarriesItsExpiry) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string chat = ChatId(a, "direct", "", {b.id});
  auto sb = Stream(b);
  EXPECT_EQ(Post("/api/v1/chats/" + chat + "/typing", json::object{}, a).status, 204);
  Reply limited = Post("/api/v1/chats/" + chat + "/typing", json::object{}, a);
  EXPECT_EQ(limited.status, 429);
  EXPECT_NE(limited.Error().find("typing"), std::string::npos) << limited.raw;
  std::this_thread::sleep_for(350ms);
  EXPECT_EQ(Post("/api/v1/chats/" + chat + "/typing", json::object{}, a).status, 204);
  auto typing = sb->WaitFor("typing", 2);
  ASSERT_EQ(typing.size(), 2u);
  EXPECT_EQ(json::parse(typing[0].data).at("expires_in_ms").as_int64(), 2000);
  // Not stored: a resumed stream does not replay typing.
  EXPECT_TRUE(typing[0].id.empty());
  // Non-members cannot type.
  User c = Member(a, "c@example.com");
  EXPECT_EQ(Post("/api/v1/chats/" + chat + "/typing", json::object{}, c).status, 404);
}

TEST_P(ChatEphemeralTest, PresenceIsRateLimitedAndExpiresWhenNotRenewed) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  auto sb = Stream(b);
  Reply bad = Post("/api/v1/presence", json::object{{"status", "busy"}}, a);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.Error().find("status"), std::string::npos);
  ASSERT_EQ(Post("/api/v1/presence", json::object{{"status", "online"}}, a).status, 204);
  Reply limited = Post("/api/v1/presence", json::object{{"status", "away"}}, a);
  EXPECT_EQ(limited.status, 429);
  EXPECT_NE(limited.Error().find("presence"), std::string::npos) << limited.raw;
  auto of_a = [&](const std::string& status) {
    return [&, status](const json::object& o) {
      return Field(o, "user_id", a.id) && Field(o, "status", status);
    };
  };
  auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitForMatch(*sb, "presence", of_a("online")));
  // Not renewed and no stream of a's open: offline after the TTL.
  EXPECT_TRUE(WaitForMatch(*sb, "presence", of_a("offline"), 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 500ms);

  // Renewing keeps a online past the first TTL.
  std::this_thread::sleep_for(350ms);
  size_t offline_before = 0;
  for (const auto& e : sb->events())
    offline_before += e.event == "presence" && e.data.find("offline") != std::string::npos &&
                      e.data.find(a.id) != std::string::npos;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Post("/api/v1/presence", json::object{{"status", "away"}}, a).status, 204);
    std::this_thread::sleep_for(350ms);
  }
  size_t offline_after = 0;
  for (const auto& e : sb->events())
    offline_after += e.event == "presence" && e.data.find("offline") != std::string::npos &&
                     e.data.find(a.id) != std::string::npos;
  EXPECT_EQ(offline_after, offline_before);

  // With a stream of a's open, an expired `away` returns to online, never offline.
  auto sa = Stream(a);
  std::this_thread::sleep_for(1500ms);
  size_t offline_end = 0, online_end = 0;
  for (const auto& e : sb->events()) {
    if (e.event != "presence" || e.data.find(a.id) == std::string::npos) continue;
    offline_end += e.data.find("offline") != std::string::npos;
    online_end += e.data.find("\"online\"") != std::string::npos;
  }
  EXPECT_EQ(offline_end, offline_before);
  EXPECT_GE(online_end, 2u);
}

TEST_P(ChatHttpTest, TicketsAreSingleUseAndStreamsNeedCredentials) {
  User a = Owner("a@example.com");
  Reply t = Post("/api/v1/events/ticket", json::object{}, a);
  ASSERT_EQ(t.status, 200) << t.raw;
  std::string url = base_ + "/api/v1/events?ticket=" + t.Str("ticket");
  {
    SseReader s(client_, url, {});
    EXPECT_EQ(s.WaitStatus(), 200);
  }
  SseReader reused(client_, url, {});
  EXPECT_EQ(reused.WaitStatus(), 401);
  SseReader anonymous(client_, base_ + "/api/v1/events", {});
  EXPECT_EQ(anonymous.WaitStatus(), 401);
}

// A small send queue so that a client that does not read is found quickly.
class ChatSlowClientTest : public ChatHttpTest {
 protected:
  ChatOptions Options() override {
    ChatOptions o = ChatHttpTest::Options();
    o.stream_queue_bytes = 64 << 10;
    return o;
  }
};

TEST_P(ChatSlowClientTest, StalledClientIsCutWithResyncOthersAreUnaffected) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string g = ChatId(a, "group", "", {b.id, c.id});
  auto healthy = Stream(c);
  // B's stream over a raw socket with a tiny receive window that is never read.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  int rcvbuf = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string request =
      "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b.token + "\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  for (int i = 0; i < 100 && chat_->open_streams() < 2; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(chat_->open_streams(), 2u);

  const std::string big(9000, 'z');
  int sent = 0;
  for (; sent < 1500 && chat_->resyncs() == 0; ++sent) {
    ASSERT_EQ(SendMessage(a, g, big).status, 201);
  }
  EXPECT_EQ(chat_->resyncs(), 1u);
  // The healthy stream got every message and stays open.
  EXPECT_EQ(healthy->WaitFor("message.created", sent).size(), static_cast<size_t>(sent));
  EXPECT_FALSE(healthy->done());
  // The stalled one, once it reads, finds the resync event at the end.
  std::string received;
  char buf[65536];
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    received.append(buf, n);
    if (received.find("event: resync") != std::string::npos) break;
  }
  ::close(fd);
  EXPECT_NE(received.find("event: resync"), std::string::npos);
  EXPECT_NE(metrics_.ExpositionText().find("chat_sse_resync_total 1"), std::string::npos);
}

// A tiny retention so that old positions are gone.
class ChatRetentionTest : public ChatHttpTest {
 protected:
  ChatOptions Options() override {
    ChatOptions o = ChatHttpTest::Options();
    o.events_retention_bytes = 16 << 10;
    o.events_segment_bytes = 4096;
    return o;
  }
};

TEST_P(ChatRetentionTest, PositionOlderThanRetentionGetsResync) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string chat = ChatId(a, "direct", "", {b.id});
  std::string last_id;
  {
    auto stream = Stream(b);
    ASSERT_EQ(SendMessage(a, chat, "first").status, 201);
    auto got = stream->WaitFor("message.created", 1);
    ASSERT_EQ(got.size(), 1u);
    last_id = got[0].id;
  }
  for (int i = 0; i < 150; ++i) {
    ASSERT_EQ(SendMessage(a, chat, std::string(200, 'x') + std::to_string(i)).status, 201);
  }
  SseReader old(client_, base_ + "/api/v1/events",
                {{"authorization", "Bearer " + b.token}, {"last-event-id", last_id}});
  auto resync = old.WaitFor("resync", 1);
  ASSERT_EQ(resync.size(), 1u);
  EXPECT_NE(resync[0].data.find("too_old"), std::string::npos);
  EXPECT_TRUE(old.WaitFor("message.created", 1, 0ms).empty());
  // Without Last-Event-ID the client starts afresh and gets live events.
  auto fresh = Stream(b);
  ASSERT_EQ(SendMessage(a, chat, "after").status, 201);
  EXPECT_EQ(fresh->WaitFor("message.created", 1).size(), 1u);
}

// ---- outbox ----

// A bus that fails the chat service's durable publishes while `fail` is set (a broken bus, or
// the process dying between the commit and the publish).
class FailingBus : public bus::Bus {
 public:
  explicit FailingBus(bus::Bus& inner) : inner_(inner) {}
  std::atomic<bool> fail{false};

  Status CreateTopic(std::string_view name, const bus::TopicOptions& options) override {
    return inner_.CreateTopic(name, options);
  }
  Result<bus::TopicStats> GetTopicStats(std::string_view name) override {
    return inner_.GetTopicStats(name);
  }
  std::vector<std::string> ListTopics() override { return inner_.ListTopics(); }
  void PublishBatchAsync(std::string_view topic, std::vector<bus::Message> messages,
                         bus::PublishCallback done) override {
    if (fail && topic == "chat.events") {
      done(Unavailable("injected publish failure"));
      return;
    }
    inner_.PublishBatchAsync(topic, std::move(messages), std::move(done));
  }
  Result<std::unique_ptr<bus::Subscription>> Subscribe(bus::SubscribeOptions options) override {
    return inner_.Subscribe(std::move(options));
  }
  Result<std::unique_ptr<bus::Consumer>> OpenConsumer(bus::ConsumerOptions options) override {
    return inner_.OpenConsumer(std::move(options));
  }
  Result<bus::RecordPtr> Request(std::string_view topic, bus::Message request,
                                 std::chrono::milliseconds timeout, int priority) override {
    return inner_.Request(topic, std::move(request), timeout, priority);
  }
  Status Reply(const bus::Record& request, bus::Message reply) override {
    return inner_.Reply(request, std::move(reply));
  }

 private:
  bus::Bus& inner_;
};

class ChatOutboxTest : public ChatHttpTest {
 protected:
  ChatOptions Options() override {
    ChatOptions o = ChatHttpTest::Options();
    o.outbox_interval = 100ms;
    o.outbox_retry_after = 300ms;
    return o;
  }
  bus::Bus& ChatBus() override {
    if (!failing_) failing_ = std::make_unique<FailingBus>(*bus_);
    return *failing_;
  }
  int64_t Unsent() {
    auto rows = db_->Query("SELECT COUNT(*) FROM chat_outbox WHERE sent_at IS NULL", {});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() ? (*rows)[0].Int(0) : -1;
  }
  std::unique_ptr<FailingBus> failing_;
};

TEST_P(ChatOutboxTest, EventCommittedButNotPublishedArrivesAfterARestart) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string chat = ChatId(a, "direct", "", {b.id});
  std::string last_id;
  {
    auto stream = Stream(b);
    ASSERT_EQ(SendMessage(a, chat, "published").status, 201);
    auto got = stream->WaitFor("message.created", 1);
    ASSERT_EQ(got.size(), 1u);
    last_id = got[0].id;
  }
  EXPECT_EQ(Unsent(), 0);
  // The publish fails after the commit; the process then "dies" before the relay retries.
  failing_->fail = true;
  Reply lost = SendMessage(a, chat, "committed, not yet published");
  ASSERT_EQ(lost.status, 201) << lost.raw;  // the write stands
  EXPECT_EQ(Unsent(), 1);
  EXPECT_NE(metrics_.ExpositionText().find("chat_publish_errors_total 1"), std::string::npos);
  StopChat();
  failing_->fail = false;
  MetricsRegistry after_restart;
  StartChat(&after_restart);  // re-publishes the unsent event at start-up
  EXPECT_EQ(Unsent(), 0);
  auto resumed = Stream(b, last_id);
  auto got = resumed->WaitFor("message.created", 1);
  ASSERT_EQ(got.size(), 1u);
  json::value data = json::parse(got[0].data);
  EXPECT_EQ(data.at("id").as_int64(), lost.Int("id"));
  EXPECT_EQ(data.at("content").as_string(), "committed, not yet published");
  // The search index got it too.
  WaitIndexed();
  EXPECT_EQ(SearchResults(b, "q=committed").size(), 1u);
  EXPECT_NE(after_restart.ExpositionText().find("chat_outbox_relayed_total 1"), std::string::npos);
  StopChat();  // before `after_restart` goes
}

TEST_P(ChatOutboxTest, RelayRepublishesAFailedPublishWhileRunningAndStreamsSeeItOnce) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  std::string chat = ChatId(a, "direct", "", {b.id});
  auto stream = Stream(b);
  failing_->fail = true;
  Reply m = SendMessage(a, chat, "retried");
  ASSERT_EQ(m.status, 201);
  EXPECT_TRUE(stream->WaitFor("message.created", 1, 200ms).empty());
  failing_->fail = false;
  auto got = stream->WaitFor("message.created", 1, 10s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0].data).at("id").as_int64(), m.Int("id"));
  // The relay marks the event sent, then counts it: wait for both.
  auto relayed = [&] {
    return metrics_.ExpositionText().find("chat_outbox_relayed_total 1") != std::string::npos;
  };
  for (int i = 0; i < 250 && (Unsent() != 0 || !relayed()); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(Unsent(), 0);
  EXPECT_TRUE(relayed());
  // A duplicate on the bus (the same event id published twice) reaches a stream once.
  ASSERT_EQ(SendMessage(a, chat, "after").status, 201);
  ASSERT_EQ(stream->WaitFor("message.created", 2).size(), 2u);
  auto stats = bus_->GetTopicStats("chat.events");
  ASSERT_TRUE(stats.ok());
  auto sub = bus_->Subscribe(
      {.pattern = "chat.events", .start = bus::StartPosition::AtOffset(stats->next_offset - 1)});
  ASSERT_TRUE(sub.ok());
  auto last = (*sub)->Next(5s);
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->kind, bus::Delivery::Kind::kRecord);
  ASSERT_TRUE(bus_->Publish("chat.events", bus::Message{.key = last->record->key,
                                                        .headers = last->record->headers,
                                                        .payload = last->record->payload})
                  .ok());
  ASSERT_EQ(SendMessage(a, chat, "marker").status, 201);
  auto all = stream->WaitFor("message.created", 3);
  std::this_thread::sleep_for(100ms);
  all = stream->WaitFor("message.created", 3, 0ms);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(json::parse(all[2].data).at("content").as_string(), "marker");
}

// ---- search ----

TEST_P(ChatHttpTest, SearchFindsReadableMessagesAndFollowsEditsAndDeletes) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string priv = ChatId(a, "private_channel", "planning", {b.id});
  std::string pub = ChatId(c, "public_channel", "random", {});
  Reply m1 = SendMessage(a, priv, "Deployment window is Thursday evening");
  ASSERT_EQ(m1.status, 201);
  ASSERT_EQ(SendMessage(b, priv, "Thursday works for the deploy").status, 201);
  ASSERT_EQ(SendMessage(c, pub, "Deploying café updates thursday").status, 201);
  WaitIndexed();

  // Prefix matching; only readable chats.
  auto for_b = SearchResults(b, "q=deploy");
  EXPECT_EQ(for_b.size(), 3u);  // both private messages and the public channel
  auto for_c = SearchResults(c, "q=deploy");
  ASSERT_EQ(for_c.size(), 1u);
  EXPECT_EQ(for_c[0].at("chat_id").as_string(), pub);
  EXPECT_NE(std::string(for_c[0].at("highlight").as_string()).find("<mark>"), std::string::npos);
  // unicode61 folds diacritics on SQLite; PostgreSQL's `simple` configuration keeps them.
  EXPECT_EQ(SearchResults(b, GetParam() == Backend::kSqlite ? "q=cafe" : "q=caf%C3%A9").size(), 1u);
  User x = Owner("x@example.com");
  EXPECT_TRUE(SearchResults(x, "q=deploy").empty());

  // Filters and pagination.
  EXPECT_EQ(SearchResults(b, "q=thursday&chat_id=" + priv).size(), 2u);
  EXPECT_EQ(SearchResults(b, "q=thursday&sender_id=" + a.id).size(), 1u);
  EXPECT_EQ(SearchResults(b, "q=thursday&type=public_channel").size(), 1u);
  EXPECT_EQ(SearchResults(b, "q=thursday&from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z").size(),
            0u);
  Reply page1 = Get("/api/v1/search/messages?q=thursday&order=date&limit=2", b);
  ASSERT_EQ(page1.body.at("results").as_array().size(), 2u);
  ASSERT_TRUE(page1.body.at("next_cursor").is_string());
  Reply page2 = Get(
      "/api/v1/search/messages?q=thursday&order=date&limit=2&cursor=" + page1.Str("next_cursor"),
      b);
  ASSERT_EQ(page2.body.at("results").as_array().size(), 1u);
  EXPECT_TRUE(page2.body.at("next_cursor").is_null());
  EXPECT_EQ(Get("/api/v1/search/messages?q=", b).status, 400);
  EXPECT_EQ(Get("/api/v1/search/messages?q=x&type=nope", b).status, 400);

  // Edits and deletes reach the index.
  std::string msg = "/api/v1/chats/" + priv + "/messages/" + std::to_string(m1.Int("id"));
  ASSERT_EQ(
      Send("PATCH", msg, json::serialize(json::object{{"content", "moved to friday"}}), a.token)
          .status,
      200);
  WaitIndexed();
  EXPECT_EQ(SearchResults(b, "q=frid").size(), 1u);
  EXPECT_EQ(SearchResults(b, "q=thursday&chat_id=" + priv).size(), 1u);
  ASSERT_EQ(Send("DELETE", msg, "", a.token).status, 204);
  WaitIndexed();
  EXPECT_TRUE(SearchResults(b, "q=friday").empty());
  IndexerState st = chat_->indexer_state();
  EXPECT_EQ(st.lag_records, 0u);
  EXPECT_EQ(st.lag_seconds, 0);
  EXPECT_TRUE(st.last_error.ok()) << st.last_error.ToString();
  EXPECT_GT(st.indexed, 0u);
  std::string metrics = metrics_.ExpositionText();
  EXPECT_NE(metrics.find("chat_search_index_lag_records 0"), std::string::npos);
  EXPECT_NE(metrics.find("chat_search_index_lag_seconds"), std::string::npos);
}

// The chat service on a fake clock (the auth service keeps the real one): the test sets the time.
class ChatClockTest : public ChatHttpTest {
 protected:
  static constexpr int64_t kStart = 1772445600'000000;  // 2026-03-02T10:00:00Z
  static constexpr int64_t kSecond = 1'000'000;
  static constexpr int64_t kHour = 3600 * kSecond;

  ChatClockTest() { clock_.fake_now_micros = kStart; }
  Env& ChatEnv() override { return clock_; }

  FaultInjectionEnv clock_{Env::Default()};
};

TEST_P(ChatClockTest, TicketsExpireAfterTheirTtl) {
  User a = Owner("a@example.com");
  Reply t1 = Post("/api/v1/events/ticket", json::object{}, a);
  Reply t2 = Post("/api/v1/events/ticket", json::object{}, a);
  ASSERT_EQ(t1.status, 200) << t1.raw;
  ASSERT_EQ(t2.status, 200) << t2.raw;
  EXPECT_EQ(t1.Int("expires_in"), 60);
  clock_.fake_now_micros = kStart + 59 * kSecond;  // still valid
  {
    SseReader s(client_, base_ + "/api/v1/events?ticket=" + t1.Str("ticket"), {});
    EXPECT_EQ(s.WaitStatus(), 200);
    EXPECT_EQ(s.WaitFor("ready", 1).size(), 1u);
  }
  clock_.fake_now_micros = kStart + 61 * kSecond;  // past the 60 s
  SseReader expired(client_, base_ + "/api/v1/events?ticket=" + t2.Str("ticket"), {});
  EXPECT_EQ(expired.WaitStatus(), 401);
  // Once refused it is gone: even with the clock turned back it does not open a stream.
  clock_.fake_now_micros = kStart;
  SseReader again(client_, base_ + "/api/v1/events?ticket=" + t2.Str("ticket"), {});
  EXPECT_EQ(again.WaitStatus(), 401);
}

TEST_P(ChatClockTest, SearchDateRangeIncludesFromAndExcludesTo) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string g = ChatId(a, "group", "dates", {b.id, c.id});
  std::vector<int64_t> ids;  // sent at 10:00, 11:00, 12:00 and 13:00
  for (int h = 0; h < 4; ++h) {
    clock_.fake_now_micros = kStart + h * kHour;
    Reply r = SendMessage(a, g, "quarterly figures, part " + std::to_string(h));
    ASSERT_EQ(r.status, 201) << r.raw;
    EXPECT_EQ(r.Str("created_at"), "2026-03-02T1" + std::to_string(h) + ":00:00Z");
    ids.push_back(r.Int("id"));
  }
  WaitIndexed();
  auto found = [&](const std::string& range) {
    std::vector<int64_t> out;
    for (const auto& o : SearchResults(b, "q=quarterly" + range)) {
      out.push_back(o.at("id").to_number<int64_t>());
    }
    return out;
  };
  using Ids = std::vector<int64_t>;
  EXPECT_EQ(found(""), (Ids{ids[3], ids[2], ids[1], ids[0]}));
  // `to` excludes the 12:00 message exactly at the bound, `from` drops the 10:00 one.
  EXPECT_EQ(found("&from=2026-03-02T10:30:00Z&to=2026-03-02T12:00:00Z"), (Ids{ids[1]}));
  // `from` is inclusive.
  EXPECT_EQ(found("&from=2026-03-02T11:00:00Z&to=2026-03-02T12:00:01Z"), (Ids{ids[2], ids[1]}));
  EXPECT_EQ(found("&from=2026-03-02T12:00:00Z"), (Ids{ids[3], ids[2]}));
  EXPECT_EQ(found("&to=2026-03-02T11:00:00Z"), (Ids{ids[0]}));
  EXPECT_EQ(found("&from=2026-03-02T13:00:01Z"), Ids{});
  // Combined with another filter and with paging.
  EXPECT_EQ(found("&from=2026-03-02T11:00:00Z&to=2026-03-02T13:00:00Z&sender_id=" + a.id),
            (Ids{ids[2], ids[1]}));
  Reply p1 =
      Get("/api/v1/search/messages?q=quarterly&from=2026-03-02T10:00:00Z&to=2026-03-02T13:00:00Z"
          "&limit=2",
          b);
  ASSERT_EQ(p1.status, 200) << p1.raw;
  ASSERT_EQ(p1.body.at("results").as_array().size(), 2u);
  Reply p2 =
      Get("/api/v1/search/messages?q=quarterly&from=2026-03-02T10:00:00Z&to=2026-03-02T13:00:00Z"
          "&limit=2&cursor=" +
              p1.Str("next_cursor"),
          b);
  ASSERT_EQ(p2.status, 200) << p2.raw;
  ASSERT_EQ(p2.body.at("results").as_array().size(), 1u);
  EXPECT_EQ(p2.body.at("results").at(0).at("id").as_int64(), ids[0]);
  Reply bad = Get("/api/v1/search/messages?q=quarterly&to=tomorrow", b);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.Error().find("to:"), std::string::npos) << bad.raw;
}

// The value of an unlabelled metric in the exposition text (-1 when absent).
double MetricValue(const std::string& text, const std::string& name) {
  size_t pos = 0;
  while ((pos = text.find(name + " ", pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return std::stod(text.substr(pos + name.size() + 1));
    pos += name.size();
  }
  return -1;
}

TEST_P(ChatHttpTest, SearchIndexLagStaysUnderOneSecondAfterABurst) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string g = ChatId(a, "group", "burst", {b.id, c.id});
  WaitIndexed();
  std::atomic<bool> burst_done{false};
  double max_lag_seconds = 0;
  std::thread sampler([&] {  // the gauge as a scraper sees it, during and after the burst
    while (!burst_done) {
      max_lag_seconds = std::max(
          max_lag_seconds, MetricValue(metrics_.ExpositionText(), "chat_search_index_lag_seconds"));
      std::this_thread::sleep_for(20ms);
    }
  });
  std::vector<std::thread> senders;
  for (const User* u : {&a, &b, &c}) {
    senders.emplace_back([&, u] {
      http::HttpClient client(http::ClientOptions{.threads = 1});
      for (int i = 0; i < 70; ++i) {
        http::ClientRequest req;
        req.method = "POST";
        req.url = base_ + "/api/v1/chats/" + g + "/messages";
        req.body = json::serialize(json::object{{"content", "burst word" + std::to_string(i)}});
        req.headers.Set("content-type", "application/json");
        req.headers.Set("authorization", "Bearer " + u->token);
        (void)client.SendSync(std::move(req));
      }
    });
  }
  for (auto& t : senders) t.join();
  auto sent = std::chrono::steady_clock::now();
  double lag_records = -1;
  while (std::chrono::steady_clock::now() - sent < 5s) {
    lag_records = MetricValue(metrics_.ExpositionText(), "chat_search_index_lag_records");
    if (lag_records == 0) break;
    std::this_thread::sleep_for(10ms);
  }
  auto caught_up = std::chrono::steady_clock::now() - sent;
  burst_done = true;
  sampler.join();
  EXPECT_EQ(lag_records, 0);
  EXPECT_LE(caught_up, 1s) << "the indexer needed "
                           << std::chrono::duration<double>(caught_up).count()
                           << " s after the burst";
  EXPECT_LE(max_lag_seconds, 1.0);
  EXPECT_EQ(MetricValue(metrics_.ExpositionText(), "chat_search_index_lag_seconds"), 0);
  EXPECT_GE(MetricValue(metrics_.ExpositionText(), "chat_search_indexed_total"), 210);
  EXPECT_EQ(SearchResults(a, "q=burst&limit=100").size(), 100u);
}

TEST_P(ChatHttpTest, HealthReportsEventsAndIndexer) {
  HealthRegistry health;
  chat_->RegisterHealth(health);
  auto results = health.RunAll();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].name, "chat_events");
  EXPECT_EQ(results[1].name, "chat_search_indexer");
  EXPECT_TRUE(HealthRegistry::Ready(results));
}

TEST_P(ChatHttpTest, HealthShowsTheIndexerLagWhileHealthy) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string g = ChatId(a, "group", "lag", {b.id, c.id});
  ASSERT_EQ(SendMessage(a, g, "indexed soon").status, 201);
  WaitIndexed();
  HealthRegistry health;
  chat_->RegisterHealth(health);
  auto results = health.RunAll();
  ASSERT_EQ(results.size(), 2u);
  ASSERT_TRUE(results[1].status.ok()) << results[1].status.ToString();
  std::map<std::string, double> values(results[1].values.begin(), results[1].values.end());
  ASSERT_EQ(values.count("lag_records"), 1u);
  ASSERT_EQ(values.count("lag_seconds"), 1u);
  EXPECT_EQ(values["lag_records"], 0);
  EXPECT_EQ(values["lag_seconds"], 0);
  // The /health document carries them beside the status.
  boost::system::error_code ec;
  json::value doc = json::parse(HealthRegistry::ToJson(results), ec);
  ASSERT_FALSE(ec);
  const auto& entry = doc.at("components").at("chat_search_indexer").as_object();
  EXPECT_EQ(entry.at("status").as_string(), "ok");
  EXPECT_EQ(entry.at("lag_records").to_number<double>(), 0);
  EXPECT_EQ(entry.at("lag_seconds").to_number<double>(), 0);
  EXPECT_FALSE(entry.contains("error"));
}

// ---- search order ----

TEST_P(ChatHttpTest, SearchIsNewestFirstByDefaultAndRanksByRelevanceOnRequest) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string g = ChatId(a, "group", "order", {b.id, c.id});
  std::vector<int64_t> ids;
  for (const char* text : {"alpha one two three four five six", "alpha alpha alpha alpha",
                           "alpha seven eight nine ten eleven twelve"}) {
    Reply r = SendMessage(a, g, text);
    ASSERT_EQ(r.status, 201) << r.raw;
    ids.push_back(r.Int("id"));
  }
  WaitIndexed();
  auto ids_of = [](const std::vector<json::object>& results) {
    std::vector<int64_t> out;
    for (const auto& o : results) out.push_back(o.at("id").to_number<int64_t>());
    return out;
  };
  std::vector<int64_t> newest{ids[2], ids[1], ids[0]};
  EXPECT_EQ(ids_of(SearchResults(b, "q=alpha")), newest);
  EXPECT_EQ(ids_of(SearchResults(b, "q=alpha&order=date")), newest);
  auto ranked = SearchResults(b, "q=alpha&order=relevance");
  ASSERT_EQ(ranked.size(), 3u);
  EXPECT_EQ(ranked[0].at("id").to_number<int64_t>(), ids[1]);  // the densest match first
  for (const auto& o : ranked) {
    EXPECT_NE(std::string(o.at("highlight").as_string()).find("<mark>alpha</mark>"),
              std::string::npos);
  }
  // Relevance pages by offset; a date cursor is refused there.
  Reply p1 = Get("/api/v1/search/messages?q=alpha&order=relevance&limit=2", b);
  ASSERT_EQ(p1.status, 200) << p1.raw;
  ASSERT_EQ(p1.body.at("results").as_array().size(), 2u);
  ASSERT_TRUE(p1.body.at("next_cursor").is_string());
  Reply p2 = Get(
      "/api/v1/search/messages?q=alpha&order=relevance&limit=2&cursor=" + p1.Str("next_cursor"), b);
  ASSERT_EQ(p2.status, 200) << p2.raw;
  ASSERT_EQ(p2.body.at("results").as_array().size(), 1u);
  EXPECT_TRUE(p2.body.at("next_cursor").is_null());
  Reply d1 = Get("/api/v1/search/messages?q=alpha&limit=2", b);
  ASSERT_TRUE(d1.body.at("next_cursor").is_string());
  EXPECT_EQ(
      Get("/api/v1/search/messages?q=alpha&order=relevance&cursor=" + d1.Str("next_cursor"), b)
          .status,
      400);
  EXPECT_EQ(Get("/api/v1/search/messages?q=alpha&order=best", b).status, 400);
}

class ChatSearchWindowTest : public ChatHttpTest {
 protected:
  ChatOptions Options() override {
    ChatOptions o = ChatHttpTest::Options();
    o.relevance_window = 2;
    return o;
  }
};

TEST_P(ChatSearchWindowTest, RelevanceRanksOnlyTheNewestMatchesOfTheWindow) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  std::string g = ChatId(a, "group", "window", {b.id, c.id});
  std::vector<int64_t> ids;
  for (const char* text :
       {"omega omega omega omega", "omega and other words here", "omega with some more words"}) {
    Reply r = SendMessage(a, g, text);
    ASSERT_EQ(r.status, 201) << r.raw;
    ids.push_back(r.Int("id"));
  }
  WaitIndexed();
  auto ranked = SearchResults(b, "q=omega&order=relevance");
  ASSERT_EQ(ranked.size(), 2u);  // the oldest (and best) match is outside the window
  for (const auto& o : ranked) EXPECT_NE(o.at("id").to_number<int64_t>(), ids[0]);
  Reply p1 = Get("/api/v1/search/messages?q=omega&order=relevance&limit=2", b);
  EXPECT_TRUE(p1.body.at("next_cursor").is_null()) << p1.raw;
  EXPECT_EQ(SearchResults(b, "q=omega").size(), 3u);  // newest first is not capped
}

// ---- attachments ----

TEST_P(ChatHttpTest, AttachmentsUploadSendAndDownloadByMembersOnly) {
  User a = Owner("a@example.com");
  User b = Member(a, "b@example.com");
  User c = Member(a, "c@example.com");
  User x = Owner("x@example.com");
  std::string priv = ChatId(a, "private_channel", "files", {b.id});
  const std::string content = "hello attachment\n";
  Reply up = Send("POST", "/api/v1/chats/" + priv + "/files?name=dir%2Frapport%20%C3%A9t%C3%A9.txt",
                  content, a.token, {{"content-type", "text/plain"}});
  ASSERT_EQ(up.status, 201) << up.raw;
  std::string file = up.Str("id");
  EXPECT_TRUE(file.starts_with("fil_")) << file;
  EXPECT_EQ(up.Str("name"), "rapport \xc3\xa9t\xc3\xa9.txt");  // the last path component
  EXPECT_EQ(up.Str("type"), "text/plain");
  EXPECT_EQ(up.Int("size"), static_cast<int64_t>(content.size()));
  EXPECT_EQ(up.Str("url"), "/api/v1/files/" + file);
  EXPECT_EQ(up.Str("chat_id"), priv);
  EXPECT_EQ(up.Str("sha256").size(), 64u);

  // A message cites it and carries its metadata, live and when listed.
  Reply sent =
      Post("/api/v1/chats/" + priv + "/messages",
           json::object{{"content", "see attached"}, {"attachments", json::array{file}}}, a);
  ASSERT_EQ(sent.status, 201) << sent.raw;
  auto check_attachment = [&](const json::object& m) {
    ASSERT_EQ(m.at("attachments").as_array().size(), 1u) << json::serialize(m);
    const auto& att = m.at("attachments").as_array()[0].as_object();
    EXPECT_EQ(att.at("id").as_string(), file);
    EXPECT_EQ(att.at("name").as_string(), "rapport \xc3\xa9t\xc3\xa9.txt");
    EXPECT_EQ(att.at("type").as_string(), "text/plain");
    EXPECT_EQ(att.at("size").to_number<int64_t>(), static_cast<int64_t>(content.size()));
    EXPECT_EQ(att.at("url").as_string(), "/api/v1/files/" + file);
  };
  check_attachment(sent.body.as_object());
  auto listed = Messages(b, priv);
  ASSERT_EQ(listed.size(), 1u);
  check_attachment(listed[0]);

  // Members download it; others do not see it.
  http::ClientRequest get{.url = base_ + "/api/v1/files/" + file};
  get.headers.Set("authorization", "Bearer " + b.token);
  auto got = client_.SendSync(std::move(get));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, content);
  EXPECT_EQ(got->headers.Get("content-type").value_or(""), "text/plain");
  std::string disposition(got->headers.Get("content-disposition").value_or(""));
  EXPECT_TRUE(disposition.starts_with("attachment; filename=\"rapport ")) << disposition;
  EXPECT_NE(disposition.find("filename*=UTF-8''rapport%20%C3%A9t%C3%A9.txt"), std::string::npos)
      << disposition;
  EXPECT_EQ(got->headers.Get("x-content-type-options").value_or(""), "nosniff");
  EXPECT_EQ(Get("/api/v1/files/" + file, c).status, 404);  // a private chat c is not in
  EXPECT_EQ(Get("/api/v1/files/" + file, x).status, 404);  // another workspace
  EXPECT_EQ(Get("/api/v1/files/fil_unknown", b).status, 404);

  // A public channel's file: non-members of the channel are refused; uploads need membership.
  std::string pub = ChatId(c, "public_channel", "lobby", {});
  Reply up2 = Send("POST", "/api/v1/chats/" + pub + "/files", "bytes", c.token,
                   {{"content-type", "application/x-www-form-urlencoded"}});
  ASSERT_EQ(up2.status, 201) << up2.raw;
  EXPECT_EQ(up2.Str("name"), "file");
  EXPECT_EQ(up2.Str("type"), "application/octet-stream");  // curl's default says nothing
  EXPECT_EQ(Get("/api/v1/files/" + up2.Str("id"), a).status, 403);
  EXPECT_EQ(Send("POST", "/api/v1/chats/" + pub + "/files", "bytes", a.token).status, 403);
  EXPECT_EQ(Send("POST", "/api/v1/chats/" + priv + "/files", "bytes", c.token).status, 404);

  // Attachments must be files of the chat the message goes to.
  for (const std::string& bad : {std::string("fil_unknown"), up2.Str("id")}) {
    Reply r = Post("/api/v1/chats/" + priv + "/messages",
                   json::object{{"content", "bad"}, {"attachments", json::array{bad}}}, a);
    EXPECT_EQ(r.status, 400) << r.raw;
    EXPECT_TRUE(r.Error().starts_with("attachments:")) << r.raw;
  }
  EXPECT_EQ(Post("/api/v1/chats/" + priv + "/messages",
                 json::object{{"content", "bad"}, {"attachments", "not-a-list"}}, a)
                .status,
            400);
  EXPECT_EQ(Messages(a, priv).size(), 1u);  // nothing was sent by the refused requests
}

class ChatAttachmentLimitTest : public ChatHttpTest {
 protected:
  ChatOptions Options() override {
    ChatOptions o = ChatHttpTest::Options();
    o.max_attachment_bytes = 1024;
    return o;
  }
};

TEST_P(ChatAttachmentLimitTest, UploadsOverTheLimitGet413) {
  User a = Owner("a@example.com");
  std::string ch = ChatId(a, "public_channel", "big", {});
  EXPECT_EQ(Send("POST", "/api/v1/chats/" + ch + "/files?name=ok.bin", std::string(1024, 'x'),
                 a.token, {{"content-type", "application/octet-stream"}})
                .status,
            201);
  Reply big = Send("POST", "/api/v1/chats/" + ch + "/files?name=big.bin", std::string(4096, 'x'),
                   a.token, {{"content-type", "application/octet-stream"}});
  EXPECT_EQ(big.status, 413) << big.raw;
  EXPECT_NE(big.raw.find("1024"), std::string::npos) << big.raw;  // names the limit
}

INSTANTIATE_TEST_SUITE_P(Backends, ChatHttpTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ChatRetentionTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ChatOutboxTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ChatEphemeralTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ChatSearchWindowTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ChatAttachmentLimitTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ChatClockTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ChatSlowClientTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         testing::BackendName);

}  // namespace
}  // namespace atrium::chat
