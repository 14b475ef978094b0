#include "chat_store.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "atrium/auth/crypto.h"
#include "atrium/core/strings.h"
#include "atrium/http/json_error.h"

namespace atrium::chat {

using store::Value;

namespace {

constexpr std::string_view kChatCols =
    "c.id, c.workspace_id, c.type, c.name, c.description, c.owner_id, c.last_seq, c.created_at,"
    " c.updated_at, c.archived_at, c.deleted_at,"
    " (SELECT COUNT(*) FROM chat_members x WHERE x.chat_id = c.id) AS member_count";

constexpr std::string_view kMsgCols =
    "id, chat_id, seq, sender_id, content, reply_to, attachments, mentions, reply_count,"
    " created_at, edited_at, deleted_at, pinned_at, pinned_by";

bool IsChatType(std::string_view t) {
  return t == "direct" || t == "group" || t == "private_channel" || t == "public_channel";
}

// Code points of valid UTF-8 (continuation bytes are not counted).
size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

bool IsValidUtf8(std::string_view s) { return http::SanitizeUtf8(s) == s; }

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

Result<std::string> ValidName(std::string_view raw, std::string_view field) {
  std::string name(TrimWhitespace(raw));
  if (name.empty()) return InvalidArgument(std::string(field) + ": must not be empty");
  if (!IsValidUtf8(name)) return InvalidArgument(std::string(field) + ": must be valid UTF-8");
  if (HasControl(name)) {
    return InvalidArgument(std::string(field) + ": must not contain control characters");
  }
  if (Utf8Length(name) > ChatStore::kMaxNameChars) {
    return InvalidArgument(std::string(field) + ": at most " +
                           std::to_string(ChatStore::kMaxNameChars) + " characters");
  }
  return name;
}

Status ValidContent(const std::string& content) {
  if (TrimWhitespace(content).empty()) return InvalidArgument("content: must not be empty");
  if (!IsValidUtf8(content)) return InvalidArgument("content: must be valid UTF-8");
  if (Utf8Length(content) > ChatStore::kMaxContentChars) {
    return InvalidArgument("content: at most " + std::to_string(ChatStore::kMaxContentChars) +
                           " characters");
  }
  return Status::Ok();
}

Value OptInt(int64_t v) { return v == 0 ? Value() : Value(v); }
Value OptText(const std::string& s) { return s.empty() ? Value() : Value(s); }

std::string JsonArrayText(const std::vector<std::string>& items) {
  json::array a;
  for (const auto& s : items) a.emplace_back(s);
  return json::serialize(a);
}

std::vector<std::string> ParseJsonArray(const std::string& text) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& e : v.as_array()) {
    if (e.is_string()) out.emplace_back(e.as_string());
  }
  return out;
}

// The `attachments` column: [{"id","name","type","size"}] (rows written before uploads existed
// hold bare id strings).
std::string AttachmentsText(const std::vector<Attachment>& files) {
  json::array a;
  for (const auto& f : files) {
    a.push_back(
        json::object{{"id", f.id}, {"name", f.name}, {"type", f.content_type}, {"size", f.size}});
  }
  return json::serialize(a);
}

std::vector<Attachment> ParseAttachments(const std::string& text) {
  std::vector<Attachment> out;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  auto str = [](const json::object& o, std::string_view k) {
    const json::value* x = o.if_contains(k);
    return x != nullptr && x->is_string() ? std::string(x->as_string()) : std::string();
  };
  for (const auto& e : v.as_array()) {
    Attachment f;
    if (e.is_string()) {
      f.id = std::string(e.as_string());
    } else if (e.is_object()) {
      const auto& o = e.as_object();
      f.id = str(o, "id");
      f.name = str(o, "name");
      f.content_type = str(o, "type");
      if (const json::value* n = o.if_contains("size"); n != nullptr && n->is_int64()) {
        f.size = n->as_int64();
      }
    }
    if (!f.id.empty()) out.push_back(std::move(f));
  }
  return out;
}

