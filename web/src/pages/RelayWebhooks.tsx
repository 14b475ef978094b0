// Relay webhooks: the workspace's targets for relay events (account health changes, key budget
// thresholds) — list, create (signed JSON with an HMAC secret, or Slack incoming-webhook text),
// edit, delete — and each target's delivery log (event, attempt, result, HTTP status, error),
// refreshed while it is open. docs/relay.md "Webhooks" describes the API.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, errorText } from "../api/client";
import { Check, Empty, ErrorBox, Field, Select, Status, fmtTime } from "../components/ui";
import { useInterval, useLoad, usePageTitle } from "../hooks";

export interface Webhook {
  id: string;
  url: string;
  format: "json" | "slack";
  events: string[];
  created_at: string;
  secret?: string;
}
export interface Delivery {
  id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  ok: boolean;
  status_code: number;
  error: string;
  created_at: string;
}

/** The relay's event types (docs/relay.md); a webhook with none selected receives all of them. */
export const EVENT_TYPES: [string, string][] = [
  ["account.rate_limited", "an account is rate limited (429)"],
  ["account.overloaded", "an account is overloaded (529)"],
  ["account.unauthorized", "an account's credentials are refused (401/403)"],
  ["account.error_cooldown", "an account cools down after repeated errors"],
  ["account.recovered", "an account is active again"],
  ["key.budget_80", "a key spent 80 % of a budget period"],
  ["key.budget_100", "a key spent its whole budget for a period"],
];

const FORMAT_LABEL: Record<Webhook["format"], string> = {
  json: "JSON, signed (HMAC-SHA256)",
  slack: "Slack (incoming webhook)",
};

interface FormValues {
  url: string;
  format: Webhook["format"];
  secret: string;
  events: string[];
}

/** The fields of a webhook, shared by the create form and the edit dialog. */
function WebhookFields({ v, set, autoFocus = false }: { v: FormValues; set: (v: FormValues) => void; autoFocus?: boolean }) {
  return (
    <>
      <Field label="Target URL" type="url" autoFocus={autoFocus} value={v.url} onChange={(e) => set({ ...v, url: e.target.value })} required placeholder="https://hooks.example.com/atrium" />
      <Select label="Format" value={v.format} onChange={(e) => set({ ...v, format: e.target.value as Webhook["format"] })}>
        {(Object.keys(FORMAT_LABEL) as Webhook["format"][]).map((f) => (
          <option key={f} value={f}>
            {FORMAT_LABEL[f]}
          </option>
        ))}
      </Select>
      <Field
        label="Signing secret"
        type="password"
        autoComplete="new-password"
        value={v.secret}
        onChange={(e) => set({ ...v, secret: e.target.value })}
        hint="Empty: the server generates one and shows it once. Receivers check x-atrium-signature: sha256=HMAC(secret, timestamp + '.' + body)."
      />
      <fieldset className="events">
        <legend>Events (none checked: all events)</legend>
        {EVENT_TYPES.map(([t, what]) => (
          <div key={t} title={what}>
            <Check
              label={t}
              checked={v.events.includes(t)}
              onChange={(e) => set({ ...v, events: e.target.checked ? [...v.events, t] : v.events.filter((x) => x !== t) })}
            />
          </div>
        ))}
      </fieldset>
    </>
  );
}

function body(v: FormValues): Record<string, unknown> {
  const b: Record<string, unknown> = { url: v.url.trim(), format: v.format, events: v.events };
  if (v.secret) b.secret = v.secret;
  return b;
}

function CreateForm({ onCreated }: { onCreated: (w: Webhook) => void }) {
  const empty: FormValues = { url: "", format: "json", secret: "", events: [] };
  const [v, setV] = useState<FormValues>(empty);
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const w = await api.post<Webhook>("/api/v1/relay/webhooks", body(v));
      setV(empty);
      setError("");
      onCreated(w);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form onSubmit={submit} aria-label="Add webhook" className="webhook-form">
      <WebhookFields v={v} set={setV} />
      <ErrorBox error={error} />
      <button type="submit">Add webhook</button>
    </form>
  );
}

/**
 * Editing a webhook. The relay's API has no update route, so saving creates a webhook with the
 * new settings and then deletes the old one (the dialog says so: new id, fresh delivery log; the
 * old secret cannot be read back, so the secret is set again or generated).
 */
function EditDialog({ hook, onDone, onClose }: { hook: Webhook; onDone: (w: Webhook, warning: string) => void; onClose: () => void }) {
  const [v, setV] = useState<FormValues>({ url: hook.url, format: hook.format, secret: "", events: hook.events });
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const w = await api.post<Webhook>("/api/v1/relay/webhooks", body(v));
      let warning = "";
      try {
        await api.del(`/api/v1/relay/webhooks/${hook.id}`);
      } catch (err) {
        // The replacement exists: say that the old one is still there rather than hide it.
        warning = `Saved as a new webhook, but the old one (${hook.url}) was not deleted: ${errorText(err)}`;
      }
      onDone(w, warning);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <div className="backdrop">
      <form
        className="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="edit-webhook-title"
        onSubmit={submit}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            e.stopPropagation();
            onClose();
          }
        }}
      >
        <h2 id="edit-webhook-title">Edit webhook</h2>
        <p className="hint" id="edit-webhook-note">
          Saving replaces the webhook: the relay keeps no history across the change (a new id and an empty delivery log), and the secret must be set again (empty: a new one is generated).
        </p>
        <WebhookFields v={v} set={setV} autoFocus />
        <ErrorBox error={error} />
        <button type="submit">Save webhook</button>{" "}
        <button type="button" onClick={onClose}>
          Cancel
        </button>
      </form>
    </div>
  );
}

