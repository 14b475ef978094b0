"""Offline runs: the on-disk format and `sync`, which uploads them later.

An offline run is a directory `<root>/offline-run-<UTC time>-<8 hex>/`:

    events.jsonl   one JSON object per line, in the order the run produced them (format below)
    files/         copies of the files given to run.save()
    blobs/         artifact file contents, named by their sha256
    sync.json      written by sync: {"run_id", "project_id", "offset"} (bytes of events.jsonl
                   already uploaded), so an interrupted sync resumes where it stopped and a
                   finished one is not uploaded twice

events.jsonl lines (every line has "type"; unknown types are an error, unknown fields ignored):

    {"type":"run","format":1,"project":P,"fields":{"name","config","tags","notes","group",
     "job_type","sweep_id","host",...},"run_id"?:ID,"project_id"?:ID}
        always the first line; with "run_id" the events belong to an existing server run (the
        recovery file written when an online run could not deliver everything before exit)
    {"type":"metrics","points":[[key,step,value,timestamp_ms],...]}   value: number or "NaN"/...
    {"type":"logs","lines":[[level,message,timestamp_ms],...]}
    {"type":"params","params":{...}}
    {"type":"update","fields":{"tags"?,"notes"?,"name"?}}
    {"type":"file","name":N,"local":"files/<n>"}
    {"type":"artifact","name","artifact_type","aliases":[...],"metadata":{...}|null,
     "manifest":[{"path","sha256","size"}]}          contents in blobs/<sha256>
    {"type":"finish","status":S}

A line is written whole with one write() and the file is flushed after every event, so a crash
leaves at most a truncated last line, which sync ignores (it stops there, without error, until the
writer finishes it).

`sync()` replays the events through `TrackApi`, the same calls an online run makes, so the server
ends up with the same data (metric points carry their original steps and timestamps).
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import threading
from typing import Any, Callable

from .api import ApiError, retry
from .track_api import TrackApi, sha256_file

FORMAT = 1
EVENTS = "events.jsonl"
SYNC_STATE = "sync.json"


class OfflineWriter:
    """Appends events to a run directory. Thread-safe."""

    def __init__(self, root: str, prefix: str = "offline-run"):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.path = os.path.join(os.path.abspath(root), f"{prefix}-{stamp}-{secrets.token_hex(4)}")
        os.makedirs(os.path.join(self.path, "files"), exist_ok=True)
        os.makedirs(os.path.join(self.path, "blobs"), exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(os.path.join(self.path, EVENTS), "a", encoding="utf-8")
        self._files = 0  # guarded by _lock

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def write_points(self, points) -> None:
        self.write({"type": "metrics", "points": [list(p) for p in points]})

    def write_lines(self, lines) -> None:
        self.write({"type": "logs", "lines": [list(x) for x in lines]})

    def add_file(self, name: str, local_path: str) -> None:
        with self._lock:
            self._files += 1
            rel = f"files/{self._files:06d}-{os.path.basename(local_path)}"
        shutil.copyfile(local_path, os.path.join(self.path, rel))
        self.write({"type": "file", "name": name, "local": rel})

    def add_artifact(
        self, name: str, type_: str, entries, aliases, metadata: dict | None
    ) -> list[dict]:
        """`entries`: (artifact path, local file, sha256, size). Copies contents into blobs/."""
        for _, local, digest, _ in entries:
            dst = os.path.join(self.path, "blobs", digest)
            if not os.path.exists(dst):
                tmp = dst + ".tmp"
                shutil.copyfile(local, tmp)
                os.replace(tmp, dst)
        manifest = [{"path": p, "sha256": d, "size": s} for p, _, d, s in entries]
        self.write(
            {
                "type": "artifact",
                "name": name,
                "artifact_type": type_,
                "aliases": list(aliases),
                "metadata": metadata,
                "manifest": manifest,
            }
        )
        return manifest

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


def find_run_dirs(path: str) -> list[str]:
    """`path` itself if it is a run directory, else its run subdirectories (sorted)."""
    if os.path.isfile(os.path.join(path, EVENTS)):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such directory: {path}")
    return sorted(
        os.path.join(path, d)
        for d in os.listdir(path)
        if os.path.isfile(os.path.join(path, d, EVENTS))
    )


def _load_state(run_dir: str) -> dict:
    try:
        with open(os.path.join(run_dir, SYNC_STATE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"offset": 0}


def _save_state(run_dir: str, state: dict) -> None:
    tmp = os.path.join(run_dir, SYNC_STATE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, os.path.join(run_dir, SYNC_STATE))


def sync_run(api: TrackApi, run_dir: str, log: Callable[[str], None] = lambda s: None) -> dict:
    """Uploads the events of one offline run directory not uploaded yet; returns the sync state
    ({"run_id","project_id","offset","finished"?}). Raises ApiError / ValueError on failure (the
    state saved so far lets a later call resume)."""
    state = _load_state(run_dir)
    events_path = os.path.join(run_dir, EVENTS)
    with open(events_path, "rb") as f:
        f.seek(state.get("offset", 0))
        while True:
            raw = f.readline()
            if not raw or not raw.endswith(b"\n"):
                break  # end, or a line still being written
            event = json.loads(raw)
            _apply(api, run_dir, state, event, log)
            state["offset"] = f.tell()
            _save_state(run_dir, state)
    return state


def _apply(api: TrackApi, run_dir: str, state: dict, event: dict, log: Callable[[str], None]) -> None:
    kind = event.get("type")
    if kind == "run":
        if event.get("format", FORMAT) > FORMAT:
            raise ValueError(f"{run_dir}: offline format {event['format']} is newer than this SDK")
        if "run_id" in state:
            return
        if event.get("run_id"):
            state["run_id"] = event["run_id"]
            state["project_id"] = event.get("project_id")
        else:
            run = api.create_run(event["project"], event.get("fields", {}))
            state["run_id"], state["project_id"] = run["id"], run["project_id"]
        log(f"{run_dir}: run {state['run_id']}")
        return
    run_id = state.get("run_id")
    if not run_id:
        raise ValueError(f"{run_dir}: events before the run line")
    if kind == "metrics":
        api.post_points_with_retry(run_id, [tuple(p) for p in event["points"]])
    elif kind == "logs":
        retry(lambda: api.post_logs(run_id, [tuple(x) for x in event["lines"]]), api.deadline)
    elif kind == "params":
        api.log_params(run_id, event["params"])
    elif kind == "update":
        api.update_run(run_id, event["fields"])
    elif kind == "file":
        api.upload_file(run_id, event["name"], os.path.join(run_dir, event["local"]))
    elif kind == "artifact":
        entries = []
        for m in event["manifest"]:
            local = os.path.join(run_dir, "blobs", m["sha256"])
            entries.append((m["path"], local, m["sha256"], m["size"]))
        res = api.upload_artifact(
            state["project_id"],
            event["name"],
            event["artifact_type"],
            entries,
            event.get("aliases", []),
            run_id,
            event.get("metadata"),
        )
        log(f"{run_dir}: artifact {event['name']} {res.get('version', '')}")
    elif kind == "finish":
        try:
            api.finish_run(run_id, event["status"])
        except ApiError as e:
            if e.status != 409:  # already finished: nothing to do
                raise
        state["finished"] = True
        log(f"{run_dir}: finished ({event['status']})")
    else:
        raise ValueError(f"{run_dir}: unknown event type {kind!r}")


def verify_blob(path: str, digest: str) -> bool:
    return sha256_file(path)[0] == digest
