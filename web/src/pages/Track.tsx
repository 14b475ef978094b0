// Tracking: the project list, and a project's runs table (server-side search with the filter
// language, sortable columns, a column chooser for params/metrics/tags, selection for compare).
import { useMemo, useRef, useState, type FormEvent, type KeyboardEvent, type ReactNode } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { ApiError, api, errorText } from "../api/client";
import { Check, ErrorBox, Empty, Field, fmtNum, fmtTime } from "../components/ui";
import { useLoad, usePageTitle } from "../hooks";
import { applySuggestion, caretLine, flattenConfig, identFor, orderBy, parseFilterError, suggest, tokenizeFilter, type FilterError } from "../lib/filter";

export interface Project {
  id: string;
  name: string;
  description: string;
  visibility: string;
  created_at: string;
}

export interface Run {
  id: string;
  project_id: string;
  name: string;
  status: string;
  config: Record<string, unknown>;
  tags: Record<string, string>;
  notes: string;
  group: string;
  job_type: string;
  sweep_id: string | null;
  created_by: string;
  start_time: string | null;
  end_time: string | null;
  summary: Record<string, { last: number | string; min?: number; max?: number; step: number; count: number }>;
}

export function ProjectsPage() {
  usePageTitle("Tracking");
  const projects = useLoad(() => api.get<{ projects: Project[] }>("/api/v1/projects"), []);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState("");
  const create = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api.post("/api/v1/projects", { name: name.trim(), description });
      setName("");
      setDescription("");
      setError("");
      projects.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <section>
      <h1>Projects</h1>
      <ErrorBox error={error || projects.error} />
      {projects.data && projects.data.projects.length === 0 && <Empty>No projects yet. Create one, or log a run with the SDK.</Empty>}
      <ul className="list">
        {projects.data?.projects.map((p) => (
          <li key={p.id}>
            <Link to={`/track/projects/${p.id}`}>{p.name}</Link> <span className="muted">{p.description}</span>{" "}
            <span className="badge">{p.visibility}</span>
          </li>
        ))}
      </ul>
      <h2>New project</h2>
      <form onSubmit={create} className="inline-form">
        <Field label="Project name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={128} />
        <Field label="Description" value={description} onChange={(e) => setDescription(e.target.value)} />
        <button type="submit">Create project</button>
      </form>
    </section>
  );
}

