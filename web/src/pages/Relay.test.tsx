// @vitest-environment happy-dom
// Component tests of the relay admin page's dashboards against a fake API client: the account
// Test button's outcome, an account's and a key's dashboard opened from their rows (the request's
// window and bucket, the totals, one chart per measure with time on the x axis, the per-model
// table) and the window and bucket selectors. uPlot draws on a canvas, so it is a recorder here.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const calls: { method: string; path: string; body?: unknown }[] = [];
const charts: { title: string; x: { time?: boolean }; data: unknown[][] }[] = [];
vi.mock("uplot", () => ({
  default: class {
    constructor(opts: { title: string; scales: { x: { time?: boolean } } }, data: unknown[][]) {
      charts.push({ title: opts.title, x: opts.scales.x, data });
    }
    destroy() {}
  },
}));

const account = { id: "acc_1", name: "main", provider: "anthropic", base_url: "", priority: 50, weight: 1, max_concurrency: 0, models: [], groups: [], schedulable: true, status: "active", status_reason: "", status_until: null, credentials_set: ["api_key"], in_flight: 0, latency_ewma_ms: null };
const key = { id: "key_1", name: "laptop", prefix: "atr_abc", scopes: ["relay"], models: [], rate_limit: { rpm: 0, tpm: 0 }, budget: { daily: 5, weekly: 0, monthly: 0, total: 0 }, max_concurrency: 0, tier: "", enabled: true, expires_at: null, created_at: "2026-12-01T00:00:00Z", last_used_at: null };
const zero = { requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, cache_write_tokens: 0, cache_read_tokens: 0, cost: 0, avg_latency_ms: null };
function dashboard(requests: number) {
  const point = { requests, errors: 1, input_tokens: 30, output_tokens: 9, cache_write_tokens: 2, cache_read_tokens: 4, cost: 0.0123, avg_latency_ms: 42 };
  return {
    bucket: "day",
    from: "2026-11-27T00:00:00Z",
    to: "2026-12-04T12:00:00Z",
    totals: point,
    series: [
      { ...zero, bucket: "2026-12-03T00:00:00Z" },
      { ...point, bucket: "2026-12-04T00:00:00Z" },
    ],
    models: [{ ...point, model: "claude-sonnet-4-5" }],
  };
}

vi.mock("../api/client", () => ({
  errorText: (e: unknown) => (e instanceof Error ? e.message : String(e)),
  qs: (p: Record<string, unknown>) => "?" + new URLSearchParams(Object.entries(p).map(([k, v]) => [k, String(v)])).toString(),
  download: async () => {},
  api: {
    get: async (path: string) => {
      calls.push({ method: "GET", path });
      if (path === "/api/v1/relay/accounts") return { accounts: [account] };
      if (path === "/api/v1/keys") return { keys: [key] };
      if (path.startsWith("/api/v1/relay/usage")) return { rows: [] };
      if (path.endsWith("/settings")) return { key_id: "key_1", cost_multiplier: 1, account_group: "", account_id: "" };
      if (path.startsWith("/api/v1/relay/accounts/acc_1/dashboard")) return dashboard(3);
      if (path.startsWith("/api/v1/relay/keys/key_1/dashboard")) return dashboard(2);
      throw new Error("unexpected GET " + path);
    },
    post: async (path: string, body: unknown) => {
      calls.push({ method: "POST", path, body });
      return { ok: false, latency_ms: 5, status: 401, error: "invalid x-api-key" };
    },
    patch: async () => ({}),
    put: async () => ({}),
    del: async () => ({}),
  },
}));

import { act } from "react";
import { RelayPage } from "./Relay";
import { click, render, type Rendered } from "../test/render";

let view: Rendered | null = null;
const flush = () => act(async () => new Promise((r) => setTimeout(r, 0)));
const $ = <T extends Element = HTMLElement>(sel: string) => view!.container.querySelector<T>(sel);
const button = (name: string) => Array.from(view!.container.querySelectorAll("button")).find((b) => (b.getAttribute("aria-label") ?? b.textContent) === name)!;
const select = (label: string) => {
  const l = Array.from(view!.container.querySelectorAll("label")).find((x) => x.textContent === label);
  if (!l) throw new Error("no label " + label);
  return view!.container.querySelector<HTMLSelectElement>(`[id="${l.htmlFor}"]`)!;
};
const dashboardCalls = (prefix: string) => calls.filter((c) => c.path.startsWith(prefix)).map((c) => new URL("http://x" + c.path).searchParams);

