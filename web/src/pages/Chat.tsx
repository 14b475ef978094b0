// Chat: chat list with unread counts, creating each chat type, public-channel browsing, the
// message list (infinite scroll upwards), composer (Enter sends, Shift+Enter new line, one
// idempotency key per message so retries never duplicate), edits, deletes, reactions, threads,
// read receipts, typing indicator and presence, all live over SSE (lib/events.ts); and search.
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { api, errorText, newIdempotencyKey, qs } from "../api/client";
import { useAuth } from "../auth";
import { ErrorBox, Empty, Field, Select, Status, TextArea } from "../components/ui";
import { useLoad, usePageTitle } from "../hooks";
import { mergeMessages, safeHighlight } from "../lib/chat";
import { ChatEventStream, type ChatEvent, type ConnState } from "../lib/events";

export interface Chat {
  id: string;
  type: "direct" | "group" | "private_channel" | "public_channel";
  name: string;
  description: string;
  owner_id: string;
  last_seq: number;
  member_count: number;
  archived: boolean;
  role?: string;
  last_read_seq?: number;
  unread_count?: number;
  mention_count?: number;
  joined?: boolean;
  last_message?: Message | null;
}
export interface Message {
  id: number | string;
  chat_id: string;
  seq: number;
  sender_id: string;
  content: string;
  reply_to: number | string | null;
  mentions: string[];
  reactions: { emoji: string; count: number; user_ids: string[] }[];
  reply_count: number;
  pinned: boolean;
  deleted: boolean;
  created_at: string;
  edited_at: string | null;
}
interface Member {
  user_id: string;
  role: string;
  name: string;
  email: string;
  last_read_seq: number;
}
interface WsMember {
  user_id: string;
  email: string;
  name: string;
}

const REACTIONS = ["👍", "❤️", "😄", "🎉"];
const TYPE_LABEL: Record<Chat["type"], string> = {
  direct: "Direct message",
  group: "Group",
  private_channel: "Private channel",
  public_channel: "Public channel",
};

function chatTitle(c: Chat, me: string, names: Map<string, string>, members?: Member[]): string {
  const dmName = (id: string) => names.get(id) ?? id;
  if (c.name) return (c.type.endsWith("channel") ? "#" : "") + c.name;
  if (c.type === "direct" && members) {
    const other = members.find((m) => m.user_id !== me);
    if (other) return other.name || other.email || dmName(other.user_id);
  }
  return c.type === "direct" ? "Direct message" : `Group (${c.member_count})`;
}

/** A direct chat's title: the other member's name (its members are loaded once). */
function DirectName({ chat, me, names }: { chat: Chat; me: string; names: Map<string, string> }) {
  const members = useLoad(() => api.get<{ members: Member[] }>(`/api/v1/chats/${chat.id}/members`), [chat.id]);
  return <>{chatTitle(chat, me, names, members.data?.members)}</>;
}

