// ChatService: composition of the store, the event hub and the search index, and the HTTP
// handlers (docs/chat.md).
#include "atrium/chat/chat_service.h"

#include <atomic>
#include <cctype>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "atrium/auth/crypto.h"
#include "atrium/core/config.h"
#include "atrium/core/thread_name.h"
#include "atrium/http/sse.h"
#include "atrium/store/blob_store.h"
#include "chat_store.h"
#include "event_hub.h"
#include "search_index.h"

namespace atrium::chat {

using http::Request;
using http::Responder;
using http::Response;

namespace {

constexpr std::string_view kScope = "chat";

Response Error(const Status& s) { return Response::FromStatus(s); }

#define ASSIGN_OR_RESPOND(lhs, expr) \
  ASSIGN_OR_RESPOND_IMPL_(ATRIUM_CONCAT_(chat_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RESPOND_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return Error(tmp.status());    \
  lhs = std::move(tmp).value()

Result<json::object> ParseBody(const Request& req) {
  if (req.body.empty()) return json::object{};
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec) return InvalidArgument("body: invalid JSON (" + ec.message() + ")");
  if (!v.is_object()) return InvalidArgument("body: must be a JSON object");
  return std::move(v.as_object());
}

// An optional string field; nullopt when absent or null.
Result<std::optional<std::string>> GetString(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return InvalidArgument(std::string(field) + ": must be a string");
  return std::optional<std::string>(std::string(v->as_string()));
}

Result<std::vector<std::string>> GetStringArray(const json::object& o, std::string_view field) {
  std::vector<std::string> out;
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) return InvalidArgument(std::string(field) + ": must be an array of strings");
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) {
      return InvalidArgument(std::string(field) + ": must be an array of strings");
    }
    out.emplace_back(e.as_string());
  }
  return out;
}

