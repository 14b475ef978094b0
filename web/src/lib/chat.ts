// Pure helpers of the chat page.

/** The fields of a message these helpers need. */
export interface Sequenced {
  id: number | string;
  seq: number;
}

/** Merges messages by id, keeping ascending seq order (live events and pages may overlap). */
export function mergeMessages<T extends Sequenced>(a: T[], b: T[]): T[] {
  const m = new Map<string, T>();
  for (const x of a) m.set(String(x.id), x);
  for (const x of b) m.set(String(x.id), x);
  return [...m.values()].sort((x, y) => x.seq - y.seq);
}

/** Escapes text for HTML, then re-allows the server's <mark>…</mark> highlight tags. */
export function safeHighlight(s: string): string {
  const esc = s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  return esc.replace(/&lt;mark&gt;/g, "<mark>").replace(/&lt;\/mark&gt;/g, "</mark>");
}

