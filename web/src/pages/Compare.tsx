// Compare runs: overlaid curves per metric (POST /api/v1/metrics/compare), a params table that
// highlights differing values, and parallel coordinates over numeric params and metrics.
import { useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { api } from "../api/client";
import { Chart, type ChartSeries } from "../components/Chart";
import { ErrorBox, fmtNum } from "../components/ui";
import { useLoad, usePageTitle } from "../hooks";
import { flattenConfig } from "../lib/filter";
import { toColumns, type History } from "../lib/series";
import { ChartControls } from "./Run";
import type { Run } from "./Track";

interface CompareReply {
  series: (History & { run_id: string })[];
}

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];

/** Parallel coordinates: one vertical axis per dimension, one polyline per run. */
function ParallelCoordinates({ runs, dims }: { runs: Run[]; dims: { name: string; get: (r: Run) => number | null }[] }) {
  const W = Math.max(320, dims.length * 140);
  const H = 260;
  const pad = 60;
  const x = (i: number) => pad + (i * (W - 2 * pad)) / Math.max(1, dims.length - 1);
  const ranges = dims.map((d) => {
    const vals = runs.map(d.get).filter((v): v is number => v !== null);
    const lo = Math.min(...vals);
    const hi = Math.max(...vals);
    return [lo, hi === lo ? lo + 1 : hi];
  });
  const y = (i: number, v: number) => H - pad - ((v - ranges[i][0]) / (ranges[i][1] - ranges[i][0])) * (H - 2 * pad);
  return (
    <svg width={W} height={H} role="img" aria-label={`Parallel coordinates of ${runs.length} runs over ${dims.map((d) => d.name).join(", ")}`}>
      {dims.map((d, i) => (
        <g key={d.name}>
          <line x1={x(i)} x2={x(i)} y1={pad} y2={H - pad} stroke="#999" />
          <text x={x(i)} y={pad - 10} textAnchor="middle" fontSize="11">
            {d.name}
          </text>
          <text x={x(i) + 4} y={pad + 4} fontSize="9">{fmtNum(ranges[i][1])}</text>
          <text x={x(i) + 4} y={H - pad} fontSize="9">{fmtNum(ranges[i][0])}</text>
        </g>
      ))}
      {runs.map((r, k) => {
        const pts = dims.map((d, i) => {
          const v = d.get(r);
          return v === null ? null : `${x(i)},${y(i, v)}`;
        });
        if (pts.some((p) => p === null)) return null;
        return <polyline key={r.id} points={pts.join(" ")} fill="none" stroke={COLORS[k % COLORS.length]} strokeWidth={2}><title>{r.name}</title></polyline>;
      })}
    </svg>
  );
}

export function ComparePage() {
  usePageTitle("Compare runs");
  const [sp] = useSearchParams();
  const ids = (sp.get("runs") ?? "").split(",").filter(Boolean);
  const runs = useLoad(() => Promise.all(ids.map((id) => api.get<Run>(`/api/v1/runs/${id}`))), [ids.join(",")]);
  const keys = useLoad(async () => {
    const all = await Promise.all(ids.map((id) => api.get<{ keys: string[] }>(`/api/v1/runs/${id}/metrics`)));
    return [...new Set(all.flatMap((k) => k.keys))].filter((k) => !k.startsWith("system/")).sort();
  }, [ids.join(",")]);
  const series = useLoad(async () => {
    if (!keys.data || keys.data.length === 0) return { series: [] } as CompareReply;
    return api.post<CompareReply>("/api/v1/metrics/compare", { run_ids: ids, keys: keys.data, max_points: 500 });
  }, [keys.data]);
  const [smoothing, setSmoothing] = useState(0);
  const [logScale, setLogScale] = useState(false);
  const nameOf = (id: string) => runs.data?.find((r) => r.id === id)?.name ?? id;
  const byKey = useMemo(() => {
    const m = new Map<string, ChartSeries[]>();
    for (const s of series.data?.series ?? []) {
      const c = toColumns(s);
      const list = m.get(s.key) ?? [];
      list.push({ label: nameOf(s.run_id), steps: c.steps, values: c.values });
      m.set(s.key, list);
    }
    return m;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [series.data, runs.data]);
  const params = useMemo(() => {
    const flat = (runs.data ?? []).map((r) => flattenConfig(r.config));
    const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
    return { flat, keys };
  }, [runs.data]);
  const dims = useMemo(() => {
    const rs = runs.data ?? [];
    const numParams = params.keys.filter((k) => params.flat.every((f) => typeof f[k] === "number"));
    const metricKeys = [...new Set(rs.flatMap((r) => Object.keys(r.summary ?? {})))].filter((k) => !k.startsWith("system/") && rs.every((r) => typeof r.summary?.[k]?.last === "number"));
    return [
      ...numParams.map((k) => ({ name: k, get: (r: Run) => flattenConfig(r.config)[k] as number })),
      ...metricKeys.map((k) => ({ name: `metrics.${k}`, get: (r: Run) => r.summary[k].last as number })),
    ];
  }, [runs.data, params]);
  return (
    <section>
      <h1>Compare {ids.length} runs</h1>
      <ErrorBox error={runs.error || keys.error || series.error} />
      <p>
        {runs.data?.map((r, i) => (
          <span key={r.id} className="chip" style={{ borderColor: COLORS[i % COLORS.length] }}>
            <Link to={`/track/runs/${r.id}`}>{r.name}</Link>
          </span>
        ))}
      </p>
      <ChartControls smoothing={smoothing} setSmoothing={setSmoothing} logScale={logScale} setLogScale={setLogScale} />
      <div className="charts">
        {[...byKey.entries()].map(([k, s]) => (
          <figure key={k} className="metric">
            <Chart title={k} series={s} smoothing={smoothing} logScale={logScale} />
          </figure>
        ))}
      </div>
      <h2>Params</h2>
      {runs.data && (
        <table>
          <caption className="sr-only">Params of the compared runs</caption>
          <thead>
            <tr>
              <th scope="col">Param</th>
              {runs.data.map((r) => (
                <th key={r.id} scope="col">
                  {r.name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {params.keys.map((k) => {
              const vals = params.flat.map((f) => fmtNum(f[k]));
              const differs = new Set(vals).size > 1;
              return (
                <tr key={k} className={differs ? "differs" : ""}>
                  <th scope="row">{k}</th>
                  {vals.map((v, i) => (
                    <td key={i}>{v}</td>
                  ))}
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {dims.length >= 2 && runs.data && (
        <>
          <h2>Parallel coordinates</h2>
          <div className="table-wrap">
            <ParallelCoordinates runs={runs.data} dims={dims} />
          </div>
        </>
      )}
    </section>
  );
}
