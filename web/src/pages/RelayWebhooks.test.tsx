// @vitest-environment happy-dom
// Component tests of the relay webhooks page against a fake API client: the list, the create
// request (format, secret, events), the generated secret shown once, the delivery log's columns,
// the edit dialog (Escape closes it; saving PATCHes the webhook in place, the secret only when
// typed, pausing it), the "Send test" button's outcome and delete.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const calls: { method: string; path: string; body?: unknown }[] = [];
let hooks: Record<string, unknown>[] = [];
let deliveries: Record<string, unknown>[] = [];
let testOutcome: Record<string, unknown> = {};
vi.mock("../api/client", () => ({
  errorText: (e: unknown) => (e instanceof Error ? e.message : String(e)),
  api: {
    get: async (path: string) => {
      calls.push({ method: "GET", path });
      if (path === "/api/v1/relay/webhooks") return { webhooks: hooks };
      if (path.endsWith("/deliveries")) return { deliveries };
      throw new Error("unexpected GET " + path);
    },
    post: async (path: string, body: Record<string, unknown>) => {
      calls.push({ method: "POST", path, body });
      if (path.endsWith("/test")) return testOutcome;
      const w = { id: `whk_${hooks.length + 1}`, url: body.url, format: body.format, events: body.events, enabled: true, created_at: "2026-12-04T10:00:00Z" };
      hooks = [...hooks, w];
      return body.secret ? w : { ...w, secret: "whsec_generated" };
    },
    patch: async (path: string, body: Record<string, unknown>) => {
      calls.push({ method: "PATCH", path, body });
      hooks = hooks.map((h) => (path.endsWith(`/${h.id}`) ? { ...h, ...body, secret: undefined } : h));
      return hooks.find((h) => path.endsWith(`/${h.id}`));
    },
    del: async (path: string) => {
      calls.push({ method: "DELETE", path });
      hooks = hooks.filter((h) => !path.endsWith(`/${h.id}`));
    },
  },
}));

import { act } from "react";
import { RelayWebhooksPage } from "./RelayWebhooks";
import { click, keyDown, render, typeInto, type Rendered } from "../test/render";

let view: Rendered | null = null;
const flush = () => act(async () => new Promise((r) => setTimeout(r, 0)));
const $ = <T extends Element = HTMLElement>(sel: string) => view!.container.querySelector<T>(sel);
const byLabel = (text: string, root: ParentNode = view!.container) => {
  const label = Array.from(root.querySelectorAll("label")).find((l) => l.textContent === text);
  if (!label) throw new Error("no label " + text);
  return root.querySelector<HTMLInputElement>(`[id="${label.htmlFor}"]`)!;
};
const button = (name: string) => Array.from(view!.container.querySelectorAll("button")).find((b) => (b.getAttribute("aria-label") ?? b.textContent) === name)!;
function setSelect(el: HTMLSelectElement, value: string) {
  act(() => {
    el.value = value;
    el.dispatchEvent(new Event("change", { bubbles: true }));
  });
}
async function submit(form: HTMLFormElement) {
  act(() => {
    form.dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));
  });
  await flush();
  await flush();
}

beforeEach(() => {
  calls.length = 0;
  hooks = [];
  deliveries = [];
  testOutcome = {};
  vi.spyOn(globalThis, "requestAnimationFrame").mockImplementation((fn) => {
    fn(0);
    return 0;
  });
});
afterEach(() => {
  view?.unmount();
  view = null;
  vi.restoreAllMocks();
});