Result<std::optional<int64_t>> GetInt(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>();
  if (v->is_int64()) return std::optional<int64_t>(v->as_int64());
  if (v->is_uint64() && v->as_uint64() <= INT64_MAX) {
    return std::optional<int64_t>(static_cast<int64_t>(v->as_uint64()));
  }
  return InvalidArgument(std::string(field) + ": must be an integer");
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// A query parameter that must be a non-negative integer when present (`fallback` when absent).
Result<int64_t> QueryInt(const Request& req, std::string_view name, int64_t fallback) {
  auto v = req.Query(name);
  if (!v || v->empty()) return fallback;
  auto n = ParseInt(*v);
  if (!n || *n < 0) return InvalidArgument(std::string(name) + ": must be a non-negative integer");
  return *n;
}

Result<int64_t> PathId(const Request& req, std::string_view name) {
  auto n = ParseInt(req.Param(name));
  if (!n || *n <= 0) return NotFound(std::string(name) + ": no such message");
  return *n;
}

Response JsonResponse(int status, const json::value& v) {
  return Response::Json(status, json::serialize(v));
}

json::array MessagesJson(const std::vector<Message>& ms) {
  json::array a;
  for (const auto& m : ms) a.push_back(ChatStore::MessageJson(m));
  return a;
}

// A Content-Disposition header for `name`: a plain ASCII fallback and the UTF-8 name (RFC 6266).
std::string ContentDisposition(const std::string& name) {
  std::string ascii, encoded;
  for (unsigned char c : name) {
    ascii += (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '_' : static_cast<char>(c);
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
      encoded += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 15];
    }
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

}  // namespace

void DefineChatConfig(ConfigSchema& schema) {
  ChatOptions d;
  schema.DefineBytes("chat.max_attachment_bytes", d.max_attachment_bytes,
                     "Largest chat attachment upload (413 beyond)");
  schema.DefineInt("chat.search_relevance_window", d.relevance_window,
                   "Chat search with order=relevance ranks the newest this many matches",
                   {.min = 1});
}

ChatOptions ChatOptionsFromConfig(const Config& c) {
  ChatOptions o;
  o.max_attachment_bytes = c.GetBytes("chat.max_attachment_bytes");
  o.relevance_window = static_cast<int>(c.GetInt("chat.search_relevance_window"));
  return o;
}

class ChatService::Impl {
 public:
  Impl(ChatOptions o, store::Database& d, bus::Bus& b, Env& e, Authenticator auth,
       MetricsRegistry* m, std::shared_ptr<spdlog::logger> l)
      : options(std::move(o)),
        db(d),
        env(e),
        authenticate(std::move(auth)),
        log(l ? std::move(l) : spdlog::default_logger()),
        store(d, e),
        hub(b,
            HubOptions{.events_topic = options.events_topic,
                       .ephemeral_topic = options.ephemeral_topic,
                       .events_retention_bytes = options.events_retention_bytes,
                       .events_segment_bytes = options.events_segment_bytes,
                       .stream_queue_bytes = options.stream_queue_bytes,
                       .max_pending_events = options.max_pending_events,
                       .replay_stall_timeout = options.replay_stall_timeout,
                       .heartbeat = options.heartbeat},
            m),
        search(d, b, e, options.events_topic, options.indexer_name, m) {
    if (m != nullptr) {
      send_seconds = &m->Histogram("chat_send_seconds",
                                   "Chat message send latency (commit and "
                                   "publish)")
                          .Get();
      publish_errors =
          &m->Counter("chat_publish_errors_total",
                      "Chat event publishes that failed (the outbox relay retries them)")
               .Get();
      relayed_counter = &m->Counter("chat_outbox_relayed_total",
                                    "Chat events published by the outbox relay (after a failed "
                                    "publish or a restart)")
                             .Get();
    }
  }

  // Publishes committed events and marks them sent in the outbox; a failure is logged and
  // counted (the write itself succeeded; the relay publishes the event later).
  void Publish(const std::vector<Event>& events) {
    if (events.empty()) return;
    Status s = hub.Publish(events);
    if (!s.ok()) {
      if (publish_errors != nullptr) publish_errors->Inc();
      log->error("chat: {} (the outbox relay retries)", s.ToString());
      return;
    }
    if (Status m = store.MarkSent(events); !m.ok()) {
      log->warn("chat: marking events sent: {}", m.ToString());  // re-published: a duplicate
    }
  }

  // Publishes the outbox's unsent events created at or before `created_before` (micros).
  Status RelayOnce(int64_t created_before) {
    constexpr int kBatch = 500;
    while (true) {
      ASSIGN_OR_RETURN(std::vector<OutboxEntry> entries,
                       store.UnsentEvents(created_before, kBatch));
      if (entries.empty()) return Status::Ok();
      std::vector<Event> events;
      events.reserve(entries.size());
      for (auto& e : entries) events.push_back(std::move(e.event));
      Status s = hub.Publish(events);
      if (!s.ok()) {
        if (publish_errors != nullptr) publish_errors->Inc();
        return s;
      }
      RETURN_IF_ERROR(store.MarkSent(events));
      relayed += events.size();
      if (relayed_counter != nullptr) relayed_counter->Inc(events.size());
      if (entries.size() < static_cast<size_t>(kBatch)) return Status::Ok();
    }
  }

  void RelayLoop() {
    int64_t last_prune = env.NowMicros();
    std::unique_lock lock(relay_mu);
    while (!relay_stop) {
      relay_cv.wait_for(lock, options.outbox_interval);
      if (relay_stop) break;
      lock.unlock();
      const int64_t now = env.NowMicros();
      if (Status s = RelayOnce(now - options.outbox_retry_after.count() * 1000); !s.ok()) {
        log->warn("chat: outbox relay: {}", s.ToString());
      }
      if (now - last_prune >= 60'000'000) {
        last_prune = now;
        (void)store.PruneSent(now - options.outbox_keep.count() * 1'000'000);
      }
      lock.lock();
    }
  }

  // A posted presence status: lives until `expires` (micros) unless renewed.
  struct PresenceEntry {
    std::string workspace_id, status;
    int64_t expires = 0;
  };

  // POST /presence: rate limited per user; online/away live for presence_ttl.
  Status SetPresence(const Actor& a, const std::string& status) {
    const int64_t now = env.NowMicros();
    {
      std::lock_guard lock(presence_mu);
      int64_t& last = presence_last[a.user_id];
      if (last != 0 && now - last < options.presence_interval.count() * 1000) {
        return ResourceExhausted("presence: at most one update per " +
                                 std::to_string(options.presence_interval.count()) +
                                 " ms per user");
      }
      last = now;
      if (status == "offline") {
        presence.erase(a.user_id);
      } else {
        presence[a.user_id] =
            PresenceEntry{a.workspace_id, status, now + options.presence_ttl.count() * 1000};
      }
    }
    PublishPresence(a.user_id, a.workspace_id, status);
    return Status::Ok();
  }

  // The last stream of a user on this node closed: offline unless a posted status is still live.
  void OnLastClose(const std::string& user, const std::string& ws) {
    {
      std::lock_guard lock(presence_mu);
      auto it = presence.find(user);
      if (it != presence.end() && it->second.expires > env.NowMicros()) return;
    }
    PublishPresence(user, ws, "offline");
  }

  // Expires posted statuses that were not renewed, and prunes the rate limiters' memory.
  void ExpireEphemeral() {
    const int64_t now = env.NowMicros();
    std::vector<std::pair<std::string, PresenceEntry>> expired;
    {
      std::lock_guard lock(presence_mu);
      for (auto it = presence.begin(); it != presence.end();) {
        if (it->second.expires <= now) {
          expired.emplace_back(it->first, std::move(it->second));
          it = presence.erase(it);
        } else {
          ++it;
        }
      }
      if (now - last_prune >= 10'000'000) {
        const int64_t keep = options.presence_interval.count() * 1000;
        std::erase_if(presence_last, [&](const auto& e) { return now - e.second >= keep; });
      }
    }
    if (now - last_prune >= 10'000'000) {
      last_prune = now;
      const int64_t keep = options.typing_interval.count() * 1000;
      std::lock_guard lock(typing_mu);
      std::erase_if(typing_last, [&](const auto& e) { return now - e.second >= keep; });
    }
    for (const auto& [user, e] : expired) {
      if (hub.open_streams_of(user) == 0) {
        PublishPresence(user, e.workspace_id, "offline");
      } else if (e.status != "online") {
        PublishPresence(user, e.workspace_id, "online");  // an open stream means online
      }
    }
  }

  void PublishPresence(const std::string& user, const std::string& ws, const std::string& status) {
    auto users = store.WorkspaceUserIds(ws);
    if (!users.ok()) return;
    (void)hub.PublishEphemeral(Event{"presence", "", std::move(*users),
                                     json::object{{"user_id", user}, {"status", status}}});
  }

  ChatOptions options;
  store::Database& db;
  Env& env;
  Authenticator authenticate;
  std::shared_ptr<spdlog::logger> log;
  ChatStore store;
  EventHub hub;
  SearchIndex search;
  Histogram* send_seconds = nullptr;
  Counter* publish_errors = nullptr;
  Counter* relayed_counter = nullptr;
  std::atomic<uint64_t> relayed{0};
  std::mutex relay_mu;
  std::condition_variable relay_cv;
  bool relay_stop = false;  // guarded by relay_mu
  std::thread relay_thread;
  std::mutex typing_mu;
  std::map<std::string, int64_t> typing_last;  // "user|chat" → micros; guarded by typing_mu
  std::mutex presence_mu;
  std::map<std::string, PresenceEntry> presence;  // by user; guarded by presence_mu
  std::map<std::string, int64_t> presence_last;   // user → micros; guarded by presence_mu
  int64_t last_prune = 0;                         // the hub's ephemeral thread only
  bool stopped = false;
};

ChatService::ChatService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ChatService::~ChatService() { Stop(); }

Result<std::unique_ptr<ChatService>> ChatService::Create(ChatOptions options, store::Database& db,
                                                         bus::Bus& bus, Env& env,
                                                         Authenticator authenticate,
                                                         MetricsRegistry* metrics,
                                                         std::shared_ptr<spdlog::logger> log) {
  auto impl = std::make_unique<Impl>(std::move(options), db, bus, env, std::move(authenticate),
                                     metrics, std::move(log));
  Impl* raw = impl.get();
  impl->hub.SetOnLastClose(
      [raw](const std::string& user, const std::string& ws) { raw->OnLastClose(user, ws); });
  impl->hub.SetOnTick([raw] { raw->ExpireEphemeral(); });
  RETURN_IF_ERROR(impl->hub.Start());
  // Events committed but never published (a failed publish, or a crash before it).
  if (Status s = impl->RelayOnce(INT64_MAX); !s.ok()) {
    impl->log->warn("chat: re-publishing the outbox at start-up: {}", s.ToString());
  }
  RETURN_IF_ERROR(impl->search.Start());
  impl->relay_thread = std::thread([raw] {
    SetThreadName("chat-outbox");
    raw->RelayLoop();
  });
  return std::unique_ptr<ChatService>(new ChatService(std::move(impl)));
}

void ChatService::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  {
    std::lock_guard lock(impl_->relay_mu);
    impl_->relay_stop = true;
  }
  impl_->relay_cv.notify_all();
  if (impl_->relay_thread.joinable()) impl_->relay_thread.join();
  impl_->hub.Stop();
  impl_->search.Stop();
}

