// SearchIndex: chat's full-text search (docs/chat.md, "Search").
//
// The index (migration 301: an FTS5 table with the unicode61 tokenizer on SQLite, a tsvector
// column with a GIN index on PostgreSQL) is written by a durable bus consumer of the events
// topic: message.created / message.updated upsert a message's text, message.deleted removes it.
// Delivery is at-least-once and every write is an idempotent upsert or delete, so redeliveries
// are harmless. Queries match every word as a prefix, only over messages the caller can read
// (member chats, and public channels of the workspace), never deleted ones. Results come newest
// first by default (the index's rowid order, so no match set is sorted), or ranked by relevance
// within the newest matches; highlights are computed for the returned page only.
//
// Thread-safe: Search may run on any thread; the indexer has its own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "atrium/bus/bus.h"
#include "atrium/chat/chat_service.h"
#include "atrium/core/env.h"
#include "atrium/core/metrics.h"
#include "chat_store.h"

namespace atrium::chat {

struct SearchQuery {
  std::string q;
  std::string chat_id, sender_id, chat_type;  // filters; empty = any
  int64_t from = 0, to = 0;                   // created_at range [from, to), micros; 0 = open
  // Newest first (message id order: the index yields matches in that order, so a page costs
  // about `limit` readable matches). false: by relevance among the newest `relevance_window`
  // readable matches (bm25 / ts_rank), older matches are not returned.
  bool by_date = true;
  int relevance_window = 1000;
  std::string cursor;
  int limit = 20;
};

struct SearchHit {
  Message message;
  std::string chat_type, chat_name;
  std::string highlight;  // the text with matches wrapped in <mark>…</mark> (not HTML-escaped)
  double rank = 0;
};

struct SearchPage {
  std::vector<SearchHit> results;
  std::string next_cursor;  // empty: no more
};

class SearchIndex {
 public:
  SearchIndex(store::Database& db, bus::Bus& bus, Env& env, std::string topic,
              std::string consumer_name, MetricsRegistry* metrics);
  ~SearchIndex();
  SearchIndex(const SearchIndex&) = delete;
  SearchIndex& operator=(const SearchIndex&) = delete;

  // Opens the durable consumer and starts indexing (no-op when consumer_name is empty).
  Status Start();
  void Stop();

  Result<SearchPage> Search(const Actor& actor, const SearchQuery& query);
  IndexerState state();

 private:
  struct Progress;  // shared with the metric callbacks
  void Run();
  Status Apply(const bus::Record& record);
  // Fills the highlights of the page's hits (computed for these rows only).
  Status Highlight(const std::string& match, std::vector<SearchHit>& hits);

  store::Database& db_;
  bus::Bus& bus_;
  Env& env_;
  const std::string topic_, consumer_name_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::shared_ptr<Progress> progress_;
  Counter* indexed_counter_ = nullptr;
};

}  // namespace atrium::chat
