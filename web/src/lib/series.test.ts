import { describe, expect, it } from "vitest";
import { alignSeries, densityLabel, finite, forLogScale, pointsForWidth, smooth, toColumns } from "./series";

describe("toColumns", () => {
  it("sorts raw points and turns non-finite values into gaps", () => {
    const c = toColumns({ key: "loss", total: 4, downsampled: false, points: [
      { step: 2, value: 0.5 }, { step: 0, value: 1 }, { step: 1, value: "NaN" }, { step: 3, value: "Infinity" },
    ] });
    expect(c.steps).toEqual([0, 1, 2, 3]);
    expect(c.values).toEqual([1, null, 0.5, null]);
    expect(c.min).toBeNull();
  });
  it("keeps the min/max band of downsampled buckets so spikes stay visible", () => {
    const c = toColumns({ key: "loss", total: 1000, downsampled: true, points: [
      { step: 499, value: 0.4, min: 0.1, max: 9.5, count: 500 }, { step: 999, value: 0.2, min: 0.15, max: 0.3, count: 500 },
    ] });
    expect(c.values).toEqual([0.4, 0.2]);
    expect(c.min).toEqual([0.1, 0.15]);
    expect(c.max).toEqual([9.5, 0.3]);
  });
  it("labels the density", () => {
    expect(densityLabel({ key: "k", total: 100000, downsampled: true, points: new Array(500).fill({ step: 0, value: 0 }) })).toMatch(/^500 of 100000 points/);
    expect(densityLabel({ key: "k", total: 3, downsampled: false, points: [] })).toBe("3 points");
  });
});

describe("smoothing and scales", () => {
  it("weight 0 is the identity; the debiased EMA starts at the first value", () => {
    expect(smooth([1, 2, 3], 0)).toEqual([1, 2, 3]);
    const s = smooth([1, 1, 1, 10], 0.5) as number[];
    expect(s[0]).toBeCloseTo(1);
    expect(s[2]).toBeCloseTo(1);
    expect(s[3]).toBeGreaterThan(1);
    expect(s[3]).toBeLessThan(10);
  });
  it("keeps gaps as gaps", () => {
    expect(smooth([1, null, 3], 0.6)[1]).toBeNull();
  });
  it("log scale drops non-positive values", () => {
    expect(forLogScale([1, 0, -2, null, 5])).toEqual([1, null, null, null, 5]);
  });
  it("finite() reads the server's encodings", () => {
    expect([finite(1.5), finite("NaN"), finite("-Infinity"), finite(null), finite("2")]).toEqual([1.5, null, null, null, 2]);
  });
});

describe("alignSeries and point budget", () => {
  it("merges different step sets onto one axis", () => {
    expect(alignSeries([{ steps: [0, 2], values: [1, 3] }, { steps: [1, 2], values: [5, 6] }])).toEqual([[0, 1, 2], [1, null, 3], [null, 5, 6]]);
  });
  it("asks for about one point per two pixels, within the server's bounds", () => {
    expect(pointsForWidth(800)).toBe(400);
    expect(pointsForWidth(1)).toBe(2);
    expect(pointsForWidth(1e9)).toBe(100000);
  });
});
