// Helpers of the runs-table filter box for the track filter language (docs/track.md, "Run
// search"). The server is the authority on validity: these helpers only tokenize for display,
// locate the server's error position, suggest identifiers and build `order_by` strings.

export type TokenKind = "keyword" | "ident" | "op" | "string" | "number" | "paren" | "comma" | "space" | "error";

export interface Token {
  kind: TokenKind;
  text: string;
  start: number; // byte offset in the UTF-8 encoding, as the server counts positions
  index: number; // offset in the JS string
}

const KEYWORDS = new Set(["and", "or", "not", "in", "like", "true", "false"]);
export const ATTRIBUTES = [
  "status", "name", "group", "job_type", "notes", "created_by", "id", "sweep_id", "parent_id",
  "start_time", "end_time",
];

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** Splits `src` into display tokens; never throws (unknown characters become "error" tokens). */
export function tokenizeFilter(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let bytes = 0;
  const push = (kind: TokenKind, end: number) => {
    const text = src.slice(i, end);
    out.push({ kind, text, start: bytes, index: i });
    bytes += utf8Length(text);
    i = end;
  };
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      let j = i;
      while (j < src.length && /\s/.test(src[j])) j++;
      push("space", j);
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < src.length) {
        if (src[j] === c) {
          if (c === "'" && src[j + 1] === "'") {
            j += 2;
            continue;
          }
          j++;
          break;
        }
        j++;
      }
      const closed = j <= src.length && src[j - 1] === c && j - i >= 2;
      push(closed ? "string" : "error", j);
    } else if (/[0-9]/.test(c) || ((c === "-" || c === ".") && /[0-9]/.test(src[i + 1] ?? ""))) {
      let j = i + 1;
      while (j < src.length && /[0-9.eE+-]/.test(src[j])) {
        if ((src[j] === "+" || src[j] === "-") && !/[eE]/.test(src[j - 1])) break;
        j++;
      }
      push("number", j);
    } else if (c === "(" || c === ")") {
      push("paren", i + 1);
    } else if (c === ",") {
      push("comma", i + 1);
    } else if ("=!<>".includes(c)) {
      const two = src.slice(i, i + 2);
      push("op", ["==", "!=", "<>", "<=", ">="].includes(two) ? i + 2 : i + 1);
    } else if (/[A-Za-z_`]/.test(c)) {
      let j = i;
      while (j < src.length) {
        if (src[j] === "`") {
          const close = src.indexOf("`", j + 1);
          j = close < 0 ? src.length : close + 1;
        } else if (/[A-Za-z0-9_./-]/.test(src[j])) {
          j++;
        } else break;
      }
      const word = src.slice(i, j);
      push(KEYWORDS.has(word.toLowerCase()) ? "keyword" : "ident", j);
    } else {
      push("error", i + 1);
    }
  }
  return out;
}

export interface FilterError {
  message: string;
  /** Offset in the JS string (converted from the server's byte offset), or null. */
  position: number | null;
}

/** Converts a UTF-8 byte offset into `src` to a JS string index (clamped to the length). */
export function byteToIndex(src: string, byteOffset: number): number {
  let bytes = 0;
  let i = 0;
  for (const ch of src) {
    if (bytes >= byteOffset) return i;
    bytes += utf8Length(ch);
    i += ch.length;
  }
  return src.length;
}

/**
 * Reads the server's 400 message `filter: <what> at position <n>` (n a 0-based byte offset);
 * returns null when the message is not a filter error.
 */
export function parseFilterError(message: string, src: string): FilterError | null {
  const m = /^(filter|order_by)\s*:\s*(.*?)(?:\s+at position\s+(\d+))?\s*$/s.exec(message.trim());
  if (!m) return null;
  const pos = m[3] === undefined ? null : byteToIndex(src, Number(m[3]));
  return { message: m[2], position: pos };
}

/** Marker line for a monospace display: spaces up to `position`, then a caret. */
export function caretLine(position: number): string {
  return " ".repeat(Math.max(0, position)) + "^";
}

/** Writes a key as an identifier, backticking it when it has characters outside the plain set. */
export function identFor(prefix: "params" | "metrics" | "tags" | "config", key: string): string {
  return /^[A-Za-z0-9_/-]+(\.[A-Za-z0-9_/-]+)*$/.test(key) ? `${prefix}.${key}` : `${prefix}.\`${key.replace(/`/g, "")}\``;
}

/** The identifier being typed at `cursor` (JS index), and where it starts. */
export function wordAt(src: string, cursor: number): { word: string; start: number } {
  let s = cursor;
  while (s > 0 && /[A-Za-z0-9_./`-]/.test(src[s - 1])) s--;
  return { word: src.slice(s, cursor), start: s };
}

/** Identifier suggestions for the word at the cursor, from attributes and the known keys. */
export function suggest(src: string, cursor: number, idents: string[], max = 8): string[] {
  const { word } = wordAt(src, cursor);
  if (word.length === 0) return [];
  const lower = word.toLowerCase();
  const all = [...ATTRIBUTES, ...idents];
  const starts = all.filter((x) => x.toLowerCase().startsWith(lower) && x !== word);
  const contains = all.filter((x) => !x.toLowerCase().startsWith(lower) && x.toLowerCase().includes(lower));
  return [...new Set([...starts, ...contains])].slice(0, max);
}

/** Replaces the word at the cursor with `ident`; returns the new text and cursor. */
export function applySuggestion(src: string, cursor: number, ident: string): { text: string; cursor: number } {
  const { start } = wordAt(src, cursor);
  const text = src.slice(0, start) + ident + src.slice(cursor);
  return { text, cursor: start + ident.length };
}

/** Flattens a config object into dotted keys (arrays kept as values), as the server does. */
export function flattenConfig(obj: unknown, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  if (obj && typeof obj === "object" && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === "object" && !Array.isArray(v)) flattenConfig(v, key, out);
      else out[key] = v;
    }
  }
  return out;
}

/** `order_by` string for a column id and direction. */
export function orderBy(column: string, desc: boolean): string {
  return `${column} ${desc ? "desc" : "asc"}`;
}