function DeliveryLog({ hook }: { hook: Webhook }) {
  const log = useLoad(() => api.get<{ deliveries: Delivery[] }>(`/api/v1/relay/webhooks/${hook.id}/deliveries`), [hook.id]);
  useInterval(() => log.reload(), 3000);
  const rows = log.data?.deliveries ?? [];
  return (
    <section aria-labelledby={`log-${hook.id}`} className="delivery-log">
      <h2 id={`log-${hook.id}`}>Deliveries to {hook.url}</h2>
      <button type="button" onClick={() => log.reload()}>
        Refresh deliveries
      </button>
      <ErrorBox error={log.error} />
      {log.data && rows.length === 0 && <Empty>No deliveries yet. Events come from account health changes (an account's Test on the Relay admin page that fails with 401 or 429, for one) and key budgets.</Empty>}
      {rows.length > 0 && (
        <table>
          <caption className="sr-only">Delivery log of {hook.url}, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Event</th>
              <th scope="col">Event id</th>
              <th scope="col">Attempt</th>
              <th scope="col">Result</th>
              <th scope="col">Response code</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.id} data-testid="delivery">
                <td>{fmtTime(d.created_at)}</td>
                <td>{d.event_type}</td>
                <td className="mono">{d.event_id}</td>
                <td>{d.attempt}</td>
                <td>
                  <span className={`badge ${d.ok ? "st-active" : "st-error"}`}>{d.ok ? "delivered" : "failed"}</span>
                </td>
                <td>{d.status_code === 0 ? "none" : d.status_code}</td>
                <td>{d.error || "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function RelayWebhooksPage() {
  usePageTitle("Relay webhooks");
  const hooks = useLoad(() => api.get<{ webhooks: Webhook[] }>("/api/v1/relay/webhooks"), []);
  const [secret, setSecret] = useState<{ url: string; secret: string } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [editing, setEditing] = useState<Webhook | null>(null);
  const [error, setError] = useState("");
  const [note, setNote] = useState("");
  const editButtons = useRef(new Map<string, HTMLButtonElement>());
  const secretRef = useRef<HTMLElement>(null);
  // A new secret takes focus once, so a screen reader announces it and it can be copied.
  useEffect(() => {
    if (secret) secretRef.current?.focus();
  }, [secret]);
  const created = (w: Webhook, what: string) => {
    setError("");
    if (w.secret) setSecret({ url: w.url, secret: w.secret });
    setNote(`${what} ${w.url}.`);
    hooks.reload();
  };
  const closeEdit = (focusId?: string) => {
    const id = focusId ?? editing?.id;
    setEditing(null);
    requestAnimationFrame(() => (id ? editButtons.current.get(id) : undefined)?.focus());
  };
  const list = hooks.data?.webhooks ?? [];
  const shown = list.find((w) => w.id === open);
  return (
    <section>
      <h1>Relay webhooks</h1>
      <p className="hint">
        The relay posts its events (account health changes, key budgets at 80 % and 100 %) to these targets; a failed delivery is retried up to 5 times with a doubling backoff, and every attempt is logged.
      </p>
      <ErrorBox error={error || hooks.error} />
      {note && <Status>{note}</Status>}
      {secret && (
        <div className="secret" role="region" aria-label="New signing secret">
          <p>
            Signing secret of {secret.url} (shown only now): <code data-testid="webhook-secret" tabIndex={-1} ref={secretRef}>{secret.secret}</code>
          </p>
          <button type="button" onClick={() => setSecret(null)}>
            I have copied the secret
          </button>
        </div>
      )}
      {hooks.data && list.length === 0 && <Empty>No webhooks.</Empty>}
      {list.length > 0 && (
        <table>
          <caption className="sr-only">Webhooks</caption>
          <thead>
            <tr>
              <th scope="col">Target URL</th>
              <th scope="col">Format</th>
              <th scope="col">Events</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.map((w) => (
              <tr key={w.id}>
                <th scope="row" className="mono">
                  {w.url}
                </th>
                <td>{FORMAT_LABEL[w.format] ?? w.format}</td>
                <td>{w.events.length === 0 ? "all" : w.events.join(", ")}</td>
                <td>{fmtTime(w.created_at)}</td>
                <td>
                  <button type="button" aria-pressed={open === w.id} aria-label={`Deliveries of ${w.url}`} onClick={() => setOpen(open === w.id ? null : w.id)}>
                    Deliveries
                  </button>{" "}
                  <button
                    type="button"
                    aria-label={`Edit webhook ${w.url}`}
                    ref={(el) => {
                      if (el) editButtons.current.set(w.id, el);
                      else editButtons.current.delete(w.id);
                    }}
                    onClick={() => setEditing(w)}
                  >
                    Edit
                  </button>{" "}
                  <button
                    type="button"
                    aria-label={`Delete webhook ${w.url}`}
                    onClick={async () => {
                      if (!window.confirm(`Delete the webhook to ${w.url}? Its delivery log goes too.`)) return;
                      try {
                        await api.del(`/api/v1/relay/webhooks/${w.id}`);
                        if (open === w.id) setOpen(null);
                        setNote(`Deleted the webhook to ${w.url}.`);
                        hooks.reload();
                      } catch (err) {
                        setError(errorText(err));
                      }
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {shown && <DeliveryLog hook={shown} />}
      <h2>Add a webhook</h2>
      <CreateForm onCreated={(w) => created(w, "Added a webhook to")} />
      {editing && (
        <EditDialog
          hook={editing}
          onClose={() => closeEdit()}
          onDone={(w, warning) => {
            if (open === editing.id) setOpen(w.id);
            created(w, "Saved the webhook to");
            setError(warning);
            closeEdit(w.id);
          }}
        />
      )}
    </section>
  );
}
