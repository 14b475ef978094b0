// Relay admin: upstream accounts (status, health, test button, enable/disable, dashboard), relay
// keys (created through identity's /api/v1/keys with limits and budgets; per-key relay settings,
// spend and dashboard), and usage charts by key/model/account per day or hour.
import { useMemo, useState, type FormEvent } from "react";
import { api, download, errorText, qs } from "../api/client";
import { ErrorBox, Empty, Field, Select, Status, fmtTime } from "../components/ui";
import { useLoad, usePageTitle } from "../hooks";
import { KeyCreateForm, NewKeySecret, type ApiKey } from "./Keys";
import { RelayDashboard } from "./RelayDashboard";
import { DeleteButton, useTestOutcomes, type TestOutcome } from "./RelayShared";

interface Account {
  id: string;
  name: string;
  provider: string;
  base_url: string;
  priority: number;
  weight: number;
  max_concurrency: number;
  models: string[];
  groups: string[];
  schedulable: boolean;
  status: string;
  status_reason: string;
  status_until: string | null;
  credentials_set: string[];
  in_flight: number;
  latency_ewma_ms: number | null;
}
interface UsageRow {
  bucket: string;
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cost: number;
  avg_latency_ms: number;
  key_id?: string;
  model?: string;
  account_id?: string;
}
interface KeySettings {
  key_id: string;
  cost_multiplier: number;
  account_group: string;
  account_id: string;
  spent?: { daily: number; weekly: number; monthly: number; total: number };
}

const PROVIDERS = ["openai", "openai-compatible", "anthropic", "azure-openai", "gemini", "local"];

function AccountForm({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState("");
  const [provider, setProvider] = useState("openai-compatible");
  const [baseUrl, setBaseUrl] = useState("");
  const [apiKey, setApiKey] = useState("");
  const [models, setModels] = useState("");
  const [groups, setGroups] = useState("");
  const [priority, setPriority] = useState("50");
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const body: Record<string, unknown> = {
        name: name.trim(),
        provider,
        priority: Number(priority) || 0,
        models: models.split(",").map((s) => s.trim()).filter(Boolean),
        groups: groups.split(",").map((s) => s.trim()).filter(Boolean),
      };
      if (baseUrl.trim()) body.base_url = baseUrl.trim();
      if (apiKey) body.credentials = { api_key: apiKey };
      await api.post("/api/v1/relay/accounts", body);
      setName("");
      setApiKey("");
      setError("");
      onCreated();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form onSubmit={submit} aria-label="Add upstream account" className="grid">
      <Field label="Account name" value={name} onChange={(e) => setName(e.target.value)} required />
      <Select label="Provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
        {PROVIDERS.map((p) => (
          <option key={p}>{p}</option>
        ))}
      </Select>
      <Field label="Base URL" type="url" value={baseUrl} onChange={(e) => setBaseUrl(e.target.value)} placeholder="https://api.example.com" />
      <Field label="Upstream API key" type="password" autoComplete="off" value={apiKey} onChange={(e) => setApiKey(e.target.value)} hint="Write-only: never shown again." />
      <Field label="Models (comma-separated)" value={models} onChange={(e) => setModels(e.target.value)} />
      <Field label="Groups (comma-separated)" value={groups} onChange={(e) => setGroups(e.target.value)} />
      <Field label="Priority (0–1000)" type="number" min={0} max={1000} value={priority} onChange={(e) => setPriority(e.target.value)} />
      <ErrorBox error={error} />
      <div>
        <button type="submit">Add account</button>
      </div>
    </form>
  );
}