// The last path component of a client's file name, without control characters; "file" when
// nothing is left.
std::string CleanFileName(std::string_view raw) {
  size_t slash = raw.find_last_of("/\\");
  std::string_view base = slash == std::string_view::npos ? raw : raw.substr(slash + 1);
  std::string out = http::SanitizeUtf8(TrimWhitespace(base));
  std::erase_if(out, [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (out.size() > ChatStore::kMaxFileNameBytes) {
    size_t n = ChatStore::kMaxFileNameBytes;
    while (n > 0 && (static_cast<unsigned char>(out[n]) & 0xc0) == 0x80) --n;  // whole code points
    out.resize(n);
  }
  if (out.empty() || out == "." || out == "..") return "file";
  return out;
}

// "type/subtype" with optional parameters, printable ASCII, at most 200 bytes; otherwise the
// generic binary type.
std::string CleanContentType(std::string_view raw) {
  std::string t(TrimWhitespace(raw));
  size_t slash = t.find('/');
  bool ok = !t.empty() && t.size() <= 200 && slash != std::string::npos && slash > 0 &&
            slash + 1 < t.size() &&
            std::all_of(t.begin(), t.end(), [](unsigned char c) { return c >= 0x20 && c < 0x7f; });
  // curl's default for --data-binary says nothing about the file.
  if (ok && AsciiToLower(t).starts_with("application/x-www-form-urlencoded")) ok = false;
  return ok ? t : "application/octet-stream";
}

std::string Placeholders(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += i == 0 ? "?" : ", ?";
  return s;
}

Chat ChatFromRow(const store::Row& r) {
  Chat c;
  c.id = r.Text("id");
  c.workspace_id = r.Text("workspace_id");
  c.type = r.Text("type");
  c.name = r.Text("name");
  c.description = r.Text("description");
  c.owner_id = r.Text("owner_id");
  c.last_seq = r.Int("last_seq");
  c.created_at = r.Int("created_at");
  c.updated_at = r.Int("updated_at");
  c.archived_at = r.Int("archived_at");
  c.deleted_at = r.Int("deleted_at");
  c.member_count = r.Int("member_count");
  return c;
}

std::string Time(int64_t micros) { return auth::FormatRfc3339(micros); }

// The events of a method's result, to write into the outbox (which sets their ids).
std::vector<Event>& EventsIn(std::vector<Event>& events) { return events; }
template <typename T>
std::vector<Event>& EventsIn(WithEvents<T>& r) {
  return r.events;
}
std::vector<Event>& EventsIn(SendResult& r) { return r.events; }

}  // namespace

std::string EncodeEvent(const Event& e) {
  json::array users;
  for (const auto& u : e.users) users.emplace_back(u);
  json::object o{{"type", e.type}, {"users", std::move(users)}, {"data", e.data}};
  if (e.outbox_id != 0) o["event_id"] = e.outbox_id;
  return json::serialize(o);
}

template <typename T>
Result<T> ChatStore::Commit(const ChangeFn& change,
                            const std::function<Result<T>(store::Executor&)>& make) {
  std::optional<T> out;
  RETURN_IF_ERROR(db_.Transaction([&](store::Transaction& tx) -> Status {
    out.reset();
    RETURN_IF_ERROR(change(tx));
    ASSIGN_OR_RETURN(T value, make(tx));
    RETURN_IF_ERROR(WriteOutbox(tx, EventsIn(value)));
    out = std::move(value);
    return Status::Ok();
  }));
  return std::move(*out);
}

Status ChatStore::WriteOutbox(store::Executor& ex, std::vector<Event>& events) {
  const int64_t now = env_.NowMicros();
  for (auto& e : events) {
    e.outbox_id = 0;
    ASSIGN_OR_RETURN(store::Rows rows,
                     ex.Query("INSERT INTO chat_outbox (chat_id, payload, created_at)"
                              " VALUES (?, ?, ?) RETURNING id",
                              {e.chat_id, EncodeEvent(e), now}));
    if (rows.empty()) return Internal("chat_outbox: insert returned no id");
    e.outbox_id = rows[0].Int(0);
  }
  return Status::Ok();
}

Result<std::vector<OutboxEntry>> ChatStore::UnsentEvents(int64_t created_before, int limit) {
  ASSIGN_OR_RETURN(store::Rows rows,
                   db_.Query("SELECT id, chat_id, payload, created_at FROM chat_outbox WHERE"
                             " sent_at IS NULL AND created_at <= ? ORDER BY id LIMIT ?",
                             {created_before, static_cast<int64_t>(limit)}));
  std::vector<OutboxEntry> out;
  for (const auto& r : rows) {
    boost::system::error_code ec;
    json::value v = json::parse(r.Text(2), ec);
    OutboxEntry entry{.id = r.Int(0), .created_at = r.Int(3), .event = {}};
    entry.event.chat_id = r.Text(1);
    entry.event.outbox_id = entry.id;
    if (!ec && v.is_object()) {
      const auto& o = v.as_object();
      if (const auto* t = o.if_contains("type"); t != nullptr && t->is_string()) {
        entry.event.type = std::string(t->as_string());
      }
      if (const auto* u = o.if_contains("users"); u != nullptr && u->is_array()) {
        for (const auto& id : u->as_array()) {
          if (id.is_string()) entry.event.users.emplace_back(id.as_string());
        }
      }
      if (const auto* d = o.if_contains("data"); d != nullptr && d->is_object()) {
        entry.event.data = d->as_object();
      }
    }
    out.push_back(std::move(entry));
  }
  return out;
}

Status ChatStore::MarkSent(const std::vector<Event>& events) {
  std::string ids;
  for (const auto& e : events) {
    if (e.outbox_id == 0) continue;
    ids += (ids.empty() ? "" : ",") + std::to_string(e.outbox_id);
  }
  if (ids.empty()) return Status::Ok();
  return db_
      .Exec("UPDATE chat_outbox SET sent_at = ? WHERE id IN (" + ids + ")", {env_.NowMicros()})
      .status();
}

Status ChatStore::PruneSent(int64_t sent_before) {
  return db_
      .Exec("DELETE FROM chat_outbox WHERE sent_at IS NOT NULL AND sent_at < ?", {sent_before})
      .status();
}

Message MessageFromRow(const store::Row& r) {
  Message m;
  m.id = r.Int("id");
  m.chat_id = r.Text("chat_id");
  m.seq = r.Int("seq");
  m.sender_id = r.Text("sender_id");
  m.content = r.Text("content");
  m.reply_to = r.Int("reply_to");
  m.attachments = ParseAttachments(r.Text("attachments"));
  m.mentions = ParseJsonArray(r.Text("mentions"));
  m.reply_count = r.Int("reply_count");
  m.created_at = r.Int("created_at");
  m.edited_at = r.Int("edited_at");
  m.deleted_at = r.Int("deleted_at");
  m.pinned_at = r.Int("pinned_at");
  m.pinned_by = r.Text("pinned_by");
  return m;
}

struct ChatStore::Access {
  Chat chat;
  std::string role;  // empty: not a member
  int64_t last_read_seq = 0;

  bool member() const { return !role.empty(); }
  bool admin() const { return role == "owner" || role == "admin"; }
  bool owner() const { return role == "owner"; }
  Status RequireMember() const {
    if (!member()) return PermissionDenied("not a member of chat " + chat.id + ": join it first");
    return Status::Ok();
  }
  Status RequireAdmin(std::string_view what) const {
    RETURN_IF_ERROR(RequireMember());
    if (!admin()) {
      return PermissionDenied("only the chat's owner or admins may " + std::string(what));
    }
    return Status::Ok();
  }
  Status RequireOwner(std::string_view what) const {
    RETURN_IF_ERROR(RequireMember());
    if (!owner()) return PermissionDenied("only the chat's owner may " + std::string(what));
    return Status::Ok();
  }
  Status RequireActive() const {
    if (chat.archived_at != 0) return Conflict("chat " + chat.id + " is archived (read-only)");
    return Status::Ok();
  }
};

// ---- JSON ----

json::object ChatStore::ChatJson(const Chat& c) {
  json::object o{{"id", c.id},
                 {"workspace_id", c.workspace_id},
                 {"type", c.type},
                 {"name", c.name},
                 {"description", c.description},
                 {"owner_id", c.owner_id},
                 {"last_seq", c.last_seq},
                 {"member_count", c.member_count},
                 {"archived", c.archived_at != 0},
                 {"created_at", Time(c.created_at)},
                 {"updated_at", Time(c.updated_at)}};
  if (!c.my_role.empty()) {
    o["role"] = c.my_role;
    o["last_read_seq"] = c.last_read_seq;
    o["unread_count"] = c.unread_count;
    o["mention_count"] = c.mention_count;
  }
  return o;
}

namespace {

// `chat` for the caller, with one `type` event for `audience` carrying the chat as every member
// sees it (no caller-specific role).
WithEvents<Chat> ChatWithEvent(Chat chat, const char* type, std::vector<std::string> audience) {
  Chat public_view = chat;
  public_view.my_role.clear();
  WithEvents<Chat> out{std::move(chat), {}};
  out.events.push_back({type, out.value.id, std::move(audience), ChatStore::ChatJson(public_view)});
  return out;
}

}  // namespace

json::object ChatStore::MessageJson(const Message& m) {
  json::array attachments, mentions, reactions;
  const bool deleted = m.deleted_at != 0;
  if (!deleted) {
    for (const auto& f : m.attachments) attachments.push_back(AttachmentJson(f));
    for (const auto& u : m.mentions) mentions.emplace_back(u);
    for (const auto& r : m.reactions) {
      json::array users;
      for (const auto& u : r.user_ids) users.emplace_back(u);
      reactions.push_back(json::object{
          {"emoji", r.emoji}, {"count", r.user_ids.size()}, {"user_ids", std::move(users)}});
    }
  }
  json::object o{{"id", m.id},
                 {"chat_id", m.chat_id},
                 {"seq", m.seq},
                 {"sender_id", m.sender_id},
                 {"content", deleted ? std::string() : m.content},
                 {"attachments", std::move(attachments)},
                 {"mentions", std::move(mentions)},
                 {"reactions", std::move(reactions)},
                 {"reply_count", m.reply_count},
                 {"pinned", m.pinned_at != 0},
                 {"deleted", deleted},
                 {"created_at", Time(m.created_at)}};
  o["reply_to"] = m.reply_to == 0 ? json::value(nullptr) : json::value(m.reply_to);
  o["edited_at"] = m.edited_at == 0 ? json::value(nullptr) : json::value(Time(m.edited_at));
  if (deleted) o["deleted_at"] = Time(m.deleted_at);
  if (m.pinned_at != 0) o["pinned_by"] = m.pinned_by;
  return o;
}

json::object ChatStore::AttachmentJson(const Attachment& f) {
  return json::object{{"id", f.id},
                      {"name", f.name},
                      {"type", f.content_type},
                      {"size", f.size},
                      {"url", "/api/v1/files/" + f.id}};
}

json::object ChatStore::MemberJson(const Member& m) {
  return json::object{{"user_id", m.user_id},
                      {"role", m.role},
                      {"name", m.name},
                      {"email", m.email},
                      {"joined_at", Time(m.joined_at)},
                      {"last_read_seq", m.last_read_seq}};
}

// ---- private helpers ----

Result<ChatStore::Access> ChatStore::LoadAccess(store::Executor& ex, const Actor& a,
                                                std::string_view chat_id) {
  ASSIGN_OR_RETURN(store::Rows rows,
                   ex.Query(std::string("SELECT ") + std::string(kChatCols) +
                                ", cm.role, cm.last_read_seq AS my_last_read"
                                " FROM chat_chats c LEFT JOIN chat_members cm"
                                " ON cm.chat_id = c.id AND cm.user_id = ?"
                                " WHERE c.id = ? AND c.workspace_id = ? AND c.deleted_at IS NULL",
                            {a.user_id, chat_id, a.workspace_id}));
  if (rows.empty()) return NotFound("chat " + std::string(chat_id) + " not found");
  Access acc;
  acc.chat = ChatFromRow(rows[0]);
  acc.role = rows[0].Text("role");
  acc.last_read_seq = rows[0].Int("my_last_read");
  // Only public channels are visible to non-members; other chats do not exist for them.
  if (!acc.member() && acc.chat.type != "public_channel") {
    return NotFound("chat " + std::string(chat_id) + " not found");
  }
  acc.chat.my_role = acc.role;
  acc.chat.last_read_seq = acc.last_read_seq;
  return acc;
}

Result<Message> ChatStore::LoadMessage(store::Executor& ex, std::string_view chat_id,
                                       int64_t message_id) {
  ASSIGN_OR_RETURN(store::Rows rows,
                   ex.Query(std::string("SELECT ") + std::string(kMsgCols) +
                                " FROM chat_messages WHERE id = ? AND chat_id = ?",
                            {message_id, chat_id}));
  if (rows.empty()) {
    return NotFound("message " + std::to_string(message_id) + " not found in this chat");
  }
  std::vector<Message> one{MessageFromRow(rows[0])};
  RETURN_IF_ERROR(LoadReactions(ex, one));
  return std::move(one[0]);
}

Status ChatStore::LoadReactions(store::Executor& ex, std::vector<Message>& messages) {
  if (messages.empty()) return Status::Ok();
  store::Params ids;
  for (const auto& m : messages) ids.emplace_back(m.id);
  ASSIGN_OR_RETURN(store::Rows rows,
                   ex.Query("SELECT message_id, emoji, user_id FROM chat_reactions WHERE"
                            " message_id IN (" +
                                Placeholders(ids.size()) + ") ORDER BY created_at, user_id",
                            ids));
  for (const auto& r : rows) {
    int64_t id = r.Int(0);
    for (auto& m : messages) {
      if (m.id != id) continue;
      std::string emoji = r.Text(1);
      auto it = std::find_if(m.reactions.begin(), m.reactions.end(),
                             [&](const Reaction& x) { return x.emoji == emoji; });
      if (it == m.reactions.end()) {
        m.reactions.push_back({emoji, {}});
        it = m.reactions.end() - 1;
      }
      it->user_ids.push_back(r.Text(2));
    }
  }
  return Status::Ok();
}

Result<std::vector<std::string>> ChatStore::MemberIds(store::Executor& ex,
                                                      std::string_view chat_id) {
  ASSIGN_OR_RETURN(
      store::Rows rows,
      ex.Query("SELECT user_id FROM chat_members WHERE chat_id = ? ORDER BY user_id", {chat_id}));
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(r.Text(0));
  return out;
}

Result<std::vector<std::string>> ChatStore::ChatAudience(store::Executor& ex, const Chat& chat) {
  if (chat.type == "public_channel") return WorkspaceUserIds(ex, chat.workspace_id);
  return MemberIds(ex, chat.id);
}

Result<Chat> ChatStore::LoadChatView(store::Executor& ex, const Actor& a,
                                     std::string_view chat_id) {
  ASSIGN_OR_RETURN(Access acc, LoadAccess(ex, a, chat_id));
  Chat c = std::move(acc.chat);
  if (acc.member()) {
    ASSIGN_OR_RETURN(store::Rows unread,
                     ex.Query("SELECT COUNT(*) FROM chat_messages WHERE chat_id = ? AND seq > ?"
                              " AND sender_id <> ? AND deleted_at IS NULL",
                              {c.id, acc.last_read_seq, a.user_id}));
    ASSIGN_OR_RETURN(store::Rows mentions,
                     ex.Query("SELECT COUNT(*) FROM chat_mentions WHERE user_id = ? AND"
                              " chat_id = ? AND seq > ?",
                              {a.user_id, c.id, acc.last_read_seq}));
    c.unread_count = unread[0].Int(0);
    c.mention_count = mentions[0].Int(0);
  }
  return c;
}

Status ChatStore::CheckWorkspaceUsers(store::Executor& ex, const std::string& workspace_id,
                                      const std::vector<std::string>& user_ids,
                                      std::string_view field) {
  if (user_ids.empty()) return Status::Ok();
  store::Params params{workspace_id};
  for (const auto& u : user_ids) params.emplace_back(u);
  ASSIGN_OR_RETURN(store::Rows rows,
                   ex.Query("SELECT user_id FROM auth_memberships WHERE workspace_id = ? AND"
                            " user_id IN (" +
                                Placeholders(user_ids.size()) + ")",
                            params));
  std::set<std::string> found;
  for (const auto& r : rows) found.insert(r.Text(0));
  for (const auto& u : user_ids) {
    if (!found.count(u)) {
      return NotFound(std::string(field) + ": no user " + u + " in this workspace");
    }
  }
  return Status::Ok();
}

Result<std::vector<Attachment>> ChatStore::ResolveAttachments(store::Executor& ex,
                                                              std::string_view chat_id,
                                                              const std::vector<std::string>& ids) {
  std::vector<std::string> unique;
  for (const auto& id : ids) {
    if (std::find(unique.begin(), unique.end(), id) == unique.end()) unique.push_back(id);
  }
  std::vector<Attachment> out;
  if (unique.empty()) return out;
  store::Params params{chat_id};
  for (const auto& id : unique) params.emplace_back(id);
  ASSIGN_OR_RETURN(store::Rows rows,
                   ex.Query("SELECT id, name, content_type, size FROM chat_files WHERE"
                            " chat_id = ? AND id IN (" +
                                Placeholders(unique.size()) + ")",
                            params));
  for (const auto& id : unique) {
    auto it = std::find_if(rows.begin(), rows.end(),
                           [&](const store::Row& r) { return r.Text(0) == id; });
    if (it == rows.end()) {
      return InvalidArgument("attachments: no file " + id +
                             " in this chat (upload it with POST /api/v1/chats/{id}/files)");
    }
    out.push_back(
        Attachment{.id = id, .name = it->Text(1), .content_type = it->Text(2), .size = it->Int(3)});
  }
  return out;
}

Result<std::vector<std::string>> ChatStore::ResolveMentions(store::Executor& ex,
                                                            std::string_view chat_id,
                                                            const std::string& content) {
  auto word = [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '-' || c >= 0x80;
  };
  std::vector<std::string> tokens;
  for (size_t i = 0; i < content.size(); ++i) {
    if (content[i] != '@' || (i > 0 && word(static_cast<unsigned char>(content[i - 1])))) continue;
    size_t j = i + 1;
    while (j < content.size() && word(static_cast<unsigned char>(content[j]))) ++j;
    std::string t = AsciiToLower(content.substr(i + 1, j - i - 1));
    while (!t.empty() && (t.back() == '.' || t.back() == '-')) t.pop_back();  // "@bob." ends
    if (!t.empty()) tokens.push_back(std::move(t));
    i = j - 1;
  }
  std::vector<std::string> out;
  if (tokens.empty()) return out;
  ASSIGN_OR_RETURN(store::Rows rows,
                   ex.Query("SELECT u.id, u.name, u.email FROM chat_members cm JOIN auth_users u"
                            " ON u.id = cm.user_id WHERE cm.chat_id = ? ORDER BY u.id",
                            {chat_id}));
  for (const auto& t : tokens) {
    for (const auto& r : rows) {
      std::string id = r.Text(0);
      std::string name = AsciiToLower(r.Text(1));
      name.erase(std::remove(name.begin(), name.end(), ' '), name.end());
      std::string email = AsciiToLower(r.Text(2));
      std::string local = email.substr(0, email.find('@'));
      if (t == AsciiToLower(id) || t == name || t == local) {
        if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
        break;
      }
    }
  }
  return out;
}

// ---- chats ----

Result<WithEvents<Chat>> ChatStore::CreateChat(const Actor& a, const CreateChatRequest& r) {
  if (!IsChatType(r.type)) {
    return InvalidArgument("type: must be direct, group, private_channel or public_channel");
  }
  std::vector<std::string> others;
  for (const auto& m : r.members) {
    if (m.empty()) return InvalidArgument("members: user ids must not be empty");
    if (m != a.user_id && std::find(others.begin(), others.end(), m) == others.end()) {
      others.push_back(m);
    }
  }
  std::string name;
  if (r.type == "direct") {
    if (!r.name.empty()) return InvalidArgument("name: direct chats have no name");
    if (others.size() != 1) {
      return InvalidArgument(
          "members: a direct chat has exactly two members: give exactly one other user");
    }
  } else {
    if (r.type == "group" && others.size() < 2) {
      return InvalidArgument("members: a group needs at least three members including the creator");
    }
    if (r.type != "group" && r.name.empty()) {
      return InvalidArgument("name: required for " + r.type + "s");
    }
    if (!r.name.empty()) {
      ASSIGN_OR_RETURN(name, ValidName(r.name, "name"));
    }
  }
  if (r.description.size() > 2000 || !IsValidUtf8(r.description)) {
    return InvalidArgument("description: at most 2000 bytes of UTF-8");
  }
  std::string direct_key;
  if (r.type == "direct") {
    direct_key = std::min(a.user_id, others[0]) + "|" + std::max(a.user_id, others[0]);
  }
  const std::string name_key = name.empty() ? std::string() : AsciiToLower(name);
  const int64_t now = env_.NowMicros();
  Chat chat{.id = auth::NewId(env_, "cht_"),
            .workspace_id = a.workspace_id,
            .type = r.type,
            .name = name,
            .description = r.description,
            .owner_id = a.user_id,
            .created_at = now,
            .updated_at = now,
            .member_count = static_cast<int64_t>(others.size() + 1),
            .my_role = "owner"};
  return Commit<WithEvents<Chat>>(
      [&](store::Transaction& tx) -> Status {
        RETURN_IF_ERROR(CheckWorkspaceUsers(tx, a.workspace_id, others, "members"));
        if (!direct_key.empty()) {
          ASSIGN_OR_RETURN(store::Rows existing,
                           tx.Query("SELECT id FROM chat_chats WHERE workspace_id = ? AND"
                                    " direct_key = ?",
                                    {a.workspace_id, direct_key}));
          if (!existing.empty()) {
            return Conflict("members: a direct chat with " + others[0] + " already exists (" +
                            existing[0].Text(0) + ")");
          }
        }
        if (!name_key.empty()) {
          ASSIGN_OR_RETURN(store::Rows existing,
                           tx.Query("SELECT id FROM chat_chats WHERE workspace_id = ? AND"
                                    " name_key = ?",
                                    {a.workspace_id, name_key}));
          if (!existing.empty()) {
            return Conflict("name: a chat named '" + name + "' already exists in this workspace");
          }
        }
        auto inserted = tx.Exec(
            "INSERT INTO chat_chats (id, workspace_id, type, name, name_key, direct_key, "
            "description,"
            " owner_id, last_seq, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            {chat.id, chat.workspace_id, chat.type, chat.name, OptText(name_key),
             OptText(direct_key), chat.description, chat.owner_id, now, now});
        if (!inserted.ok()) {
          if (inserted.status().code() == StatusCode::kConflict) {
            return Conflict(direct_key.empty()
                                ? "name: a chat named '" + name +
                                      "' already exists in this workspace"
                                : "members: a direct chat with " + others[0] + " already exists");
          }
          return inserted.status();
        }
        RETURN_IF_ERROR(tx.Exec("INSERT INTO chat_members (chat_id, user_id, role, joined_at,"
                                " last_read_seq, last_read_at) VALUES (?, ?, 'owner', ?, 0, ?)",
                                {chat.id, a.user_id, now, now})
                            .status());
        for (const auto& u : others) {
          RETURN_IF_ERROR(tx.Exec("INSERT INTO chat_members (chat_id, user_id, role, joined_at,"
                                  " last_read_seq, last_read_at) VALUES (?, ?, 'member', ?, 0, ?)",
                                  {chat.id, u, now, now})
                              .status());
        }
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<WithEvents<Chat>> {
        ASSIGN_OR_RETURN(std::vector<std::string> audience, ChatAudience(ex, chat));
        return ChatWithEvent(chat, "chat.created", std::move(audience));
      });
}

Result<std::vector<Chat>> ChatStore::ListMyChats(const Actor& a) {
  ASSIGN_OR_RETURN(store::Rows rows,
                   db_.Query(std::string("SELECT c.id FROM chat_members cm JOIN chat_chats c ON"
                                         " c.id = cm.chat_id WHERE cm.user_id = ? AND"
                                         " c.workspace_id = ? AND c.deleted_at IS NULL"
                                         " ORDER BY c.updated_at DESC, c.id"),
                             {a.user_id, a.workspace_id}));
  std::vector<Chat> out;
  for (const auto& r : rows) {
    auto c = LoadChatView(db_, a, r.Text(0));
    if (!c.ok()) {
      if (c.status().code() == StatusCode::kNotFound) continue;  // left or deleted meanwhile
      return c.status();
    }
    out.push_back(std::move(*c));
  }
  return out;
}

Result<std::vector<Chat>> ChatStore::ListPublicChannels(const Actor& a) {
  ASSIGN_OR_RETURN(store::Rows rows,
                   db_.Query(std::string("SELECT ") + std::string(kChatCols) +
                                 ", cm.role FROM chat_chats c LEFT JOIN chat_members cm ON"
                                 " cm.chat_id = c.id AND cm.user_id = ? WHERE c.workspace_id = ?"
                                 " AND c.type = 'public_channel' AND c.deleted_at IS NULL"
                                 " ORDER BY c.name_key",
                             {a.user_id, a.workspace_id}));
  std::vector<Chat> out;
  for (const auto& r : rows) {
    Chat c = ChatFromRow(r);
    c.my_role = r.Text("role");
    out.push_back(std::move(c));
  }
  return out;
}

Result<Chat> ChatStore::GetChat(const Actor& a, std::string_view chat_id) {
  return LoadChatView(db_, a, chat_id);
}

Result<WithEvents<Chat>> ChatStore::UpdateChat(const Actor& a, std::string_view chat_id,
                                               const ChatUpdate& u) {
  std::vector<std::string> audience;
  return Commit<WithEvents<Chat>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireAdmin("rename or describe it"));
        RETURN_IF_ERROR(acc.RequireActive());
        const int64_t now = env_.NowMicros();
        if (u.name) {
          if (acc.chat.type == "direct") return InvalidArgument("name: direct chats have no name");
          std::string name;
          if (!u.name->empty() || acc.chat.type != "group") {
            ASSIGN_OR_RETURN(name, ValidName(*u.name, "name"));
          }
          std::string key = AsciiToLower(name);
          if (!key.empty()) {
            ASSIGN_OR_RETURN(store::Rows existing,
                             tx.Query("SELECT id FROM chat_chats WHERE workspace_id = ? AND"
                                      " name_key = ? AND id <> ?",
                                      {a.workspace_id, key, chat_id}));
            if (!existing.empty()) {
              return Conflict("name: a chat named '" + name + "' already exists in this workspace");
            }
          }
          RETURN_IF_ERROR(tx.Exec("UPDATE chat_chats SET name = ?, name_key = ?, updated_at = ?"
                                  " WHERE id = ?",
                                  {name, OptText(key), now, chat_id})
                              .status());
        }
        if (u.description) {
          if (u.description->size() > 2000 || !IsValidUtf8(*u.description)) {
            return InvalidArgument("description: at most 2000 bytes of UTF-8");
          }
          RETURN_IF_ERROR(
              tx.Exec("UPDATE chat_chats SET description = ?, updated_at = ? WHERE id = ?",
                      {*u.description, now, chat_id})
                  .status());
        }
        ASSIGN_OR_RETURN(audience, ChatAudience(tx, acc.chat));
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<WithEvents<Chat>> {
        ASSIGN_OR_RETURN(Chat chat, LoadChatView(ex, a, chat_id));
        return ChatWithEvent(std::move(chat), "chat.updated", std::move(audience));
      });
}

