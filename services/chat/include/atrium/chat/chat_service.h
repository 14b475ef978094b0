// ChatService: Atrium's team chat (docs/chat.md) — chats of four types with member rules and
// roles, messages with per-(chat, sender) idempotency keys and gap-free per-chat sequence numbers,
// edits with history, soft deletes, reactions, threads, pins, mentions, read state; realtime over
// Server-Sent Events with resumable ids; full-text search over the messages a user can read.
//
// Data lives in the Database (migrations 300-399: ChatMigrations). Every durable event is
// written to an outbox table in the transaction of its change and goes, after the commit (or,
// when that publish failed or the process died, from the outbox relay), to one bus topic
// (`chat.events` by default) with its audience (user ids); the SSE id of an event is its bus
// offset, so it increases for every user and `Last-Event-ID` resumes by re-reading the topic.
// Attachments are uploaded to a chat (POST /api/v1/chats/{id}/files, raw body), their content
// kept in the BlobStore (content-addressed) and their metadata in `chat_files`; messages cite them
// by id, and members download them from GET /api/v1/files/{id}.
//
// Typing and presence travel on a memory topic
// (`chat.ephemeral`) and carry no id. An in-process hub subscribes to both topics once and fans
// out to the open streams through bounded queues; a stream that falls behind is ended with a
// `resync` event, never silently trimmed. A durable bus consumer keeps the full-text index
// (SQLite FTS5 or PostgreSQL tsvector) up to date.
//
// HTTP routes are under /api/v1 with auth scope "chat" (the principal's user and workspace scope
// every query; other workspaces' chats and users are 404). GET /api/v1/events is public at the
// router level and authenticates itself (a single-use ticket or the usual credentials), because
// EventSource cannot send headers.
//
// Thread-safe. Create() re-publishes the outbox's unsent events and starts the hub, relay and
// indexer threads; Stop() (or the destructor) ends
// every stream and joins the threads. The Database and Bus must outlive the service, and the
// service must outlive the Server its routes are registered on (stop the server first).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "atrium/auth/principal.h"
#include "atrium/bus/bus.h"
#include "atrium/core/env.h"
#include "atrium/core/health.h"
#include "atrium/core/metrics.h"
#include "atrium/core/status.h"
#include "atrium/http/router.h"
#include "atrium/store/database.h"
#include "atrium/store/migrations.h"

namespace spdlog {
class logger;
}

namespace atrium {
class Config;
class ConfigSchema;
}  // namespace atrium

namespace atrium::store {
class BlobStore;
}

namespace atrium::chat {

// The chat module's migrations (versions 300-399).
std::vector<store::Migration> ChatMigrations();

struct ChatOptions {
  // Durable topic of every stored event (its offsets are the SSE ids) and the memory topic of
  // typing and presence.
  std::string events_topic = "chat.events";
  std::string ephemeral_topic = "chat.ephemeral";
  // How long `chat.events` keeps records (a Last-Event-ID older than that gets `resync`).
  uint64_t events_retention_bytes = 1ull << 30;
  // WAL segment size of `chat.events` (retention deletes whole segments).
  uint64_t events_segment_bytes = 64ull << 20;
  // Bounded send queue of one SSE stream; a client that lets it fill is cut with `resync`.
  size_t stream_queue_bytes = 1 << 20;
  // Events held for a stream while it replays from Last-Event-ID; more → `resync`.
  size_t max_pending_events = 20000;
  // A replay that cannot write for this long (the client does not read) ends with `resync`.
  std::chrono::milliseconds replay_stall_timeout{5000};
  std::chrono::milliseconds heartbeat{15000};
  std::chrono::seconds ticket_ttl{60};
  // Typing events per (user, chat) at most once per this interval (else 429); they expire on
  // the client after typing_ttl.
  std::chrono::milliseconds typing_interval{1000};
  std::chrono::milliseconds typing_ttl{5000};
  // POST /presence at most once per this interval per user (else 429). A status set there lasts
  // presence_ttl unless renewed; then the user goes offline (when no stream of theirs is open on
  // this node; with one open they are back to online). Streams themselves make a user online on
  // their first and offline on their last close (unless a posted status is still live).
  std::chrono::milliseconds presence_interval{1000};
  std::chrono::milliseconds presence_ttl{60000};
  // Transactional outbox: events are written in the transaction of their change and marked
  // sent once published. The relay re-publishes rows still unsent after outbox_retry_after
  // (checked every outbox_interval) and, at start-up, every unsent row (a crash between commit
  // and publish loses nothing). Sent rows are deleted after outbox_keep.
  std::chrono::milliseconds outbox_interval{1000};
  std::chrono::milliseconds outbox_retry_after{5000};
  std::chrono::seconds outbox_keep{3600};
  // The search indexer's durable consumer name; empty disables the indexer (another node runs it).
  std::string indexer_name = "chat-search-indexer";
  // /health reports the indexer unhealthy when it has been behind for longer than this.
  std::chrono::seconds indexer_max_lag{30};
  // Where attachment content goes (borrowed: must outlive the service). Null: the file routes
  // answer 503.
  store::BlobStore* blobs = nullptr;
  // The largest attachment upload; bigger bodies get 413.
  uint64_t max_attachment_bytes = 25ull << 20;
  // Search with order=relevance ranks the newest this many matches (the rest are not returned).
  int relevance_window = 1000;
};

// Declares the chat.* configuration keys (docs/chat.md, "Configuration").
void DefineChatConfig(ConfigSchema& schema);
// The options of those keys (the rest default; `blobs` is left null for the caller to set).
ChatOptions ChatOptionsFromConfig(const Config& config);

// Resolves the credentials of a request (AuthService::Authenticate in the composition root).
using Authenticator = std::function<Result<auth::Principal>(const http::Request&)>;

// The search indexer's progress.
struct IndexerState {
  uint64_t indexed = 0;      // records processed since start
  uint64_t lag_records = 0;  // records of the events topic not yet processed
  double lag_seconds = 0;    // how long the indexer has been behind (0 when caught up)
  Status last_error;         // the last indexing error (ok when none)
};

class ChatService {
 public:
  // Creates the topics when missing, opens the hub's subscriptions and the indexer's consumer and
  // starts their threads. `metrics` and `log` may be null.
  static Result<std::unique_ptr<ChatService>> Create(ChatOptions options, store::Database& db,
                                                     bus::Bus& bus, Env& env,
                                                     Authenticator authenticate,
                                                     MetricsRegistry* metrics = nullptr,
                                                     std::shared_ptr<spdlog::logger> log = nullptr);
  ~ChatService();
  ChatService(const ChatService&) = delete;
  ChatService& operator=(const ChatService&) = delete;

  // Registers every route (docs/chat.md).
  Status AddRoutes(http::Router& router);
  // Adds the `chat_events` (hub subscription) and `chat_search_indexer` checks; the latter always
  // reports its lag (`lag_records`, `lag_seconds`) and is unhealthy past indexer_max_lag.
  void RegisterHealth(HealthRegistry& health);
  // Ends every stream (with the shutdown event) and joins the threads. Idempotent.
  void Stop();

  IndexerState indexer_state() const;
  // Open SSE streams on this node.
  size_t open_streams() const;
  // Streams ended with `resync` since start (slow clients, positions older than retention).
  uint64_t resyncs() const;

  class Impl;

 private:
  explicit ChatService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::chat