describe("RelayWebhooksPage", () => {
  it("creates a signed JSON webhook for chosen events with the secret typed", async () => {
    view = render(<RelayWebhooksPage />);
    await flush();
    expect(view.container.textContent).toContain("No webhooks.");
    const form = $<HTMLFormElement>('form[aria-label="Add webhook"]')!;
    typeInto(byLabel("Target URL", form), "https://hooks.example.com/a");
    typeInto(byLabel("Signing secret", form), "s3cret");
    click(byLabel("account.unauthorized", form));
    click(byLabel("key.budget_100", form));
    await submit(form);
    expect(calls.find((c) => c.method === "POST")).toEqual({
      method: "POST",
      path: "/api/v1/relay/webhooks",
      body: { url: "https://hooks.example.com/a", format: "json", secret: "s3cret", events: ["account.unauthorized", "key.budget_100"] },
    });
    const row = $("tbody tr")!;
    expect(row.querySelector("th")!.textContent).toBe("https://hooks.example.com/a");
    expect(row.textContent).toContain("JSON, signed (HMAC-SHA256)");
    expect(row.textContent).toContain("account.unauthorized, key.budget_100");
    expect($('[data-testid="webhook-secret"]')).toBeNull(); // our own secret is not echoed
    expect(byLabel("Target URL", form).value).toBe(""); // the form is cleared
  });

  it("shows a generated secret once, focused, until dismissed", async () => {
    view = render(<RelayWebhooksPage />);
    await flush();
    const form = $<HTMLFormElement>('form[aria-label="Add webhook"]')!;
    typeInto(byLabel("Target URL", form), "https://hooks.slack.com/x");
    setSelect(byLabel("Format", form) as unknown as HTMLSelectElement, "slack");
    await submit(form);
    expect((calls.find((c) => c.method === "POST")!.body as { format: string; secret?: string }).format).toBe("slack");
    const code = $('[data-testid="webhook-secret"]')!;
    expect(code.textContent).toBe("whsec_generated");
    expect(document.activeElement).toBe(code);
    expect($("tbody tr")!.textContent).toContain("all");
    click(button("I have copied the secret"));
    expect($('[data-testid="webhook-secret"]')).toBeNull();
  });

  it("lists a webhook's deliveries with attempt, result, response code and error", async () => {
    hooks = [{ id: "whk_1", url: "https://h.example/x", format: "json", events: [], created_at: "2026-12-04T10:00:00Z" }];
    deliveries = [
      { id: "d2", event_id: "evt_1", event_type: "account.overloaded", attempt: 2, ok: true, status_code: 204, error: "", latency_ms: 12, created_at: "2026-12-04T10:00:02Z" },
      { id: "d1", event_id: "evt_1", event_type: "account.overloaded", attempt: 1, ok: false, status_code: 0, error: "connection refused", created_at: "2026-12-04T10:00:01Z" },
    ];
    view = render(<RelayWebhooksPage />);
    await flush();
    click(button("Deliveries of https://h.example/x"));
    await flush();
    expect(calls.some((c) => c.path === "/api/v1/relay/webhooks/whk_1/deliveries")).toBe(true);
    const region = $('section[aria-labelledby="log-whk_1"]')!;
    expect(region.querySelector("h2")!.textContent).toBe("Deliveries to https://h.example/x");
    const rows = Array.from(region.querySelectorAll('[data-testid="delivery"]')).map((tr) => Array.from(tr.querySelectorAll("td")).slice(1).map((td) => td.textContent));
    expect(rows).toEqual([
      ["account.overloaded", "evt_1", "2", "delivered", "204", "—", "12 ms"],
      ["account.overloaded", "evt_1", "1", "failed", "none", "connection refused", "—"],
    ]);
    expect(button("Deliveries of https://h.example/x").getAttribute("aria-pressed")).toBe("true");
  });

  it("edit: a dialog with focus inside that Escape closes; saving PATCHes the webhook in place", async () => {
    hooks = [{ id: "whk_1", url: "https://h.example/old", format: "json", events: ["account.recovered"], enabled: true, created_at: "2026-12-04T10:00:00Z" }];
    view = render(<RelayWebhooksPage />);
    await flush();
    const edit = button("Edit webhook https://h.example/old");
    click(edit);
    let dialog = $('[role="dialog"]')!;
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(document.activeElement).toBe(byLabel("Target URL", dialog));
    expect(byLabel("account.recovered", dialog).checked).toBe(true);
    keyDown(byLabel("Target URL", dialog), "Escape");
    expect($('[role="dialog"]')).toBeNull();
    expect(document.activeElement).toBe(edit);
    click(edit);
    dialog = $('[role="dialog"]')!;
    typeInto(byLabel("Target URL", dialog), "https://h.example/new");
    await submit(dialog as HTMLFormElement);
    // No secret typed: none sent, so the server keeps it.
    expect(calls.filter((c) => c.method !== "GET")).toEqual([
      { method: "PATCH", path: "/api/v1/relay/webhooks/whk_1", body: { url: "https://h.example/new", format: "json", events: ["account.recovered"], enabled: true } },
    ]);
    expect($('[role="dialog"]')).toBeNull();
    expect(document.activeElement).toBe(button("Edit webhook https://h.example/new"));
    const urls = Array.from(view.container.querySelectorAll("tbody th")).map((th) => th.textContent);
    expect(urls).toEqual(["https://h.example/new"]);
    expect($('[data-testid="webhook-secret"]')).toBeNull();

    // A new secret and a pause.
    click(button("Edit webhook https://h.example/new"));
    dialog = $('[role="dialog"]')!;
    typeInto(byLabel("Signing secret", dialog), "rotated");
    click(byLabel("Enabled (unchecked: paused, no events are delivered)", dialog));
    await submit(dialog as HTMLFormElement);
    expect(calls.filter((c) => c.method === "PATCH").pop()!.body).toEqual({ url: "https://h.example/new", format: "json", events: ["account.recovered"], secret: "rotated", enabled: false });
    expect($("tbody tr")!.textContent).toContain("paused");
  });

  it("send test: shows the delivery's outcome in the row and reloads the open log", async () => {
    hooks = [{ id: "whk_1", url: "https://h.example/x", format: "json", events: [], enabled: true, created_at: "2026-12-04T10:00:00Z" }];
    view = render(<RelayWebhooksPage />);
    await flush();
    click(button("Deliveries of https://h.example/x"));
    await flush();
    const logLoads = () => calls.filter((c) => c.path === "/api/v1/relay/webhooks/whk_1/deliveries").length;
    const before = logLoads();
    testOutcome = { ok: true, status_code: 200, latency_ms: 7, event_id: "evt_t", delivery_id: "dlv_1" };
    click(button("Send a test event to https://h.example/x"));
    await flush();
    await flush();
    expect(calls.find((c) => c.method === "POST")!.path).toBe("/api/v1/relay/webhooks/whk_1/test");
    expect($('[data-testid="webhook-test"]')!.textContent).toBe("Test event: delivered in 7 ms");
    expect($('[data-testid="webhook-test"]')!.getAttribute("role")).toBe("status");
    expect(logLoads()).toBe(before + 1);
    testOutcome = { ok: false, status_code: 503, latency_ms: 3, error: "HTTP 503" };
    click(button("Send a test event to https://h.example/x"));
    await flush();
    await flush();
    expect($('[data-testid="webhook-test"]')!.textContent).toBe("Test event: failed (503): HTTP 503");
  });

  it("delete asks first and removes the row", async () => {
    hooks = [{ id: "whk_1", url: "https://h.example/x", format: "json", events: [], created_at: "2026-12-04T10:00:00Z" }];
    view = render(<RelayWebhooksPage />);
    await flush();
    const confirm = vi.spyOn(window, "confirm").mockReturnValueOnce(false).mockReturnValueOnce(true);
    click(button("Delete webhook https://h.example/x"));
    await flush();
    expect(calls.some((c) => c.method === "DELETE")).toBe(false);
    click(button("Delete webhook https://h.example/x"));
    await flush();
    await flush();
    expect(confirm).toHaveBeenCalledTimes(2);
    expect(calls.filter((c) => c.method === "DELETE").map((c) => c.path)).toEqual(["/api/v1/relay/webhooks/whk_1"]);
    expect(view.container.textContent).toContain("No webhooks.");
  });
});
