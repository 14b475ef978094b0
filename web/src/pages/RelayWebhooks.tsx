// Relay webhooks: the workspace's targets for relay events (account health changes, key budget
// thresholds) — list, create (signed JSON with an HMAC secret, or Slack incoming-webhook text),
// edit in place (PATCH; pause and resume), send a signed test event, delete — and each target's
// delivery log (event, attempt, result, HTTP status, error, latency), refreshed while it is open.
// docs/relay.md "Webhooks" describes the API.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, errorText } from "../api/client";
import { Check, Empty, ErrorBox, Field, Select, Status, fmtTime } from "../components/ui";
import { useInterval, useLoad, usePageTitle } from "../hooks";
import { DeleteButton, useTestOutcomes, type TestOutcome } from "./RelayShared";

export interface Webhook {
  id: string;
  url: string;
  format: "json" | "slack";
  events: string[];
  enabled: boolean;
  created_at: string;
  updated_at?: string | null;
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
  latency_ms?: number;
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
  ["key.expired", "a relay key passed its expiry"],
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
  enabled: boolean;
}

/** The fields of a webhook, shared by the create form and the edit dialog (`editing`: the secret may stay as it is, and the webhook can be paused). */
function WebhookFields({ v, set, editing = false }: { v: FormValues; set: (v: FormValues) => void; editing?: boolean }) {
  return (
    <>
      <Field label="Target URL" type="url" autoFocus={editing} value={v.url} onChange={(e) => set({ ...v, url: e.target.value })} required placeholder="https://hooks.example.com/atrium" />
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
        hint={`${editing ? "Empty: the current secret stays (it cannot be read back)." : "Empty: the server generates one and shows it once."} Receivers check x-atrium-signature: sha256=HMAC(secret, timestamp + '.' + body).`}
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
      {editing && <Check label="Enabled (unchecked: paused, no events are delivered)" checked={v.enabled} onChange={(e) => set({ ...v, enabled: e.target.checked })} />}
    </>
  );
}

/** The request body: POST takes the fields, PATCH also `enabled`; an empty secret is left out (generated on create, kept on edit). */
function body(v: FormValues, editing = false): Record<string, unknown> {
  const b: Record<string, unknown> = { url: v.url.trim(), format: v.format, events: v.events };
  if (v.secret) b.secret = v.secret;
  if (editing) b.enabled = v.enabled;
  return b;
}

function CreateForm({ onCreated }: { onCreated: (w: Webhook) => void }) {
  const empty: FormValues = { url: "", format: "json", secret: "", events: [], enabled: true };
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

/** Editing a webhook in place (PATCH): the id, the delivery log and, unless a new one is typed, the secret stay. */
function EditDialog({ hook, onDone, onClose }: { hook: Webhook; onDone: (w: Webhook) => void; onClose: () => void }) {
  const [v, setV] = useState<FormValues>({ url: hook.url, format: hook.format, secret: "", events: hook.events, enabled: hook.enabled });
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      onDone(await api.patch<Webhook>(`/api/v1/relay/webhooks/${hook.id}`, body(v, true)));
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
        <WebhookFields v={v} set={setV} editing />
        <ErrorBox error={error} />
        <button type="submit">Save webhook</button>{" "}
        <button type="button" onClick={onClose}>
          Cancel
        </button>
      </form>
    </div>
  );
}

/** The delivery log of `hook`; a new `version` (a test was sent) loads it again. */
function DeliveryLog({ hook, version }: { hook: Webhook; version: number }) {
  const log = useLoad(() => api.get<{ deliveries: Delivery[] }>(`/api/v1/relay/webhooks/${hook.id}/deliveries`), [hook.id, version]);
  useInterval(() => log.reload(), 3000);
  const rows = log.data?.deliveries ?? [];
  return (
    <section aria-labelledby={`log-${hook.id}`} className="delivery-log">
      <h2 id={`log-${hook.id}`}>Deliveries to {hook.url}</h2>
      <button type="button" onClick={() => log.reload()}>
        Refresh deliveries
      </button>
      <ErrorBox error={log.error} />
      {log.data && rows.length === 0 && <Empty>No deliveries yet. Events come from account health changes (an account's Test on the Relay admin page that fails with 401 or 429, for one) and key budgets; "Send test" sends one now.</Empty>}
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
              <th scope="col">Latency</th>
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
                <td>{d.latency_ms === undefined ? "—" : `${d.latency_ms} ms`}</td>
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
  const [logVersion, setLogVersion] = useState(0);
  const { outcomes, run } = useTestOutcomes("delivered");
  const editButtons = useRef(new Map<string, HTMLButtonElement>());
  const secretRef = useRef<HTMLElement>(null);
  // A new secret takes focus once, so a screen reader announces it and it can be copied.
  useEffect(() => {
    if (secret) secretRef.current?.focus();
  }, [secret]);
  const created = (w: Webhook) => {
    setError("");
    if (w.secret) setSecret({ url: w.url, secret: w.secret });
    setNote(`Added a webhook to ${w.url}.`);
    hooks.reload();
  };
  const closeEdit = () => {
    const id = editing?.id;
    setEditing(null);
    requestAnimationFrame(() => (id ? editButtons.current.get(id) : undefined)?.focus());
  };
  const sendTest = async (w: Webhook) => {
    await run(w.id, () => api.post<TestOutcome>(`/api/v1/relay/webhooks/${w.id}/test`, {}));
    setLogVersion((n) => n + 1); // the test is in the delivery log
  };
  const list = hooks.data?.webhooks ?? [];
  const shown = list.find((w) => w.id === open);
  return (
    <section>
      <h1>Relay webhooks</h1>
      <p className="hint">
        The relay posts its events (account health changes, key budgets at 80 % and 100 %, expired keys) to these targets; a failed delivery is retried up to 5 times with a doubling backoff, and every attempt is logged. "Send test" posts a signed <code>webhook.test</code> event now, once.
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
              <th scope="col">State</th>
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
                <td>
                  <span className={`badge ${w.enabled ? "st-active" : "st-disabled"}`}>{w.enabled ? "enabled" : "paused"}</span>
                </td>
                <td>{fmtTime(w.created_at)}</td>
                <td>
                  <button type="button" aria-pressed={open === w.id} aria-label={`Deliveries of ${w.url}`} onClick={() => setOpen(open === w.id ? null : w.id)}>
                    Deliveries
                  </button>{" "}
                  <button type="button" aria-label={`Send a test event to ${w.url}`} onClick={() => void sendTest(w)}>
                    Send test
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
                  <DeleteButton
                    label={`Delete webhook ${w.url}`}
                    question={`Delete the webhook to ${w.url}? Its delivery log goes too.`}
                    path={`/api/v1/relay/webhooks/${w.id}`}
                    onDeleted={() => {
                      if (open === w.id) setOpen(null);
                      setNote(`Deleted the webhook to ${w.url}.`);
                      hooks.reload();
                    }}
                    onError={setError}
                  />
                  {outcomes[w.id] && (
                    <div role="status" data-testid="webhook-test">
                      Test event: {outcomes[w.id]}
                    </div>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {shown && <DeliveryLog hook={shown} version={logVersion} />}
      <h2>Add a webhook</h2>
      <CreateForm onCreated={created} />
      {editing && (
        <EditDialog
          hook={editing}
          onClose={closeEdit}
          onDone={(w) => {
            setError("");
            setNote(`Saved the webhook to ${w.url}.`);
            hooks.reload();
            closeEdit();
          }}
        />
      )}
    </section>
  );
}
