// ChatStore: the chat domain on store::Database — chats, members, messages, reactions, pins,
// read state — with the rules of docs/chat.md enforced inside transactions. Every mutating
// method writes its events to the outbox (`chat_outbox`) in the same transaction as the change
// and returns them (with their outbox ids) for the caller to publish after the commit; nothing
// here touches the bus. Errors name the offending field; chats and users outside
// the actor's workspace are NotFound. Thread-safe (stateless over a thread-safe Database).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "atrium/core/env.h"
#include "atrium/core/status.h"
#include "atrium/store/database.h"

namespace atrium::chat {

namespace json = boost::json;

// Who acts: the request's principal.
struct Actor {
  std::string user_id;
  std::string workspace_id;
};

// An event to publish after commit: `type` (message.created, ...), its audience and its data.
struct Event {
  std::string type;
  std::string chat_id;
  std::vector<std::string> users;
  json::object data;
  int64_t outbox_id = 0;  // the chat_outbox row (the event id consumers deduplicate by); 0: none
};

// The bus payload of an event: {"type","users","data"} plus "event_id" when it has an outbox id.
std::string EncodeEvent(const Event& e);

// An outbox row not yet marked sent.
struct OutboxEntry {
  int64_t id = 0;
  int64_t created_at = 0;
  Event event;
};

struct Chat {
  std::string id, workspace_id, type, name, description, owner_id;
  int64_t last_seq = 0, created_at = 0, updated_at = 0, archived_at = 0, deleted_at = 0;
  int64_t member_count = 0;
  // The actor's view (empty / 0 when the actor is not a member).
  std::string my_role;
  int64_t last_read_seq = 0, unread_count = 0, mention_count = 0;
};

struct Member {
  std::string user_id, role, name, email;
  int64_t joined_at = 0, last_read_seq = 0, last_read_at = 0;
};

struct Reaction {
  std::string emoji;
  std::vector<std::string> user_ids;
};

// An uploaded file (chat_files). Messages carry copies of id, name, content_type and size.
struct Attachment {
  std::string id, chat_id, uploader_id, name, content_type, sha256;
  int64_t size = 0, created_at = 0;
};

// The metadata of an upload whose content is already in the blob store.
struct NewAttachment {
  std::string name, content_type, sha256;
  int64_t size = 0;
};

struct Message {
  int64_t id = 0;
  std::string chat_id;
  int64_t seq = 0;
  std::string sender_id, content;
  int64_t reply_to = 0;  // 0: not a reply
  std::vector<Attachment> attachments;
  std::vector<std::string> mentions;
  int64_t reply_count = 0, created_at = 0, edited_at = 0, deleted_at = 0, pinned_at = 0;
  std::string pinned_by;
  std::vector<Reaction> reactions;
};

// Reads a chat_messages row (columns by name; reactions are not loaded).
Message MessageFromRow(const store::Row& r);

struct CreateChatRequest {
  std::string type, name, description;
  std::vector<std::string> members;  // besides the creator
};

struct ChatUpdate {
  std::optional<std::string> name, description;
};

struct SendRequest {
  std::string content;
  std::string idempotency_key;  // empty: none
  int64_t reply_to = 0;
  std::vector<std::string> attachments;  // file ids of this chat (AddAttachment)
};

struct SendResult {
  Message message;
  bool created = false;  // false: the idempotency key had been used (the original message)
  std::vector<Event> events;
};

struct MessagePage {
  std::vector<Message> messages;  // ascending seq
  bool has_more = false;          // more in the direction paged (before: older, after: newer)
};

struct ReadState {
  std::string chat_id;
  int64_t last_read_seq = 0, unread_count = 0, mention_count = 0;
};

template <typename T>
struct WithEvents {
  T value;
  std::vector<Event> events;
};

class ChatStore {
 public:
  static constexpr size_t kMaxContentChars = 10000;
  static constexpr size_t kMaxNameChars = 80;
  static constexpr int kMaxPageSize = 100;
  static constexpr size_t kMaxAttachments = 20;
  static constexpr size_t kMaxFileNameBytes = 255;