Result<std::vector<Event>> ChatStore::DeleteChat(const Actor& a, std::string_view chat_id) {
  std::vector<std::string> audience;
  return Commit<std::vector<Event>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireOwner("delete it"));
        ASSIGN_OR_RETURN(audience, ChatAudience(tx, acc.chat));
        // The name and the direct pair are free again once the chat is gone.
        return tx
            .Exec(
                "UPDATE chat_chats SET deleted_at = ?, name_key = NULL, direct_key = NULL"
                " WHERE id = ?",
                {env_.NowMicros(), chat_id})
            .status();
      },
      [&](store::Executor&) -> Result<std::vector<Event>> {
        std::vector<Event> events;
        events.push_back({"chat.deleted", std::string(chat_id), std::move(audience),
                          json::object{{"id", chat_id}}});
        return events;
      });
}

Result<WithEvents<Chat>> ChatStore::SetArchived(const Actor& a, std::string_view chat_id,
                                                bool archived) {
  std::vector<std::string> audience;
  return Commit<WithEvents<Chat>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireOwner(archived ? "archive it" : "unarchive it"));
        const int64_t now = env_.NowMicros();
        RETURN_IF_ERROR(
            tx.Exec("UPDATE chat_chats SET archived_at = ?, updated_at = ? WHERE id = ?",
                    {archived ? Value(now) : Value(), now, chat_id})
                .status());
        ASSIGN_OR_RETURN(audience, ChatAudience(tx, acc.chat));
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<WithEvents<Chat>> {
        ASSIGN_OR_RETURN(Chat chat, LoadChatView(ex, a, chat_id));
        return ChatWithEvent(std::move(chat), "chat.updated", std::move(audience));
      });
}

