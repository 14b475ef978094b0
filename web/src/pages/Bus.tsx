// Bus monitor: topics (GET /api/v1/bus/topics) with publish rates computed from successive
// next_offset readings, and consumer lag from /metrics (bus_backlog_lag{topic,consumer}).
import { useRef, useState } from "react";
import { api } from "../api/client";
import { Check, ErrorBox, Empty, fmtNum } from "../components/ui";
import { useInterval, useLoad, usePageTitle } from "../hooks";
import { parsePrometheus, rate } from "../lib/prom";

interface TopicStats {
  name: string;
  durability: string;
  first_offset: number;
  next_offset: number;
  wal_bytes: number;
  wal_segments: number;
  health: string;
}

interface Snapshot {
  topics: TopicStats[];
  lag: { topic: string; consumer: string; lag: number; position: number | null }[];
  at: number;
}

async function snapshot(): Promise<Snapshot> {
  const t = await api.get<{ topics: TopicStats[] }>("/api/v1/bus/topics");
  let lag: Snapshot["lag"] = [];
  try {
    const r = await fetch("/metrics");
    if (r.ok) {
      const samples = parsePrometheus(await r.text());
      const pos = new Map<string, number>();
      for (const s of samples) if (s.name === "bus_consumer_position") pos.set(`${s.labels.topic}\u0000${s.labels.consumer}`, s.value);
      lag = samples
        .filter((s) => s.name === "bus_backlog_lag")
        .map((s) => ({ topic: s.labels.topic, consumer: s.labels.consumer, lag: s.value, position: pos.get(`${s.labels.topic}\u0000${s.labels.consumer}`) ?? null }));
    }
  } catch {
    /* metrics are optional */
  }
  return { topics: t.topics, lag, at: performance.now() };
}

export function BusPage() {
  usePageTitle("Bus monitor");
  const [live, setLive] = useState(true);
  const prev = useRef<Snapshot | null>(null);
  const [rates, setRates] = useState<Record<string, number>>({});
  const snap = useLoad(async () => {
    const s = await snapshot();
    const p = prev.current;
    if (p) {
      const dt = (s.at - p.at) / 1000;
      const r: Record<string, number> = {};
      for (const t of s.topics) {
        const old = p.topics.find((x) => x.name === t.name);
        r[t.name] = old ? rate(old.next_offset, t.next_offset, dt) : 0;
      }
      setRates(r);
    }
    prev.current = s;
    return s;
  }, []);
  useInterval(snap.reload, 2000, live);
  return (
    <section>
      <h1>Bus monitor</h1>
      <Check label="Refresh every 2 s" checked={live} onChange={(e) => setLive(e.target.checked)} />
      <ErrorBox error={snap.error} />
      <h2>Topics</h2>
      {snap.data && snap.data.topics.length === 0 && <Empty>No topics.</Empty>}
      {snap.data && snap.data.topics.length > 0 && (
        <table>
          <caption className="sr-only">Topics</caption>
          <thead>
            <tr>
              <th scope="col">Topic</th>
              <th scope="col">Durability</th>
              <th scope="col">Records</th>
              <th scope="col">Next offset</th>
              <th scope="col">Publish rate (msg/s)</th>
              <th scope="col">WAL bytes</th>
              <th scope="col">Health</th>
            </tr>
          </thead>
          <tbody>
            {snap.data.topics.map((t) => (
              <tr key={t.name}>
                <th scope="row">{t.name}</th>
                <td>{t.durability}</td>
                <td>{t.next_offset - t.first_offset}</td>
                <td>{t.next_offset}</td>
                <td>{rates[t.name] === undefined ? "…" : rates[t.name].toFixed(1)}</td>
                <td>{fmtNum(t.wal_bytes)}</td>
                <td>{t.health}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Consumer lag</h2>
      {snap.data && snap.data.lag.length === 0 && <Empty>No durable consumers reported.</Empty>}
      {snap.data && snap.data.lag.length > 0 && (
        <table>
          <caption className="sr-only">Consumer lag</caption>
          <thead>
            <tr>
              <th scope="col">Topic</th>
              <th scope="col">Consumer</th>
              <th scope="col">Position</th>
              <th scope="col">Lag (records)</th>
            </tr>
          </thead>
          <tbody>
            {snap.data.lag.map((l) => (
              <tr key={l.topic + "/" + l.consumer}>
                <td>{l.topic}</td>
                <td>{l.consumer}</td>
                <td>{l.position ?? "—"}</td>
                <td className={l.lag > 0 ? "warn" : ""}>{l.lag}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
