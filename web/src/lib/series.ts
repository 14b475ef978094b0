// Display helpers of metric histories (docs/track.md, "Metrics"): turns the server's raw or
// downsampled points into uPlot's column arrays, smooths (TensorBoard-style debiased EMA), and
// prepares values for a log-scale axis. Pure functions; the chart component only draws.

/** A point as the server returns it: raw `{step,value,timestamp}` or a bucket with min/max/count. */
export interface MetricPoint {
  step: number;
  value: number | string | null;
  timestamp?: number;
  min?: number | string | null;
  max?: number | string | null;
  count?: number;
}

export interface History {
  key: string;
  total: number;
  downsampled: boolean;
  points: MetricPoint[];
}

/** The server's value (number or "NaN"/"Infinity"/"-Infinity") as a finite number or null. */
export function finite(v: number | string | null | undefined): number | null {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "string") {
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

export interface SeriesColumns {
  steps: number[];
  values: (number | null)[];
  /** Bucket extremes (null columns when the history is not downsampled). */
  min: (number | null)[] | null;
  max: (number | null)[] | null;
}

/** Column arrays of a history, sorted by step; non-finite values become gaps (null). */
export function toColumns(h: History): SeriesColumns {
  const pts = [...h.points].sort((a, b) => a.step - b.step);
  const hasBands = h.downsampled || pts.some((p) => p.min !== undefined || p.max !== undefined);
  return {
    steps: pts.map((p) => p.step),
    values: pts.map((p) => finite(p.value)),
    min: hasBands ? pts.map((p) => finite(p.min ?? p.value)) : null,
    max: hasBands ? pts.map((p) => finite(p.max ?? p.value)) : null,
  };
}

/**
 * Exponential moving average with debiasing (TensorBoard's smoothing); `weight` in [0, 1),
 * 0 = no smoothing. Gaps (null) stay gaps and do not reset the average.
 */
export function smooth(values: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return values.slice();
  const w = Math.min(weight, 0.999);
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null) return null;
    last = last * w + (1 - w) * v;
    n++;
    return last / (1 - Math.pow(w, n));
  });
}

/** Values a log axis can draw: non-positive values become gaps. */
export function forLogScale(values: (number | null)[]): (number | null)[] {
  return values.map((v) => (v !== null && v > 0 ? v : null));
}

/**
 * Merges several series (different step sets) onto one shared, sorted step axis, as uPlot needs:
 * returns [steps, ...one aligned column per series] with null where a series has no point.
 */
export function alignSeries(series: { steps: number[]; values: (number | null)[] }[]): (number | null)[][] {
  const all = new Set<number>();
  for (const s of series) for (const x of s.steps) all.add(x);
  const steps = [...all].sort((a, b) => a - b);
  const index = new Map(steps.map((x, i) => [x, i]));
  const cols = series.map((s) => {
    const col: (number | null)[] = new Array(steps.length).fill(null);
    s.steps.forEach((x, i) => {
      col[index.get(x)!] = s.values[i];
    });
    return col;
  });
  return [steps, ...cols];
}

/** How many points to ask the server for, for a chart `widthPx` wide (2 pixels per point). */
export function pointsForWidth(widthPx: number): number {
  return Math.max(2, Math.min(100000, Math.round(widthPx / 2)));
}

/** Label of what the chart shows, e.g. "500 of 100000 points (downsampled)". */
export function densityLabel(h: History): string {
  return h.downsampled ? `${h.points.length} of ${h.total} points (downsampled; bands show min–max)` : `${h.total} points`;
}