// ---- members ----

Result<std::vector<Member>> ChatStore::ListMembers(const Actor& a, std::string_view chat_id) {
  ASSIGN_OR_RETURN(Access acc, LoadAccess(db_, a, chat_id));
  (void)acc;
  ASSIGN_OR_RETURN(store::Rows rows,
                   db_.Query("SELECT cm.user_id, cm.role, cm.joined_at, cm.last_read_seq,"
                             " cm.last_read_at, u.name, u.email FROM chat_members cm LEFT JOIN"
                             " auth_users u ON u.id = cm.user_id WHERE cm.chat_id = ?"
                             " ORDER BY cm.joined_at, cm.user_id",
                             {chat_id}));
  std::vector<Member> out;
  for (const auto& r : rows) {
    out.push_back(Member{.user_id = r.Text(0),
                         .role = r.Text(1),
                         .name = r.Text(5),
                         .email = r.Text(6),
                         .joined_at = r.Int(2),
                         .last_read_seq = r.Int(3),
                         .last_read_at = r.Int(4)});
  }
  return out;
}

namespace {

Event MemberEvent(const std::string& type, std::string_view chat_id, std::string_view user_id,
                  std::string_view by, std::vector<std::string> audience) {
  return Event{type, std::string(chat_id), std::move(audience),
               json::object{{"chat_id", chat_id}, {"user_id", user_id}, {"by", by}}};
}

}  // namespace