  ChatStore(store::Database& db, Env& env) : db_(db), env_(env) {}

  // --- chats ---
  Result<WithEvents<Chat>> CreateChat(const Actor& a, const CreateChatRequest& r);
  // The chats the actor is a member of (live ones), most recently active first, with read state.
  Result<std::vector<Chat>> ListMyChats(const Actor& a);
  // Public channels of the workspace (browse), with the actor's membership when any.
  Result<std::vector<Chat>> ListPublicChannels(const Actor& a);
  // A chat the actor may see: a member, or any public channel of the workspace.
  Result<Chat> GetChat(const Actor& a, std::string_view chat_id);
  Result<WithEvents<Chat>> UpdateChat(const Actor& a, std::string_view chat_id,
                                      const ChatUpdate& u);
  Result<std::vector<Event>> DeleteChat(const Actor& a, std::string_view chat_id);
  Result<WithEvents<Chat>> SetArchived(const Actor& a, std::string_view chat_id, bool archived);

  // --- members ---
  Result<std::vector<Member>> ListMembers(const Actor& a, std::string_view chat_id);
  Result<std::vector<Event>> AddMembers(const Actor& a, std::string_view chat_id,
                                        const std::vector<std::string>& user_ids);
  Result<std::vector<Event>> RemoveMember(const Actor& a, std::string_view chat_id,
                                          std::string_view user_id);
  Result<std::vector<Event>> Join(const Actor& a, std::string_view chat_id);
  Result<std::vector<Event>> Leave(const Actor& a, std::string_view chat_id);
  Result<std::vector<Event>> SetMemberRole(const Actor& a, std::string_view chat_id,
                                           std::string_view user_id, std::string_view role);
  Result<std::vector<Event>> TransferOwnership(const Actor& a, std::string_view chat_id,
                                               std::string_view new_owner);

  // --- messages ---
  // Atomic per (chat, sender, key): under any concurrency one message exists per key.
  Result<SendResult> Send(const Actor& a, std::string_view chat_id, const SendRequest& r);
  // At most one of before/after/around (-1 = unset; none: the newest page). limit 1..100.
  Result<MessagePage> ListMessages(const Actor& a, std::string_view chat_id, int64_t before,
                                   int64_t after, int64_t around, int limit);
  Result<Message> GetMessage(const Actor& a, std::string_view chat_id, int64_t message_id);
  Result<WithEvents<Message>> EditMessage(const Actor& a, std::string_view chat_id,
                                          int64_t message_id, const std::string& content);
  Result<WithEvents<Message>> DeleteMessage(const Actor& a, std::string_view chat_id,
                                            int64_t message_id);
  // [{content, edited_at}], oldest first (the versions before each edit).
  Result<std::vector<std::pair<std::string, int64_t>>> History(const Actor& a,
                                                               std::string_view chat_id,
                                                               int64_t message_id);
  Result<WithEvents<Message>> React(const Actor& a, std::string_view chat_id, int64_t message_id,
                                    const std::string& emoji, bool add);
  Result<std::vector<Message>> Thread(const Actor& a, std::string_view chat_id, int64_t root_id);
  Result<WithEvents<Message>> Pin(const Actor& a, std::string_view chat_id, int64_t message_id,
                                  bool pin);
  Result<std::vector<Message>> Pins(const Actor& a, std::string_view chat_id);

