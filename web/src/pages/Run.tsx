// A run: overview (config, tags, summary), metric charts (server-side downsampled to the chart
// width; drag to zoom re-asks for the step range; smoothing; log scale), logs tail (polled with
// the cursor), files, and the artifacts it used/produced.
import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api, download, errorText, qs } from "../api/client";
import { Chart } from "../components/Chart";
import { Check, ErrorBox, Empty, fmtNum, fmtTime } from "../components/ui";
import { useInterval, useLoad, usePageTitle } from "../hooks";
import { flattenConfig } from "../lib/filter";
import { densityLabel, pointsForWidth, toColumns, type History } from "../lib/series";
import { readEventStream } from "../lib/sse";
import type { Run } from "./Track";

export function ChartControls({
  smoothing,
  setSmoothing,
  logScale,
  setLogScale,
}: {
  smoothing: number;
  setSmoothing: (v: number) => void;
  logScale: boolean;
  setLogScale: (v: boolean) => void;
}) {
  return (
    <div className="chart-controls">
      <label htmlFor="smoothing">Smoothing {smoothing.toFixed(2)}</label>
      <input id="smoothing" type="range" min={0} max={0.99} step={0.01} value={smoothing} onChange={(e) => setSmoothing(Number(e.target.value))} />
      <Check label="Log scale" checked={logScale} onChange={(e) => setLogScale(e.target.checked)} />
    </div>
  );
}

function MetricChart({ runId, metricKey, smoothing, logScale, tick }: { runId: string; metricKey: string; smoothing: number; logScale: boolean; tick: number }) {
  const [range, setRange] = useState<[number, number] | null>(null);
  const maxPoints = pointsForWidth(Math.min(1400, (typeof window === "undefined" ? 1200 : window.innerWidth) - 300));
  const h = useLoad(
    () =>
      api.get<History>(
        `/api/v1/runs/${runId}/metrics/${metricKey.split("/").map(encodeURIComponent).join("/")}` +
          qs({ max_points: maxPoints, min_step: range?.[0], max_step: range?.[1] }),
      ),
    [runId, metricKey, range?.[0], range?.[1], maxPoints, tick],
  );
  const series = useMemo(() => {
    if (!h.data) return [];
    const c = toColumns(h.data);
    return [{ label: metricKey, steps: c.steps, values: c.values, min: c.min, max: c.max }];
  }, [h.data, metricKey]);
  return (
    <figure className="metric">
      <ErrorBox error={h.error} />
      {h.data && <Chart title={metricKey} series={series} smoothing={smoothing} logScale={logScale} onZoom={(a, b) => setRange([a, b])} />}
      <figcaption>
        {h.data ? densityLabel(h.data) : "loading…"}
        {range && (
          <>
            {" "}
            · steps {range[0]}–{range[1]}{" "}
            <button type="button" onClick={() => setRange(null)}>
              Reset zoom of {metricKey}
            </button>
          </>
        )}
      </figcaption>
    </figure>
  );
}

interface LogLine {
  seq: number;
  level: string;
  message: string;
  timestamp: number;
}