Result<std::vector<Event>> ChatStore::AddMembers(const Actor& a, std::string_view chat_id,
                                                 const std::vector<std::string>& user_ids) {
  if (user_ids.empty()) return InvalidArgument("user_ids: must not be empty");
  if (user_ids.size() > 1000) return InvalidArgument("user_ids: at most 1000 per request");
  std::vector<std::string> added, audience;
  return Commit<std::vector<Event>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        if (acc.chat.type == "direct") {
          return InvalidArgument("user_ids: a direct chat has exactly two members; create a group");
        }
        RETURN_IF_ERROR(acc.RequireAdmin("add members"));
        RETURN_IF_ERROR(acc.RequireActive());
        RETURN_IF_ERROR(CheckWorkspaceUsers(tx, a.workspace_id, user_ids, "user_ids"));
        const int64_t now = env_.NowMicros();
        for (const auto& u : user_ids) {
          if (std::find(added.begin(), added.end(), u) != added.end()) continue;
          ASSIGN_OR_RETURN(int64_t n,
                           tx.Exec("INSERT INTO chat_members (chat_id, user_id, role, joined_at,"
                                   " last_read_seq, last_read_at) VALUES (?, ?, 'member', ?, 0, ?)"
                                   " ON CONFLICT (chat_id, user_id) DO NOTHING",
                                   {chat_id, u, now, now}));
          if (n > 0) added.push_back(u);
        }
        if (!added.empty()) {
          RETURN_IF_ERROR(
              tx.Exec("UPDATE chat_chats SET updated_at = ? WHERE id = ?", {now, chat_id})
                  .status());
        }
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return Status::Ok();
      },
      [&](store::Executor&) -> Result<std::vector<Event>> {
        std::vector<Event> events;
        for (const auto& u : added) {
          events.push_back(MemberEvent("member.joined", chat_id, u, a.user_id, audience));
        }
        return events;
      });
}

Result<std::vector<Event>> ChatStore::RemoveMember(const Actor& a, std::string_view chat_id,
                                                   std::string_view user_id) {
  if (user_id == a.user_id) return Leave(a, chat_id);
  std::vector<std::string> audience;
  return Commit<std::vector<Event>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        if (acc.chat.type == "direct") {
          return InvalidArgument("user_id: members of a direct chat cannot be removed");
        }
        RETURN_IF_ERROR(acc.RequireAdmin("remove members"));
        ASSIGN_OR_RETURN(store::Rows target,
                         tx.Query("SELECT role FROM chat_members WHERE chat_id = ? AND user_id = ?",
                                  {chat_id, user_id}));
        if (target.empty()) {
          return NotFound("user_id: " + std::string(user_id) + " is not a member of this chat");
        }
        std::string role = target[0].Text(0);
        if (role == "owner") {
          return PermissionDenied(
              "user_id: the owner cannot be removed (transfer ownership first)");
        }
        if (role == "admin" && !acc.owner()) {
          return PermissionDenied("user_id: only the owner may remove admins");
        }
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return tx
            .Exec("DELETE FROM chat_members WHERE chat_id = ? AND user_id = ?", {chat_id, user_id})
            .status();
      },
      [&](store::Executor&) -> Result<std::vector<Event>> {
        std::vector<Event> events;
        events.push_back(
            MemberEvent("member.left", chat_id, user_id, a.user_id, std::move(audience)));
        return events;
      });
}

Result<std::vector<Event>> ChatStore::Join(const Actor& a, std::string_view chat_id) {
  std::vector<std::string> audience;
  bool joined = false;
  return Commit<std::vector<Event>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        if (acc.member()) return Status::Ok();  // already in: nothing to do
        if (acc.chat.type != "public_channel") {
          return PermissionDenied(acc.chat.type == "private_channel"
                                      ? "private channels are joined by invitation only"
                                      : acc.chat.type +
                                            " chats cannot be joined; members are added");
        }
        RETURN_IF_ERROR(acc.RequireActive());
        const int64_t now = env_.NowMicros();
        RETURN_IF_ERROR(tx.Exec("INSERT INTO chat_members (chat_id, user_id, role, joined_at,"
                                " last_read_seq, last_read_at) VALUES (?, ?, 'member', ?, 0, ?)",
                                {chat_id, a.user_id, now, now})
                            .status());
        joined = true;
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return Status::Ok();
      },
      [&](store::Executor&) -> Result<std::vector<Event>> {
        std::vector<Event> events;
        if (joined) {
          events.push_back(
              MemberEvent("member.joined", chat_id, a.user_id, a.user_id, std::move(audience)));
        }
        return events;
      });
}

Result<std::vector<Event>> ChatStore::Leave(const Actor& a, std::string_view chat_id) {
  std::vector<std::string> audience;
  return Commit<std::vector<Event>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireMember());
        if (acc.chat.type == "direct") return InvalidArgument("direct chats cannot be left");
        if (acc.owner() && acc.chat.member_count > 1) {
          return InvalidArgument("the owner must transfer ownership before leaving");
        }
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return tx
            .Exec("DELETE FROM chat_members WHERE chat_id = ? AND user_id = ?",
                  {chat_id, a.user_id})
            .status();
      },
      [&](store::Executor&) -> Result<std::vector<Event>> {
        std::vector<Event> events;
        events.push_back(
            MemberEvent("member.left", chat_id, a.user_id, a.user_id, std::move(audience)));
        return events;
      });
}

Result<std::vector<Event>> ChatStore::SetMemberRole(const Actor& a, std::string_view chat_id,
                                                    std::string_view user_id,
                                                    std::string_view role) {
  if (role != "admin" && role != "member") {
    return InvalidArgument("role: must be admin or member (use transfer for ownership)");
  }
  std::vector<std::string> audience;
  return Commit<std::vector<Event>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireOwner("change roles"));
        if (user_id == a.user_id) return InvalidArgument("user_id: the owner's role is owner");
        ASSIGN_OR_RETURN(int64_t n, tx.Exec("UPDATE chat_members SET role = ? WHERE chat_id = ? AND"
                                            " user_id = ?",
                                            {role, chat_id, user_id}));
        if (n == 0) {
          return NotFound("user_id: " + std::string(user_id) + " is not a member of this chat");
        }
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return Status::Ok();
      },
      [&](store::Executor&) -> Result<std::vector<Event>> {
        Event e = MemberEvent("member.updated", chat_id, user_id, a.user_id, std::move(audience));
        e.data["role"] = role;
        return std::vector<Event>{std::move(e)};
      });
}

