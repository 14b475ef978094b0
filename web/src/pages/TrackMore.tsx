// Tracking, continued: artifacts (versions, aliases, lineage graph), sweeps (create, stats,
// pause/resume/finish) and the model registry (models, versions, stages, aliases).
import { useState, type FormEvent } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { api, errorText, qs } from "../api/client";
import { ErrorBox, Empty, Field, Select, TextArea, fmtNum, fmtTime } from "../components/ui";
import { useLoad, usePageTitle } from "../hooks";
import type { Project } from "./Track";

interface Artifact {
  id: string;
  name: string;
  type: string;
  description: string;
  latest_version: string | null;
  version_count: number;
  aliases: Record<string, string>;
  created_at: string;
}
interface ArtifactVersion {
  id: string;
  version: string | null;
  state: string;
  digest: string;
  size: number;
  file_count: number;
  aliases: string[];
  created_at: string;
  files?: { path: string; sha256: string; size: number; url?: string }[];
}
interface LineageNode {
  id: string;
  kind: "run" | "artifact_version";
  run_id?: string;
  name?: string;
  status?: string;
  artifact?: string;
  version?: string;
}
interface Lineage {
  nodes: LineageNode[];
  edges: { from: string; to: string; relation: string }[];
}

/** Layered drawing of a lineage graph: columns by longest path from the sources. */
export function LineageGraph({ graph }: { graph: Lineage }) {
  const depth = new Map<string, number>(graph.nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < graph.nodes.length; pass++) {
    let changed = false;
    for (const e of graph.edges) {
      const d = (depth.get(e.from) ?? 0) + 1;
      if (d > (depth.get(e.to) ?? 0) && d <= graph.nodes.length) {
        depth.set(e.to, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const cols = new Map<number, LineageNode[]>();
  for (const n of graph.nodes) {
    const d = depth.get(n.id) ?? 0;
    cols.set(d, [...(cols.get(d) ?? []), n]);
  }
  const pos = new Map<string, { x: number; y: number }>();
  for (const [d, ns] of cols) ns.forEach((n, i) => pos.set(n.id, { x: 20 + d * 200, y: 20 + i * 60 }));
  const W = 40 + (Math.max(0, ...cols.keys()) + 1) * 200;
  const H = 40 + Math.max(1, ...[...cols.values()].map((c) => c.length)) * 60;
  const label = (n: LineageNode) => (n.kind === "run" ? `run ${n.name ?? n.run_id}` : `${n.artifact}:${n.version}`);
  return (
    <svg width={W} height={H} role="img" aria-label={`Lineage: ${graph.edges.map((e) => `${e.from} ${e.relation} ${e.to}`).join("; ") || "no edges"}`}>
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">
          <path d="M0,0 L10,5 L0,10 z" fill="#666" />
        </marker>
      </defs>
      {graph.edges.map((e, i) => {
        const a = pos.get(e.from);
        const b = pos.get(e.to);
        if (!a || !b) return null;
        return <line key={i} x1={a.x + 160} y1={a.y + 18} x2={b.x} y2={b.y + 18} stroke="#666" markerEnd="url(#arrow)" />;
      })}
      {graph.nodes.map((n) => {
        const p = pos.get(n.id)!;
        return (
          <g key={n.id}>
            <rect x={p.x} y={p.y} width={160} height={36} rx={n.kind === "run" ? 18 : 4} fill={n.kind === "run" ? "#e0f2fe" : "#fef3c7"} stroke="#888" />
            <text x={p.x + 80} y={p.y + 22} textAnchor="middle" fontSize="12">
              {label(n).slice(0, 22)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

function VersionPanel({ artifact, onChange }: { artifact: Artifact; onChange: () => void }) {
  const versions = useLoad(() => api.get<{ versions: ArtifactVersion[] }>(`/api/v1/artifacts/${artifact.id}/versions`), [artifact.id]);
  const [open, setOpen] = useState<string | null>(null);
  const detail = useLoad(async () => (open ? api.get<ArtifactVersion>(`/api/v1/artifacts/${artifact.id}/versions/${open}`) : null), [open]);
  const lineage = useLoad(async () => (open && detail.data ? api.get<Lineage>(`/api/v1/lineage` + qs({ version_id: detail.data.id, direction: "both", depth: 5 })) : null), [detail.data?.id]);
  const [alias, setAlias] = useState("");
  const [error, setError] = useState("");
  const setAliasOn = async (vid: string, e: FormEvent) => {
    e.preventDefault();
    try {
      await api.put(`/api/v1/artifact-versions/${vid}/aliases/${encodeURIComponent(alias.trim())}`);
      setAlias("");
      versions.reload();
      onChange();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <div>
      <h2>
        {artifact.name} <span className="muted">({artifact.type})</span>
      </h2>
      <ErrorBox error={error || versions.error} />
      <table>
        <caption className="sr-only">Versions of {artifact.name}</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">State</th>
            <th scope="col">Files</th>
            <th scope="col">Size</th>
            <th scope="col">Aliases</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {versions.data?.versions.map((v) => (
            <tr key={v.id}>
              <td>
                <button type="button" className="linklike" onClick={() => setOpen(v.version ?? v.id)}>
                  {v.version ?? "pending"}
                </button>
              </td>
              <td>{v.state}</td>
              <td>{v.file_count}</td>
              <td>{v.size}</td>
              <td>
                {v.aliases.map((a) => (
                  <span key={a} className="chip">
                    {a}
                    {a !== "latest" && (
                      <button
                        type="button"
                        aria-label={`Remove alias ${a}`}
                        onClick={async () => {
                          try {
                            await api.del(`/api/v1/artifact-versions/${v.id}/aliases/${encodeURIComponent(a)}`);
                            versions.reload();
                          } catch (err) {
                            setError(errorText(err));
                          }
                        }}
                      >
                        ×
                      </button>
                    )}
                  </span>
                ))}
              </td>
              <td>{fmtTime(v.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {detail.data && (
        <div className="panel">
          <h3>Version {detail.data.version}</h3>
          <p className="mono">digest {detail.data.digest}</p>
          <form onSubmit={(e) => setAliasOn(detail.data!.id, e)} className="inline-form">
            <Field label={`Alias for ${detail.data.version}`} value={alias} onChange={(e) => setAlias(e.target.value)} required />
            <button type="submit">Set alias</button>
          </form>
          <h4>Files</h4>
          <ul className="list">
            {detail.data.files?.map((f) => (
              <li key={f.path}>
                <code>{f.path}</code> · {f.size} bytes {f.url && <span className="muted">→ {f.url}</span>}
              </li>
            ))}
          </ul>
          <h4>Lineage</h4>
          <ErrorBox error={lineage.error} />
          {lineage.data && <LineageGraph graph={lineage.data} />}
        </div>
      )}
    </div>
  );
}

export function ArtifactsPage() {
  const { projectId = "" } = useParams();
  const [sp] = useSearchParams();
  usePageTitle("Artifacts");
  const arts = useLoad(() => api.get<{ artifacts: Artifact[] }>(`/api/v1/artifacts` + qs({ project_id: projectId })), [projectId]);
  const [sel, setSel] = useState<string | null>(sp.get("artifact"));
  const current = arts.data?.artifacts.find((a) => a.id === sel);
  return (
    <section>
      <h1>Artifacts</h1>
      <p>
        <Link to={`/track/projects/${projectId}`}>Back to runs</Link>
      </p>
      <ErrorBox error={arts.error} />
      {arts.data && arts.data.artifacts.length === 0 && <Empty>No artifacts in this project.</Empty>}
      <ul className="list">
        {arts.data?.artifacts.map((a) => (
          <li key={a.id}>
            <button type="button" className="linklike" aria-pressed={a.id === sel} onClick={() => setSel(a.id)}>
              {a.name}
            </button>{" "}
            <span className="muted">{a.type}</span> · {a.version_count} versions · latest {a.latest_version ?? "—"}{" "}
            {Object.entries(a.aliases).map(([k, v]) => (
              <span key={k} className="chip">
                {k}→{v}
              </span>
            ))}
          </li>
        ))}
      </ul>
      {current && <VersionPanel artifact={current} onChange={arts.reload} />}
    </section>
  );
}

interface Sweep {
  id: string;
  project_id: string;
  name: string;
  status: string;
  config: Record<string, unknown>;
  suggestion_count: number;
  run_count: number;
  created_at: string;
}
interface SweepStats {
  run_count: number;
  by_status: Record<string, number>;
  best: { run_id: string; value: number; params: Record<string, unknown> } | null;
  runs: { run_id: string; status: string; value: number | null; params: Record<string, unknown> }[];
}

const SWEEP_EXAMPLE = JSON.stringify(
  { method: "random", metric: { name: "val_loss", goal: "minimize" }, parameters: { lr: { distribution: "log_uniform", min: 1e-5, max: 1e-1 }, batch: { values: [16, 32, 64] } }, run_cap: 20 },
  null,
  2,
);

function SweepDetail({ sweep, onChange }: { sweep: Sweep; onChange: () => void }) {
  const stats = useLoad(() => api.get<SweepStats>(`/api/v1/sweeps/${sweep.id}/stats`), [sweep.id, sweep.status]);
  const [error, setError] = useState("");
  const act = async (what: string) => {
    try {
      await api.post(`/api/v1/sweeps/${sweep.id}/${what}`, {});
      onChange();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <div className="panel">
      <h2>
        Sweep {sweep.name || sweep.id} <span className="badge">{sweep.status}</span>
      </h2>
      <p>
        {sweep.suggestion_count} suggestions, {sweep.run_count} runs.{" "}
        {sweep.status === "running" && <button type="button" onClick={() => act("pause")}>Pause sweep</button>}
        {sweep.status === "paused" && <button type="button" onClick={() => act("resume")}>Resume sweep</button>}{" "}
        {sweep.status !== "finished" && <button type="button" onClick={() => act("finish")}>Finish sweep</button>}
      </p>
      <ErrorBox error={error || stats.error} />
      <details>
        <summary>Config</summary>
        <pre className="mono">{JSON.stringify(sweep.config, null, 2)}</pre>
      </details>
      {stats.data && (
        <>
          <p>
            Best: {stats.data.best ? <><Link to={`/track/runs/${stats.data.best.run_id}`}>run {stats.data.best.run_id}</Link> = {fmtNum(stats.data.best.value)}</> : "—"} · by status{" "}
            {Object.entries(stats.data.by_status).map(([k, v]) => `${k} ${v}`).join(", ")}
          </p>
          {stats.data.runs.length === 0 && <Empty>No runs yet: start agents with the SDK (`atrium_track.agent`).</Empty>}
          {stats.data.runs.length > 0 && <table>
            <caption className="sr-only">Runs of the sweep, best first</caption>
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">Status</th>
                <th scope="col">Metric</th>
                <th scope="col">Params</th>
              </tr>
            </thead>
            <tbody>
              {stats.data.runs.map((r) => (
                <tr key={r.run_id}>
                  <td>
                    <Link to={`/track/runs/${r.run_id}`}>{r.run_id}</Link>
                  </td>
                  <td>{r.status}</td>
                  <td>{fmtNum(r.value)}</td>
                  <td className="mono">{JSON.stringify(r.params)}</td>
                </tr>
              ))}
            </tbody>
          </table>}
        </>
      )}
    </div>
  );
}

export function SweepsPage() {
  usePageTitle("Sweeps");
  const [sp, setSp] = useSearchParams();
  const projects = useLoad(() => api.get<{ projects: Project[] }>("/api/v1/projects"), []);
  const projectId = sp.get("project_id") ?? projects.data?.projects[0]?.id ?? "";
  const sweeps = useLoad(async () => (projectId ? api.get<{ sweeps: Sweep[] }>(`/api/v1/sweeps` + qs({ project_id: projectId })) : { sweeps: [] }), [projectId]);
  const [sel, setSel] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [config, setConfig] = useState(SWEEP_EXAMPLE);
  const [error, setError] = useState("");
  const create = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const cfg = JSON.parse(config);
      const s = await api.post<Sweep>("/api/v1/sweeps", { project_id: projectId, name: name.trim() || undefined, config: cfg });
      setSel(s.id);
      setName("");
      setError("");
      sweeps.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const current = sweeps.data?.sweeps.find((s) => s.id === sel);
  return (
    <section>
      <h1>Sweeps</h1>
      <Select label="Project" value={projectId} onChange={(e) => setSp({ project_id: e.target.value })}>
        {projects.data?.projects.map((p) => (
          <option key={p.id} value={p.id}>
            {p.name}
          </option>
        ))}
      </Select>
      <ErrorBox error={projects.error || sweeps.error} />
      {sweeps.data && sweeps.data.sweeps.length === 0 && <Empty>No sweeps in this project.</Empty>}
      <ul className="list">
        {sweeps.data?.sweeps.map((s) => (
          <li key={s.id}>
            <button type="button" className="linklike" aria-pressed={s.id === sel} onClick={() => setSel(s.id)}>
              {s.name || `sweep ${s.id}`}
            </button>{" "}
            <span className="badge">{s.status}</span> · {(s.config as { method?: string }).method} · {s.run_count} runs
          </li>
        ))}
      </ul>
      {current && <SweepDetail sweep={current} onChange={sweeps.reload} />}
      {projectId && (
        <>
          <h2>New sweep</h2>
          <form onSubmit={create}>
            <Field label="Sweep name" value={name} onChange={(e) => setName(e.target.value)} />
            <TextArea label="Sweep config (JSON)" className="mono" rows={10} value={config} onChange={(e) => setConfig(e.target.value)} />
            <ErrorBox error={error} />
            <button type="submit">Create sweep</button>
          </form>
        </>
      )}
    </section>
  );
}

interface RegModel {
  id: string;
  name: string;
  description: string;
  latest_version: number | null;
  aliases: Record<string, number>;
  updated_at: string;
}
interface RegVersion {
  model: string;
  version: number;
  run_id: string | null;
  artifact_version_id: string | null;
  description: string;
  stage: string;
  aliases: string[];
  created_at: string;
  transitions: { from: string; to: string; comment: string; actor: string; at: string }[];
}

function ModelPanel({ model }: { model: RegModel }) {
  const versions = useLoad(() => api.get<{ versions: RegVersion[] }>(`/api/v1/registry/models/${encodeURIComponent(model.name)}/versions`), [model.name]);
  const [error, setError] = useState("");
  const [runId, setRunId] = useState("");
  const base = `/api/v1/registry/models/${encodeURIComponent(model.name)}`;
  const stage = async (v: RegVersion, to: string) => {
    try {
      await api.post(`${base}/versions/${v.version}/stage`, { stage: to, archive_existing: to === "production" });
      versions.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const addVersion = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api.post(`${base}/versions`, runId.trim() ? { run_id: runId.trim() } : {});
      setRunId("");
      versions.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <div className="panel">
      <h2>Model {model.name}</h2>
      <p className="muted">{model.description}</p>
      <ErrorBox error={error || versions.error} />
      <table>
        <caption className="sr-only">Versions of {model.name}</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Stage</th>
            <th scope="col">Aliases</th>
            <th scope="col">Source run</th>
            <th scope="col">Last transition</th>
          </tr>
        </thead>
        <tbody>
          {versions.data?.versions.map((v) => (
            <tr key={v.version}>
              <td>v{v.version}</td>
              <td>
                <select aria-label={`Stage of version ${v.version}`} value={v.stage} onChange={(e) => stage(v, e.target.value)}>
                  {["none", "staging", "production", "archived"].map((s) => (
                    <option key={s}>{s}</option>
                  ))}
                </select>
              </td>
              <td>{v.aliases.map((a) => <span key={a} className="chip">{a}</span>)}</td>
              <td>{v.run_id ? <Link to={`/track/runs/${v.run_id}`}>{v.run_id}</Link> : "—"}</td>
              <td>{v.transitions.length ? `${v.transitions[v.transitions.length - 1].from} → ${v.transitions[v.transitions.length - 1].to}, ${fmtTime(v.transitions[v.transitions.length - 1].at)}` : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form onSubmit={addVersion} className="inline-form">
        <Field label="Run id of the new version (optional)" value={runId} onChange={(e) => setRunId(e.target.value)} />
        <button type="submit">Register version</button>
      </form>
    </div>
  );
}

export function RegistryPage() {
  usePageTitle("Model registry");
  const models = useLoad(() => api.get<{ models: RegModel[] }>("/api/v1/registry/models"), []);
  const [sel, setSel] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState("");
  const create = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api.post("/api/v1/registry/models", { name: name.trim(), description });
      setSel(name.trim());
      setName("");
      setDescription("");
      models.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const current = models.data?.models.find((m) => m.name === sel);
  return (
    <section>
      <h1>Model registry</h1>
      <ErrorBox error={error || models.error} />
      {models.data && models.data.models.length === 0 && <Empty>No registered models.</Empty>}
      <ul className="list">
        {models.data?.models.map((m) => (
          <li key={m.id}>
            <button type="button" className="linklike" aria-pressed={m.name === sel} onClick={() => setSel(m.name)}>
              {m.name}
            </button>{" "}
            latest v{m.latest_version ?? "—"}{" "}
            {Object.entries(m.aliases).map(([a, v]) => (
              <span key={a} className="chip">
                {a}→v{v}
              </span>
            ))}
          </li>
        ))}
      </ul>
      {current && <ModelPanel model={current} />}
      <h2>Register a model</h2>
      <form onSubmit={create} className="inline-form">
        <Field label="Model name" value={name} onChange={(e) => setName(e.target.value)} required />
        <Field label="Model description" value={description} onChange={(e) => setDescription(e.target.value)} />
        <button type="submit">Create model</button>
      </form>
    </section>
  );
}