function Accounts() {
  const accounts = useLoad(() => api.get<{ accounts: Account[] }>("/api/v1/relay/accounts"), []);
  const { outcomes: tests, run } = useTestOutcomes();
  const [error, setError] = useState("");
  const [dashboard, setDashboard] = useState<string | null>(null);
  const test = async (a: Account) => {
    if (await run(a.id, () => api.post<TestOutcome>(`/api/v1/relay/accounts/${a.id}/test`, {}))) accounts.reload();
  };
  const toggle = async (a: Account) => {
    try {
      await api.patch(`/api/v1/relay/accounts/${a.id}`, { status: a.status === "disabled" ? "active" : "disabled" });
      accounts.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const shownAccount = accounts.data?.accounts.find((a) => a.id === dashboard);
  return (
    <>
      <ErrorBox error={error || accounts.error} />
      {accounts.data && accounts.data.accounts.length === 0 && <Empty>No upstream accounts.</Empty>}
      {accounts.data && accounts.data.accounts.length > 0 && (
        <table>
          <caption className="sr-only">Upstream accounts</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Provider</th>
              <th scope="col">Status</th>
              <th scope="col">Health</th>
              <th scope="col">Models</th>
              <th scope="col">Groups</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {accounts.data.accounts.map((a) => (
              <tr key={a.id}>
                <th scope="row">{a.name}</th>
                <td>{a.provider}</td>
                <td>
                  <span className={`badge st-${a.status}`}>{a.status}</span> <span className="muted">{a.status_reason}</span>
                  {a.status_until && <span className="muted"> until {fmtTime(a.status_until)}</span>}
                </td>
                <td>
                  {a.in_flight} in flight · {a.latency_ewma_ms === null ? "no latency yet" : `${a.latency_ewma_ms.toFixed(0)} ms`}
                  {tests[a.id] && <div role="status">{tests[a.id]}</div>}
                </td>
                <td>{a.models.join(", ") || "all"}</td>
                <td>{a.groups.join(", ") || "—"}</td>
                <td>
                  <button type="button" onClick={() => void test(a)} aria-label={`Test account ${a.name}`}>
                    Test
                  </button>{" "}
                  <button type="button" onClick={() => void toggle(a)} aria-label={`${a.status === "disabled" ? "Enable" : "Disable"} account ${a.name}`}>
                    {a.status === "disabled" ? "Enable" : "Disable"}
                  </button>{" "}
                  <button type="button" aria-pressed={dashboard === a.id} aria-label={`Dashboard of account ${a.name}`} onClick={() => setDashboard(dashboard === a.id ? null : a.id)}>
                    Dashboard
                  </button>{" "}
                  <DeleteButton
                    label={`Delete account ${a.name}`}
                    question={`Delete account ${a.name}?`}
                    path={`/api/v1/relay/accounts/${a.id}`}
                    onDeleted={() => {
                      if (dashboard === a.id) setDashboard(null);
                      accounts.reload();
                    }}
                    onError={setError}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {shownAccount && <RelayDashboard key={shownAccount.id} path={`/api/v1/relay/accounts/${shownAccount.id}/dashboard`} title={`Dashboard of account ${shownAccount.name}`} headingId={`dashboard-${shownAccount.id}`} />}
      <details>
        <summary>Add an upstream account</summary>
        <AccountForm onCreated={accounts.reload} />
      </details>
    </>
  );
}

function KeySettingsRow({ k, dashboardShown, onDashboard }: { k: ApiKey; dashboardShown: boolean; onDashboard: () => void }) {
  const s = useLoad(() => api.get<KeySettings>(`/api/v1/relay/keys/${k.id}/settings`), [k.id]);
  const [mult, setMult] = useState<string | null>(null);
  const [group, setGroup] = useState<string | null>(null);
  const [note, setNote] = useState("");
  const save = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api.put(`/api/v1/relay/keys/${k.id}/settings`, {
        cost_multiplier: Number(mult ?? s.data?.cost_multiplier ?? 1),
        account_group: group ?? s.data?.account_group ?? "",
      });
      setNote("saved");
      s.reload();
    } catch (err) {
      setNote(errorText(err));
    }
  };
  const b = k.budget;
  return (
    <tr>
      <th scope="row">
        {k.name} <code>{k.prefix}…</code>
      </th>
      <td>
        {k.rate_limit.rpm || "∞"} rpm · {k.rate_limit.tpm || "∞"} tpm
      </td>
      <td>
        {s.data?.spent ? `$${s.data.spent.daily.toFixed(4)}` : "—"} / {b.daily ? `$${b.daily}` : "∞"} today · {s.data?.spent ? `$${s.data.spent.monthly.toFixed(4)}` : "—"} /{" "}
        {b.monthly ? `$${b.monthly}` : "∞"} month · {s.data?.spent ? `$${s.data.spent.total.toFixed(4)}` : "—"} / {b.total ? `$${b.total}` : "∞"} total
      </td>
      <td>
        <form onSubmit={save} className="inline-form compact">
          <Field label={`Cost multiplier of ${k.name}`} type="number" step="0.01" min={0} value={mult ?? String(s.data?.cost_multiplier ?? 1)} onChange={(e) => setMult(e.target.value)} />
          <Field label={`Account group of ${k.name}`} value={group ?? s.data?.account_group ?? ""} onChange={(e) => setGroup(e.target.value)} />
          <button type="submit">Save settings</button> {note && <span role="status">{note}</span>}
        </form>
      </td>
      <td>
        <button type="button" aria-pressed={dashboardShown} aria-label={`Dashboard of key ${k.name}`} onClick={onDashboard}>
          Dashboard
        </button>
      </td>
    </tr>
  );
}

function Keys() {
  const keys = useLoad(() => api.get<{ keys: ApiKey[] }>("/api/v1/keys"), []);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [dashboard, setDashboard] = useState<string | null>(null);
  const relayKeys = (keys.data?.keys ?? []).filter((k) => k.scopes.includes("relay") || k.scopes.includes("admin"));
  const shown = relayKeys.find((k) => k.id === dashboard);
  return (
    <>
      <ErrorBox error={keys.error} />
      {keys.data && relayKeys.length === 0 && <Empty>No relay keys.</Empty>}
      {relayKeys.length > 0 && (
        <table>
          <caption className="sr-only">Relay keys</caption>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Rate limit</th>
              <th scope="col">Spend / budget</th>
              <th scope="col">Relay settings</th>
              <th scope="col">Usage</th>
            </tr>
          </thead>
          <tbody>
            {relayKeys.map((k) => (
              <KeySettingsRow key={k.id} k={k} dashboardShown={dashboard === k.id} onDashboard={() => setDashboard(dashboard === k.id ? null : k.id)} />
            ))}
          </tbody>
        </table>
      )}
      {shown && <RelayDashboard key={shown.id} path={`/api/v1/relay/keys/${shown.id}/dashboard`} title={`Dashboard of key ${shown.name}`} headingId={`dashboard-${shown.id}`} />}
      <details open={relayKeys.length === 0}>
        <summary>Create a relay key</summary>
        <KeyCreateForm
          defaults={["relay"]}
          onCreated={(k) => {
            setCreated(k);
            keys.reload();
          }}
        />
      </details>
      {created && <NewKeySecret created={created} onDone={() => setCreated(null)} />}
    </>
  );
}

/** Bar chart of one measure per bucket, stacked by group. */
export function UsageBars({ rows, measure, groupField }: { rows: UsageRow[]; measure: "cost" | "requests" | "tokens"; groupField: string }) {
  const value = (r: UsageRow) => (measure === "cost" ? r.cost : measure === "requests" ? r.requests : r.input_tokens + r.output_tokens);
  const buckets = [...new Set(rows.map((r) => r.bucket))].sort();
  const groups = [...new Set(rows.map((r) => String((r as unknown as Record<string, unknown>)[groupField] ?? "all")))];
  const totals = buckets.map((b) => rows.filter((r) => r.bucket === b).reduce((a, r) => a + value(r), 0));
  const max = Math.max(1e-9, ...totals);
  const W = Math.max(300, buckets.length * 48 + 60);
  const H = 200;
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
  return (
    <figure>
      <svg width={W} height={H + 30} role="img" aria-label={`${measure} per ${buckets.length} buckets: ${buckets.map((b, i) => `${b.slice(0, 10)} ${totals[i].toFixed(measure === "cost" ? 4 : 0)}`).join(", ")}`}>
        {buckets.map((b, i) => {
          let y = H;
          return (
            <g key={b}>
              {groups.map((g, gi) => {
                const v = rows.filter((r) => r.bucket === b && String((r as unknown as Record<string, unknown>)[groupField] ?? "all") === g).reduce((a, r) => a + value(r), 0);
                const h = (v / max) * (H - 10);
                y -= h;
                return <rect key={g} x={40 + i * 48} y={y} width={36} height={h} fill={colors[gi % colors.length]}><title>{`${g}: ${v}`}</title></rect>;
              })}
              <text x={58 + i * 48} y={H + 14} fontSize="10" textAnchor="middle">
                {b.slice(5, 10)}
              </text>
            </g>
          );
        })}
        <text x={0} y={12} fontSize="10">
          {max.toFixed(measure === "cost" ? 4 : 0)}
        </text>
      </svg>
      <figcaption>
        {groups.map((g, gi) => (
          <span key={g} className="chip" style={{ borderColor: colors[gi % colors.length] }}>
            {g}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

function Usage() {
  const [groupBy, setGroupBy] = useState("model");
  const [bucket, setBucket] = useState("day");
  const [measure, setMeasure] = useState<"cost" | "requests" | "tokens">("requests");
  const usage = useLoad(() => api.get<{ rows: UsageRow[] }>(`/api/v1/relay/usage` + qs({ group_by: groupBy, bucket })), [groupBy, bucket]);
  const field = groupBy === "key" ? "key_id" : groupBy === "account" ? "account_id" : "model";
  const totals = useMemo(() => {
    const rows = usage.data?.rows ?? [];
    return { requests: rows.reduce((a, r) => a + r.requests, 0), errors: rows.reduce((a, r) => a + r.errors, 0), cost: rows.reduce((a, r) => a + r.cost, 0) };
  }, [usage.data]);
  return (
    <>
      <div className="inline-form">
        <Select label="Group by" value={groupBy} onChange={(e) => setGroupBy(e.target.value)}>
          <option value="model">model</option>
          <option value="key">key</option>
          <option value="account">account</option>
        </Select>
        <Select label="Bucket" value={bucket} onChange={(e) => setBucket(e.target.value)}>
          <option value="day">day</option>
          <option value="hour">hour</option>
        </Select>
        <Select label="Measure" value={measure} onChange={(e) => setMeasure(e.target.value as typeof measure)}>
          <option value="requests">requests</option>
          <option value="tokens">tokens</option>
          <option value="cost">cost</option>
        </Select>
      </div>
      <ErrorBox error={usage.error} />
      {usage.data && (
        <>
          <Status>
            Last 7 days: {totals.requests} requests, {totals.errors} errors, ${totals.cost.toFixed(4)}.
          </Status>
          <button type="button" onClick={() => void download(`/api/v1/relay/usage` + qs({ group_by: groupBy, bucket, format: "csv" }), "relay-usage.csv")}>
            Download usage CSV
          </button>
          {usage.data.rows.length > 0 ? <UsageBars rows={usage.data.rows} measure={measure} groupField={field} /> : <Empty>No usage recorded.</Empty>}
        </>
      )}
    </>
  );
}

export function RelayPage() {
  usePageTitle("Relay admin");
  return (
    <section>
      <h1>Relay admin</h1>
      <h2>Upstream accounts</h2>
      <Accounts />
      <h2>Relay keys, limits and budgets</h2>
      <Keys />
      <h2>Usage</h2>
      <Usage />
    </section>
  );
}