Result<std::vector<Event>> ChatStore::TransferOwnership(const Actor& a, std::string_view chat_id,
                                                        std::string_view new_owner) {
  if (new_owner.empty()) return InvalidArgument("user_id: required");
  std::vector<std::string> audience;
  return Commit<std::vector<Event>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireOwner("transfer ownership"));
        if (new_owner == a.user_id) return InvalidArgument("user_id: already the owner");
        ASSIGN_OR_RETURN(int64_t n,
                         tx.Exec("UPDATE chat_members SET role = 'owner' WHERE chat_id = ? AND"
                                 " user_id = ?",
                                 {chat_id, new_owner}));
        if (n == 0) {
          return NotFound("user_id: " + std::string(new_owner) + " is not a member of this chat");
        }
        RETURN_IF_ERROR(tx.Exec("UPDATE chat_members SET role = 'admin' WHERE chat_id = ? AND"
                                " user_id = ?",
                                {chat_id, a.user_id})
                            .status());
        RETURN_IF_ERROR(tx.Exec("UPDATE chat_chats SET owner_id = ?, updated_at = ? WHERE id = ?",
                                {new_owner, env_.NowMicros(), chat_id})
                            .status());
        ASSIGN_OR_RETURN(audience, ChatAudience(tx, acc.chat));
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<std::vector<Event>> {
        ASSIGN_OR_RETURN(Chat chat, LoadChatView(ex, a, chat_id));
        chat.my_role.clear();
        std::vector<Event> events;
        events.push_back(
            {"chat.updated", std::string(chat_id), std::move(audience), ChatJson(chat)});
        return events;
      });
}

// ---- messages ----

Result<SendResult> ChatStore::Send(const Actor& a, std::string_view chat_id, const SendRequest& r) {
  RETURN_IF_ERROR(ValidContent(r.content));
  if (r.idempotency_key.size() > 128 || HasControl(r.idempotency_key)) {
    return InvalidArgument("idempotency_key: at most 128 printable characters");
  }
  if (r.attachments.size() > kMaxAttachments) {
    return InvalidArgument("attachments: at most " + std::to_string(kMaxAttachments));
  }
  for (const auto& att : r.attachments) {
    if (att.empty() || att.size() > 200 || HasControl(att)) {
      return InvalidArgument("attachments: each must be a file id (POST /chats/{id}/files)");
    }
  }
  const bool keyed = !r.idempotency_key.empty();
  auto find_by_key = [&](store::Executor& ex) -> Result<store::Rows> {
    return ex.Query(std::string("SELECT ") + std::string(kMsgCols) +
                        " FROM chat_messages WHERE chat_id = ? AND sender_id = ? AND"
                        " idempotency_key = ?",
                    {chat_id, a.user_id, r.idempotency_key});
  };
  auto replay = [&]() -> Result<SendResult> {
    ASSIGN_OR_RETURN(Access acc, LoadAccess(db_, a, chat_id));
    RETURN_IF_ERROR(acc.RequireMember());
    ASSIGN_OR_RETURN(store::Rows rows, find_by_key(db_));
    if (rows.empty()) return Internal("idempotent replay found no message");
    std::vector<Message> one{MessageFromRow(rows[0])};
    RETURN_IF_ERROR(LoadReactions(db_, one));
    return SendResult{std::move(one[0]), false, {}};
  };
  // Fast path for retries; the transaction below decides under the chat's row lock.
  if (keyed) {
    ASSIGN_OR_RETURN(store::Rows rows, find_by_key(db_));
    if (!rows.empty()) return replay();
  }

  bool replayed = false;
  Message m;
  std::vector<std::string> audience;
  auto sent = Commit<SendResult>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireMember());
        RETURN_IF_ERROR(acc.RequireActive());
        const int64_t now = env_.NowMicros();
        // The sequence number comes from the chat row inside this transaction: the update locks the
        // row (PostgreSQL) or runs under the single writer (SQLite), so numbers are gap-free and a
        // rollback returns the number.
        ASSIGN_OR_RETURN(store::Rows seq,
                         tx.Query("UPDATE chat_chats SET last_seq = last_seq + 1, updated_at = ?"
                                  " WHERE id = ? RETURNING last_seq",
                                  {now, chat_id}));
        if (seq.empty()) return NotFound("chat " + std::string(chat_id) + " not found");
        if (keyed) {
          // Re-checked after taking the lock: a concurrent sender with this key has committed.
          ASSIGN_OR_RETURN(store::Rows rows, find_by_key(tx));
          if (!rows.empty()) {
            replayed = true;
            return Conflict("idempotency key already used");  // rolls the seq back
          }
        }
        int64_t reply_to = 0;
        if (r.reply_to != 0) {
          auto target = LoadMessage(tx, chat_id, r.reply_to);
          if (!target.ok()) {
            if (target.status().code() == StatusCode::kNotFound) {
              return NotFound("reply_to: no message " + std::to_string(r.reply_to) +
                              " in this chat");
            }
            return target.status();
          }
          if (target->deleted_at != 0) {
            return InvalidArgument("reply_to: message " + std::to_string(r.reply_to) +
                                   " was deleted");
          }
          reply_to = target->reply_to != 0 ? target->reply_to : target->id;  // threads are flat
          RETURN_IF_ERROR(
              tx.Exec("UPDATE chat_messages SET reply_count = reply_count + 1 WHERE id = ?",
                      {reply_to})
                  .status());
        }
        ASSIGN_OR_RETURN(std::vector<std::string> mentions,
                         ResolveMentions(tx, chat_id, r.content));
        ASSIGN_OR_RETURN(std::vector<Attachment> attachments,
                         ResolveAttachments(tx, chat_id, r.attachments));
        ASSIGN_OR_RETURN(
            store::Rows ins,
            tx.Query("INSERT INTO chat_messages (chat_id, seq, sender_id, content, reply_to,"
                     " attachments, mentions, idempotency_key, reply_count, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
                     " ON CONFLICT (chat_id, sender_id, idempotency_key) DO NOTHING RETURNING id",
                     {chat_id, seq[0].Int(0), a.user_id, r.content, OptInt(reply_to),
                      AttachmentsText(attachments), JsonArrayText(mentions),
                      keyed ? Value(r.idempotency_key) : Value(), now}));
        if (ins.empty()) {
          replayed = true;
          return Conflict("idempotency key already used");
        }
        m = Message{.id = ins[0].Int(0),
                    .chat_id = std::string(chat_id),
                    .seq = seq[0].Int(0),
                    .sender_id = a.user_id,
                    .content = r.content,
                    .reply_to = reply_to,
                    .attachments = std::move(attachments),
                    .mentions = mentions,
                    .created_at = now};
        for (const auto& u : mentions) {
          RETURN_IF_ERROR(tx.Exec("INSERT INTO chat_mentions (message_id, chat_id, seq, user_id)"
                                  " VALUES (?, ?, ?, ?)",
                                  {m.id, chat_id, m.seq, u})
                              .status());
        }
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return Status::Ok();
      },
      [&](store::Executor&) -> Result<SendResult> {
        return SendResult{m, true, {{"message.created", m.chat_id, audience, MessageJson(m)}}};
      });
  if (!sent.ok() && replayed) return replay();
  return sent;
}

