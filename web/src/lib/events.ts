// Live chat events over SSE (docs/chat.md, "Events"): EventSource cannot send headers, so each
// connection first gets a single-use ticket (POST /api/v1/events/ticket) and opens
// /api/v1/events?ticket=…&last_event_id=N. The browser's own reconnect would reuse the spent
// ticket, so on any error the stream is closed and reopened here with a fresh ticket and the last
// event id received (resume: no gap, no duplicate), with capped exponential backoff. A `resync`
// event means the server cannot resume: state must be reloaded and the stream reopened without an
// id.

export const CHAT_EVENT_TYPES = [
  "message.created", "message.updated", "message.deleted", "reaction.added", "reaction.removed",
  "chat.created", "chat.updated", "chat.deleted", "member.joined", "member.left", "member.updated",
  "read.updated", "typing", "presence", "ready", "resync",
] as const;

export type ConnState = "connecting" | "live" | "reconnecting" | "closed";

/** The part of EventSource this module uses (tests pass a fake). */
export interface EventSourceLike {
  addEventListener(type: string, fn: (e: MessageEvent) => void): void;
  close(): void;
  onerror: ((e: Event) => void) | null;
}

export interface EventStreamDeps {
  getTicket: () => Promise<string>;
  open: (url: string) => EventSourceLike;
  setTimer: (fn: () => void, ms: number) => unknown;
  clearTimer: (t: unknown) => void;
}

export interface ChatEvent {
  type: string;
  id: string | null;
  data: unknown;
}

/** Backoff before reconnect attempt `n` (0-based): 0.5 s doubling to 15 s. */
export function backoffMs(n: number): number {
  return Math.min(15000, 500 * Math.pow(2, n));
}

export class ChatEventStream {
  lastEventId: string | null = null;
  state: ConnState = "closed";
  private es: EventSourceLike | null = null;
  private attempts = 0;
  private timer: unknown = null;
  private stopped = true;

  constructor(
    private readonly deps: EventStreamDeps,
    private readonly onEvent: (e: ChatEvent) => void,
    private readonly onState: (s: ConnState) => void = () => {},
    private readonly onResync: () => void = () => {},
  ) {}

  /** URL of the stream for a ticket, resuming after `lastEventId` when set. */
  static url(ticket: string, lastEventId: string | null): string {
    let u = `/api/v1/events?ticket=${encodeURIComponent(ticket)}`;
    if (lastEventId !== null) u += `&last_event_id=${encodeURIComponent(lastEventId)}`;
    return u;
  }

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.deps.clearTimer(this.timer);
    this.timer = null;
    this.es?.close();
    this.es = null;
    this.setState("closed");
  }

  private setState(s: ConnState) {
    this.state = s;
    this.onState(s);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.setState(this.attempts === 0 ? "connecting" : "reconnecting");
    let ticket: string;
    try {
      ticket = await this.deps.getTicket();
    } catch {
      this.scheduleReconnect();
      return;
    }
    if (this.stopped) return;
    const es = this.deps.open(ChatEventStream.url(ticket, this.lastEventId));
    this.es = es;
    for (const type of CHAT_EVENT_TYPES) {
      es.addEventListener(type, (e: MessageEvent) => {
        if (this.es !== es) return;
        if (e.lastEventId) this.lastEventId = e.lastEventId;
        let data: unknown = null;
        try {
          data = e.data ? JSON.parse(e.data) : null;
        } catch {
          data = e.data;
        }
        if (type === "ready") {
          this.attempts = 0;
          this.setState("live");
        }
        if (type === "resync") {
          // The server ends the stream after resync: reload and start over without an id.
          this.lastEventId = null;
          es.close();
          this.es = null;
          this.onResync();
          this.onEvent({ type, id: null, data });
          this.scheduleReconnect(true);
          return;
        }
        this.onEvent({ type, id: e.lastEventId || null, data });
      });
    }
    es.onerror = () => {
      if (this.es !== es) return;
      es.close();
      this.es = null;
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(immediate = false): void {
    if (this.stopped) return;
    this.setState("reconnecting");
    const ms = immediate ? 0 : backoffMs(this.attempts++);
    this.timer = this.deps.setTimer(() => {
      this.timer = null;
      void this.connect();
    }, ms);
  }
}
