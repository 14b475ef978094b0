"""pytest fixtures: the SDK on sys.path, a fake track server, and a real `atrium serve`.

The real server is the binary named by $ATRIUM_BINARY (ctest sets it to the build's bin/atrium),
started on port 0 with a temporary data dir; a user signs up and gets an API key with scope
track:write through the auth HTTP API. Tests using it are skipped when $ATRIUM_BINARY is unset
or the binary has no track routes yet.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from fake_server import FakeTrackServer  # noqa: E402


@pytest.fixture
def fake_server():
    s = FakeTrackServer()
    yield s
    s.close()


def _http(method: str, url: str, body=None, token: str | None = None) -> tuple[int, dict | None]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, None


class AtriumServer:
    """`atrium serve` as a child process; restart() keeps the port and the data."""

    def __init__(self, binary: str, data_dir: str, log_dir: str):
        self.binary = binary
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.url = ""
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        out = open(os.path.join(self.log_dir, f"atrium-{self.starts}.out"), "w+")
        err = open(os.path.join(self.log_dir, f"atrium-{self.starts}.err"), "w")
        args = [
            self.binary, "serve", "--port", str(self.port), "--data-dir", self.data_dir,
            "--services", "track",
            "--set", "auth.password_hash_cost=test",
            "--set", "auth.rate_limits=auth=100000/1m,login=100000/1m,api=1000000/1m",
        ]
        deadline = time.monotonic() + 30
        while True:  # the old process's port may linger for a moment after a restart
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            while time.monotonic() < deadline:
                out.seek(0)
                m = re.search(r"listening on (http://[0-9.]+:([0-9]+))", out.read())
                if m:
                    self.url, self.port = m.group(1), int(m.group(2))
                    return
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(f"atrium serve did not start; see {self.log_dir}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def new_api_key(self, scopes=("track:write",)) -> str:
        email = f"u{uuid.uuid4().hex[:12]}@example.com"
        status, session = _http(
            "POST", self.url + "/api/v1/auth/register", {"email": email, "password": "password-123"}
        )
        assert status == 201, session
        status, key = _http(
            "POST", self.url + "/api/v1/keys", {"name": "sdk-test", "scopes": list(scopes)},
            session["access_token"],
        )
        assert status == 201, key
        return key["key"]

    def has_track_routes(self, key: str) -> bool:
        status, body = _http("GET", self.url + "/api/v1/projects", token=key)
        return not (status == 404 and "no route" in json.dumps(body or {}))


def _binary() -> str:
    b = os.environ.get("ATRIUM_BINARY")
    if not b:
        pytest.skip("ATRIUM_BINARY is not set (ctest sets it to the build's bin/atrium)")
    if not os.access(b, os.X_OK):
        pytest.skip(f"ATRIUM_BINARY={b} is not an executable")
    return b


def start_server(tmp_path_factory) -> tuple[AtriumServer, str]:
    base = tmp_path_factory.mktemp("atrium")
    server = AtriumServer(_binary(), str(base / "data"), str(base))
    server.start()
    key = server.new_api_key()
    if not server.has_track_routes(key):
        server.stop()
        pytest.skip("this atrium binary has no track routes yet")
    return server, key


@pytest.fixture(scope="session")
def atrium(tmp_path_factory):
    """A shared real server: (server, api_key)."""
    server, key = start_server(tmp_path_factory)
    yield server, key
    server.stop()


@pytest.fixture
def own_atrium(tmp_path_factory):
    """A real server for one test (for tests that restart it)."""
    server, key = start_server(tmp_path_factory)
    yield server, key
    server.stop()


@pytest.fixture
def project_name():
    return f"p-{uuid.uuid4().hex[:10]}"
