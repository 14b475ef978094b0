// The dashboard of one relay account or client key (GET /api/v1/relay/accounts/{id}/dashboard,
// GET /api/v1/relay/keys/{key_id}/dashboard; docs/relay.md "Upstream accounts"): totals over a
// window of days, charts per hour or day (requests and errors, tokens, cost, mean latency) and
// totals per model.
import { useMemo, useState } from "react";
import { api, qs } from "../api/client";
import { Chart, type ChartSeries } from "../components/Chart";
import { Empty, ErrorBox, Select, Status } from "../components/ui";
import { useLoad } from "../hooks";

export interface Measures {
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cache_write_tokens: number;
  cache_read_tokens: number;
  cost: number;
  /** Mean over the bucket's requests; null when none ran. */
  avg_latency_ms: number | null;
}
export interface Dashboard {
  bucket: "hour" | "day";
  from: string;
  to: string;
  totals: Measures;
  series: (Measures & { bucket: string })[];
  models: (Measures & { model: string })[];
}

const WINDOWS: [string, string][] = [
  ["1", "last 24 hours"],
  ["7", "last 7 days"],
  ["30", "last 30 days"],
];

/** RFC 3339 without fractional seconds, `days` before `now`. */
export function daysBefore(now: Date, days: number): string {
  return new Date(now.getTime() - days * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
}

/** The chart series of a dashboard: x in Unix seconds, one series per measure. */
export function dashboardCharts(d: Dashboard): { title: string; series: ChartSeries[] }[] {
  const steps = d.series.map((p) => Date.parse(p.bucket) / 1000);
  const line = (label: string, value: (p: Measures) => number | null): ChartSeries => ({ label, steps, values: d.series.map(value) });
  return [
    { title: "requests", series: [line("requests", (p) => p.requests), line("errors", (p) => p.errors)] },
    {
      title: "tokens",
      series: [line("input", (p) => p.input_tokens), line("output", (p) => p.output_tokens), line("cache write", (p) => p.cache_write_tokens), line("cache read", (p) => p.cache_read_tokens)],
    },
    { title: "cost (USD)", series: [line("cost", (p) => p.cost)] },
    { title: "mean latency (ms)", series: [line("latency", (p) => p.avg_latency_ms)] },
  ];
}

const ms = (v: number | null) => (v === null ? "—" : `${v.toFixed(0)} ms`);

export function RelayDashboard({ path, title, headingId }: { path: string; title: string; headingId: string }) {
  const [bucket, setBucket] = useState<"hour" | "day">("day");
  const [days, setDays] = useState("7");
  const d = useLoad(() => api.get<Dashboard>(path + qs({ bucket, from: daysBefore(new Date(), Number(days)) })), [path, bucket, days]);
  const charts = useMemo(() => (d.data ? dashboardCharts(d.data) : []), [d.data]);
  const t = d.data?.totals;
  return (
    <section aria-labelledby={headingId} className="dashboard">
      <h3 id={headingId}>{title}</h3>
      <div className="inline-form">
        <Select label={`Window of ${title}`} value={days} onChange={(e) => setDays(e.target.value)}>
          {WINDOWS.map(([v, text]) => (
            <option key={v} value={v}>
              {text}
            </option>
          ))}
        </Select>
        <Select label={`Bucket of ${title}`} value={bucket} onChange={(e) => setBucket(e.target.value as "hour" | "day")}>
          <option value="day">day</option>
          <option value="hour">hour</option>
        </Select>
        <button type="button" onClick={() => d.reload()}>
          Refresh {title}
        </button>
      </div>
      <ErrorBox error={d.error} />
      {t && (
        <Status>
          {t.requests} requests, {t.errors} errors, {t.input_tokens} input and {t.output_tokens} output tokens ({t.cache_write_tokens} cache write, {t.cache_read_tokens} cache read), ${t.cost.toFixed(4)}, mean latency {ms(t.avg_latency_ms)}.
        </Status>
      )}
      {d.data && t && t.requests === 0 && <Empty>No requests in this window.</Empty>}
      {d.data && t && t.requests > 0 && (
        <>
          <div className="charts">
            {charts.map((c) => (
              <Chart key={c.title} title={`${title}: ${c.title}`} series={c.series} xLabel={d.data!.bucket} timeAxis height={180} />
            ))}
          </div>
          <table>
            <caption>Per model</caption>
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Requests</th>
                <th scope="col">Errors</th>
                <th scope="col">Input tokens</th>
                <th scope="col">Output tokens</th>
                <th scope="col">Cost (USD)</th>
                <th scope="col">Mean latency</th>
              </tr>
            </thead>
            <tbody>
              {d.data.models.map((m) => (
                <tr key={m.model} data-testid="dashboard-model">
                  <th scope="row">{m.model}</th>
                  <td>{m.requests}</td>
                  <td>{m.errors}</td>
                  <td>{m.input_tokens}</td>
                  <td>{m.output_tokens}</td>
                  <td>{m.cost.toFixed(4)}</td>
                  <td>{ms(m.avg_latency_ms)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