Result<MessagePage> ChatStore::ListMessages(const Actor& a, std::string_view chat_id,
                                            int64_t before, int64_t after, int64_t around,
                                            int limit) {
  if (limit < 1 || limit > kMaxPageSize) {
    return InvalidArgument("limit: must be 1.." + std::to_string(kMaxPageSize));
  }
  if ((before >= 0) + (after >= 0) + (around >= 0) > 1) {
    return InvalidArgument("before, after, around: give at most one");
  }
  ASSIGN_OR_RETURN(Access acc, LoadAccess(db_, a, chat_id));
  (void)acc;
  const std::string select =
      std::string("SELECT ") + std::string(kMsgCols) + " FROM chat_messages WHERE chat_id = ? AND ";
  MessagePage page;
  auto take = [&](const store::Rows& rows, bool reverse) {
    std::vector<Message> ms;
    for (const auto& r : rows) ms.push_back(MessageFromRow(r));
    if (static_cast<int>(ms.size()) > limit) {
      page.has_more = true;
      ms.resize(limit);
    }
    if (reverse) std::reverse(ms.begin(), ms.end());
    return ms;
  };
  if (after >= 0) {
    ASSIGN_OR_RETURN(store::Rows rows, db_.Query(select + "seq > ? ORDER BY seq LIMIT ?",
                                                 {chat_id, after, limit + 1}));
    page.messages = take(rows, false);
  } else if (around >= 0) {
    int older = limit / 2;
    ASSIGN_OR_RETURN(store::Rows lo, db_.Query(select + "seq < ? ORDER BY seq DESC LIMIT ?",
                                               {chat_id, around, older}));
    ASSIGN_OR_RETURN(store::Rows hi, db_.Query(select + "seq >= ? ORDER BY seq LIMIT ?",
                                               {chat_id, around, limit - older}));
    for (auto it = lo.end(); it != lo.begin();) page.messages.push_back(MessageFromRow(*--it));
    for (const auto& r : hi) page.messages.push_back(MessageFromRow(r));
  } else {
    int64_t bound = before >= 0 ? before : INT64_MAX;
    ASSIGN_OR_RETURN(store::Rows rows, db_.Query(select + "seq < ? ORDER BY seq DESC LIMIT ?",
                                                 {chat_id, bound, limit + 1}));
    page.messages = take(rows, true);
  }
  RETURN_IF_ERROR(LoadReactions(db_, page.messages));
  return page;
}

Result<Message> ChatStore::GetMessage(const Actor& a, std::string_view chat_id,
                                      int64_t message_id) {
  ASSIGN_OR_RETURN(Access acc, LoadAccess(db_, a, chat_id));
  (void)acc;
  return LoadMessage(db_, chat_id, message_id);
}

Result<WithEvents<Message>> ChatStore::EditMessage(const Actor& a, std::string_view chat_id,
                                                   int64_t message_id, const std::string& content) {
  RETURN_IF_ERROR(ValidContent(content));
  std::vector<std::string> audience;
  return Commit<WithEvents<Message>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireMember());
        RETURN_IF_ERROR(acc.RequireActive());
        ASSIGN_OR_RETURN(Message m, LoadMessage(tx, chat_id, message_id));
        if (m.sender_id != a.user_id) return PermissionDenied("only the sender may edit a message");
        if (m.deleted_at != 0)
          return Conflict("message " + std::to_string(message_id) + " was deleted");
        if (m.content == content) return Status::Ok();
        const int64_t now = env_.NowMicros();
        RETURN_IF_ERROR(tx.Exec("INSERT INTO chat_message_edits (message_id, edited_at, content)"
                                " VALUES (?, ?, ?)",
                                {message_id, now, m.content})
                            .status());
        ASSIGN_OR_RETURN(std::vector<std::string> mentions, ResolveMentions(tx, chat_id, content));
        RETURN_IF_ERROR(tx.Exec("UPDATE chat_messages SET content = ?, edited_at = ?, mentions = ?"
                                " WHERE id = ?",
                                {content, now, JsonArrayText(mentions), message_id})
                            .status());
        RETURN_IF_ERROR(
            tx.Exec("DELETE FROM chat_mentions WHERE message_id = ?", {message_id}).status());
        for (const auto& u : mentions) {
          RETURN_IF_ERROR(tx.Exec("INSERT INTO chat_mentions (message_id, chat_id, seq, user_id)"
                                  " VALUES (?, ?, ?, ?)",
                                  {message_id, chat_id, m.seq, u})
                              .status());
        }
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<WithEvents<Message>> {
        ASSIGN_OR_RETURN(Message m, LoadMessage(ex, chat_id, message_id));
        WithEvents<Message> out{m, {}};
        if (!audience.empty()) {
          out.events.push_back({"message.updated", m.chat_id, std::move(audience), MessageJson(m)});
        }
        return out;
      });
}

Result<WithEvents<Message>> ChatStore::DeleteMessage(const Actor& a, std::string_view chat_id,
                                                     int64_t message_id) {
  std::vector<std::string> audience;
  return Commit<WithEvents<Message>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireMember());
        ASSIGN_OR_RETURN(Message m, LoadMessage(tx, chat_id, message_id));
        if (m.sender_id != a.user_id && !acc.admin()) {
          return PermissionDenied(
              "only the sender or the chat's owner or admins may delete a message");
        }
        if (m.deleted_at != 0) return Status::Ok();  // already a tombstone
        // Soft delete: the row keeps its seq (no gap), the text and its history are erased.
        RETURN_IF_ERROR(tx.Exec("UPDATE chat_messages SET deleted_at = ?, content = '',"
                                " attachments = '[]', mentions = '[]', pinned_at = NULL,"
                                " pinned_by = NULL WHERE id = ?",
                                {env_.NowMicros(), message_id})
                            .status());
        RETURN_IF_ERROR(
            tx.Exec("DELETE FROM chat_message_edits WHERE message_id = ?", {message_id}).status());
        RETURN_IF_ERROR(
            tx.Exec("DELETE FROM chat_mentions WHERE message_id = ?", {message_id}).status());
        RETURN_IF_ERROR(
            tx.Exec("DELETE FROM chat_reactions WHERE message_id = ?", {message_id}).status());
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<WithEvents<Message>> {
        ASSIGN_OR_RETURN(Message m, LoadMessage(ex, chat_id, message_id));
        WithEvents<Message> out{m, {}};
        if (!audience.empty()) {
          out.events.push_back({"message.deleted", m.chat_id, std::move(audience),
                                json::object{{"id", m.id},
                                             {"chat_id", m.chat_id},
                                             {"seq", m.seq},
                                             {"deleted_at", Time(m.deleted_at)}}});
        }
        return out;
      });
}

Result<std::vector<std::pair<std::string, int64_t>>> ChatStore::History(const Actor& a,
                                                                        std::string_view chat_id,
                                                                        int64_t message_id) {
  ASSIGN_OR_RETURN(Message m, GetMessage(a, chat_id, message_id));
  (void)m;
  ASSIGN_OR_RETURN(store::Rows rows,
                   db_.Query("SELECT content, edited_at FROM chat_message_edits WHERE"
                             " message_id = ? ORDER BY edited_at",
                             {message_id}));
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& r : rows) out.emplace_back(r.Text(0), r.Int(1));
  return out;
}

Result<WithEvents<Message>> ChatStore::React(const Actor& a, std::string_view chat_id,
                                             int64_t message_id, const std::string& emoji,
                                             bool add) {
  if (emoji.empty() || emoji.size() > 64 || !IsValidUtf8(emoji) ||
      std::any_of(emoji.begin(), emoji.end(),
                  [](unsigned char c) { return c <= 0x20 || c == 0x7f; })) {
    return InvalidArgument("emoji: 1-64 bytes of UTF-8 without spaces");
  }
  std::vector<std::string> audience;
  bool changed = false;
  return Commit<WithEvents<Message>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireMember());
        RETURN_IF_ERROR(acc.RequireActive());
        ASSIGN_OR_RETURN(Message m, LoadMessage(tx, chat_id, message_id));
        if (m.deleted_at != 0)
          return Conflict("message " + std::to_string(message_id) + " was deleted");
        int64_t n = 0;
        if (add) {
          ASSIGN_OR_RETURN(n, tx.Exec("INSERT INTO chat_reactions (message_id, user_id, emoji,"
                                      " created_at) VALUES (?, ?, ?, ?) ON CONFLICT"
                                      " (message_id, user_id, emoji) DO NOTHING",
                                      {message_id, a.user_id, emoji, env_.NowMicros()}));
        } else {
          ASSIGN_OR_RETURN(n, tx.Exec("DELETE FROM chat_reactions WHERE message_id = ? AND"
                                      " user_id = ? AND emoji = ?",
                                      {message_id, a.user_id, emoji}));
        }
        changed = n > 0;
        if (changed) {
          ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        }
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<WithEvents<Message>> {
        ASSIGN_OR_RETURN(Message m, LoadMessage(ex, chat_id, message_id));
        WithEvents<Message> out{m, {}};
        if (changed) {
          out.events.push_back({add ? "reaction.added" : "reaction.removed", m.chat_id,
                                std::move(audience),
                                json::object{{"chat_id", m.chat_id},
                                             {"message_id", m.id},
                                             {"user_id", a.user_id},
                                             {"emoji", emoji}}});
        }
        return out;
      });
}

