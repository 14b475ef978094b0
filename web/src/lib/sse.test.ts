import { describe, expect, it } from "vitest";
import { SseParser, readEventStream, type SseEvent } from "./sse";

describe("SseParser", () => {
  it("parses events split across chunks, multi-line data, comments and ids", () => {
    const got: SseEvent[] = [];
    const p = new SseParser((e) => got.push(e));
    p.push(": ping\n\nevent: metr");
    p.push("ics\ndata: {\"points\":[1]}\nid: 7\n\n");
    p.push("data: a\ndata: b\r\n\r\n");
    expect(got).toEqual([
      { event: "metrics", data: '{"points":[1]}', id: "7" },
      { event: "message", data: "a\nb", id: "7" },
    ]);
  });
  it("waits for the LF of a CRLF split across chunks", () => {
    const got: SseEvent[] = [];
    const p = new SseParser((e) => got.push(e));
    p.push("data: x\r");
    p.push("\n\r");
    p.push("\n");
    expect(got).toEqual([{ event: "message", data: "x", id: null }]);
  });
  it("reads a body stream to its end", async () => {
    const enc = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode("event: status\ndata: {\"status\":\"finished\"}\n"));
        c.enqueue(enc.encode("\n"));
        c.close();
      },
    });
    const got: SseEvent[] = [];
    await readEventStream(body, (e) => got.push(e));
    expect(got.map((e) => e.event)).toEqual(["status"]);
  });
});