IndexerState ChatService::indexer_state() const { return impl_->search.state(); }
size_t ChatService::open_streams() const { return impl_->hub.open_streams(); }
uint64_t ChatService::resyncs() const { return impl_->hub.resyncs(); }

void ChatService::RegisterHealth(HealthRegistry& health) {
  Impl* s = impl_.get();
  health.Register("chat_events", [s] { return s->hub.health(); });
  if (!s->options.indexer_name.empty()) {
    health.Register(
        "chat_search_indexer",
        [s](HealthValues& values) {
          IndexerState st = s->search.state();
          values.emplace_back("lag_records", static_cast<double>(st.lag_records));
          values.emplace_back("lag_seconds", st.lag_seconds);
          if (st.lag_seconds > static_cast<double>(s->options.indexer_max_lag.count())) {
            return Unavailable("search indexer " + std::to_string(st.lag_records) + " events and " +
                               std::to_string(static_cast<int64_t>(st.lag_seconds)) + " s behind");
          }
          return Status::Ok();
        },
        /*required=*/false);
  }
}

namespace {

// The handlers, bound to the implementation.
class Routes {
 public:
  explicit Routes(ChatService::Impl& s) : s_(s) {}

  static Result<Actor> ActorOf(const Request& req) {
    const auto* p = std::any_cast<auth::Principal>(&req.principal);
    if (p == nullptr) return Unauthenticated("credentials required");
    return Actor{p->user_id, p->workspace_id};
  }

  // ---- chats ----

  Response CreateChat(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    CreateChatRequest r;
    ASSIGN_OR_RESPOND(auto type, GetString(body, "type"));
    if (!type) return Error(InvalidArgument("type: required"));
    r.type = *type;
    ASSIGN_OR_RESPOND(auto name, GetString(body, "name"));
    r.name = name.value_or("");
    ASSIGN_OR_RESPOND(auto description, GetString(body, "description"));
    r.description = description.value_or("");
    ASSIGN_OR_RESPOND(r.members, GetStringArray(body, "members"));
    ASSIGN_OR_RESPOND(auto created, s_.store.CreateChat(a, r));
    s_.Publish(created.events);
    return JsonResponse(201, ChatStore::ChatJson(created.value));
  }

