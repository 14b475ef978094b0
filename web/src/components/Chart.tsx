// Line chart of metric series drawn by uPlot. Dragging across the plot selects a step range and
// calls onZoom (the page then asks the server for that range, downsampled to the chart's width);
// smoothing and the log scale are applied here with lib/series.ts.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import { alignSeries, forLogScale, smooth } from "../lib/series";

export interface ChartSeries {
  label: string;
  steps: number[];
  values: (number | null)[];
  min?: (number | null)[] | null;
  max?: (number | null)[] | null;
}

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];

export function Chart({
  title,
  series,
  smoothing = 0,
  logScale = false,
  height = 240,
  xLabel = "step",
  timeAxis = false,
  onZoom,
}: {
  title: string;
  series: ChartSeries[];
  smoothing?: number;
  logScale?: boolean;
  height?: number;
  /** The x axis' label (and its series' name). */
  xLabel?: string;
  /** The steps are Unix seconds: uPlot labels the x axis with dates and times. */
  timeAxis?: boolean;
  onZoom?: (minStep: number, maxStep: number) => void;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const zoomRef = useRef(onZoom);
  zoomRef.current = onZoom;
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const prep = (v: (number | null)[]) => (logScale ? forLogScale(v) : v);
    const cols: { steps: number[]; values: (number | null)[] }[] = [];
    const opts: uPlot.Series[] = [{ label: xLabel }];
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      // Series are aligned on a shared step axis, so a sparse series has nulls between its points:
      // connect across them unless the series itself has gaps (non-finite values).
      const spanGaps = !s.values.some((v) => v === null);
      if (s.min && s.max) {
        cols.push({ steps: s.steps, values: prep(s.min) });
        opts.push({ label: `${s.label} min`, stroke: color + "55", width: 1, spanGaps });
        cols.push({ steps: s.steps, values: prep(s.max) });
        opts.push({ label: `${s.label} max`, stroke: color + "55", width: 1, spanGaps });
      }
      if (smoothing > 0) {
        cols.push({ steps: s.steps, values: prep(s.values) });
        opts.push({ label: `${s.label} raw`, stroke: color + "44", width: 1, spanGaps });
      }
      cols.push({ steps: s.steps, values: prep(smooth(s.values, smoothing)) });
      opts.push({ label: s.label, stroke: color, width: 2, spanGaps });
    });
    const data = alignSeries(cols) as uPlot.AlignedData;
    const width = Math.max(300, el.clientWidth || 600);
    const plot = new uPlot(
      {
        title,
        width,
        height,
        series: opts,
        scales: { x: { time: timeAxis }, y: logScale ? { distr: 3 } : {} },
        axes: [{ label: xLabel }, {}],
        cursor: { drag: { x: true, y: false, setScale: false } },
        hooks: {
          setSelect: [
            (u) => {
              if (u.select.width < 4) return;
              const a = u.posToVal(u.select.left, "x");
              const b = u.posToVal(u.select.left + u.select.width, "x");
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
              zoomRef.current?.(Math.max(0, Math.floor(a)), Math.ceil(b));
            },
          ],
        },
      },
      data,
      el,
    );
    return () => plot.destroy();
  }, [title, series, smoothing, logScale, height, xLabel, timeAxis]);
  const n = series.reduce((a, s) => a + s.steps.length, 0);
  return <div ref={ref} className="chart" role="img" aria-label={`Chart ${title}: ${series.length} series, ${n} points`} data-testid={`chart-${title}`} />;
}
