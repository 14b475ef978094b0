#include "search_index.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <utility>

#include "atrium/core/strings.h"
#include "atrium/core/thread_name.h"

namespace atrium::chat {

using store::Value;

// Indexing progress, readable from metric callbacks after the index is gone.
struct SearchIndex::Progress {
  std::atomic<uint64_t> position{0};  // every offset below is processed
  std::atomic<uint64_t> indexed{0};
  std::atomic<int64_t> caught_up_at{0};  // micros: every event published before is indexed
  std::atomic<uint64_t> lag_records{0};
  std::atomic<double> lag_seconds{0};
  std::mutex mu;
  Status last_error;  // guarded by mu
};

namespace {

constexpr std::string_view kCols =
    "m.id, m.chat_id, m.seq, m.sender_id, m.content, m.reply_to, m.attachments, m.mentions,"
    " m.reply_count, m.created_at, m.edited_at, m.deleted_at, m.pinned_at, m.pinned_by,"
    " c.type AS chat_type, c.name AS chat_name";

// Words of the query: runs of ASCII letters/digits and non-ASCII bytes, lower-cased.
std::vector<std::string> Terms(std::string_view q) {
  std::vector<std::string> out;
  std::string cur;
  for (unsigned char c : q) {
    if (std::isalnum(c) || c >= 0x80) {
      cur += static_cast<char>(std::tolower(c));
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  if (out.size() > 16) out.resize(16);
  return out;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

SearchIndex::SearchIndex(store::Database& db, bus::Bus& bus, Env& env, std::string topic,
                         std::string consumer_name, MetricsRegistry* metrics)
    : db_(db),
      bus_(bus),
      env_(env),
      topic_(std::move(topic)),
      consumer_name_(std::move(consumer_name)),
      progress_(std::make_shared<Progress>()) {
  if (metrics != nullptr && !consumer_name_.empty()) {
    indexed_counter_ =
        &metrics->Counter("chat_search_indexed_total", "Chat events applied to the search index")
             .Get();
    std::weak_ptr<Progress> weak = progress_;
    metrics->GaugeFunc("chat_search_index_lag_records",
                       "Chat events not yet applied to the search index", [weak] {
                         auto p = weak.lock();
                         return p ? static_cast<double>(p->lag_records.load()) : 0.0;
                       });
    metrics->GaugeFunc("chat_search_index_lag_seconds",
                       "How long the chat search indexer has been behind (0: caught up)", [weak] {
                         auto p = weak.lock();
                         return p ? p->lag_seconds.load() : 0.0;
                       });
  }
}

SearchIndex::~SearchIndex() { Stop(); }

Status SearchIndex::Start() {
  progress_->caught_up_at = env_.NowMicros();
  if (consumer_name_.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(consumer_, bus_.OpenConsumer({.name = consumer_name_,
                                                 .topic = topic_,
                                                 .start = bus::StartPosition::Earliest(),
                                                 .ack_timeout = std::chrono::seconds(30),
                                                 .max_deliver = 10}));
  progress_->position = consumer_->AckedPosition();
  thread_ = std::thread([this] {
    SetThreadName("chat-search");
    Run();
  });
  return Status::Ok();
}

void SearchIndex::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (consumer_) {
    consumer_->Close();
    consumer_.reset();
  }
}

IndexerState SearchIndex::state() {
  IndexerState s;
  s.indexed = progress_->indexed;
  if (!consumer_name_.empty()) {
    auto stats = bus_.GetTopicStats(topic_);
    if (stats.ok()) {
      uint64_t pos = std::max<uint64_t>(progress_->position, stats->first_offset);
      s.lag_records = stats->next_offset > pos ? stats->next_offset - pos : 0;
    }
    if (s.lag_records > 0) {
      s.lag_seconds =
          std::max(0.0, static_cast<double>(env_.NowMicros() - progress_->caught_up_at) / 1e6);
    } else {
      progress_->caught_up_at = env_.NowMicros();
    }
    progress_->lag_records = s.lag_records;
    progress_->lag_seconds = s.lag_seconds;
  }
  std::lock_guard lock(progress_->mu);
  s.last_error = progress_->last_error;
  return s;
}

Status SearchIndex::Apply(const bus::Record& record) {
  const std::string* type = record.FindHeader("type");
  if (type == nullptr || !type->starts_with("message.")) return Status::Ok();
  boost::system::error_code ec;
  json::value v = json::parse(record.payload, ec);
  if (ec || !v.is_object()) return InvalidArgument("undecodable chat event");
  const json::value* data = v.as_object().if_contains("data");
  if (data == nullptr || !data->is_object()) return InvalidArgument("chat event without data");
  const json::value* id = data->as_object().if_contains("id");
  if (id == nullptr || !id->is_int64()) return InvalidArgument("chat event without message id");
  const int64_t message_id = id->as_int64();
  const bool postgres = db_.dialect() == store::Dialect::kPostgres;
  if (*type == "message.deleted") {
    return db_
        .Exec(postgres ? "DELETE FROM chat_search WHERE message_id = ?"
                       : "DELETE FROM chat_search WHERE rowid = ?",
              {message_id})
        .status();
  }
  if (*type != "message.created" && *type != "message.updated") return Status::Ok();
  const json::value* content = data->as_object().if_contains("content");
  const json::value* deleted = data->as_object().if_contains("deleted");
  if (content == nullptr || !content->is_string()) return InvalidArgument("event without content");
  if (deleted != nullptr && deleted->is_bool() && deleted->as_bool()) return Status::Ok();
  std::string text(content->as_string());
  if (postgres) {
    return db_
        .Exec(
            "INSERT INTO chat_search (message_id, tsv) VALUES (?, to_tsvector('simple', ?))"
            " ON CONFLICT (message_id) DO UPDATE SET tsv = EXCLUDED.tsv",
            {message_id, text})
        .status();
  }
  return db_.Transaction([&](store::Transaction& tx) -> Status {
    RETURN_IF_ERROR(tx.Exec("DELETE FROM chat_search WHERE rowid = ?", {message_id}).status());
    return tx.Exec("INSERT INTO chat_search (rowid, content) VALUES (?, ?)", {message_id, text})
        .status();
  });
}

void SearchIndex::Run() {
  while (!stop_) {
    auto d = consumer_->Next(std::chrono::milliseconds(100));
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kDeadlineExceeded) {
        progress_->position = std::max<uint64_t>(progress_->position, consumer_->AckedPosition());
        (void)state();  // refreshes caught_up_at while idle
        continue;
      }
      if (d.status().code() == StatusCode::kCancelled) return;
      std::lock_guard lock(progress_->mu);
      progress_->last_error = d.status();
      continue;
    }
    if (d->kind != bus::Delivery::Kind::kRecord) {
      progress_->position = d->next_offset;
      continue;
    }
    const bus::Record& rec = *d->record;
    Status s = Apply(rec);
    // An undecodable event is acknowledged (retrying cannot fix it) and reported; a database
    // error is not: the record is redelivered after the ack timeout.
    if (s.ok() || s.code() == StatusCode::kInvalidArgument) {
      (void)consumer_->Ack(rec.offset);
      progress_->position = std::max<uint64_t>(progress_->position, rec.offset + 1);
      ++progress_->indexed;
      if (indexed_counter_ != nullptr) indexed_counter_->Inc();
      // Everything published up to this record is indexed: the lag in seconds is measured from
      // there (an upper bound of the age of the oldest pending event).
      const int64_t published = rec.timestamp_ns / 1000;
      if (published > progress_->caught_up_at) progress_->caught_up_at = published;
      (void)state();  // keeps the lag gauges current while busy
    }
    if (!s.ok()) {
      std::lock_guard lock(progress_->mu);
      progress_->last_error = s;
    }
  }
}

Result<SearchPage> SearchIndex::Search(const Actor& a, const SearchQuery& q) {
  std::vector<std::string> terms = Terms(q.q);
  if (terms.empty()) return InvalidArgument("q: must contain at least one word");
  if (q.limit < 1 || q.limit > 100) return InvalidArgument("limit: must be 1..100");
  const bool postgres = db_.dialect() == store::Dialect::kPostgres;
  std::string match;
  for (const auto& t : terms) {
    if (postgres) {
      match += (match.empty() ? "" : " & ") + t + ":*";
    } else {
      match += (match.empty() ? "\"" : " \"") + t + "\"*";
    }
  }
  // Cursors: "d<id>" (newest first: below that message id) or "o<offset>" (relevance).
  int64_t offset = 0, cursor_id = 0;
  if (!q.cursor.empty()) {
    auto n = ParseInt(std::string_view(q.cursor).substr(1));
    if (q.cursor[0] != (q.by_date ? 'd' : 'o') || !n || *n < 0) {
      return InvalidArgument("cursor: not a cursor of this query's order");
    }
    if (q.by_date) {
      cursor_id = *n;
    } else {
      offset = *n;
    }
  }
  const int window = std::max(1, q.relevance_window);
  SearchPage page;
  if (!q.by_date && offset >= window) return page;

  // The readable matches, newest first. On SQLite the CROSS JOINs keep the FTS table the outer
  // loop, so its rowid order serves the ORDER BY and the walk stops after LIMIT readable rows.
  const std::string id_col = postgres ? "s.message_id" : "s.rowid";
  std::string sql = "SELECT " + std::string(kCols);
  store::Params params;
  if (!q.by_date) {
    sql += postgres ? ", ts_rank(s.tsv, query) AS rank" : ", bm25(chat_search) AS rank";
  }
  if (postgres) {
    sql +=
        " FROM chat_search s CROSS JOIN to_tsquery('simple', ?) AS query"
        " JOIN chat_messages m ON m.id = s.message_id JOIN chat_chats c ON c.id = m.chat_id";
    params.emplace_back(match);
  } else {
    sql +=
        " FROM chat_search s CROSS JOIN chat_messages m ON m.id = s.rowid"
        " CROSS JOIN chat_chats c ON c.id = m.chat_id";
  }
  sql += " LEFT JOIN chat_members cm ON cm.chat_id = m.chat_id AND cm.user_id = ?";
  params.emplace_back(a.user_id);
  if (postgres) {
    sql += " WHERE s.tsv @@ query";
  } else {
    sql += " WHERE chat_search MATCH ?";
    params.emplace_back(match);
  }
  sql +=
      " AND c.workspace_id = ? AND c.deleted_at IS NULL AND m.deleted_at IS NULL"
      " AND (cm.user_id IS NOT NULL OR c.type = 'public_channel')";
  params.emplace_back(a.workspace_id);
  if (!q.chat_id.empty()) {
    sql += " AND m.chat_id = ?";
    params.emplace_back(q.chat_id);
  }
  if (!q.sender_id.empty()) {
    sql += " AND m.sender_id = ?";
    params.emplace_back(q.sender_id);
  }
  if (!q.chat_type.empty()) {
    sql += " AND c.type = ?";
    params.emplace_back(q.chat_type);
  }
  if (q.from != 0) {
    sql += " AND m.created_at >= ?";
    params.emplace_back(q.from);
  }
  if (q.to != 0) {
    sql += " AND m.created_at < ?";
    params.emplace_back(q.to);
  }
  if (q.by_date && !q.cursor.empty()) {
    sql += " AND " + id_col + " < ?";
    params.emplace_back(cursor_id);
  }
  sql += " ORDER BY " + id_col + " DESC LIMIT ?";
  int fetch = q.limit + 1;
  if (q.by_date) {
    params.emplace_back(static_cast<int64_t>(fetch));
  } else {
    // bm25 is lower-is-better, ts_rank higher-is-better; ties: newest first.
    params.emplace_back(static_cast<int64_t>(window));
    sql = "SELECT * FROM (" + sql + ") w ORDER BY " + (postgres ? "rank DESC" : "rank") +
          ", id DESC LIMIT ? OFFSET ?";
    fetch = static_cast<int>(std::min<int64_t>(fetch, window - offset));
    params.emplace_back(static_cast<int64_t>(fetch));
    params.emplace_back(offset);
  }
  ASSIGN_OR_RETURN(store::Rows rows, db_.Query(sql, params));
  for (const auto& r : rows) {
    if (static_cast<int>(page.results.size()) == q.limit) {
      page.next_cursor = q.by_date ? "d" + std::to_string(page.results.back().message.id)
                                   : "o" + std::to_string(offset + q.limit);
      break;
    }
    page.results.push_back(SearchHit{.message = MessageFromRow(r),
                                     .chat_type = r.Text("chat_type"),
                                     .chat_name = r.Text("chat_name"),
                                     .highlight = "",
                                     .rank = q.by_date ? 0.0 : r.Double("rank")});
  }
  RETURN_IF_ERROR(Highlight(match, page.results));
  return page;
}

Status SearchIndex::Highlight(const std::string& match, std::vector<SearchHit>& hits) {
  if (hits.empty()) return Status::Ok();
  if (db_.dialect() == store::Dialect::kPostgres) {
    store::Params params{match};
    std::string ids;
    for (const auto& h : hits) {
      ids += ids.empty() ? "?" : ", ?";
      params.emplace_back(h.message.id);
    }
    ASSIGN_OR_RETURN(store::Rows rows,
                     db_.Query("SELECT m.id, ts_headline('simple', m.content, query,"
                               " 'StartSel=<mark>, StopSel=</mark>, HighlightAll=true')"
                               " FROM chat_messages m CROSS JOIN to_tsquery('simple', ?) AS query"
                               " WHERE m.id IN (" +
                                   ids + ")",
                               params));
    for (const auto& r : rows) {
      for (auto& h : hits) {
        if (h.message.id == r.Int(0)) h.highlight = r.Text(1);
      }
    }
    return Status::Ok();
  }
  // One rowid lookup per hit: FTS5 seeks a MATCH with `rowid = ?` directly.
  for (auto& h : hits) {
    ASSIGN_OR_RETURN(store::Rows rows,
                     db_.Query("SELECT highlight(chat_search, 0, '<mark>', '</mark>') FROM"
                               " chat_search WHERE chat_search MATCH ? AND rowid = ?",
                               {match, h.message.id}));
    h.highlight = rows.empty() ? h.message.content : rows[0].Text(0);
  }
  return Status::Ok();
}

}  // namespace atrium::chat