  Response ListChats(Request&, const Actor& a) {
    ASSIGN_OR_RESPOND(auto chats, s_.store.ListMyChats(a));
    json::array out;
    for (const auto& c : chats) {
      json::object o = ChatStore::ChatJson(c);
      auto last = s_.store.ListMessages(a, c.id, -1, -1, -1, 1);
      o["last_message"] = last.ok() && !last->messages.empty()
                              ? json::value(ChatStore::MessageJson(last->messages.back()))
                              : json::value(nullptr);
      out.push_back(std::move(o));
    }
    return JsonResponse(200, json::object{{"chats", std::move(out)}});
  }

  Response PublicChannels(Request&, const Actor& a) {
    ASSIGN_OR_RESPOND(auto chats, s_.store.ListPublicChannels(a));
    json::array out;
    for (const auto& c : chats) {
      json::object o = ChatStore::ChatJson(c);
      o["joined"] = !c.my_role.empty();
      out.push_back(std::move(o));
    }
    return JsonResponse(200, json::object{{"chats", std::move(out)}});
  }

  Response GetChat(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(auto chat, s_.store.GetChat(a, req.Param("chat_id")));
    return JsonResponse(200, ChatStore::ChatJson(chat));
  }

  Response UpdateChat(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    ChatUpdate u;
    ASSIGN_OR_RESPOND(u.name, GetString(body, "name"));
    ASSIGN_OR_RESPOND(u.description, GetString(body, "description"));
    if (!u.name && !u.description) return Error(InvalidArgument("body: give name or description"));
    ASSIGN_OR_RESPOND(auto updated, s_.store.UpdateChat(a, req.Param("chat_id"), u));
    s_.Publish(updated.events);
    return JsonResponse(200, ChatStore::ChatJson(updated.value));
  }

  Response DeleteChat(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(auto events, s_.store.DeleteChat(a, req.Param("chat_id")));
    s_.Publish(events);
    return Response::NoContent();
  }

  Response Archive(Request& req, const Actor& a, bool archived) {
    ASSIGN_OR_RESPOND(auto updated, s_.store.SetArchived(a, req.Param("chat_id"), archived));
    s_.Publish(updated.events);
    return JsonResponse(200, ChatStore::ChatJson(updated.value));
  }

  // ---- members ----

  Response ListMembers(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(auto members, s_.store.ListMembers(a, req.Param("chat_id")));
    json::array out;
    for (const auto& m : members) out.push_back(ChatStore::MemberJson(m));
    return JsonResponse(200, json::object{{"members", std::move(out)}});
  }

  Response AddMembers(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    ASSIGN_OR_RESPOND(auto ids, GetStringArray(body, "user_ids"));
    ASSIGN_OR_RESPOND(auto events, s_.store.AddMembers(a, req.Param("chat_id"), ids));
    s_.Publish(events);
    return ListMembers(req, a);
  }

  Response MemberChange(const Result<std::vector<Event>>& r) {
    if (!r.ok()) return Error(r.status());
    s_.Publish(*r);
    return Response::NoContent();
  }

  Response RemoveMember(Request& req, const Actor& a) {
    return MemberChange(s_.store.RemoveMember(a, req.Param("chat_id"), req.Param("user_id")));
  }

  Response SetRole(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    ASSIGN_OR_RESPOND(auto role, GetString(body, "role"));
    if (!role) return Error(InvalidArgument("role: required"));
    return MemberChange(
        s_.store.SetMemberRole(a, req.Param("chat_id"), req.Param("user_id"), *role));
  }

  Response Join(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(auto events, s_.store.Join(a, req.Param("chat_id")));
    s_.Publish(events);
    return GetChat(req, a);
  }

  Response Leave(Request& req, const Actor& a) {
    return MemberChange(s_.store.Leave(a, req.Param("chat_id")));
  }

  Response Transfer(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    ASSIGN_OR_RESPOND(auto user, GetString(body, "user_id"));
    if (!user) return Error(InvalidArgument("user_id: required"));
    ASSIGN_OR_RESPOND(auto events, s_.store.TransferOwnership(a, req.Param("chat_id"), *user));
    s_.Publish(events);
    return GetChat(req, a);
  }

  // ---- messages ----

