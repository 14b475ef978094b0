// Pieces the relay admin pages (Relay.tsx, RelayWebhooks.tsx) share: a Delete button that asks
// first, and per-row test buttons' outcomes (an account test, a webhook's test event).
import { useState } from "react";
import { api, errorText } from "../api/client";

/** What POST /api/v1/relay/accounts/{id}/test and POST /api/v1/relay/webhooks/{id}/test answer. */
export interface TestOutcome {
  ok: boolean;
  latency_ms: number;
  /** The upstream's or the receiver's HTTP status (account tests: `status`; webhooks: `status_code`; 0 or absent: none). */
  status?: number;
  status_code?: number;
  error?: string;
}

/** "ok in 12 ms", or "failed (503): HTTP 503" (no status when nothing answered). */
export function outcomeText(r: TestOutcome, okWord = "ok"): string {
  const code = r.status ?? r.status_code;
  return r.ok ? `${okWord} in ${r.latency_ms} ms` : `failed${code ? ` (${code})` : ""}: ${r.error ?? ""}`;
}

/**
 * Outcomes of a test button per row: `run(id, call)` shows "testing…" for the row, then the
 * outcome's text (or the request's error) and resolves to the outcome (null on error).
 */
export function useTestOutcomes(okWord = "ok") {
  const [outcomes, setOutcomes] = useState<Record<string, string>>({});
  const run = async (id: string, call: () => Promise<TestOutcome>): Promise<TestOutcome | null> => {
    setOutcomes((o) => ({ ...o, [id]: "testing…" }));
    try {
      const r = await call();
      setOutcomes((o) => ({ ...o, [id]: outcomeText(r, okWord) }));
      return r;
    } catch (err) {
      setOutcomes((o) => ({ ...o, [id]: errorText(err) }));
      return null;
    }
  };
  return { outcomes, run };
}

/** A Delete button: asks `question`, then DELETEs `path`; `onDeleted` or `onError` follows. */
export function DeleteButton({ label, question, path, onDeleted, onError }: { label: string; question: string; path: string; onDeleted: () => void; onError: (message: string) => void }) {
  return (
    <button
      type="button"
      aria-label={label}
      onClick={async () => {
        if (!window.confirm(question)) return;
        try {
          await api.del(path);
          onDeleted();
        } catch (err) {
          onError(errorText(err));
        }
      }}
    >
      Delete
    </button>
  );
}