function NewChatForm({ wsMembers, me, onCreated, onClose }: { wsMembers: WsMember[]; me: string; onCreated: (c: Chat) => void; onClose: () => void }) {
  const [type, setType] = useState<Chat["type"]>("public_channel");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [members, setMembers] = useState<string[]>([]);
  const [error, setError] = useState("");
  const others = wsMembers.filter((m) => m.user_id !== me);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const body: Record<string, unknown> = { type, members };
      if (type !== "direct" && name.trim()) body.name = name.trim();
      if (description.trim()) body.description = description.trim();
      const c = await api.post<Chat>("/api/v1/chats", body);
      setName("");
      setDescription("");
      setMembers([]);
      setError("");
      onCreated(c);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form
      onSubmit={submit}
      aria-label="New chat"
      className="new-chat"
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          onClose();
        }
      }}
    >
      <Select label="Chat type" autoFocus value={type} onChange={(e) => setType(e.target.value as Chat["type"])}>
        {(Object.keys(TYPE_LABEL) as Chat["type"][]).map((t) => (
          <option key={t} value={t}>
            {TYPE_LABEL[t]}
          </option>
        ))}
      </Select>
      {type !== "direct" && <Field label="Chat name" value={name} onChange={(e) => setName(e.target.value)} required={type.endsWith("channel")} maxLength={80} />}
      {type !== "direct" && <Field label="Chat description" value={description} onChange={(e) => setDescription(e.target.value)} />}
      {type !== "public_channel" && (
        <div className="field">
          <label htmlFor="chat-members">{type === "direct" ? "Person" : "Members"}</label>
          <select
            id="chat-members"
            aria-describedby={type === "group" ? "chat-members-hint" : undefined}
            multiple={type !== "direct"}
            value={type === "direct" ? members[0] ?? "" : members}
            onChange={(e) => setMembers(Array.from(e.target.selectedOptions).map((o) => o.value).filter(Boolean))}
            size={type === "direct" ? undefined : Math.min(6, Math.max(2, others.length))}
          >
            {type === "direct" && <option value="">Choose…</option>}
            {others.map((m) => (
              <option key={m.user_id} value={m.user_id}>
                {m.name || m.email}
              </option>
            ))}
          </select>
          {type === "group" && (
            <small id="chat-members-hint" className="hint">
              A group has at least two other members (Ctrl or Shift to choose several); its name is optional.
            </small>
          )}
        </div>
      )}
      <ErrorBox error={error} />
      <button type="submit">Create chat</button>
    </form>
  );
}

function MessageItem({
  m,
  me,
  names,
  chatId,
  onChanged,
  onThread,
  seenBy,
}: {
  m: Message;
  me: string;
  names: Map<string, string>;
  chatId: string;
  onChanged: (m: Message) => void;
  onThread?: (m: Message) => void;
  seenBy: string[];
}) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(m.content);
  const [error, setError] = useState("");
  const mine = m.sender_id === me;
  const base = `/api/v1/chats/${chatId}/messages/${m.id}`;
  const run = async (fn: () => Promise<Message | undefined>) => {
    try {
      const r = await fn();
      if (r) onChanged(r);
      setError("");
    } catch (err) {
      setError(errorText(err));
    }
  };
  const sender = names.get(m.sender_id) ?? m.sender_id;
  return (
    <li className={`msg${mine ? " mine" : ""}`} data-seq={m.seq} aria-label={`${sender}: ${m.deleted ? "deleted message" : m.content}`}>
      <div className="msg-head">
        <strong>{sender}</strong> <time dateTime={m.created_at}>{new Date(m.created_at).toLocaleTimeString()}</time>
        {m.edited_at && <span className="muted"> (edited)</span>}
        {m.pinned && <span className="chip">pinned</span>}
      </div>
      {editing ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void run(() => api.patch<Message>(base, { content: text })).then(() => setEditing(false));
          }}
        >
          <TextArea label="Edit message" value={text} onChange={(e) => setText(e.target.value)} rows={2} autoFocus />
          <button type="submit">Save edit</button>{" "}
          <button type="button" onClick={() => setEditing(false)}>
            Cancel edit
          </button>
        </form>
      ) : (
        <div className="msg-body">{m.deleted ? <em className="muted">message deleted</em> : m.content}</div>
      )}
      {!m.deleted && (
        <div className="msg-actions">
          {m.reactions.map((r) => (
            <button
              key={r.emoji}
              type="button"
              className={`chip${r.user_ids.includes(me) ? " on" : ""}`}
              aria-pressed={r.user_ids.includes(me)}
              aria-label={`${r.emoji} ${r.count}, ${r.user_ids.includes(me) ? "remove your reaction" : "react"}`}
              onClick={() => void run(() => (r.user_ids.includes(me) ? api.del<Message>(`${base}/reactions/${encodeURIComponent(r.emoji)}`) : api.put<Message>(`${base}/reactions/${encodeURIComponent(r.emoji)}`)))}
            >
              {r.emoji} {r.count}
            </button>
          ))}
          {REACTIONS.filter((e) => !m.reactions.some((r) => r.emoji === e)).map((e) => (
            <button key={e} type="button" className="chip ghost" aria-label={`React with ${e}`} onClick={() => void run(() => api.put<Message>(`${base}/reactions/${encodeURIComponent(e)}`))}>
              {e}
            </button>
          ))}
          {onThread && (
            <button type="button" className="linklike" onClick={() => onThread(m)}>
              {m.reply_count > 0 ? `${m.reply_count} ${m.reply_count === 1 ? "reply" : "replies"}` : "Reply in thread"}
            </button>
          )}
          {mine && (
            <>
              <button type="button" className="linklike" onClick={() => setEditing(true)}>
                Edit
              </button>
              <button
                type="button"
                className="linklike"
                onClick={() => {
                  if (window.confirm("Delete this message?")) void run(async () => (await api.del(base), { ...m, deleted: true, content: "" }));
                }}
              >
                Delete
              </button>
            </>
          )}
          <button type="button" className="linklike" onClick={() => void run(async () => api.json<Message>(`${base}/pin`, { method: m.pinned ? "DELETE" : "POST", body: m.pinned ? undefined : {} }))}>
            {m.pinned ? "Unpin" : "Pin"}
          </button>
        </div>
      )}
      {seenBy.length > 0 && <div className="seen muted">Seen by {seenBy.join(", ")}</div>}
      <ErrorBox error={error} />
    </li>
  );
}

