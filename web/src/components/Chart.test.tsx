// @vitest-environment happy-dom
// Component tests of the metric chart (Chart): what it hands uPlot for a downsampled series —
// the min/max band as two thin series around the line, the raw line behind the smoothed one,
// a log-scale y axis with non-positive values dropped, gaps kept — its text alternative, and
// drag-to-zoom reporting the step range. uPlot itself draws on a canvas, so it is replaced by
// a recorder here (the browser test checks the real drawing).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

interface Made {
  opts: { title: string; series: { label?: string; width?: number; spanGaps?: boolean }[]; scales: Record<string, { distr?: number; time?: boolean }>; hooks: { setSelect: ((u: unknown) => void)[] } };
  data: (number | null)[][];
  destroyed: boolean;
}
const made: Made[] = [];
vi.mock("uplot", () => ({
  default: class {
    select = { left: 0, width: 0 };
    rec: Made;
    constructor(opts: Made["opts"], data: Made["data"]) {
      this.rec = { opts, data, destroyed: false };
      made.push(this.rec);
    }
    posToVal(px: number) {
      return px * 10; // 1 px = 10 steps
    }
    setSelect() {}
    destroy() {
      this.rec.destroyed = true;
    }
  },
}));

import { Chart, type ChartSeries } from "./Chart";
import { render, type Rendered } from "../test/render";

let view: Rendered | null = null;
beforeEach(() => {
  made.length = 0;
});
afterEach(() => {
  view?.unmount();
  view = null;
});
const last = () => made[made.length - 1];
const labels = () => last().opts.series.map((s) => s.label);

// A downsampled series as the server sends it: per bucket the mean with its min and max.
const loss: ChartSeries = {
  label: "loss",
  steps: [0, 100, 200, 300],
  values: [2, 1, 0.5, 0.25],
  min: [1.5, 0.8, 0.4, 0.2],
  max: [2.5, 6, 0.6, 0.3], // the spike inside bucket 100 survives as its max
};

describe("Chart", () => {
  it("draws the min/max band as two thin series beside the bucket means", () => {
    view = render(<Chart title="loss" series={[loss]} />);
    expect(labels()).toEqual(["step", "loss min", "loss max", "loss"]);
    const [x, lo, hi, mean] = last().data;
    expect(x).toEqual([0, 100, 200, 300]);
    expect(lo).toEqual([1.5, 0.8, 0.4, 0.2]);
    expect(hi).toEqual([2.5, 6, 0.6, 0.3]);
    expect(mean).toEqual([2, 1, 0.5, 0.25]);
    expect(last().opts.series[1].width).toBe(1);
    expect(last().opts.series[3].width).toBe(2);
    expect(last().opts.scales.y).toEqual({});
    expect(last().opts.scales.x.time).toBe(false);
  });

  it("has a text alternative naming the series and points", () => {
    view = render(<Chart title="loss" series={[loss, { label: "val", steps: [0, 50], values: [3, 2] }]} />);
    const el = view.container.querySelector('[data-testid="chart-loss"]')!;
    expect(el.getAttribute("role")).toBe("img");
    expect(el.getAttribute("aria-label")).toBe("Chart loss: 2 series, 6 points");
  });

  it("smoothing keeps the raw line behind the debiased EMA", () => {
    view = render(<Chart title="loss" series={[{ label: "loss", steps: [0, 1, 2], values: [0, 10, 10] }]} smoothing={0.5} />);
    expect(labels()).toEqual(["step", "loss raw", "loss"]);
    const [, raw, smoothed] = last().data;
    expect(raw).toEqual([0, 10, 10]);
    expect(smoothed[0]).toBeCloseTo(0);
    expect(smoothed[1]).toBeCloseTo(20 / 3); // (0.5 * 0 + 0.5 * 10) / (1 - 0.5²)
    expect(smoothed[2]).toBeCloseTo(60 / 7);
  });

  it("log scale uses uPlot's log distribution and drops values that are not positive", () => {
    view = render(<Chart title="loss" series={[{ label: "loss", steps: [0, 1, 2], values: [1, 0, 100], min: [0.5, -1, 10], max: [2, 1, 1000] }]} logScale />);
    expect(last().opts.scales.y.distr).toBe(3);
    const [, lo, hi, mean] = last().data;
    expect(mean).toEqual([1, null, 100]);
    expect(lo).toEqual([0.5, null, 10]);
    expect(hi).toEqual([2, 1, 1000]);
  });

  it("keeps gaps of a series with non-finite values and connects sparse series on a shared axis", () => {
    view = render(
      <Chart title="m" series={[{ label: "a", steps: [0, 1, 2], values: [1, null, 3] }, { label: "b", steps: [0, 2], values: [5, 6] }]} />,
    );
    expect(last().data[0]).toEqual([0, 1, 2]);
    expect(last().data[1]).toEqual([1, null, 3]);
    expect(last().data[2]).toEqual([5, null, 6]);
    expect(last().opts.series[1].spanGaps).toBe(false);
    expect(last().opts.series[2].spanGaps).toBe(true);
  });

  it("redraws when the display options change and destroys the old plot", () => {
    view = render(<Chart title="loss" series={[loss]} />);
    const first = last();
    view.rerender(<Chart title="loss" series={[loss]} logScale />);
    expect(first.destroyed).toBe(true);
    expect(made.length).toBe(2);
    expect(last().opts.scales.y.distr).toBe(3);
  });

  it("dragging across the plot reports the selected step range", () => {
    const onZoom = vi.fn();
    view = render(<Chart title="loss" series={[loss]} onZoom={onZoom} />);
    const plot = { select: { left: 3, width: 12 }, posToVal: (px: number) => px * 10, setSelect: vi.fn() };
    last().opts.hooks.setSelect[0](plot);
    expect(onZoom).toHaveBeenCalledWith(30, 150);
    onZoom.mockClear();
    last().opts.hooks.setSelect[0]({ ...plot, select: { left: 3, width: 2 } }); // a click, not a drag
    expect(onZoom).not.toHaveBeenCalled();
  });
});
