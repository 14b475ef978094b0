// HTTP client of the Atrium APIs for the browser.
//
// Contract:
// - Sessions use the identity module's cookie mode (docs/identity.md): register/login send
//   {"cookie": true}; the refresh token then lives only in the HttpOnly `atrium_refresh` cookie and
//   the reply carries a `csrf_token` (also the readable `atrium_csrf` cookie). The access token is
//   kept in memory only and sent as `Authorization: Bearer`.
// - A request answered 401 is retried once after a refresh (POST /api/v1/auth/refresh with an
//   empty body and `x-csrf-token`); concurrent 401s share one refresh.
// - Non-2xx answers throw ApiError with the status and the server's error code and message, for
//   both Atrium's `{"error":{"code","message"}}` and OpenAI/TEI shapes.

export interface Session {
  user: { id: string; email: string; name: string };
  workspace: { id: string; name: string };
  role: string;
  access_token: string;
  csrf_token?: string;
  expires_in: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Extracts status/code/message from an error body of any Atrium API family. */
export function parseErrorBody(status: number, body: unknown): ApiError {
  let code = "http_" + status;
  let message = `request failed with status ${status}`;
  if (body && typeof body === "object") {
    const e = (body as Record<string, unknown>).error;
    if (e && typeof e === "object") {
      const eo = e as Record<string, unknown>;
      if (typeof eo.code === "string") code = eo.code;
      else if (typeof eo.type === "string") code = eo.type;
      if (typeof eo.message === "string") message = eo.message;
    } else if (typeof e === "string") {
      message = e;
      const t = (body as Record<string, unknown>).error_type;
      if (typeof t === "string") code = t;
    }
  } else if (typeof body === "string" && body.trim() !== "") {
    message = body.trim();
  }
  return new ApiError(status, code, message);
}

/** Reads cookie `name` from a Cookie-header-like string ("" when absent). */
export function readCookie(cookies: string, name: string): string {
  for (const part of cookies.split(";")) {
    const item = part.trim();
    const eq = item.indexOf("=");
    if (eq > 0 && item.slice(0, eq) === name) return decodeURIComponent(item.slice(eq + 1));
  }
  return "";
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** Raw body (sent as is, no JSON encoding). */
  raw?: BodyInit;
  headers?: Record<string, string>;
  /** Do not attempt a refresh on 401 (used by the auth calls themselves). */
  noRefresh?: boolean;
  signal?: AbortSignal;
}

export class ApiClient {
  private accessToken = "";
  private csrfToken = "";
  private refreshing: Promise<Session | null> | null = null;
  /** Called whenever the session changes (null: signed out or refresh failed). */
  onSession: (s: Session | null) => void = () => {};

  constructor(
    private readonly fetchFn: FetchLike = (i, init) => fetch(i, init),
    private readonly cookieSource: () => string = () =>
      typeof document === "undefined" ? "" : document.cookie,
    private readonly base = "",
  ) {}

  get token(): string {
    return this.accessToken;
  }

  setSession(s: Session | null): void {
    this.accessToken = s?.access_token ?? "";
    if (s?.csrf_token) this.csrfToken = s.csrf_token;
    if (!s) this.csrfToken = "";
    this.onSession(s);
  }

  private csrf(): string {
    return readCookie(this.cookieSource(), "atrium_csrf") || this.csrfToken;
  }

  /** Refreshes the session from the refresh cookie; null when there is none or it is invalid. */
  refresh(): Promise<Session | null> {
    if (this.refreshing) return this.refreshing;
    this.refreshing = (async () => {
      try {
        const csrf = this.csrf();
        if (!csrf) return null;
        const r = await this.fetchFn(this.base + "/api/v1/auth/refresh", {
          method: "POST",
          credentials: "same-origin",
          headers: { "content-type": "application/json", "x-csrf-token": csrf },
          body: "{}",
        });
        if (!r.ok) {
          this.setSession(null);
          return null;
        }
        const s = (await r.json()) as Session;
        this.setSession(s);
        return s;
      } catch {
        return null;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** Sends a request and returns the raw Response (2xx only; throws ApiError otherwise). */
  async send(path: string, opts: RequestOptions = {}): Promise<Response> {
    const doFetch = () => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (this.accessToken) headers["authorization"] = "Bearer " + this.accessToken;
      let body: BodyInit | undefined = opts.raw;
      if (opts.body !== undefined) {
        headers["content-type"] = "application/json";
        body = JSON.stringify(opts.body);
      }
      return this.fetchFn(this.base + path, {
        method: opts.method ?? (body === undefined ? "GET" : "POST"),
        headers,
        body,
        credentials: "same-origin",
        signal: opts.signal,
      });
    };
    let r = await doFetch();
    if (r.status === 401 && !opts.noRefresh && (await this.refresh())) r = await doFetch();
    if (!r.ok) {
      const text = await r.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* plain text */
      }
      throw parseErrorBody(r.status, parsed);
    }
    return r;
  }

  /** JSON request; resolves to the parsed body (undefined for 204). */
  async json<T = unknown>(path: string, opts: RequestOptions = {}): Promise<T> {
    const r = await this.send(path, opts);
    if (r.status === 204) return undefined as T;
    const text = await r.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T = unknown>(path: string, signal?: AbortSignal): Promise<T> {
    return this.json<T>(path, { signal });
  }
  post<T = unknown>(path: string, body: unknown = {}, headers?: Record<string, string>): Promise<T> {
    return this.json<T>(path, { method: "POST", body, headers });
  }
  patch<T = unknown>(path: string, body: unknown): Promise<T> {
    return this.json<T>(path, { method: "PATCH", body });
  }
  put<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.json<T>(path, { method: "PUT", body });
  }
  del<T = unknown>(path: string): Promise<T> {
    return this.json<T>(path, { method: "DELETE" });
  }

  // ---- identity -------------------------------------------------------------------------------

  async register(email: string, password: string, name: string, inviteCode?: string): Promise<Session> {
    const body: Record<string, unknown> = { email, password, name, cookie: true };
    if (inviteCode) body.invite_code = inviteCode;
    const s = await this.json<Session>("/api/v1/auth/register", { body, noRefresh: true });
    this.setSession(s);
    return s;
  }

  async login(email: string, password: string, workspaceId?: string): Promise<Session> {
    const body: Record<string, unknown> = { email, password, cookie: true };
    if (workspaceId) body.workspace_id = workspaceId;
    const s = await this.json<Session>("/api/v1/auth/login", { body, noRefresh: true });
    this.setSession(s);
    return s;
  }

  async logout(): Promise<void> {
    try {
      await this.json("/api/v1/auth/logout", { method: "POST", body: {}, noRefresh: true });
    } finally {
      this.setSession(null);
    }
  }
}

/** The app's single client. */
export const api = new ApiClient();

/** Query string from an object, skipping empty values. */
export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    u.set(k, String(v));
  }
  const s = u.toString();
  return s ? "?" + s : "";
}

/** A random idempotency key (RFC 4122 v4 when crypto.randomUUID exists). */
export function newIdempotencyKey(): string {
  const c = globalThis.crypto as Crypto | undefined;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  return "k-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
}

/** Fetches `path` with the session's credentials and saves the body as `filename`. */
export async function download(path: string, filename: string): Promise<void> {
  const r = await api.send(path);
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A readable message of any thrown value. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.status})`;
  if (e instanceof Error) return e.message;
  return String(e);
}