  // --- attachments ---
  // Checks that the actor may upload into the chat (a member, chat not archived) before the
  // content is stored.
  Status CheckCanUpload(const Actor& a, std::string_view chat_id);
  // Records an upload whose content is in the blob store (re-checking the membership). The name is
  // reduced to its last path component; a missing or odd content type becomes
  // application/octet-stream.
  Result<Attachment> AddAttachment(const Actor& a, std::string_view chat_id,
                                   const NewAttachment& file);
  // A file for download: NotFound when unknown, in another workspace or in a chat the actor cannot
  // see; PermissionDenied in a public channel the actor has not joined.
  Result<Attachment> GetAttachment(const Actor& a, std::string_view file_id);

  // --- read state ---
  Result<WithEvents<ReadState>> MarkRead(const Actor& a, std::string_view chat_id, int64_t seq);
  // Members whose last_read_seq reached the message ("seen by"), sender excluded.
  Result<std::vector<Member>> Receipts(const Actor& a, std::string_view chat_id,
                                       int64_t message_id);

  // --- helpers for the realtime and search parts ---
  // Member ids of a chat the actor belongs to (typing audience). NotFound otherwise.
  Result<std::vector<std::string>> MemberIdsForMember(const Actor& a, std::string_view chat_id);
  // Every user of the workspace (presence audience).
  Result<std::vector<std::string>> WorkspaceUserIds(std::string_view workspace_id);

  // --- outbox ---
  // Unsent events created at or before `created_before` (micros), oldest first.
  Result<std::vector<OutboxEntry>> UnsentEvents(int64_t created_before, int limit);
  Status MarkSent(const std::vector<Event>& events);
  // Deletes rows sent before `sent_before` (micros).
  Status PruneSent(int64_t sent_before);

  static json::object ChatJson(const Chat& c);
  static json::object MessageJson(const Message& m);
  static json::object MemberJson(const Member& m);
  // {"id","name","type","size","url"} (url: GET /api/v1/files/{id}).
  static json::object AttachmentJson(const Attachment& f);

 private:
  struct Access;  // a chat row plus the actor's membership
  using ChangeFn = std::function<Status(store::Transaction&)>;
  // The one write path: in one transaction, `change` does the writes, `make` builds the result
  // (reading through the same transaction) and the result's events go into the outbox, coming
  // back with their outbox ids. An error anywhere rolls everything back. T is a WithEvents<...>,
  // a SendResult or a std::vector<Event>.
  template <typename T>
  Result<T> Commit(const ChangeFn& change, const std::function<Result<T>(store::Executor&)>& make);
  Status WriteOutbox(store::Executor& ex, std::vector<Event>& events);
  Result<Access> LoadAccess(store::Executor& ex, const Actor& a, std::string_view chat_id);
  Result<Message> LoadMessage(store::Executor& ex, std::string_view chat_id, int64_t message_id);
  Status LoadReactions(store::Executor& ex, std::vector<Message>& messages);
  Result<std::vector<std::string>> MemberIds(store::Executor& ex, std::string_view chat_id);
  Result<std::vector<std::string>> WorkspaceUserIds(store::Executor& ex,
                                                    std::string_view workspace_id);
  // Who hears of a chat's own changes (chat.created/updated/deleted): every user of the
  // workspace for a public channel (anyone may browse and join it), the members otherwise.
  Result<std::vector<std::string>> ChatAudience(store::Executor& ex, const Chat& chat);
  Result<Chat> LoadChatView(store::Executor& ex, const Actor& a, std::string_view chat_id);
  Status CheckWorkspaceUsers(store::Executor& ex, const std::string& workspace_id,
                             const std::vector<std::string>& user_ids, std::string_view field);
  // The files `ids` of the chat, in order, duplicates dropped; InvalidArgument naming the field
  // for an id that is not a file of this chat.
  Result<std::vector<Attachment>> ResolveAttachments(store::Executor& ex, std::string_view chat_id,
                                                     const std::vector<std::string>& ids);
  Result<std::vector<std::string>> ResolveMentions(store::Executor& ex, std::string_view chat_id,
                                                   const std::string& content);

  store::Database& db_;
  Env& env_;
};

}  // namespace atrium::chat