Result<std::vector<Message>> ChatStore::Thread(const Actor& a, std::string_view chat_id,
                                               int64_t root_id) {
  ASSIGN_OR_RETURN(Message root, GetMessage(a, chat_id, root_id));
  ASSIGN_OR_RETURN(store::Rows rows,
                   db_.Query(std::string("SELECT ") + std::string(kMsgCols) +
                                 " FROM chat_messages WHERE reply_to = ? AND chat_id = ?"
                                 " ORDER BY seq LIMIT 1000",
                             {root.id, chat_id}));
  std::vector<Message> out;
  for (const auto& r : rows) out.push_back(MessageFromRow(r));
  RETURN_IF_ERROR(LoadReactions(db_, out));
  return out;
}

Result<WithEvents<Message>> ChatStore::Pin(const Actor& a, std::string_view chat_id,
                                           int64_t message_id, bool pin) {
  std::vector<std::string> audience;
  return Commit<WithEvents<Message>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireMember());
        RETURN_IF_ERROR(acc.RequireActive());
        ASSIGN_OR_RETURN(Message m, LoadMessage(tx, chat_id, message_id));
        if (m.deleted_at != 0)
          return Conflict("message " + std::to_string(message_id) + " was deleted");
        RETURN_IF_ERROR(
            tx.Exec("UPDATE chat_messages SET pinned_at = ?, pinned_by = ? WHERE id = ?",
                    {pin ? Value(env_.NowMicros()) : Value(), pin ? Value(a.user_id) : Value(),
                     message_id})
                .status());
        ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<WithEvents<Message>> {
        ASSIGN_OR_RETURN(Message m, LoadMessage(ex, chat_id, message_id));
        WithEvents<Message> out{m, {}};
        out.events.push_back({"message.updated", m.chat_id, std::move(audience), MessageJson(m)});
        return out;
      });
}

Result<std::vector<Message>> ChatStore::Pins(const Actor& a, std::string_view chat_id) {
  ASSIGN_OR_RETURN(Access acc, LoadAccess(db_, a, chat_id));
  (void)acc;
  ASSIGN_OR_RETURN(store::Rows rows,
                   db_.Query(std::string("SELECT ") + std::string(kMsgCols) +
                                 " FROM chat_messages WHERE chat_id = ? AND pinned_at IS NOT NULL"
                                 " ORDER BY pinned_at DESC LIMIT 1000",
                             {chat_id}));
  std::vector<Message> out;
  for (const auto& r : rows) out.push_back(MessageFromRow(r));
  RETURN_IF_ERROR(LoadReactions(db_, out));
  return out;
}

// ---- attachments ----

Status ChatStore::CheckCanUpload(const Actor& a, std::string_view chat_id) {
  ASSIGN_OR_RETURN(Access acc, LoadAccess(db_, a, chat_id));
  RETURN_IF_ERROR(acc.RequireMember());
  return acc.RequireActive();
}

Result<Attachment> ChatStore::AddAttachment(const Actor& a, std::string_view chat_id,
                                            const NewAttachment& file) {
  Attachment f{.id = auth::NewId(env_, "fil_"),
               .chat_id = std::string(chat_id),
               .uploader_id = a.user_id,
               .name = CleanFileName(file.name),
               .content_type = CleanContentType(file.content_type),
               .sha256 = file.sha256,
               .size = file.size,
               .created_at = env_.NowMicros()};
  RETURN_IF_ERROR(db_.Transaction([&](store::Transaction& tx) -> Status {
    ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
    RETURN_IF_ERROR(acc.RequireMember());
    RETURN_IF_ERROR(acc.RequireActive());
    return tx
        .Exec(
            "INSERT INTO chat_files (id, chat_id, workspace_id, uploader_id, name, content_type,"
            " size, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {f.id, f.chat_id, a.workspace_id, f.uploader_id, f.name, f.content_type, f.size,
             f.sha256, f.created_at})
        .status();
  }));
  return f;
}

Result<Attachment> ChatStore::GetAttachment(const Actor& a, std::string_view file_id) {
  ASSIGN_OR_RETURN(store::Rows rows,
                   db_.Query("SELECT id, chat_id, uploader_id, name, content_type, size, sha256,"
                             " created_at FROM chat_files WHERE id = ? AND workspace_id = ?",
                             {file_id, a.workspace_id}));
  if (rows.empty()) return NotFound("file " + std::string(file_id) + " not found");
  const store::Row& r = rows[0];
  Attachment f{.id = r.Text(0),
               .chat_id = r.Text(1),
               .uploader_id = r.Text(2),
               .name = r.Text(3),
               .content_type = r.Text(4),
               .sha256 = r.Text(6),
               .size = r.Int(5),
               .created_at = r.Int(7)};
  auto acc = LoadAccess(db_, a, f.chat_id);
  if (!acc.ok()) {
    if (acc.status().code() == StatusCode::kNotFound) {
      return NotFound("file " + std::string(file_id) + " not found");
    }
    return acc.status();
  }
  RETURN_IF_ERROR(acc->RequireMember());
  return f;
}

// ---- read state ----

Result<WithEvents<ReadState>> ChatStore::MarkRead(const Actor& a, std::string_view chat_id,
                                                  int64_t seq) {
  std::vector<std::string> audience;
  bool advanced = false;
  return Commit<WithEvents<ReadState>>(
      [&](store::Transaction& tx) -> Status {
        ASSIGN_OR_RETURN(Access acc, LoadAccess(tx, a, chat_id));
        RETURN_IF_ERROR(acc.RequireMember());
        if (seq < 0 || seq > acc.chat.last_seq) {
          return InvalidArgument("seq: must be between 0 and the chat's last seq " +
                                 std::to_string(acc.chat.last_seq));
        }
        ASSIGN_OR_RETURN(int64_t n,
                         tx.Exec("UPDATE chat_members SET last_read_seq = ?,"
                                 " last_read_at = ? WHERE chat_id = ? AND user_id = ? AND"
                                 " last_read_seq < ?",
                                 {seq, env_.NowMicros(), chat_id, a.user_id, seq}));
        advanced = n > 0;
        if (advanced) {
          ASSIGN_OR_RETURN(audience, MemberIds(tx, chat_id));
        }
        return Status::Ok();
      },
      [&](store::Executor& ex) -> Result<WithEvents<ReadState>> {
        ASSIGN_OR_RETURN(Chat c, LoadChatView(ex, a, chat_id));
        WithEvents<ReadState> out{{c.id, c.last_read_seq, c.unread_count, c.mention_count}, {}};
        if (advanced) {
          out.events.push_back(
              {"read.updated", c.id, std::move(audience),
               json::object{
                   {"chat_id", c.id}, {"user_id", a.user_id}, {"last_read_seq", c.last_read_seq}}});
        }
        return out;
      });
}

Result<std::vector<Member>> ChatStore::Receipts(const Actor& a, std::string_view chat_id,
                                                int64_t message_id) {
  ASSIGN_OR_RETURN(Message m, GetMessage(a, chat_id, message_id));
  ASSIGN_OR_RETURN(std::vector<Member> members, ListMembers(a, chat_id));
  std::vector<Member> out;
  for (auto& mem : members) {
    if (mem.user_id != m.sender_id && mem.last_read_seq >= m.seq) out.push_back(std::move(mem));
  }
  return out;
}

Result<std::vector<std::string>> ChatStore::MemberIdsForMember(const Actor& a,
                                                               std::string_view chat_id) {
  ASSIGN_OR_RETURN(Access acc, LoadAccess(db_, a, chat_id));
  RETURN_IF_ERROR(acc.RequireMember());
  return MemberIds(db_, chat_id);
}

Result<std::vector<std::string>> ChatStore::WorkspaceUserIds(std::string_view workspace_id) {
  return WorkspaceUserIds(db_, workspace_id);
}

Result<std::vector<std::string>> ChatStore::WorkspaceUserIds(store::Executor& ex,
                                                             std::string_view workspace_id) {
  ASSIGN_OR_RETURN(store::Rows rows,
                   ex.Query("SELECT user_id FROM auth_memberships WHERE workspace_id = ?"
                            " ORDER BY user_id",
                            {workspace_id}));
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.Text(0));
  return out;
}

}  // namespace atrium::chat
