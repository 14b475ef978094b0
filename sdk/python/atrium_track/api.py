"""HTTP client for Atrium's track API (standard library only).

`ApiClient` speaks JSON to `<url>/api/v1/...` with `Authorization: Bearer <api key>`. It keeps
one persistent connection per thread (http.client), so the background sender, the system sampler
and the training thread never share a socket.

Errors: every non-2xx answer raises `ApiError` (status, code and message taken from Atrium's
`{"error":{"code","message","request_id"}}` shape); connection failures raise `ApiError` with
status 0. `ApiError.retryable` is true for network errors, 408, 429 and 5xx — the cases where the
same request may succeed later. `request()` makes one attempt; `request_with_retry()` retries
retryable failures with exponential backoff (see `Backoff`).

Thread-safety: an `ApiClient` may be used from several threads at once.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, BinaryIO, Callable, Iterable

DEFAULT_URL = "http://127.0.0.1:8080"
USER_AGENT = "atrium-track-python/0.1"


class ApiError(Exception):
    """A failed request: `status` is the HTTP status (0 when no answer arrived)."""

    def __init__(self, status: int, message: str, code: str = "", retry_after: float | None = None):
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status in (408, 429) or self.status >= 500


class Backoff:
    """Exponential backoff with full jitter: attempt n waits up to min(cap, base * 2**n) seconds.

    A server's Retry-After (429/503) is honoured when it is longer than the computed delay.
    """

    def __init__(self, base: float = 0.25, cap: float = 10.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        delay = ceiling / 2 + self._rng.random() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap * 6))
        return delay

    def reset(self) -> None:
        self.attempt = 0


class ApiClient:
    """JSON client for one Atrium server. `url` is the server root (no /api/v1)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30.0):
        self.url = (url or DEFAULT_URL).rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip("/")
        self._local = threading.local()

    # --- connections -------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._scheme == "https":
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass
        self._local.conn = None

    def close(self) -> None:
        """Closes the calling thread's connection."""
        self._drop_connection()

    # --- requests ----------------------------------------------------------------------------

    def headers(self, content_type: str | None = None) -> dict[str, str]:
        h = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        if content_type:
            h["Content-Type"] = content_type
        return h

    def raw(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        query: dict[str, Any] | None = None,
        upload_file: str | None = None,
        download_to: BinaryIO | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One attempt; returns (status, lower-cased headers, body). Raises ApiError(0) on
        network failures and for non-2xx answers. `upload_file` streams that file as the body
        (instead of `body`); `download_to` receives a 2xx answer's body in chunks (the returned
        body is then empty)."""
        target = self._prefix + path
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                target += "?" + urllib.parse.urlencode(q)
        # A request on a connection the server closed while idle fails at once; retry it exactly
        # once on a fresh connection before reporting a network error.
        for fresh in (False, True):
            conn = self._connection()
            try:
                headers = self.headers(content_type)
                if upload_file is not None:
                    with open(upload_file, "rb") as f:
                        headers["Content-Length"] = str(os.fstat(f.fileno()).st_size)
                        conn.request(method, target, body=f, headers=headers)
                else:
                    conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                if download_to is not None and 200 <= resp.status < 300:
                    download_to.seek(0)
                    download_to.truncate()
                    while chunk := resp.read(1 << 20):
                        download_to.write(chunk)
                    data = b""
                else:
                    data = resp.read()
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
                if resp.getheader("connection", "").lower() == "close":
                    self._drop_connection()
                break
            except (http.client.HTTPException, OSError, socket.timeout) as e:
                self._drop_connection()
                reused_idle = isinstance(
                    e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                )
                if fresh or not reused_idle:
                    raise ApiError(0, f"{method} {path}: {type(e).__name__}: {e}") from e
        status = resp.status
        if 200 <= status < 300:
            return status, hdrs, data
        code, message = "", data.decode("utf-8", "replace")[:500]
        try:
            err = json.loads(data)["error"]
            code, message = err.get("code", ""), err.get("message", message)
        except (ValueError, KeyError, TypeError):
            pass
        retry_after = None
        if "retry-after" in hdrs:
            try:
                retry_after = float(hdrs["retry-after"])
            except ValueError:
                pass
        raise ApiError(status, f"{method} {path}: {message}", code, retry_after)

    def request(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Any:
        """One attempt of a JSON request under /api/v1; returns the decoded answer (None if empty)."""
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        _, _, data = self.raw(
            method, "/api/v1" + path, payload, "application/json" if payload else None, query
        )
        return json.loads(data) if data else None

    def request_with_retry(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        deadline: float | None = 60.0,
        should_stop: Callable[[], bool] | None = None,
    ) -> Any:
        """`request()` retried on retryable errors until `deadline` seconds passed (None: forever)
        or `should_stop()` is true; the last error is raised then."""
        return retry(lambda: self.request(method, path, body, query), deadline, should_stop)


def retry(
    fn: Callable[[], Any],
    deadline: float | None = 60.0,
    should_stop: Callable[[], bool] | None = None,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Calls `fn` until it succeeds, a non-retryable ApiError is raised, `deadline` seconds passed
    or `should_stop()` returns true (then the last error is raised)."""
    backoff = backoff or Backoff()
    end = None if deadline is None else time.monotonic() + deadline
    while True:
        try:
            return fn()
        except ApiError as e:
            if not e.retryable:
                raise
            delay = backoff.next_delay(e.retry_after)
            if (end is not None and time.monotonic() + delay > end) or (
                should_stop is not None and should_stop()
            ):
                raise
            sleep(delay)


def quote_path(parts: Iterable[str]) -> str:
    """Joins path segments, percent-encoding each one (slashes inside a segment are kept as
    separators, for `{rest...}` routes)."""
    return "/".join(urllib.parse.quote(p, safe="/") for p in parts)