function LogsTail({ runId, live, tick }: { runId: string; live: boolean; tick: number }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [cursor, setCursor] = useState(0);
  const [level, setLevel] = useState("");
  const [error, setError] = useState("");
  const poll = async () => {
    try {
      const r = await api.get<{ lines: LogLine[]; next_cursor: number | string }>(`/api/v1/runs/${runId}/logs` + qs({ cursor, limit: 1000 }));
      if (r.lines.length) {
        // Overlapping polls may return the same lines: keep one per seq.
        setLines((old) => {
          const last = old.length ? old[old.length - 1].seq : 0;
          return [...old, ...r.lines.filter((l) => l.seq > last)].slice(-5000);
        });
        setCursor(Number(r.next_cursor));
      }
      setError("");
    } catch (e) {
      setError(String(e));
    }
  };
  useEffect(() => {
    void poll();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [runId, tick]);
  useInterval(() => void poll(), 2000, live);
  const shown = level ? lines.filter((l) => l.level === level) : lines;
  return (
    <div>
      <label htmlFor="log-level">Level</label>{" "}
      <select id="log-level" value={level} onChange={(e) => setLevel(e.target.value)}>
        <option value="">all</option>
        {["debug", "info", "warning", "error", "stdout", "stderr"].map((l) => (
          <option key={l}>{l}</option>
        ))}
      </select>{" "}
      <a href={`/api/v1/runs/${runId}/logs/download`} onClick={(e) => {
        e.preventDefault();
        download(`/api/v1/runs/${runId}/logs/download`, `run-${runId}.log`).catch((err) => setError(errorText(err)));
      }}>Download logs</a>
      <ErrorBox error={error} />
      <pre className="logs" tabIndex={0} aria-label="Run logs" aria-live={live ? "polite" : "off"}>
        {shown.length === 0 ? "(no log lines)" : shown.map((l) => `${new Date(l.timestamp).toISOString()} ${l.level.toUpperCase().padEnd(7)} ${l.message}`).join("\n")}
      </pre>
    </div>
  );
}

interface FileEntry {
  path: string;
  size: number;
  sha256: string;
  updated_at: string;
}
interface Version {
  id: string;
  name: string;
  type: string;
  version: string | null;
  aliases: string[];
  artifact_id: string;
  project_id: string;
}

export function RunPage() {
  const { runId = "" } = useParams();
  const run = useLoad(() => api.get<Run>(`/api/v1/runs/${runId}`), [runId]);
  usePageTitle(run.data ? `Run ${run.data.name}` : "Run");
  const keys = useLoad(() => api.get<{ keys: string[] }>(`/api/v1/runs/${runId}/metrics`), [runId]);
  const files = useLoad(() => api.get<{ files: FileEntry[] }>(`/api/v1/runs/${runId}/files`), [runId]);
  const arts = useLoad(() => api.get<{ used: Version[]; produced: Version[] }>(`/api/v1/runs/${runId}/artifacts`), [runId]);
  const [smoothing, setSmoothing] = useState(0);
  const [logScale, setLogScale] = useState(false);
  const [showSystem, setShowSystem] = useState(false);
  const [tick, setTick] = useState(0);
  const project = useLoad(async () => (run.data ? api.get<{ name: string }>(`/api/v1/projects/${run.data.project_id}`) : null), [run.data?.project_id]);
  const running = run.data?.status === "running";
  // Live updates of a running run: the run's SSE stream (read with fetch, which can send the
  // Bearer header) refreshes charts, logs and status as batches arrive; polling every 5 s is the
  // fallback while the stream is not connected.
  const [streaming, setStreaming] = useState(false);
  const [logTick, setLogTick] = useState(0);
  const loaders = useRef({ run, keys });
  loaders.current = { run, keys };
  useEffect(() => {
    if (!running) return;
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const refreshCharts = () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        setTick((t) => t + 1);
        loaders.current.keys.reload();
      }, 1000);
    };
    (async () => {
      try {
        const r = await api.send(`/api/v1/runs/${runId}/events`, { signal: ctl.signal, headers: { accept: "text/event-stream" } });
        if (!r.body) return;
        setStreaming(true);
        await readEventStream(r.body, (e) => {
          if (e.event === "metrics") refreshCharts();
          else if (e.event === "log") setLogTick((t) => t + 1);
          else if (e.event === "status") loaders.current.run.reload();
        }, ctl.signal);
      } catch {
        /* fall back to polling */
      } finally {
        if (!ctl.signal.aborted) setStreaming(false);
      }
    })();
    return () => {
      ctl.abort();
      if (timer) clearTimeout(timer);
      setStreaming(false);
    };
  }, [runId, running]);
  useInterval(() => {
    setTick((t) => t + 1);
    run.reload();
    keys.reload();
  }, 5000, running && !streaming);
  const r = run.data;
  const allKeys = keys.data?.keys ?? [];
  const metricKeys = allKeys.filter((k) => showSystem || !k.startsWith("system/"));
  return (
    <section>
      <h1>Run {r?.name ?? runId}</h1>
      <ErrorBox error={run.error} />
      {r && (
        <>
          <p>
            <span className={`badge st-${r.status}`}>{r.status}</span> · project <Link to={`/track/projects/${r.project_id}`}>{project.data?.name ?? r.project_id}</Link> · started{" "}
            {fmtTime(r.start_time)} · ended {fmtTime(r.end_time)}
          </p>
          <div className="two-col">
            <div>
              <h2>Config</h2>
              <table>
                <caption className="sr-only">Config</caption>
                <tbody>
                  {Object.entries(flattenConfig(r.config)).map(([k, v]) => (
                    <tr key={k}>
                      <th scope="row">{k}</th>
                      <td>{fmtNum(v)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <h2>Tags</h2>
              <p>{Object.entries(r.tags ?? {}).map(([k, v]) => <span key={k} className="chip">{k}={v}</span>)}</p>
            </div>
            <div>
              <h2>Summary</h2>
              <table>
                <caption className="sr-only">Metric summary</caption>
                <thead>
                  <tr>
                    <th scope="col">Metric</th>
                    <th scope="col">Last</th>
                    <th scope="col">Min</th>
                    <th scope="col">Max</th>
                    <th scope="col">Step</th>
                  </tr>
                </thead>
                <tbody>
                  {Object.entries(r.summary ?? {}).map(([k, s]) => (
                    <tr key={k}>
                      <th scope="row">{k}</th>
                      <td>{fmtNum(s.last)}</td>
                      <td>{fmtNum(s.min)}</td>
                      <td>{fmtNum(s.max)}</td>
                      <td>{s.step}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        </>
      )}
      <h2>Charts</h2>
      <ChartControls smoothing={smoothing} setSmoothing={setSmoothing} logScale={logScale} setLogScale={setLogScale} />
      {allKeys.some((k) => k.startsWith("system/")) && <Check label="Show system metrics" checked={showSystem} onChange={(e) => setShowSystem(e.target.checked)} />}
      <p className="hint">Drag across a chart to zoom into a step range; the server returns that range downsampled to the chart width.</p>
      {keys.data && metricKeys.length === 0 && <Empty>No metrics logged.</Empty>}
      <div className="charts">
        {metricKeys.map((k) => (
          <MetricChart key={k} runId={runId} metricKey={k} smoothing={smoothing} logScale={logScale} tick={tick} />
        ))}
      </div>
      <h2>Logs</h2>
      <LogsTail runId={runId} live={running && !streaming} tick={logTick} />
      <h2>Files</h2>
      {files.data && files.data.files.length === 0 && <Empty>No files.</Empty>}
      <ul className="list">
        {files.data?.files.map((f) => (
          <li key={f.path}>
            <a
              href={`/api/v1/runs/${runId}/files/${f.path}`}
              onClick={(e) => {
                e.preventDefault();
                void download(`/api/v1/runs/${runId}/files/${f.path.split("/").map(encodeURIComponent).join("/")}`, f.path.split("/").pop() ?? f.path);
              }}
            >
              <code>{f.path}</code>
            </a>{" "}
            · {f.size} bytes · {fmtTime(f.updated_at)}
          </li>
        ))}
      </ul>
      <h2>Artifacts</h2>
      {arts.data && (
        <div className="two-col">
          {(["used", "produced"] as const).map((rel) => (
            <div key={rel}>
              <h3>{rel === "used" ? "Used" : "Produced"}</h3>
              {arts.data![rel].length === 0 && <Empty>None.</Empty>}
              <ul className="list">
                {arts.data![rel].map((v) => (
                  <li key={v.id}>
                    <Link to={`/track/projects/${v.project_id}/artifacts?artifact=${v.artifact_id}`}>
                      {v.name}:{v.version ?? "pending"}
                    </Link>{" "}
                    <span className="muted">{v.type}</span> {v.aliases.map((a) => <span key={a} className="chip">{a}</span>)}
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </div>
      )}
    </section>
  );
}