/** The filter input: token colouring, identifier suggestions, and the server's error position. */
export function FilterBox({
  value,
  onChange,
  onSubmit,
  idents,
  error,
}: {
  value: string;
  onChange: (v: string) => void;
  onSubmit: () => void;
  idents: string[];
  error: FilterError | null;
}) {
  const ref = useRef<HTMLInputElement>(null);
  const [cursor, setCursor] = useState(0);
  const sugg = suggest(value, cursor, idents);
  const pick = (s: string) => {
    const r = applySuggestion(value, cursor, s);
    onChange(r.text);
    setCursor(r.cursor);
    requestAnimationFrame(() => {
      ref.current?.focus();
      ref.current?.setSelectionRange(r.cursor, r.cursor);
    });
  };
  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Enter") {
      e.preventDefault();
      onSubmit();
    } else if (e.key === "ArrowDown" && sugg.length > 0) {
      e.preventDefault();
      pick(sugg[0]);
    }
  };
  return (
    <div className="filterbox">
      <label htmlFor="run-filter">Filter runs</label>
      <input
        id="run-filter"
        ref={ref}
        className="mono"
        value={value}
        placeholder="params.lr < 0.01 and metrics.loss < 0.5 and status = 'finished'"
        aria-invalid={error ? true : undefined}
        aria-describedby="run-filter-help run-filter-error"
        spellCheck={false}
        autoComplete="off"
        onChange={(e) => {
          onChange(e.target.value);
          setCursor(e.target.selectionStart ?? e.target.value.length);
        }}
        onSelect={(e) => setCursor((e.target as HTMLInputElement).selectionStart ?? 0)}
        onKeyDown={onKey}
      />
      <div className="tokens mono" aria-hidden="true">
        {tokenizeFilter(value).map((t, i) => (
          <span key={i} className={`tok-${t.kind}`}>
            {t.text}
          </span>
        ))}
      </div>
      {error && (
        <div id="run-filter-error" role="alert" className="error">
          {error.position !== null && (
            <pre className="mono caret" aria-hidden="true">
              {value + "\n" + caretLine(error.position)}
            </pre>
          )}
          Filter error: {error.message}
          {error.position !== null ? ` (at character ${error.position + 1})` : ""}
        </div>
      )}
      <small id="run-filter-help" className="hint">
        Enter applies; ↓ takes the first suggestion. Operators = != &lt; &lt;= &gt; &gt;= in, like, and/or/not.
      </small>
      {sugg.length > 0 && (
        <div className="suggestions" aria-label="Suggestions">
          {sugg.map((s) => (
            <button type="button" key={s} className="chip" onClick={() => pick(s)}>
              {s}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}

interface Column {
  id: string; // order_by identifier
  label: string;
  value: (r: Run) => ReactNode;
}

function runColumns(runs: Run[]): { fixed: Column[]; optional: Column[] } {
  const params = new Set<string>();
  const metrics = new Set<string>();
  const tags = new Set<string>();
  for (const r of runs) {
    Object.keys(flattenConfig(r.config)).forEach((k) => params.add(k));
    Object.keys(r.summary ?? {}).forEach((k) => metrics.add(k));
    Object.keys(r.tags ?? {}).forEach((k) => tags.add(k));
  }
  const fixed: Column[] = [
    { id: "name", label: "Name", value: (r) => <Link to={`/track/runs/${r.id}`}>{r.name || r.id}</Link> },
    { id: "status", label: "Status", value: (r) => <span className={`badge st-${r.status}`}>{r.status}</span> },
    { id: "start_time", label: "Started", value: (r) => fmtTime(r.start_time) },
  ];
  const optional: Column[] = [
    ...[...metrics].sort().map((k) => ({ id: identFor("metrics", k), label: k, value: (r: Run) => fmtNum(r.summary?.[k]?.last) })),
    ...[...params].sort().map((k) => ({ id: identFor("params", k), label: k, value: (r: Run) => fmtNum(flattenConfig(r.config)[k]) })),
    ...[...tags].sort().map((k) => ({ id: identFor("tags", k), label: `#${k}`, value: (r: Run) => r.tags?.[k] ?? "—" })),
    { id: "group", label: "Group", value: (r) => r.group || "—" },
    { id: "end_time", label: "Ended", value: (r) => fmtTime(r.end_time) },
  ];
  return { fixed, optional };
}

export function ProjectPage() {
  const { projectId } = useParams();
  const project = useLoad(() => api.get<Project>(`/api/v1/projects/${projectId}`), [projectId]);
  usePageTitle(project.data ? `Project ${project.data.name}` : "Project");
  const [filter, setFilter] = useState("");
  const [applied, setApplied] = useState("");
  const [sort, setSort] = useState<{ id: string; desc: boolean }>({ id: "start_time", desc: true });
  const [filterError, setFilterError] = useState<FilterError | null>(null);
  const [chosen, setChosen] = useState<string[] | null>(null);
  const [selected, setSelected] = useState<string[]>([]);
  const navigate = useNavigate();
  const runs = useLoad(async () => {
    try {
      const r = await api.post<{ runs: Run[] }>("/api/v1/runs/search", {
        project_id: projectId,
        filter: applied || undefined,
        order_by: orderBy(sort.id, sort.desc),
        limit: 500,
      });
      setFilterError(null);
      return r;
    } catch (e) {
      if (e instanceof ApiError && e.status === 400) {
        const fe = parseFilterError(e.message, applied);
        if (fe) {
          setFilterError(fe);
          return { runs: [] as Run[] };
        }
      }
      throw e;
    }
  }, [projectId, applied, sort.id, sort.desc]);
  // While the filter is invalid the columns (and suggestions) stay those of the last results.
  const lastRuns = useRef<Run[]>([]);
  if (!filterError && runs.data) lastRuns.current = runs.data.runs;
  const cols = useMemo(() => runColumns(filterError ? lastRuns.current : runs.data?.runs ?? []), [runs.data, filterError]);
  const visible = chosen ?? cols.optional.slice(0, 6).map((c) => c.id);
  const shown = [...cols.fixed, ...cols.optional.filter((c) => visible.includes(c.id))];
  const idents = cols.optional.map((c) => c.id);
  const sortBy = (id: string) => setSort((s) => ({ id, desc: s.id === id ? !s.desc : false }));
  return (
    <section>
      <h1>Project {project.data?.name ?? projectId}</h1>
      <p>
        <Link to={`/track/projects/${projectId}/artifacts`}>Artifacts</Link> · <Link to={`/track/sweeps?project_id=${projectId}`}>Sweeps</Link>
      </p>
      <ErrorBox error={project.error} />
      <FilterBox value={filter} onChange={setFilter} onSubmit={() => setApplied(filter.trim())} idents={idents} error={filterError} />
      <button type="button" onClick={() => setApplied(filter.trim())}>
        Apply filter
      </button>
      <details className="columns">
        <summary>Columns ({visible.length} of {cols.optional.length})</summary>
        <fieldset>
          <legend>Visible columns</legend>
          {cols.optional.map((c) => (
            <Check
              key={c.id}
              label={c.id}
              checked={visible.includes(c.id)}
              onChange={(e) => setChosen(e.target.checked ? [...visible, c.id] : visible.filter((x) => x !== c.id))}
            />
          ))}
        </fieldset>
      </details>
      <ErrorBox error={runs.error} />
      <p>
        <button type="button" disabled={selected.length < 2} onClick={() => navigate(`/track/compare?runs=${selected.join(",")}`)}>
          Compare selected ({selected.length})
        </button>
      </p>
      {runs.data && runs.data.runs.length === 0 && !filterError && <Empty>No runs match.</Empty>}
      {runs.data && runs.data.runs.length > 0 && (
        <div className="table-wrap">
          <table className="runs">
            <caption className="sr-only">Runs, sorted by {sort.id} {sort.desc ? "descending" : "ascending"}</caption>
            <thead>
              <tr>
                <th scope="col">
                  <span className="sr-only">Select</span>
                </th>
                {shown.map((c) => (
                  <th key={c.id} scope="col" aria-sort={sort.id === c.id ? (sort.desc ? "descending" : "ascending") : "none"}>
                    <button type="button" className="sort" onClick={() => sortBy(c.id)} title={c.id}>
                      {c.label}
                      {sort.id === c.id ? (sort.desc ? " ▼" : " ▲") : ""}
                    </button>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {runs.data.runs.map((r) => (
                <tr key={r.id}>
                  <td>
                    <input
                      type="checkbox"
                      aria-label={`Select run ${r.name || r.id}`}
                      checked={selected.includes(r.id)}
                      onChange={(e) => setSelected(e.target.checked ? [...selected, r.id] : selected.filter((x) => x !== r.id))}
                    />
                  </td>
                  {shown.map((c) => (
                    <td key={c.id}>{c.value(r)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
