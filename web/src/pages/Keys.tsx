// API keys: create with scopes and limits (the secret is shown once), list, revoke.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, errorText } from "../api/client";
import { Check, ErrorBox, Field, Select, fmtTime } from "../components/ui";
import { useLoad, usePageTitle } from "../hooks";

export const SCOPES = ["embed", "relay", "track:read", "track:write", "chat", "bus:publish", "bus:subscribe", "admin"];

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  models: string[];
  rate_limit: { rpm: number; tpm: number };
  budget: { daily: number; weekly: number; monthly: number; total: number };
  max_concurrency: number;
  tier: string;
  enabled: boolean;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
  key?: string;
}

function num(s: string): number {
  const n = Number(s);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** The create form; `defaults` preselects scopes (the relay page creates `relay` keys). */
export function KeyCreateForm({ defaults = ["embed"], onCreated }: { defaults?: string[]; onCreated: (k: ApiKey) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(defaults);
  const [tier, setTier] = useState("");
  const [rpm, setRpm] = useState("");
  const [tpm, setTpm] = useState("");
  const [daily, setDaily] = useState("");
  const [monthly, setMonthly] = useState("");
  const [total, setTotal] = useState("");
  const [models, setModels] = useState("");
  const [expires, setExpires] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const body: Record<string, unknown> = { name: name.trim(), scopes };
      if (tier) body.tier = tier;
      if (rpm || tpm) body.rate_limit = { rpm: num(rpm), tpm: num(tpm) };
      if (daily || monthly || total) body.budget = { daily: num(daily), weekly: 0, monthly: num(monthly), total: num(total) };
      const m = models.split(",").map((x) => x.trim()).filter(Boolean);
      if (m.length) body.models = m;
      if (expires) body.expires_at = new Date(expires).toISOString();
      const k = await api.post<ApiKey>("/api/v1/keys", body);
      setError("");
      setName("");
      onCreated(k);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form onSubmit={submit} aria-label="Create API key">
      <Field label="Key name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
      <fieldset>
        <legend>Scopes</legend>
        {SCOPES.map((s) => (
          <Check
            key={s}
            label={s}
            checked={scopes.includes(s)}
            onChange={(e) => setScopes(e.target.checked ? [...scopes, s] : scopes.filter((x) => x !== s))}
          />
        ))}
      </fieldset>
      <details>
        <summary>Limits, budget and expiry</summary>
        <div className="grid">
          <Select label="Tier" value={tier} onChange={(e) => setTier(e.target.value)}>
            <option value="">default</option>
            <option value="free">free</option>
            <option value="basic">basic</option>
            <option value="pro">pro</option>
            <option value="enterprise">enterprise</option>
          </Select>
          <Field label="Requests per minute" type="number" min={0} value={rpm} onChange={(e) => setRpm(e.target.value)} />
          <Field label="Tokens per minute" type="number" min={0} value={tpm} onChange={(e) => setTpm(e.target.value)} />
          <Field label="Daily budget (USD)" type="number" min={0} step="0.01" value={daily} onChange={(e) => setDaily(e.target.value)} />
          <Field label="Monthly budget (USD)" type="number" min={0} step="0.01" value={monthly} onChange={(e) => setMonthly(e.target.value)} />
          <Field label="Total budget (USD)" type="number" min={0} step="0.01" value={total} onChange={(e) => setTotal(e.target.value)} />
          <Field label="Allowed models (comma-separated globs)" value={models} onChange={(e) => setModels(e.target.value)} />
          <Field label="Expires at" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />
        </div>
      </details>
      <ErrorBox error={error} />
      <button type="submit" disabled={scopes.length === 0}>
        Create key
      </button>
    </form>
  );
}

/** Shows a freshly created key's secret once, with a copy button; focus moves to it. */
export function NewKeySecret({ created, onDone }: { created: ApiKey; onDone: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => ref.current?.focus(), [created.id]);
  return (
    <div className="secret" role="alert" ref={ref} tabIndex={-1} aria-label="New API key">
      <p>
        Key <strong>{created.name}</strong> created. Copy it now: it will not be shown again.
      </p>
      <code data-testid="new-key">{created.key}</code>{" "}
      <button type="button" onClick={() => void navigator.clipboard?.writeText(created.key ?? "")}>
        Copy key
      </button>{" "}
      <button type="button" onClick={onDone}>
        I have copied it
      </button>
    </div>
  );
}

export function KeyTable({ keys, onRevoke }: { keys: ApiKey[]; onRevoke: (k: ApiKey) => void }) {
  return (
    <table>
      <caption className="sr-only">API keys</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Prefix</th>
          <th scope="col">Scopes</th>
          <th scope="col">Limits</th>
          <th scope="col">Created</th>
          <th scope="col">Last used</th>
          <th scope="col">Expires</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {keys.map((k) => (
          <tr key={k.id}>
            <td>{k.name}</td>
            <td>
              <code>{k.prefix}…</code>
            </td>
            <td>{k.scopes.join(", ")}</td>
            <td>
              {[k.tier, k.rate_limit.rpm ? `${k.rate_limit.rpm} rpm` : "", k.rate_limit.tpm ? `${k.rate_limit.tpm} tpm` : "",
                k.budget.daily ? `$${k.budget.daily}/day` : "", k.budget.monthly ? `$${k.budget.monthly}/month` : "",
                k.budget.total ? `$${k.budget.total} total` : ""].filter(Boolean).join(" · ")}
            </td>
            <td>{fmtTime(k.created_at)}</td>
            <td>{fmtTime(k.last_used_at)}</td>
            <td>{fmtTime(k.expires_at)}</td>
            <td>
              <button type="button" aria-label={`Revoke key ${k.name}`} onClick={() => onRevoke(k)}>
                Revoke
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function KeysPage() {
  usePageTitle("API keys");
  const keys = useLoad(() => api.get<{ keys: ApiKey[] }>("/api/v1/keys"), []);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [error, setError] = useState("");
  return (
    <section>
      <h1>API keys</h1>
      <h2>New key</h2>
      <KeyCreateForm
        onCreated={(k) => {
          setCreated(k);
          keys.reload();
        }}
      />
      {created && <NewKeySecret created={created} onDone={() => setCreated(null)} />}
      <h2>Keys of this workspace</h2>
      <ErrorBox error={error || keys.error} />
      {keys.data && (
        <KeyTable
          keys={keys.data.keys}
          onRevoke={async (k) => {
            if (!window.confirm(`Revoke key ${k.name}? Clients using it stop working.`)) return;
            try {
              await api.del(`/api/v1/keys/${k.id}`);
              keys.reload();
            } catch (err) {
              setError(errorText(err));
            }
          }}
        />
      )}
    </section>
  );
}