  Response Send(Request& req, const Actor& a) {
    auto started = std::chrono::steady_clock::now();
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    SendRequest r;
    ASSIGN_OR_RESPOND(auto content, GetString(body, "content"));
    if (!content) return Error(InvalidArgument("content: required"));
    r.content = std::move(*content);
    ASSIGN_OR_RESPOND(auto key, GetString(body, "idempotency_key"));
    r.idempotency_key = key.value_or("");
    if (auto header = req.headers.Get("idempotency-key"); header && r.idempotency_key.empty()) {
      r.idempotency_key = std::string(*header);
    }
    ASSIGN_OR_RESPOND(auto reply_to, GetInt(body, "reply_to"));
    r.reply_to = reply_to.value_or(0);
    ASSIGN_OR_RESPOND(r.attachments, GetStringArray(body, "attachments"));
    ASSIGN_OR_RESPOND(auto sent, s_.store.Send(a, req.Param("chat_id"), r));
    s_.Publish(sent.events);
    if (s_.send_seconds != nullptr) {
      s_.send_seconds->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    return JsonResponse(sent.created ? 201 : 200, ChatStore::MessageJson(sent.message));
  }

  Response ListMessages(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(int64_t before, QueryInt(req, "before", -1));
    ASSIGN_OR_RESPOND(int64_t after, QueryInt(req, "after", -1));
    ASSIGN_OR_RESPOND(int64_t around, QueryInt(req, "around", -1));
    ASSIGN_OR_RESPOND(int64_t limit, QueryInt(req, "limit", 50));
    if (limit < 1 || limit > ChatStore::kMaxPageSize) {
      return Error(InvalidArgument("limit: must be 1.." + std::to_string(ChatStore::kMaxPageSize)));
    }
    ASSIGN_OR_RESPOND(auto page, s_.store.ListMessages(a, req.Param("chat_id"), before, after,
                                                       around, static_cast<int>(limit)));
    return JsonResponse(
        200, json::object{{"messages", MessagesJson(page.messages)}, {"has_more", page.has_more}});
  }

  Response GetMessage(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(int64_t id, PathId(req, "message_id"));
    ASSIGN_OR_RESPOND(auto m, s_.store.GetMessage(a, req.Param("chat_id"), id));
    return JsonResponse(200, ChatStore::MessageJson(m));
  }

  Response EditMessage(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(int64_t id, PathId(req, "message_id"));
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    ASSIGN_OR_RESPOND(auto content, GetString(body, "content"));
    if (!content) return Error(InvalidArgument("content: required"));
    ASSIGN_OR_RESPOND(auto edited, s_.store.EditMessage(a, req.Param("chat_id"), id, *content));
    s_.Publish(edited.events);
    return JsonResponse(200, ChatStore::MessageJson(edited.value));
  }

  Response DeleteMessage(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(int64_t id, PathId(req, "message_id"));
    ASSIGN_OR_RESPOND(auto deleted, s_.store.DeleteMessage(a, req.Param("chat_id"), id));
    s_.Publish(deleted.events);
    return Response::NoContent();
  }

  Response History(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(int64_t id, PathId(req, "message_id"));
    ASSIGN_OR_RESPOND(auto versions, s_.store.History(a, req.Param("chat_id"), id));
    json::array out;
    for (const auto& [content, at] : versions) {
      out.push_back(json::object{{"content", content}, {"replaced_at", auth::FormatRfc3339(at)}});
    }
    return JsonResponse(200, json::object{{"history", std::move(out)}});
  }

  Response React(Request& req, const Actor& a, bool add) {
    ASSIGN_OR_RESPOND(int64_t id, PathId(req, "message_id"));
    ASSIGN_OR_RESPOND(
        auto r, s_.store.React(a, req.Param("chat_id"), id, std::string(req.Param("emoji")), add));
    s_.Publish(r.events);
    return JsonResponse(200, ChatStore::MessageJson(r.value));
  }

  Response Thread(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(int64_t id, PathId(req, "message_id"));
    ASSIGN_OR_RESPOND(auto root, s_.store.GetMessage(a, req.Param("chat_id"), id));
    ASSIGN_OR_RESPOND(auto replies, s_.store.Thread(a, req.Param("chat_id"), id));
    return JsonResponse(200, json::object{{"root", ChatStore::MessageJson(root)},
                                          {"replies", MessagesJson(replies)}});
  }

  Response Pin(Request& req, const Actor& a, bool pin) {
    ASSIGN_OR_RESPOND(int64_t id, PathId(req, "message_id"));
    ASSIGN_OR_RESPOND(auto r, s_.store.Pin(a, req.Param("chat_id"), id, pin));
    s_.Publish(r.events);
    return JsonResponse(200, ChatStore::MessageJson(r.value));
  }

  Response Pins(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(auto pins, s_.store.Pins(a, req.Param("chat_id")));
    return JsonResponse(200, json::object{{"messages", MessagesJson(pins)}});
  }

  Response Receipts(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(int64_t id, PathId(req, "message_id"));
    ASSIGN_OR_RESPOND(auto members, s_.store.Receipts(a, req.Param("chat_id"), id));
    json::array out;
    for (const auto& m : members) {
      out.push_back(json::object{{"user_id", m.user_id},
                                 {"name", m.name},
                                 {"read_at", auth::FormatRfc3339(m.last_read_at)}});
    }
    return JsonResponse(200, json::object{{"seen_by", std::move(out)}});
  }

  Response MarkRead(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    ASSIGN_OR_RESPOND(auto seq, GetInt(body, "seq"));
    if (!seq) return Error(InvalidArgument("seq: required"));
    ASSIGN_OR_RESPOND(auto r, s_.store.MarkRead(a, req.Param("chat_id"), *seq));
    s_.Publish(r.events);
    return JsonResponse(200, json::object{{"chat_id", r.value.chat_id},
                                          {"last_read_seq", r.value.last_read_seq},
                                          {"unread_count", r.value.unread_count},
                                          {"mention_count", r.value.mention_count}});
  }

  // ---- attachments ----

  // POST /chats/{id}/files?name=<file name>: the raw body is the file, its Content-Type kept.
  Response Upload(Request& req, const Actor& a) {
    if (s_.options.blobs == nullptr) {
      return Error(Unavailable("attachments: this node has no blob store configured"));
    }
    std::string chat_id(req.Param("chat_id"));
    if (Status st = s_.store.CheckCanUpload(a, chat_id); !st.ok()) return Error(st);
    const uint64_t limit = s_.options.max_attachment_bytes;
    if (limit != 0 && req.body.size() > limit) {  // the route enforces it first; kept in step
      return Error(PayloadTooLarge("attachments: a file may have at most " + std::to_string(limit) +
                                   " bytes"));
    }
    NewAttachment file{.name = req.Query("name").value_or(""),
                       .content_type = std::string(req.headers.Get("content-type").value_or("")),
                       .sha256 = "",
                       .size = static_cast<int64_t>(req.body.size())};
    ASSIGN_OR_RESPOND(file.sha256, s_.options.blobs->Put(req.body));
    ASSIGN_OR_RESPOND(Attachment f, s_.store.AddAttachment(a, chat_id, file));
    json::object o = ChatStore::AttachmentJson(f);
    o["chat_id"] = f.chat_id;
    o["uploader_id"] = f.uploader_id;
    o["sha256"] = f.sha256;
    o["created_at"] = auth::FormatRfc3339(f.created_at);
    return JsonResponse(201, o);
  }

  // GET /files/{id}: the content, to members of the file's chat.
  Response Download(Request& req, const Actor& a) {
    if (s_.options.blobs == nullptr) {
      return Error(Unavailable("attachments: this node has no blob store configured"));
    }
    ASSIGN_OR_RESPOND(Attachment f, s_.store.GetAttachment(a, req.Param("file_id")));
    ASSIGN_OR_RESPOND(std::string content, s_.options.blobs->Get(f.sha256));
    Response r = Response::Text(200, std::move(content), f.content_type);
    // Uploaded bytes are never rendered as a page of this origin.
    r.headers.Set("content-disposition", ContentDisposition(f.name));
    r.headers.Set("x-content-type-options", "nosniff");
    r.headers.Set("content-security-policy", "sandbox; default-src 'none'");
    r.headers.Set("cache-control", "private, max-age=86400");
    r.headers.Set("etag", "\"" + f.sha256 + "\"");
    return r;
  }

  // ---- ephemeral ----

  Response Typing(Request& req, const Actor& a) {
    std::string chat_id(req.Param("chat_id"));
    ASSIGN_OR_RESPOND(auto members, s_.store.MemberIdsForMember(a, chat_id));
    const int64_t now = s_.env.NowMicros();
    const int64_t interval = s_.options.typing_interval.count() * 1000;
    {
      std::lock_guard lock(s_.typing_mu);
      int64_t& last = s_.typing_last[a.user_id + "|" + chat_id];
      if (last != 0 && now - last < interval) {
        return Error(ResourceExhausted("typing: at most one per " +
                                       std::to_string(s_.options.typing_interval.count()) +
                                       " ms per chat"));
      }
      last = now;
    }
    std::erase(members, a.user_id);
    Status st = s_.hub.PublishEphemeral(
        Event{"typing", chat_id, std::move(members),
              json::object{{"chat_id", chat_id},
                           {"user_id", a.user_id},
                           {"expires_in_ms", s_.options.typing_ttl.count()}}});
    if (!st.ok()) return Error(st);
    return Response::NoContent();
  }

  Response Presence(Request& req, const Actor& a) {
    ASSIGN_OR_RESPOND(json::object body, ParseBody(req));
    ASSIGN_OR_RESPOND(auto status, GetString(body, "status"));
    if (!status || (*status != "online" && *status != "away" && *status != "offline")) {
      return Error(InvalidArgument("status: must be online, away or offline"));
    }
    Status st = s_.SetPresence(a, *status);
    if (!st.ok()) return Error(st);
    return Response::NoContent();
  }

  // ---- events ----

  Response Ticket(Request&, const Actor& a) {
    std::string ticket = "tkt_" + auth::Base62Encode(auth::RandomBytes(s_.env, 24));
    const int64_t now = s_.env.NowMicros();
    (void)s_.db.Exec("DELETE FROM chat_event_tickets WHERE expires_at < ?", {now});
    Status st = s_.db
                    .Exec(
                        "INSERT INTO chat_event_tickets (ticket_hash, user_id, workspace_id,"
                        " expires_at) VALUES (?, ?, ?, ?)",
                        {auth::Sha256Hex(ticket), a.user_id, a.workspace_id,
                         now + s_.options.ticket_ttl.count() * 1'000'000})
                    .status();
    if (!st.ok()) return Error(st);
    return JsonResponse(
        200, json::object{{"ticket", ticket}, {"expires_in", s_.options.ticket_ttl.count()}});
  }

  // Who opens a stream: a single-use ticket, or the usual credentials with the chat scope.
  Result<Actor> StreamActor(const Request& req) {
    if (auto ticket = req.Query("ticket"); ticket && !ticket->empty()) {
      ASSIGN_OR_RETURN(store::Rows rows,
                       s_.db.Query("DELETE FROM chat_event_tickets WHERE ticket_hash = ?"
                                   " RETURNING user_id, workspace_id, expires_at",
                                   {auth::Sha256Hex(*ticket)}));
      if (rows.empty() || rows[0].Int(2) < s_.env.NowMicros()) {
        return Unauthenticated("ticket: unknown, used or expired");
      }
      return Actor{rows[0].Text(0), rows[0].Text(1)};
    }
    if (!s_.authenticate) return Unauthenticated("credentials required");
    ASSIGN_OR_RETURN(auth::Principal p, s_.authenticate(req));
    if (!p.Allows(kScope)) return PermissionDenied("the credentials lack the chat scope");
    return Actor{p.user_id, p.workspace_id};
  }

  void Events(Request& req, Responder responder) {
    auto actor = StreamActor(req);
    if (!actor.ok()) {
      Response r = Error(actor.status());
      if (actor.status().code() == StatusCode::kUnauthenticated) {
        r.headers.Set("www-authenticate", "Bearer");
      }
      responder.Send(std::move(r));
      return;
    }
    std::optional<uint64_t> last;
    std::optional<std::string> raw;
    if (auto h = req.headers.Get("last-event-id"); h && !h->empty()) {
      raw = std::string(*h);
    } else if (auto q = req.Query("last_event_id"); q && !q->empty()) {
      raw = *q;
    }
    if (raw) {
      auto n = ParseInt(*raw);
      if (!n || *n < 0) {
        responder.Send(Error(InvalidArgument("Last-Event-ID: must be an event id")));
        return;
      }
      last = static_cast<uint64_t>(*n);
    }
    auto [response, stream] = s_.hub.Open(actor->user_id, actor->workspace_id);
    responder.Send(std::move(response));  // `req` must not be used from here on
    if (s_.hub.open_streams_of(actor->user_id) == 1) {
      s_.PublishPresence(actor->user_id, actor->workspace_id, "online");
    }
    s_.hub.Resume(stream, last);
  }

  // ---- search ----

  Response Search(Request& req, const Actor& a) {
    SearchQuery q;
    q.q = req.Query("q").value_or("");
    q.chat_id = req.Query("chat_id").value_or("");
    q.sender_id = req.Query("sender_id").value_or("");
    q.chat_type = req.Query("type").value_or("");
    if (!q.chat_type.empty() && q.chat_type != "direct" && q.chat_type != "group" &&
        q.chat_type != "private_channel" && q.chat_type != "public_channel") {
      return Error(
          InvalidArgument("type: must be direct, group, private_channel or public_channel"));
    }
    for (auto [name, out] : {std::pair{"from", &q.from}, std::pair{"to", &q.to}}) {
      if (auto v = req.Query(name); v && !v->empty()) {
        auto t = auth::ParseRfc3339(*v);
        if (!t.ok())
          return Error(InvalidArgument(std::string(name) + ": must be an RFC 3339 time"));
        *out = *t;
      }
    }
    std::string order = req.Query("order").value_or("date");
    if (order != "relevance" && order != "date") {
      return Error(InvalidArgument("order: must be date (newest first) or relevance"));
    }
    q.by_date = order == "date";
    q.relevance_window = s_.options.relevance_window;
    q.cursor = req.Query("cursor").value_or("");
    ASSIGN_OR_RESPOND(int64_t limit, QueryInt(req, "limit", 20));
    q.limit = static_cast<int>(std::min<int64_t>(limit, 1000));
    ASSIGN_OR_RESPOND(auto page, s_.search.Search(a, q));
    json::array results;
    for (const auto& h : page.results) {
      json::object o = ChatStore::MessageJson(h.message);
      o["highlight"] = h.highlight;
      o["chat_type"] = h.chat_type;
      o["chat_name"] = h.chat_name;
      o["score"] = h.rank;
      results.push_back(std::move(o));
    }
    json::object out{{"results", std::move(results)}};
    out["next_cursor"] =
        page.next_cursor.empty() ? json::value(nullptr) : json::value(page.next_cursor);
    return JsonResponse(200, out);
  }

 private:
  ChatService::Impl& s_;
};

}  // namespace

Status ChatService::AddRoutes(http::Router& router) {
  auto routes = std::make_shared<Routes>(*impl_);
  using Method = Response (Routes::*)(Request&, const Actor&);
  auto add = [&](std::string_view method, const std::string& pattern,
                 std::function<Response(Routes&, Request&, const Actor&)> fn,
                 size_t max_body = 64 << 10) {
    return router.Add(
        method, "/api/v1" + pattern, http::SyncHandler([routes, fn = std::move(fn)](Request& req) {
          auto actor = Routes::ActorOf(req);
          if (!actor.ok()) return Error(actor.status());
          return fn(*routes, req, *actor);
        }),
        http::RouteOptions{
            .max_body_bytes = max_body, .blocking = true, .auth_scope = std::string(kScope)});
  };
  auto m = [](Method method) {
    return [method](Routes& r, Request& req, const Actor& a) { return (r.*method)(req, a); };
  };
  const std::string chat = "/chats/{chat_id}";
  const std::string msg = chat + "/messages/{message_id}";
  RETURN_IF_ERROR(add("POST", "/chats", m(&Routes::CreateChat)));
  RETURN_IF_ERROR(add("GET", "/chats", m(&Routes::ListChats)));
  RETURN_IF_ERROR(add("GET", "/chats/public", m(&Routes::PublicChannels)));
  RETURN_IF_ERROR(add("GET", chat, m(&Routes::GetChat)));
  RETURN_IF_ERROR(add("PATCH", chat, m(&Routes::UpdateChat)));
  RETURN_IF_ERROR(add("DELETE", chat, m(&Routes::DeleteChat)));
  RETURN_IF_ERROR(add("POST", chat + "/archive", [](Routes& r, Request& req, const Actor& a) {
    return r.Archive(req, a, true);
  }));
  RETURN_IF_ERROR(add("POST", chat + "/unarchive", [](Routes& r, Request& req, const Actor& a) {
    return r.Archive(req, a, false);
  }));
  RETURN_IF_ERROR(add("GET", chat + "/members", m(&Routes::ListMembers)));
  RETURN_IF_ERROR(add("POST", chat + "/members", m(&Routes::AddMembers)));
  RETURN_IF_ERROR(add("DELETE", chat + "/members/{user_id}", m(&Routes::RemoveMember)));
  RETURN_IF_ERROR(add("PATCH", chat + "/members/{user_id}", m(&Routes::SetRole)));
  RETURN_IF_ERROR(add("POST", chat + "/join", m(&Routes::Join)));
  RETURN_IF_ERROR(add("POST", chat + "/leave", m(&Routes::Leave)));
  RETURN_IF_ERROR(add("POST", chat + "/transfer", m(&Routes::Transfer)));
  RETURN_IF_ERROR(add("POST", chat + "/messages", m(&Routes::Send)));
  RETURN_IF_ERROR(add("GET", chat + "/messages", m(&Routes::ListMessages)));
  RETURN_IF_ERROR(add("GET", msg, m(&Routes::GetMessage)));
  RETURN_IF_ERROR(add("PATCH", msg, m(&Routes::EditMessage)));
  RETURN_IF_ERROR(add("DELETE", msg, m(&Routes::DeleteMessage)));
  RETURN_IF_ERROR(add("GET", msg + "/history", m(&Routes::History)));
  RETURN_IF_ERROR(add("GET", msg + "/thread", m(&Routes::Thread)));
  RETURN_IF_ERROR(add("GET", msg + "/receipts", m(&Routes::Receipts)));
  RETURN_IF_ERROR(
      add("PUT", msg + "/reactions/{emoji}",
          [](Routes& r, Request& req, const Actor& a) { return r.React(req, a, true); }));
  RETURN_IF_ERROR(
      add("DELETE", msg + "/reactions/{emoji}",
          [](Routes& r, Request& req, const Actor& a) { return r.React(req, a, false); }));
  RETURN_IF_ERROR(add("POST", msg + "/pin",
                      [](Routes& r, Request& req, const Actor& a) { return r.Pin(req, a, true); }));
  RETURN_IF_ERROR(add("DELETE", msg + "/pin", [](Routes& r, Request& req, const Actor& a) {
    return r.Pin(req, a, false);
  }));
  RETURN_IF_ERROR(add("GET", chat + "/pins", m(&Routes::Pins)));
  RETURN_IF_ERROR(add("POST", chat + "/read", m(&Routes::MarkRead)));
  RETURN_IF_ERROR(add("POST", chat + "/typing", m(&Routes::Typing)));
  RETURN_IF_ERROR(add("POST", "/presence", m(&Routes::Presence)));
  RETURN_IF_ERROR(add("POST", "/events/ticket", m(&Routes::Ticket)));
  RETURN_IF_ERROR(add("GET", "/search/messages", m(&Routes::Search)));
  RETURN_IF_ERROR(add("POST", chat + "/files", m(&Routes::Upload),
                      static_cast<size_t>(impl_->options.max_attachment_bytes)));
  RETURN_IF_ERROR(add("GET", "/files/{file_id}", m(&Routes::Download)));
  // Public for the router: EventSource cannot send headers, so the handler authenticates
  // (ticket or credentials). Blocking: ticket lookup and the Last-Event-ID replay read storage.
  RETURN_IF_ERROR(router.Add(
      "GET", "/api/v1/events",
      http::Handler([routes](Request& req, Responder r) { routes->Events(req, std::move(r)); }),
      http::RouteOptions{.blocking = true}));
  return Status::Ok();
}

}  // namespace atrium::chat
