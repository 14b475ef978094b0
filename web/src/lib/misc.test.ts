import { describe, expect, it } from "vitest";
import { mergeMessages, safeHighlight } from "./chat";
import { cosine, heatColor, similarityMatrix } from "./embed";
import { parsePrometheus, rate } from "./prom";

describe("embed helpers", () => {
  it("computes cosine similarity and the symmetric matrix", () => {
    expect(cosine([1, 0], [0, 1])).toBe(0);
    expect(cosine([1, 1], [2, 2])).toBeCloseTo(1);
    expect(cosine([0, 0], [1, 1])).toBe(0);
    const m = similarityMatrix([[1, 0], [1, 1], [0, 1]]);
    expect(m[0][0]).toBe(1);
    expect(m[0][1]).toBeCloseTo(Math.SQRT1_2);
    expect(m[1][0]).toBeCloseTo(m[0][1]);
  });
  it("maps similarity to colours", () => {
    expect(heatColor(1)).toBe("rgb(255, 0, 0)");
    expect(heatColor(0)).toBe("rgb(255, 255, 255)");
    expect(heatColor(-1)).toBe("rgb(0, 0, 255)");
  });
});

describe("prometheus reader", () => {
  it("reads labelled samples and skips comments", () => {
    const s = parsePrometheus('# HELP x\nbus_backlog_lag{topic="audit",consumer="idx"} 3\nup 1\nbad line\nq{a="x\\"y"} NaN\n');
    expect(s[0]).toEqual({ name: "bus_backlog_lag", labels: { topic: "audit", consumer: "idx" }, value: 3 });
    expect(s[1]).toEqual({ name: "up", labels: {}, value: 1 });
    expect(s[2].labels.a).toBe('x"y');
  });
  it("computes rates and ignores resets", () => {
    expect(rate(10, 30, 2)).toBe(10);
    expect(rate(30, 10, 2)).toBe(0);
    expect(rate(1, 2, 0)).toBe(0);
  });
});

describe("chat helpers", () => {
  it("merges pages and live events by id in seq order", () => {
    const a = [{ id: 1, seq: 1, c: "a" }, { id: 2, seq: 2, c: "b" }];
    const b = [{ id: 2, seq: 2, c: "b2" }, { id: 3, seq: 3, c: "c" }];
    expect(mergeMessages(b, a).map((x) => x.c)).toEqual(["a", "b", "c"]);
    expect(mergeMessages(a, b).map((x) => x.c)).toEqual(["a", "b2", "c"]);
  });
  it("escapes highlights except <mark>", () => {
    expect(safeHighlight('<img src=x onerror=alert(1)> <mark>deploy</mark> & "q"')).toBe('&lt;img src=x onerror=alert(1)&gt; <mark>deploy</mark> &amp; &quot;q&quot;');
  });
});
