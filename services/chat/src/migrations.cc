// The chat module's schema (versions 300-399). See docs/chat.md ("Storage").
#include <string>
#include <vector>

#include "atrium/chat/chat_service.h"

namespace atrium::chat {
namespace {

// Tables shared by both dialects except for the message id column.
std::string Schema(const std::string& message_id_column) {
  return
      // Chats: name_key is the lower-cased name while the chat is not deleted (names are unique
      // per workspace among live chats; NULLs never collide); direct_key is "<a>|<b>" for the
      // sorted pair of a direct chat (at most one per pair).
      "CREATE TABLE chat_chats ("
      " id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, type TEXT NOT NULL,"
      " name TEXT NOT NULL, name_key TEXT, direct_key TEXT,"
      " description TEXT NOT NULL, owner_id TEXT NOT NULL, last_seq BIGINT NOT NULL,"
      " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, archived_at BIGINT,"
      " deleted_at BIGINT);"
      "CREATE UNIQUE INDEX chat_chats_name ON chat_chats(workspace_id, name_key);"
      "CREATE UNIQUE INDEX chat_chats_direct ON chat_chats(workspace_id, direct_key);"
      "CREATE INDEX chat_chats_public ON chat_chats(workspace_id, type);"
      "CREATE TABLE chat_members ("
      " chat_id TEXT NOT NULL REFERENCES chat_chats(id) ON DELETE CASCADE,"
      " user_id TEXT NOT NULL, role TEXT NOT NULL, joined_at BIGINT NOT NULL,"
      " last_read_seq BIGINT NOT NULL, last_read_at BIGINT NOT NULL,"
      " PRIMARY KEY (chat_id, user_id));"
      "CREATE INDEX chat_members_user ON chat_members(user_id);"
      "CREATE TABLE chat_messages (" +
      message_id_column +
      ", chat_id TEXT NOT NULL REFERENCES chat_chats(id) ON DELETE CASCADE,"
      " seq BIGINT NOT NULL, sender_id TEXT NOT NULL, content TEXT NOT NULL,"
      " reply_to BIGINT, attachments TEXT NOT NULL, mentions TEXT NOT NULL,"
      " idempotency_key TEXT, reply_count BIGINT NOT NULL, created_at BIGINT NOT NULL,"
      " edited_at BIGINT, deleted_at BIGINT, pinned_at BIGINT, pinned_by TEXT,"
      " UNIQUE (chat_id, seq), UNIQUE (chat_id, sender_id, idempotency_key));"
      "CREATE INDEX chat_messages_thread ON chat_messages(reply_to, seq);"
      "CREATE INDEX chat_messages_pins ON chat_messages(chat_id, pinned_at);"
      "CREATE TABLE chat_message_edits ("
      " message_id BIGINT NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,"
      " edited_at BIGINT NOT NULL, content TEXT NOT NULL);"
      "CREATE INDEX chat_message_edits_message ON chat_message_edits(message_id);"
      "CREATE TABLE chat_reactions ("
      " message_id BIGINT NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,"
      " user_id TEXT NOT NULL, emoji TEXT NOT NULL, created_at BIGINT NOT NULL,"
      " PRIMARY KEY (message_id, user_id, emoji));"
      "CREATE TABLE chat_mentions ("
      " message_id BIGINT NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,"
      " chat_id TEXT NOT NULL, seq BIGINT NOT NULL, user_id TEXT NOT NULL,"
      " PRIMARY KEY (message_id, user_id));"
      "CREATE INDEX chat_mentions_user ON chat_mentions(user_id, chat_id, seq);"
      // Single-use EventSource tickets (hash of the ticket; shared by every node).
      "CREATE TABLE chat_event_tickets ("
      " ticket_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, workspace_id TEXT NOT NULL,"
      " expires_at BIGINT NOT NULL);";
}

constexpr const char* kFilesSchema =
    "CREATE TABLE chat_files ("
    " id TEXT PRIMARY KEY, chat_id TEXT NOT NULL REFERENCES chat_chats(id) ON DELETE CASCADE,"
    " workspace_id TEXT NOT NULL, uploader_id TEXT NOT NULL, name TEXT NOT NULL,"
    " content_type TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE INDEX chat_files_chat ON chat_files(chat_id, created_at);";

}  // namespace

std::vector<store::Migration> ChatMigrations() {
  return {
      store::Migration{300, "chat_schema", Schema("id INTEGER PRIMARY KEY AUTOINCREMENT"),
                       Schema("id BIGSERIAL PRIMARY KEY")},
      // The full-text index, written by the search indexer (a bus consumer), keyed by message id.
      store::Migration{
          301, "chat_search",
          "CREATE VIRTUAL TABLE chat_search USING fts5(content,"
          " tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3');",
          "CREATE TABLE chat_search (message_id BIGINT PRIMARY KEY, tsv TSVECTOR NOT NULL);"
          "CREATE INDEX chat_search_tsv ON chat_search USING GIN (tsv);"},
      // The transactional outbox: every event is written in the transaction of its change and
      // marked sent once the bus accepted it; the relay re-publishes rows left unsent.
      store::Migration{302, "chat_outbox",
                       "CREATE TABLE chat_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                       " chat_id TEXT NOT NULL, payload TEXT NOT NULL, created_at BIGINT NOT NULL,"
                       " sent_at BIGINT);"
                       "CREATE INDEX chat_outbox_unsent ON chat_outbox(id) WHERE sent_at IS NULL;",
                       "CREATE TABLE chat_outbox (id BIGSERIAL PRIMARY KEY,"
                       " chat_id TEXT NOT NULL, payload TEXT NOT NULL, created_at BIGINT NOT NULL,"
                       " sent_at BIGINT);"
                       "CREATE INDEX chat_outbox_unsent ON chat_outbox(id) WHERE sent_at IS NULL;"},
      // Attachments: metadata of uploaded files (the content is a blob of the BlobStore, named by
      // its sha256); a message's `attachments` column copies the metadata of the files it cites.
      store::Migration{303, "chat_files", kFilesSchema, ""},
  };
}

}  // namespace atrium::chat
