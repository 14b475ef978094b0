import { describe, expect, it } from "vitest";
import { ChatEventStream, backoffMs, type EventSourceLike } from "./events";

class FakeES implements EventSourceLike {
  listeners = new Map<string, ((e: MessageEvent) => void)[]>();
  onerror: ((e: Event) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {}
  addEventListener(type: string, fn: (e: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  close() {
    this.closed = true;
  }
  emit(type: string, data: unknown, id = "") {
    for (const fn of this.listeners.get(type) ?? []) fn({ data: JSON.stringify(data), lastEventId: id } as MessageEvent);
  }
}

function harness() {
  const opened: FakeES[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  let n = 0;
  const events: { type: string; id: string | null }[] = [];
  const states: string[] = [];
  let resyncs = 0;
  const s = new ChatEventStream(
    {
      getTicket: async () => `t${++n}`,
      open: (url) => {
        const es = new FakeES(url);
        opened.push(es);
        return es;
      },
      setTimer: (fn, ms) => (timers.push({ fn, ms }), timers.length),
      clearTimer: () => {},
    },
    (e) => events.push({ type: e.type, id: e.id }),
    (st) => states.push(st),
    () => resyncs++,
  );
  return { s, opened, timers, events, states, resyncs: () => resyncs };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("ChatEventStream", () => {
  it("opens with a ticket, goes live on ready and tracks the last id", async () => {
    const h = harness();
    h.s.start();
    await tick();
    expect(h.opened[0].url).toBe("/api/v1/events?ticket=t1");
    h.opened[0].emit("ready", { resumed: false });
    h.opened[0].emit("message.created", { id: 1 }, "41");
    h.opened[0].emit("typing", { chat_id: "c" });
    expect(h.s.state).toBe("live");
    expect(h.s.lastEventId).toBe("41");
    expect(h.events.map((e) => e.type)).toEqual(["ready", "message.created", "typing"]);
  });

  it("reconnects after an error with a fresh ticket, resuming after the last id, with backoff", async () => {
    const h = harness();
    h.s.start();
    await tick();
    h.opened[0].emit("message.created", {}, "7");
    h.opened[0].onerror!(new Event("error"));
    expect(h.opened[0].closed).toBe(true);
    expect(h.s.state).toBe("reconnecting");
    expect(h.timers[0].ms).toBe(500);
    h.timers[0].fn();
    await tick();
    expect(h.opened[1].url).toBe("/api/v1/events?ticket=t2&last_event_id=7");
    h.opened[1].onerror!(new Event("error"));
    expect(h.timers[1].ms).toBe(1000);
  });

  it("on resync reloads and reconnects at once without an id", async () => {
    const h = harness();
    h.s.start();
    await tick();
    h.opened[0].emit("message.created", {}, "9");
    h.opened[0].emit("resync", { reason: "too_old" });
    expect(h.resyncs()).toBe(1);
    expect(h.s.lastEventId).toBeNull();
    expect(h.timers[0].ms).toBe(0);
    h.timers[0].fn();
    await tick();
    expect(h.opened[1].url).toBe("/api/v1/events?ticket=t2");
  });

  it("stop closes the stream and ignores late events", async () => {
    const h = harness();
    h.s.start();
    await tick();
    h.s.stop();
    expect(h.opened[0].closed).toBe(true);
    h.opened[0].emit("message.created", {}, "1");
    expect(h.events).toEqual([]);
    expect(h.s.state).toBe("closed");
  });

  it("backs off up to 15 s", () => {
    expect([0, 1, 2, 10].map(backoffMs)).toEqual([500, 1000, 2000, 15000]);
  });
});
