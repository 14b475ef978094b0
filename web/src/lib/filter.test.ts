import { describe, expect, it } from "vitest";
import { applySuggestion, byteToIndex, caretLine, flattenConfig, identFor, orderBy, parseFilterError, suggest, tokenizeFilter, wordAt } from "./filter";

describe("tokenizeFilter", () => {
  it("classifies every token and keeps byte offsets", () => {
    const t = tokenizeFilter("params.lr < 0.01 and status = 'finished'").filter((x) => x.kind !== "space");
    expect(t.map((x) => [x.kind, x.text])).toEqual([
      ["ident", "params.lr"], ["op", "<"], ["number", "0.01"], ["keyword", "and"], ["ident", "status"], ["op", "="], ["string", "'finished'"],
    ]);
    expect(t[1].start).toBe(10);
  });
  it("handles two-character operators, in-lists, backticks and quote escapes", () => {
    const t = tokenizeFilter("params.`a key` != 'it''s' or tags.x not in ('a', \"b\") or metrics.loss >= -1e-3").filter((x) => x.kind !== "space");
    expect(t[0]).toMatchObject({ kind: "ident", text: "params.`a key`" });
    expect(t[1]).toMatchObject({ kind: "op", text: "!=" });
    expect(t[2]).toMatchObject({ kind: "string", text: "'it''s'" });
    expect(t.find((x) => x.text === "not")?.kind).toBe("keyword");
    expect(t.filter((x) => x.kind === "paren").length).toBe(2);
    expect(t.find((x) => x.text === ">=")?.kind).toBe("op");
    expect(t[t.length - 1]).toMatchObject({ kind: "number", text: "-1e-3" });
  });
  it("marks an unterminated string and unknown characters as errors", () => {
    expect(tokenizeFilter("name = 'abc").pop()?.kind).toBe("error");
    expect(tokenizeFilter("a ; b").some((x) => x.kind === "error" && x.text === ";")).toBe(true);
  });
  it("counts byte offsets in UTF-8 like the server", () => {
    const t = tokenizeFilter("name = 'é' and x").filter((x) => x.kind !== "space");
    expect(t.find((x) => x.text === "and")?.start).toBe(12);
  });
});

describe("parseFilterError", () => {
  it("reads the message and maps the byte position to a string index", () => {
    expect(parseFilterError("filter: expected a literal at position 12", "params.lr < and")).toEqual({ message: "expected a literal", position: 12 });
    const src = "name = 'é' and and";
    const e = parseFilterError("filter: unexpected 'and' at position 16", src)!;
    expect(src.slice(e.position!)).toBe("and");
  });
  it("accepts order_by errors and messages without a position; rejects others", () => {
    expect(parseFilterError("order_by: unknown column", "")).toEqual({ message: "unknown column", position: null });
    expect(parseFilterError("project_id is required", "x")).toBeNull();
  });
  it("clamps positions past the end", () => {
    expect(byteToIndex("abc", 99)).toBe(3);
    expect(caretLine(3)).toBe("   ^");
  });
});

describe("suggestions", () => {
  const idents = ["params.lr", "params.layers", "metrics.loss", "tags.dataset"];
  it("suggests attributes and known keys by prefix first, then by substring", () => {
    expect(suggest("params.l", 8, idents)).toEqual(["params.lr", "params.layers"]);
    expect(suggest("sta", 3, idents)).toEqual(["status", "start_time"]);
    expect(suggest("loss", 4, idents)).toEqual(["metrics.loss"]);
    expect(suggest("x and ", 6, idents)).toEqual([]);
  });
  it("replaces only the word at the cursor", () => {
    expect(wordAt("a and params.l < 1", 14)).toEqual({ word: "params.l", start: 6 });
    expect(applySuggestion("a and params.l < 1", 14, "params.lr")).toEqual({ text: "a and params.lr < 1", cursor: 15 });
  });
});

describe("identifiers and config", () => {
  it("backticks keys with unusual characters", () => {
    expect(identFor("params", "model.layers")).toBe("params.model.layers");
    expect(identFor("metrics", "val loss")).toBe("metrics.`val loss`");
  });
  it("flattens nested config like the server", () => {
    expect(flattenConfig({ lr: 0.1, model: { layers: 4, act: { name: "relu" } }, sizes: [1, 2] })).toEqual({ lr: 0.1, "model.layers": 4, "model.act.name": "relu", sizes: [1, 2] });
  });
  it("builds order_by", () => {
    expect(orderBy("metrics.loss", false)).toBe("metrics.loss asc");
    expect(orderBy("start_time", true)).toBe("start_time desc");
  });
});