beforeEach(() => {
  calls.length = 0;
  charts.length = 0;
});
afterEach(() => {
  view?.unmount();
  view = null;
});

describe("RelayPage", () => {
  it("shows an account test's outcome in its row", async () => {
    view = render(<RelayPage />);
    await flush();
    click(button("Test account main"));
    await flush();
    expect(calls.find((c) => c.method === "POST")!.path).toBe("/api/v1/relay/accounts/acc_1/test");
    expect($('tbody [role="status"]')!.textContent).toBe("failed (401): invalid x-api-key");
  });

  it("opens an account's dashboard: totals, four time charts and the per-model table", async () => {
    view = render(<RelayPage />);
    await flush();
    expect($('section[aria-labelledby="dashboard-acc_1"]')).toBeNull();
    const toggle = button("Dashboard of account main");
    click(toggle);
    await flush();
    expect(toggle.getAttribute("aria-pressed")).toBe("true");
    const [q] = dashboardCalls("/api/v1/relay/accounts/acc_1/dashboard");
    expect(q.get("bucket")).toBe("day");
    const from = Date.parse(q.get("from")!);
    expect(Date.now() - from).toBeGreaterThan(7 * 86_400_000 - 60_000);
    expect(Date.now() - from).toBeLessThan(7 * 86_400_000 + 60_000);
    expect(q.get("from")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/); // no fractional seconds
    const region = $('section[aria-labelledby="dashboard-acc_1"]')!;
    expect(region.querySelector("h3")!.textContent).toBe("Dashboard of account main");
    expect(region.querySelector('[role="status"]')!.textContent).toBe(
      "3 requests, 1 errors, 30 input and 9 output tokens (2 cache write, 4 cache read), $0.0123, mean latency 42 ms.",
    );
    expect(charts.map((c) => c.title)).toEqual([
      "Dashboard of account main: requests",
      "Dashboard of account main: tokens",
      "Dashboard of account main: cost (USD)",
      "Dashboard of account main: mean latency (ms)",
    ]);
    expect(charts[0].x.time).toBe(true);
    // x: the buckets in Unix seconds; requests and errors per bucket; no latency where nothing ran.
    expect(charts[0].data).toEqual([[Date.parse("2026-12-03T00:00:00Z") / 1000, Date.parse("2026-12-04T00:00:00Z") / 1000], [0, 3], [0, 1]]);
    expect(charts[3].data[1]).toEqual([null, 42]);
    const model = Array.from(region.querySelectorAll('[data-testid="dashboard-model"] > *')).map((c) => c.textContent);
    expect(model).toEqual(["claude-sonnet-4-5", "3", "1", "30", "9", "0.0123", "42 ms"]);
    click(toggle);
    expect($('section[aria-labelledby="dashboard-acc_1"]')).toBeNull();
  });

  it("opens a key's dashboard and asks again for another window and bucket", async () => {
    view = render(<RelayPage />);
    await flush();
    click(button("Dashboard of key laptop"));
    await flush();
    const region = $('section[aria-labelledby="dashboard-key_1"]')!;
    expect(region.querySelector("h3")!.textContent).toBe("Dashboard of key laptop");
    expect(region.querySelector('[role="status"]')!.textContent).toMatch(/^2 requests/);
    act(() => {
      const s = select("Bucket of Dashboard of key laptop");
      s.value = "hour";
      s.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await flush();
    act(() => {
      const s = select("Window of Dashboard of key laptop");
      s.value = "1";
      s.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await flush();
    const queries = dashboardCalls("/api/v1/relay/keys/key_1/dashboard");
    expect(queries.map((q) => q.get("bucket"))).toEqual(["day", "hour", "hour"]);
    const last = Date.parse(queries[2].get("from")!);
    expect(Math.abs(Date.now() - last - 86_400_000)).toBeLessThan(60_000);
  });
});