function Composer({ chatId, replyTo, onSent, label }: { chatId: string; replyTo?: Message["id"]; onSent: (m: Message) => void; label: string }) {
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const [sending, setSending] = useState(false);
  const key = useRef(newIdempotencyKey());
  const lastTyping = useRef(0);
  const send = async () => {
    const content = text.trim();
    if (!content || sending) return;
    setSending(true);
    try {
      const body: Record<string, unknown> = { content, idempotency_key: key.current };
      if (replyTo !== undefined) body.reply_to = replyTo;
      const m = await api.post<Message>(`/api/v1/chats/${chatId}/messages`, body);
      key.current = newIdempotencyKey(); // the next message gets a new key; a retry keeps this one
      setText("");
      setError("");
      onSent(m);
    } catch (err) {
      setError(`Not sent: ${errorText(err)}. Press Enter to retry (the retry cannot duplicate it).`);
    } finally {
      setSending(false);
    }
  };
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  };
  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      <TextArea
        label={label}
        rows={2}
        value={text}
        placeholder="Message (Enter to send, Shift+Enter for a new line)"
        onKeyDown={onKey}
        onChange={(e) => {
          setText(e.target.value);
          const now = Date.now();
          if (now - lastTyping.current > 2000) {
            lastTyping.current = now;
            void api.post(`/api/v1/chats/${chatId}/typing`, {}).catch(() => {});
          }
        }}
      />
      <button type="submit" disabled={sending || !text.trim()}>
        Send
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

function ThreadPanel({ chatId, root, me, names, onClose, version }: { chatId: string; root: Message; me: string; names: Map<string, string>; onClose: () => void; version: number }) {
  const thread = useLoad(() => api.get<{ root: Message; replies: Message[] }>(`/api/v1/chats/${chatId}/messages/${root.id}/thread`), [root.id, version]);
  return (
    <aside className="thread" aria-label="Thread">
      <h2>Thread</h2>
      <button type="button" onClick={onClose}>
        Close thread
      </button>
      <ErrorBox error={thread.error} />
      <ul className="messages">
        {thread.data && [thread.data.root, ...thread.data.replies].map((m) => (
          <MessageItem key={m.id} m={m} me={me} names={names} chatId={chatId} onChanged={() => thread.reload()} seenBy={[]} />
        ))}
      </ul>
      <Composer chatId={chatId} replyTo={root.id} label="Reply" onSent={() => thread.reload()} />
    </aside>
  );
}

