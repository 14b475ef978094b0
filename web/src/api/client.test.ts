import { describe, expect, it } from "vitest";
import { ApiClient, ApiError, parseErrorBody, qs, readCookie } from "./client";

type Call = { url: string; init: RequestInit };

function fakeFetch(responses: ((c: Call) => Response)[]) {
  const calls: Call[] = [];
  const fn = async (url: string, init: RequestInit = {}) => {
    const c = { url, init };
    calls.push(c);
    const next = responses.shift();
    if (!next) throw new Error("unexpected request " + url);
    return next(c);
  };
  return { fn, calls };
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const session = (token: string) => ({ user: { id: "u1", email: "a@b.c", name: "A" }, workspace: { id: "w1", name: "W" }, role: "owner", access_token: token, refresh_token: null, csrf_token: "csrf1", expires_in: 900 });

describe("ApiClient", () => {
  it("logs in in cookie mode and sends the access token as Bearer", async () => {
    const f = fakeFetch([() => json(200, session("t1")), () => json(200, { ok: true })]);
    const c = new ApiClient(f.fn, () => "");
    const seen: unknown[] = [];
    c.onSession = (s) => seen.push(s?.access_token);
    await c.login("a@b.c", "pw");
    expect(JSON.parse(f.calls[0].init.body as string)).toEqual({ email: "a@b.c", password: "pw", cookie: true });
    expect(await c.get("/api/v1/x")).toEqual({ ok: true });
    expect((f.calls[1].init.headers as Record<string, string>).authorization).toBe("Bearer t1");
    expect(seen).toEqual(["t1"]);
  });

  it("refreshes once on 401 with the CSRF cookie and retries the request", async () => {
    const f = fakeFetch([
      () => json(401, { error: { code: "unauthenticated", message: "expired" } }),
      () => json(200, session("t2")),
      () => json(200, { v: 2 }),
    ]);
    const c = new ApiClient(f.fn, () => "other=1; atrium_csrf=tok%3D");
    expect(await c.get("/api/v1/y")).toEqual({ v: 2 });
    expect(f.calls[1].url).toBe("/api/v1/auth/refresh");
    expect((f.calls[1].init.headers as Record<string, string>)["x-csrf-token"]).toBe("tok=");
    expect(f.calls[1].init.body).toBe("{}");
    expect((f.calls[2].init.headers as Record<string, string>).authorization).toBe("Bearer t2");
  });

  it("gives up when the refresh fails and reports the original error", async () => {
    const f = fakeFetch([() => json(401, { error: { code: "unauthenticated", message: "no" } }), () => json(401, { error: { code: "unauthenticated", message: "bad refresh" } })]);
    const c = new ApiClient(f.fn, () => "atrium_csrf=x");
    let signedOut = false;
    c.onSession = (s) => (signedOut = s === null);
    await expect(c.get("/api/v1/z")).rejects.toMatchObject({ status: 401, message: "no" });
    expect(signedOut).toBe(true);
  });

  it("does not try to refresh without a CSRF token", async () => {
    const f = fakeFetch([() => json(401, { error: { code: "unauthenticated", message: "no" } })]);
    const c = new ApiClient(f.fn, () => "");
    await expect(c.get("/q")).rejects.toBeInstanceOf(ApiError);
    expect(f.calls.length).toBe(1);
  });

  it("shares one refresh between concurrent 401s", async () => {
    let refreshes = 0;
    const f = fakeFetch([
      () => json(401, {}), () => json(401, {}),
      () => (refreshes++, json(200, session("t3"))),
      () => json(200, { a: 1 }), () => json(200, { b: 2 }),
    ]);
    const c = new ApiClient(f.fn, () => "atrium_csrf=x");
    const [a, b] = await Promise.all([c.get("/a"), c.get("/b")]);
    expect([a, b]).toEqual([{ a: 1 }, { b: 2 }]);
    expect(refreshes).toBe(1);
  });

  it("returns undefined for 204 and sends JSON bodies", async () => {
    const f = fakeFetch([() => new Response(null, { status: 204 })]);
    const c = new ApiClient(f.fn, () => "");
    expect(await c.post("/p", { x: 1 }, { "idempotency-key": "k" })).toBeUndefined();
    expect(f.calls[0].init.method).toBe("POST");
    expect((f.calls[0].init.headers as Record<string, string>)["content-type"]).toBe("application/json");
    expect((f.calls[0].init.headers as Record<string, string>)["idempotency-key"]).toBe("k");
  });
});

describe("error shapes and helpers", () => {
  it("reads Atrium, OpenAI and TEI errors", () => {
    expect(parseErrorBody(400, { error: { code: "invalid_argument", message: "filter: bad at position 3" } })).toMatchObject({ status: 400, code: "invalid_argument", message: "filter: bad at position 3" });
    expect(parseErrorBody(404, { error: { message: "no model", type: "invalid_request_error", param: "model" } })).toMatchObject({ code: "invalid_request_error", message: "no model" });
    expect(parseErrorBody(413, { error: "too long", error_type: "Validation" })).toMatchObject({ code: "Validation", message: "too long" });
    expect(parseErrorBody(502, "Bad Gateway")).toMatchObject({ code: "http_502", message: "Bad Gateway" });
  });
  it("reads cookies and builds query strings", () => {
    expect(readCookie("a=1; atrium_csrf=abc; b=2", "atrium_csrf")).toBe("abc");
    expect(readCookie("a=1", "atrium_csrf")).toBe("");
    expect(qs({ a: 1, b: "", c: undefined, d: "x y" })).toBe("?a=1&d=x+y");
    expect(qs({})).toBe("");
  });
});
