"""Typed wrappers of the track endpoints (docs/track.md is the reference for every shape).

Every method is one logical operation; methods that are safe to repeat retry retryable errors
(network, 408, 429, 5xx) with backoff for up to `deadline` seconds. Online runs and
`atrium-track sync` both go through this class, so offline-then-sync sends exactly the requests
that online logging sends.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, BinaryIO, Callable, Sequence

from .api import ApiClient, ApiError, quote_path, retry

Point = tuple  # (key, step, value, timestamp_ms)


def wire_value(v: float) -> float | str:
    """JSON has no NaN/Infinity: the API takes them as the strings "NaN", "Infinity", "-Infinity"."""
    if math.isfinite(v):
        return v
    if math.isnan(v):
        return "NaN"
    return "Infinity" if v > 0 else "-Infinity"


def wire_point(p: Point) -> dict[str, Any]:
    key, step, value, ts = p
    return {"key": key, "step": step, "value": value, "timestamp": ts}


def sha256_file(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class TrackApi:
    def __init__(self, client: ApiClient, deadline: float | None = 120.0):
        self.client = client
        self.deadline = deadline

    def _call(self, method: str, path: str, body: Any = None, query: dict | None = None) -> Any:
        return self.client.request_with_retry(method, path, body, query, deadline=self.deadline)

    # --- projects ----------------------------------------------------------------------------

    def ensure_project(self, name: str, description: str | None = None) -> dict:
        """The project named `name` in the key's workspace, created if missing."""
        found = self.find_project(name)
        if found is not None:
            return found
        body: dict[str, Any] = {"name": name}
        if description:
            body["description"] = description
        try:
            return self._call("POST", "/projects", body)
        except ApiError as e:
            if e.status != 409:
                raise
            found = self.find_project(name)  # created concurrently
            if found is None:
                raise
            return found

    def find_project(self, name: str) -> dict | None:
        res = self._call("GET", "/projects", query={"name": name})
        for p in res.get("projects", []):
            if p.get("name") == name:
                return p
        return None

    # --- runs --------------------------------------------------------------------------------

    def create_run(self, project: str, fields: dict[str, Any], project_id: str | None = None) -> dict:
        """Creates a run in project `project` (a name; the server creates it when missing) or,
        when given, `project_id`."""
        body: dict[str, Any] = {"project_id": project_id} if project_id else {"project": project}
        body.update({k: v for k, v in fields.items() if v is not None})
        return self._call("POST", "/runs", body)

    def get_run(self, run_id: str) -> dict:
        return self._call("GET", f"/runs/{run_id}")

    def list_runs(self, project_id: str, limit: int = 1000) -> list[dict]:
        runs: list[dict] = []
        cursor = None
        while True:
            res = self._call("GET", "/runs", query={"project_id": project_id, "limit": limit, "cursor": cursor})
            runs.extend(res.get("runs", []))
            cursor = res.get("next_cursor")
            if not cursor:
                return runs

    def update_run(self, run_id: str, fields: dict[str, Any]) -> dict:
        return self._call("PATCH", f"/runs/{run_id}", fields)

    def log_params(self, run_id: str, params: dict[str, Any]) -> Any:
        """Merges `params` into the run's config (top-level members replace old ones)."""
        return self._call("PATCH", f"/runs/{run_id}", {"config": params})

    def finish_run(self, run_id: str, status: str, exit_code: int | None = None) -> Any:
        body: dict[str, Any] = {"status": status}
        if exit_code is not None:
            body["exit_code"] = exit_code
        return self._call("POST", f"/runs/{run_id}/finish", body)

    def heartbeat(self, run_id: str) -> None:
        # One attempt: the sender calls it periodically anyway.
        self.client.request("POST", f"/runs/{run_id}/heartbeat", {})

    def post_points(self, run_id: str, points: Sequence[Point]) -> None:
        """One attempt (the sender owns retries). Re-sending a batch is harmless: the server
        keeps the last write per (run, key, step)."""
        self.client.request(
            "POST", f"/runs/{run_id}/metrics", {"points": [wire_point(p) for p in points]}
        )

    def post_points_with_retry(
        self, run_id: str, points: Sequence[Point], should_stop: Callable[[], bool] | None = None
    ) -> None:
        retry(lambda: self.post_points(run_id, points), self.deadline, should_stop)

    def post_logs(self, run_id: str, lines: Sequence[tuple]) -> None:
        """One attempt; `lines` are (level, message, timestamp_ms). A retried batch whose first
        attempt did reach the server appends its lines twice (log lines have no natural key)."""
        self.client.request(
            "POST",
            f"/runs/{run_id}/logs",
            {"lines": [{"level": lv, "message": msg, "timestamp": ts} for lv, msg, ts in lines]},
        )

    def read_logs(self, run_id: str) -> list[dict]:
        """Every log line of the run, in order."""
        lines: list[dict] = []
        cursor = None
        while True:
            res = self._call("GET", f"/runs/{run_id}/logs", query={"cursor": cursor, "limit": 10000})
            got = res.get("lines", [])
            lines.extend(got)
            if not got or not res.get("has_more"):
                return lines
            cursor = res.get("next_cursor")

    def metric_keys(self, run_id: str, prefix: str | None = None) -> list[str]:
        return self._call("GET", f"/runs/{run_id}/metrics", query={"prefix": prefix}).get("keys", [])

    def metric_history(self, run_id: str, key: str, max_points: int = 1000) -> dict:
        """The (possibly downsampled) history of `key`: {"key","total","downsampled","points"}."""
        return self._call("GET", f"/runs/{run_id}/metrics/{quote_path([key])}", query={"max_points": max_points})

    def metric_points(self, run_id: str, key: str | None = None) -> list[dict]:
        """Every stored point (of `key`, or of all keys), following the scan cursor."""
        points: list[dict] = []
        cursor = None
        while True:
            res = self._call(
                "GET", f"/runs/{run_id}/metric-points", query={"key": key, "cursor": cursor, "limit": 10000}
            )
            points.extend(res.get("points", []))
            cursor = res.get("next_cursor")
            if not cursor:
                return points

    # --- files -------------------------------------------------------------------------------

    def upload_file(self, run_id: str, name: str, local_path: str) -> dict:
        """Streams a local file to the run's file `name` (replacing an older one)."""
        path = f"/api/v1/runs/{run_id}/files/{quote_path([name])}"
        body = retry(
            lambda: self.client.raw("PUT", path, None, "application/octet-stream", upload_file=local_path)[2],
            self.deadline,
        )
        return json.loads(body) if body else {"path": name}

    def list_files(self, run_id: str) -> list[dict]:
        return self._call("GET", f"/runs/{run_id}/files").get("files", [])

    def download_file(self, run_id: str, name: str) -> bytes:
        path = f"/api/v1/runs/{run_id}/files/{quote_path([name])}"
        return retry(lambda: self.client.raw("GET", path)[2], self.deadline)

    # --- artifacts ---------------------------------------------------------------------------

    def upload_blob(self, local_path: str) -> dict:
        """Streams a file to PUT /blobs; the server stores content once per sha256."""
        body = retry(
            lambda: self.client.raw("PUT", "/api/v1/blobs", None, "application/octet-stream", upload_file=local_path)[2],
            self.deadline,
        )
        return json.loads(body)

    def download_blob(self, digest: str, dest: BinaryIO) -> None:
        """Streams blob `digest` into `dest` (rewritten from the start on each retry)."""
        retry(lambda: self.client.raw("GET", f"/api/v1/blobs/{digest}", download_to=dest), self.deadline)

    def create_artifact_version(
        self,
        project_id: str,
        name: str,
        type_: str,
        files: list[dict],
        aliases: Sequence[str] = (),
        run_id: str | None = None,
        metadata: dict | None = None,
    ) -> dict:
        """{"artifact","version","created"}; an unchanged manifest returns the existing version."""
        body: dict[str, Any] = {
            "project_id": project_id,
            "name": name,
            "type": type_,
            "files": files,
            "aliases": list(aliases),
        }
        if run_id:
            body["run_id"] = run_id
        if metadata:
            body["metadata"] = metadata
        return self._call("POST", "/artifacts", body)

    def resolve_artifact(self, project_id: str, ref: str) -> dict:
        """The committed version `ref` ("name", "name:alias", "name:v3"), with its files."""
        return self._call("GET", "/artifacts/resolve", query={"project_id": project_id, "ref": ref})

    def link_artifact(self, run_id: str, version_id: str, relation: str = "used") -> Any:
        return self._call("POST", f"/runs/{run_id}/artifacts", {"version_id": version_id, "relation": relation})

    def run_artifacts(self, run_id: str) -> dict:
        return self._call("GET", f"/runs/{run_id}/artifacts")

    def upload_artifact(
        self,
        project_id: str,
        name: str,
        type_: str,
        entries: list[tuple[str, str, str, int]],
        aliases: Sequence[str] = (),
        run_id: str | None = None,
        metadata: dict | None = None,
    ) -> dict:
        """Uploads each distinct content once, then creates (or finds) the version.
        `entries` are (artifact path, local file, sha256, size)."""
        uploaded: set[str] = set()
        for _, local, digest, _ in entries:
            if digest not in uploaded:
                got = self.upload_blob(local)
                if got.get("sha256") != digest:
                    raise ApiError(0, f"blob of {local} changed while uploading (sha256 mismatch)")
                uploaded.add(digest)
        files = [{"path": p, "sha256": d, "size": s} for p, _, d, s in entries]
        return self.create_artifact_version(project_id, name, type_, files, aliases, run_id, metadata)

    # --- sweeps ------------------------------------------------------------------------------

    def create_sweep(self, project_id: str, config: dict, name: str | None = None) -> dict:
        body: dict[str, Any] = {"project_id": project_id, "config": config}
        if name:
            body["name"] = name
        return self._call("POST", "/sweeps", body)

    def get_sweep(self, sweep_id: str) -> dict:
        return self._call("GET", f"/sweeps/{sweep_id}")

    def sweep_stats(self, sweep_id: str) -> dict:
        return self._call("GET", f"/sweeps/{sweep_id}/stats")

    def suggest(self, sweep_id: str) -> dict:
        """{"done":false,"suggestion_id","params"} or {"done":true,"reason"}; ApiError 409 when
        the sweep is paused."""
        return self._call("POST", f"/sweeps/{sweep_id}/suggest", {})

    def should_stop(self, sweep_id: str, run_id: str) -> dict:
        return self._call("POST", f"/sweeps/{sweep_id}/should-stop", {"run_id": run_id})


def walk_artifact_source(path: str) -> list[tuple[str, str]]:
    """(artifact path, local file) for a file (its basename) or a directory (relative paths,
    '/'-separated, sorted)."""
    if os.path.isfile(path):
        return [(os.path.basename(path), path)]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"log_artifact: no such file or directory: {path}")
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            local = os.path.join(root, f)
            rel = os.path.relpath(local, path).replace(os.sep, "/")
            out.append((rel, local))
    return out