function ChatView({ chat, me, names, events, presence, onRead }: {
  chat: Chat;
  me: string;
  names: Map<string, string>;
  events: ChatEvent[];
  presence: Map<string, string>;
  onRead: () => void;
}) {
  const [messages, setMessages] = useState<Message[]>([]);
  const [hasMore, setHasMore] = useState(false);
  const [error, setError] = useState("");
  const [thread, setThread] = useState<Message | null>(null);
  const [threadVersion, setThreadVersion] = useState(0);
  const [typing, setTyping] = useState<Map<string, number>>(new Map());
  const members = useLoad(() => api.get<{ members: Member[] }>(`/api/v1/chats/${chat.id}/members`), [chat.id]);
  const [readSeq, setReadSeq] = useState<Map<string, number>>(new Map());
  const listRef = useRef<HTMLUListElement>(null);
  const topRef = useRef<HTMLLIElement>(null);
  const loadingOlder = useRef(false);
  const stickBottom = useRef(true);
  const isMember = chat.role !== undefined || chat.joined === true;

  useEffect(() => {
    setReadSeq(new Map((members.data?.members ?? []).map((m) => [m.user_id, m.last_read_seq])));
  }, [members.data]);

  const loadLatest = useCallback(async () => {
    try {
      const r = await api.get<{ messages: Message[]; has_more: boolean }>(`/api/v1/chats/${chat.id}/messages?limit=50`);
      setMessages(r.messages);
      setHasMore(r.has_more);
      stickBottom.current = true;
      setError("");
    } catch (err) {
      setError(errorText(err));
    }
  }, [chat.id]);
  useEffect(() => {
    setMessages([]);
    setThread(null);
    void loadLatest();
  }, [loadLatest]);

  const loadOlder = useCallback(async () => {
    if (loadingOlder.current || !hasMore || messages.length === 0) return;
    loadingOlder.current = true;
    const el = listRef.current;
    const before = el ? el.scrollHeight - el.scrollTop : 0;
    try {
      const r = await api.get<{ messages: Message[]; has_more: boolean }>(`/api/v1/chats/${chat.id}/messages?limit=50&before=${messages[0].seq}`);
      stickBottom.current = false;
      setMessages((old) => mergeMessages(r.messages, old));
      setHasMore(r.has_more);
      requestAnimationFrame(() => {
        if (el) el.scrollTop = el.scrollHeight - before; // keep the reading position
      });
    } catch (err) {
      setError(errorText(err));
    } finally {
      loadingOlder.current = false;
    }
  }, [chat.id, hasMore, messages]);

  // Infinite scroll: the sentinel at the top loads older pages when it becomes visible.
  useEffect(() => {
    const el = topRef.current;
    if (!el || typeof IntersectionObserver === "undefined") return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) void loadOlder();
    }, { root: listRef.current });
    io.observe(el);
    return () => io.disconnect();
  }, [loadOlder]);

  useEffect(() => {
    const el = listRef.current;
    if (el && stickBottom.current) el.scrollTop = el.scrollHeight;
  }, [messages]);

  // Read state: mark the newest message read while this chat is shown.
  // Thread replies have sequence numbers too (they are not in the main list): seeing the chat
  // reads them as well.
  const [replySeq, setReplySeq] = useState(0);
  const lastSeq = Math.max(messages.length ? messages[messages.length - 1].seq : 0, replySeq);
  const onReadRef = useRef(onRead);
  onReadRef.current = onRead;
  const myRead = readSeq.get(me) ?? 0;
  useEffect(() => {
    if (!isMember || lastSeq === 0 || myRead >= lastSeq) return;
    const t = setTimeout(() => {
      api.post(`/api/v1/chats/${chat.id}/read`, { seq: lastSeq }).then(() => {
        setReadSeq((r) => new Map(r).set(me, Math.max(r.get(me) ?? 0, lastSeq)));
        onReadRef.current();
      }, () => {});
    }, 300);
    return () => clearTimeout(t);
  }, [chat.id, lastSeq, isMember, me, myRead]);

  // Live events for this chat.
  const seen = useRef(0);
  useEffect(() => {
    const fresh = events.slice(seen.current);
    seen.current = events.length;
    for (const ev of fresh) {
      const d = ev.data as Record<string, unknown>;
      if (ev.type === "resync") {
        void loadLatest();
        members.reload();
        continue;
      }
      const cid = (d?.chat_id as string) ?? "";
      if (cid !== chat.id) continue;
      if (ev.type === "message.created" || ev.type === "message.updated") {
        const m = d as unknown as Message;
        if (m.reply_to !== null && m.reply_to !== undefined) {
          setThreadVersion((v) => v + 1);
          if (ev.type === "message.created") {
            setReplySeq((q) => Math.max(q, m.seq));
            // Replies show in the thread panel; the root's reply count changed.
            api.get<Message>(`/api/v1/chats/${chat.id}/messages/${m.reply_to}`).then(
              (root) => setMessages((old) => (old.some((x) => String(x.id) === String(root.id)) ? mergeMessages(old, [root]) : old)),
              () => {},
            );
            continue;
          }
        }
        stickBottom.current = ev.type === "message.created" ? isNearBottom(listRef.current) : stickBottom.current;
        setMessages((old) => (ev.type === "message.updated" && !old.some((x) => String(x.id) === String(m.id)) ? old : mergeMessages(old, [m])));
        setTyping((t) => {
          const n = new Map(t);
          n.delete(m.sender_id);
          return n;
        });
      } else if (ev.type === "message.deleted") {
        setMessages((old) => old.map((x) => (String(x.id) === String(d.id) ? { ...x, deleted: true, content: "", reactions: [] } : x)));
      } else if (ev.type === "reaction.added" || ev.type === "reaction.removed") {
        api.get<Message>(`/api/v1/chats/${chat.id}/messages/${d.message_id}`).then((m) => setMessages((old) => mergeMessages(old, [m])), () => {});
      } else if (ev.type === "read.updated") {
        setReadSeq((r) => new Map(r).set(d.user_id as string, d.last_read_seq as number));
      } else if (ev.type === "typing") {
        const until = Date.now() + ((d.expires_in_ms as number) ?? 5000);
        setTyping((t) => new Map(t).set(d.user_id as string, until));
      } else if (ev.type.startsWith("member.")) {
        members.reload();
      }
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [events, chat.id]);

  // Typing entries expire.
  useEffect(() => {
    if (typing.size === 0) return;
    const t = setInterval(() => {
      const now = Date.now();
      setTyping((old) => {
        const n = new Map([...old].filter(([, until]) => until > now));
        return n.size === old.size ? old : n;
      });
    }, 500);
    return () => clearInterval(t);
  }, [typing.size]);

  const typers = [...typing.keys()].filter((u) => u !== me).map((u) => names.get(u) ?? u);
  // Receipts: under each message, who read exactly up to it (others than the sender).
  const seenFor = useMemo(() => {
    const out = new Map<number, string[]>();
    for (const [user, seq] of readSeq) {
      if (user === me || seq <= 0) continue;
      // the newest loaded message of someone else at or below the member's read position
      let best = -1;
      for (const m of messages) if (m.seq <= seq && m.sender_id !== user) best = m.seq;
      if (best >= 0) out.set(best, [...(out.get(best) ?? []), names.get(user) ?? user]);
    }
    return out;
  }, [readSeq, messages, me, names]);

  const title = chatTitle(chat, me, names, members.data?.members);
  return (
    <div className="chat-view">
      <div className="chat-main">
        <header className="chat-header">
          <h2>{title}</h2>
          <span className="muted">
            {TYPE_LABEL[chat.type]} · {chat.member_count} members{chat.archived ? " · archived" : ""}
          </span>
          <ul className="presence" aria-label="Chat members and presence">
            {members.data?.members.map((m) => (
              <li key={m.user_id}>
                <span className={`dot ${presence.get(m.user_id) ?? "offline"}`} aria-hidden="true" />
                {m.name || m.email} <span className="sr-only">({presence.get(m.user_id) ?? "offline"})</span>
              </li>
            ))}
          </ul>
          {!isMember && chat.type === "public_channel" && (
            <button
              type="button"
              onClick={async () => {
                try {
                  await api.post(`/api/v1/chats/${chat.id}/join`, {});
                  onRead();
                } catch (err) {
                  setError(errorText(err));
                }
              }}
            >
              Join channel
            </button>
          )}
        </header>
        <ErrorBox error={error} />
        <ul className="messages" ref={listRef} aria-label={`Messages in ${title}`} tabIndex={0} aria-live="polite" aria-relevant="additions">
          <li ref={topRef} className="sentinel">
            {hasMore ? (
              <button type="button" onClick={() => void loadOlder()}>
                Load older messages
              </button>
            ) : (
              <span className="muted">Beginning of the conversation</span>
            )}
          </li>
          {messages.length === 0 && <li className="muted">No messages yet.</li>}
          {messages.map((m) => (
            <MessageItem
              key={m.id}
              m={m}
              me={me}
              names={names}
              chatId={chat.id}
              onChanged={(x) => setMessages((old) => mergeMessages(old, [x]))}
              onThread={(x) => setThread(x)}
              seenBy={seenFor.get(m.seq) ?? []}
            />
          ))}
        </ul>
        <p className="typing muted" aria-live="polite">
          {typers.length > 0 ? `${typers.join(", ")} ${typers.length === 1 ? "is" : "are"} typing…` : " "}
        </p>
        {isMember && !chat.archived && (
          <Composer
            chatId={chat.id}
            label={`Message ${title}`}
            onSent={(m) => {
              stickBottom.current = true;
              setMessages((old) => mergeMessages(old, [m]));
            }}
          />
        )}
      </div>
      {thread && <ThreadPanel chatId={chat.id} root={thread} me={me} names={names} onClose={() => setThread(null)} version={threadVersion} />}
    </div>
  );
}

function isNearBottom(el: HTMLElement | null): boolean {
  if (!el) return true;
  return el.scrollHeight - el.scrollTop - el.clientHeight < 120;
}

export function ChatPage() {
  usePageTitle("Chat");
  const { chatId } = useParams();
  const navigate = useNavigate();
  const { session } = useAuth();
  const me = session!.user.id;
  const chats = useLoad(() => api.get<{ chats: Chat[] }>("/api/v1/chats"), []);
  const publics = useLoad(() => api.get<{ chats: Chat[] }>("/api/v1/chats/public"), []);
  const wsMembers = useLoad(() => api.get<{ members: WsMember[] }>(`/api/v1/workspaces/${session!.workspace.id}/members`), [session!.workspace.id]);
  const names = useMemo(() => new Map((wsMembers.data?.members ?? []).map((m) => [m.user_id, m.name || m.email])), [wsMembers.data]);
  const [events, setEvents] = useState<ChatEvent[]>([]);
  const [conn, setConn] = useState<ConnState>("closed");
  const [presence, setPresence] = useState<Map<string, string>>(new Map());
  const [showNew, setShowNew] = useState(false);
  const newButton = useRef<HTMLButtonElement>(null);
  const reloadTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const loaders = useRef({ chats, publics });
  loaders.current = { chats, publics };
  const reloadChats = useCallback(() => {
    if (reloadTimer.current) clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(() => {
      loaders.current.chats.reload();
      loaders.current.publics.reload();
    }, 250);
  }, []);

  useEffect(() => {
    const stream = new ChatEventStream(
      {
        getTicket: async () => (await api.post<{ ticket: string }>("/api/v1/events/ticket", {})).ticket,
        open: (url) => new EventSource(url),
        setTimer: (fn, ms) => setTimeout(fn, ms),
        clearTimer: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
      },
      (ev) => {
        if (ev.type === "presence") {
          const d = ev.data as { user_id: string; status: string };
          setPresence((p) => new Map(p).set(d.user_id, d.status));
          return;
        }
        if (ev.type === "ready") return;
        setEvents((old) => (old.length > 500 ? [...old.slice(-250), ev] : [...old, ev]));
      },
      setConn,
    );
    stream.start();
    void api.post("/api/v1/presence", { status: "online" }).catch(() => {});
    const vis = () => void api.post("/api/v1/presence", { status: document.hidden ? "away" : "online" }).catch(() => {});
    document.addEventListener("visibilitychange", vis);
    return () => {
      document.removeEventListener("visibilitychange", vis);
      stream.stop();
    };
  }, []);

  useEffect(() => {
    const last = events[events.length - 1];
    if (!last) return;
    if (last.type !== "typing" && last.type !== "read.updated") reloadChats();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [events]);

  const mine = chats.data?.chats ?? [];
  const current = mine.find((c) => c.id === chatId) ?? publics.data?.chats.find((c) => c.id === chatId);
  const notJoined = (publics.data?.chats ?? []).filter((c) => !c.joined && !mine.some((m) => m.id === c.id));
  return (
    <section className="chat-page">
      <h1 className="sr-only">Chat</h1>
      <div className="chat-layout">
        <nav aria-label="Chats" className="chat-list">
          <p className="conn" role="status">
            <span className={`dot ${conn === "live" ? "online" : "away"}`} aria-hidden="true" /> {conn === "live" ? "Live" : conn === "closed" ? "Offline" : "Connecting…"}
          </p>
          <Link to="/chat/search">Search messages</Link>
          <button type="button" ref={newButton} aria-expanded={showNew} onClick={() => setShowNew((s) => !s)}>
            New chat
          </button>
          {showNew && (
            <NewChatForm
              wsMembers={wsMembers.data?.members ?? []}
              me={me}
              onClose={() => {
                setShowNew(false);
                newButton.current?.focus();
              }}
              onCreated={(c) => {
                setShowNew(false);
                chats.reload();
                publics.reload();
                navigate(`/chat/${c.id}`);
              }}
            />
          )}
          <ErrorBox error={chats.error} />
          <ul>
            {mine.map((c) => (
              <li key={c.id}>
                <Link to={`/chat/${c.id}`} aria-current={c.id === chatId ? "page" : undefined} className={c.id === chatId ? "active" : ""}>
                  {c.type === "direct" ? <DirectName chat={c} me={me} names={names} /> : chatTitle(c, me, names)}
                  {(c.unread_count ?? 0) > 0 && (
                    <span className="unread">
                      <span aria-hidden="true">{c.unread_count}</span>
                      <span className="sr-only">, {c.unread_count} unread</span>
                    </span>
                  )}
                  {(c.mention_count ?? 0) > 0 && (
                    <span className="mention">
                      <span aria-hidden="true">@</span>
                      <span className="sr-only">, {c.mention_count} mentions</span>
                    </span>
                  )}
                </Link>
              </li>
            ))}
          </ul>
          {notJoined.length > 0 && (
            <>
              <h2 className="small">Public channels</h2>
              <ul>
                {notJoined.map((c) => (
                  <li key={c.id}>
                    <Link to={`/chat/${c.id}`}>#{c.name}</Link>
                  </li>
                ))}
              </ul>
            </>
          )}
        </nav>
        {current ? (
          <ChatView key={current.id} chat={current} me={me} names={names} events={events} presence={presence} onRead={reloadChats} />
        ) : (
          <div className="chat-empty">
            <Empty>{chatId ? "Chat not found." : "Pick a chat or create one."}</Empty>
          </div>
        )}
      </div>
    </section>
  );
}

interface SearchResult extends Message {
  highlight: string;
  chat_type: string;
  chat_name: string;
  score: number;
}

/** RFC 3339 time of the local midnight starting `date` (yyyy-mm-dd) plus `days`; "" for none.
 * The "To" day is included: the range ends at the next midnight. */
function dayStart(date: string, days = 0): string {
  if (!date) return "";
  const d = new Date(`${date}T00:00:00`);
  d.setDate(d.getDate() + days);
  return d.toISOString();
}

export function ChatSearchPage() {
  usePageTitle("Search messages");
  const [sp, setSp] = useSearchParams();
  const { session } = useAuth();
  const chats = useLoad(() => api.get<{ chats: Chat[] }>("/api/v1/chats"), []);
  const wsMembers = useLoad(() => api.get<{ members: WsMember[] }>(`/api/v1/workspaces/${session!.workspace.id}/members`), [session!.workspace.id]);
  const [q, setQ] = useState(sp.get("q") ?? "");
  const [chatId, setChatId] = useState(sp.get("chat_id") ?? "");
  const [senderId, setSenderId] = useState(sp.get("sender_id") ?? "");
  const [type, setType] = useState(sp.get("type") ?? "");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [order, setOrder] = useState("relevance");
  const [results, setResults] = useState<SearchResult[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState("");
  const params = (c?: string) =>
    qs({ q: q.trim(), chat_id: chatId, sender_id: senderId, type, from: dayStart(from), to: dayStart(to, 1), order, cursor: c, limit: 20 });
  const search = async (e?: FormEvent) => {
    e?.preventDefault();
    try {
      setSp(q.trim() ? { q: q.trim() } : {});
      const r = await api.get<{ results: SearchResult[]; next_cursor: string | null }>("/api/v1/search/messages" + params());
      setResults(r.results);
      setCursor(r.next_cursor);
      setError("");
    } catch (err) {
      setError(errorText(err));
    }
  };
  const more = async () => {
    if (!cursor) return;
    try {
      const r = await api.get<{ results: SearchResult[]; next_cursor: string | null }>("/api/v1/search/messages" + params(cursor));
      setResults((old) => [...(old ?? []), ...r.results]);
      setCursor(r.next_cursor);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <section>
      <h1>Search messages</h1>
      <form onSubmit={search} className="inline-form">
        <Field label="Search words" type="search" value={q} onChange={(e) => setQ(e.target.value)} required />
        <Select label="In chat" value={chatId} onChange={(e) => setChatId(e.target.value)}>
          <option value="">all chats</option>
          {chats.data?.chats.map((c) => (
            <option key={c.id} value={c.id}>
              {c.name || c.type}
            </option>
          ))}
        </Select>
        <Select label="Sender" value={senderId} onChange={(e) => setSenderId(e.target.value)}>
          <option value="">anyone</option>
          {wsMembers.data?.members.map((m) => (
            <option key={m.user_id} value={m.user_id}>
              {m.name || m.email}
            </option>
          ))}
        </Select>
        <Select label="Chat type" value={type} onChange={(e) => setType(e.target.value)}>
          <option value="">any</option>
          {(Object.keys(TYPE_LABEL) as Chat["type"][]).map((t) => (
            <option key={t} value={t}>
              {TYPE_LABEL[t]}
            </option>
          ))}
        </Select>
        <Field label="From" type="date" value={from} onChange={(e) => setFrom(e.target.value)} />
        <Field label="To" type="date" value={to} onChange={(e) => setTo(e.target.value)} />
        <Select label="Order" value={order} onChange={(e) => setOrder(e.target.value)}>
          <option value="relevance">relevance</option>
          <option value="date">newest first</option>
        </Select>
        <button type="submit">Search</button>
      </form>
      <ErrorBox error={error} />
      {results && <Status>{results.length === 0 ? "No messages found." : `${results.length}${cursor ? "+" : ""} messages found.`}</Status>}
      <ul className="results">
        {results?.map((r) => (
          <li key={r.id}>
            <Link to={`/chat/${r.chat_id}`}>{r.chat_name ? `#${r.chat_name}` : r.chat_type}</Link> · <time>{new Date(r.created_at).toLocaleString()}</time>
            <div className="msg-body" dangerouslySetInnerHTML={{ __html: safeHighlight(r.highlight || r.content) }} />
          </li>
        ))}
      </ul>
      {cursor && (
        <button type="button" onClick={() => void more()}>
          More results
        </button>
      )}
    </section>
  );
}
