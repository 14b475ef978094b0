"""`Run`: one experiment run, online (talking to an Atrium server) or offline (a local directory).

Created by `atrium_track.init()`. Metric points go through a background `Sender` (batched,
retried, bounded; see sender.py); params, files, artifacts and finish are synchronous calls
(retried on network errors and 5xx for up to `Settings.request_deadline` seconds).

Steps: `log(values)` without `step` uses the run's step counter and then advances it by one;
`log(values, step=s)` logs at `s` and moves the counter to `max(counter, s + 1)`. Several keys in
one call share the step. Values must be numbers (bool counts as 0/1; numpy scalars work); nested
dicts are flattened with "/" (`{"train": {"loss": 1}}` → `train/loss`). NaN and ±inf are logged
(sent as the strings "NaN"/"Infinity"/"-Infinity", which the server stores as such). Logging the
same key at the same step again replaces the value (the server keeps the last write).

Thread-safety: `log()` may be called from several threads; `finish()` once from any thread.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Mapping

from .api import ApiClient, ApiError
from .offline import OfflineWriter
from .sender import Sender
from .system import SystemSampler
from .track_api import TrackApi, sha256_file, walk_artifact_source, wire_value

log = logging.getLogger("atrium_track")

STATUSES = ("finished", "failed", "crashed", "killed")
LOG_LEVELS = ("debug", "info", "warning", "error", "stdout", "stderr")


@dataclasses.dataclass
class Settings:
    """Everything configurable; `from_env()` reads ATRIUM_* variables for unset values."""

    url: str | None = None  # ATRIUM_URL
    api_key: str | None = None  # ATRIUM_API_KEY
    mode: str = "online"  # ATRIUM_MODE: online | offline
    dir: str | None = None  # ATRIUM_DIR: root of offline runs (default ./atrium-track)
    cache_dir: str | None = None  # ATRIUM_CACHE_DIR (default ~/.cache/atrium_track)
    flush_interval: float = 1.0
    flush_points: int = 1000
    max_batch: int = 10_000
    max_buffered: int = 200_000
    put_timeout: float = 1.0
    heartbeat_interval: float = 15.0
    system_interval: float = 10.0  # ATRIUM_SYSTEM_INTERVAL; 0 disables the sampler
    finish_timeout: float = 120.0  # ATRIUM_FINISH_TIMEOUT: delivering pending points at finish
    request_deadline: float = 120.0  # retry budget of synchronous calls
    max_backoff: float = 10.0
    console: bool = False  # ATRIUM_CONSOLE=1: copy stdout/stderr lines into the run's logs

    def resolved(self) -> "Settings":
        s = dataclasses.replace(self)
        env = os.environ
        s.url = s.url or env.get("ATRIUM_URL")
        s.api_key = s.api_key or env.get("ATRIUM_API_KEY")
        if "ATRIUM_MODE" in env and self.mode == "online":
            s.mode = env["ATRIUM_MODE"]
        s.dir = s.dir or env.get("ATRIUM_DIR") or os.path.join(os.getcwd(), "atrium-track")
        s.cache_dir = (
            s.cache_dir
            or env.get("ATRIUM_CACHE_DIR")
            or os.path.join(os.path.expanduser("~"), ".cache", "atrium_track")
        )
        if "ATRIUM_SYSTEM_INTERVAL" in env:
            s.system_interval = float(env["ATRIUM_SYSTEM_INTERVAL"])
        if env.get("ATRIUM_CONSOLE", "").lower() in ("1", "true", "yes", "on"):
            s.console = True
        if "ATRIUM_FINISH_TIMEOUT" in env:
            s.finish_timeout = float(env["ATRIUM_FINISH_TIMEOUT"])
        if s.mode not in ("online", "offline"):
            raise ValueError(f"mode must be 'online' or 'offline', got {s.mode!r}")
        return s


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        if not isinstance(k, str) or not k:
            raise TypeError(f"metric names must be non-empty strings, got {k!r}")
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, name + "/"))
        else:
            out[name] = v
    return out


def _git(*args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (res.stdout.strip() or None) if res.returncode == 0 else None


def git_info() -> dict | None:
    """{"commit","branch","remote","dirty"} of the working directory's repository, or None."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "remote": _git("config", "--get", "remote.origin.url"),
        "dirty": bool(status),
    }


def host_info() -> dict:
    return {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "python": platform.python_version(),
        "pid": os.getpid(),
        "argv": sys.argv,
    }


_active_runs: "weakref.WeakSet[Run]" = weakref.WeakSet()
_uncaught = {"exc": False}


class Run:
    def __init__(
        self,
        project: str,
        *,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        group: str | None = None,
        job_type: str | None = None,
        sweep_id: str | None = None,
        suggestion_id: str | None = None,
        settings: Settings | None = None,
    ):
        if not project:
            raise ValueError("project is required (argument or ATRIUM_PROJECT)")
        self.settings = (settings or Settings()).resolved()
        self.project = project
        self.config: dict[str, Any] = dict(config or {})
        self.tags = tags if isinstance(tags, Mapping) else list(tags or [])
        self.notes = notes
        self.summary: dict[str, float] = {}
        self.sweep_id = sweep_id
        self._step = 0
        self._system_step = 0
        self._lock = threading.Lock()
        self._finished = False
        self.status = "running"
        self.offline_dir: str | None = None
        self.recovery_dir: str | None = None

        fields = {
            "name": name,
            "config": self.config,
            "tags": self.tags,
            "notes": notes,
            "group": group,
            "job_type": job_type,
            "sweep_id": sweep_id,
            "suggestion_id": suggestion_id,
            "host": host_info(),
            "git": git_info(),
        }
        self._api: TrackApi | None = None
        self._writer: OfflineWriter | None = None
        s = self.settings
        if s.mode == "online":
            self._api = TrackApi(ApiClient(s.url, s.api_key), deadline=s.request_deadline)
            created = self._api.create_run(project, fields)
            self.project_id: str | None = created["project_id"]
            self.id: str | None = created["id"]
            self.name = created.get("name") or name
            send = self._send_online
            send_lines = self._send_lines_online
            heartbeat = self._heartbeat
        else:
            self._writer = OfflineWriter(s.dir)
            self.offline_dir = self._writer.path
            self._writer.write(
                {"type": "run", "format": 1, "project": project, "fields": {k: v for k, v in fields.items() if v is not None}}
            )
            self.project_id = None
            self.id = None
            self.name = name
            send = self._writer.write_points
            send_lines = self._writer.write_lines
            heartbeat = None
        self._sender = Sender(
            send,
            flush_interval=s.flush_interval,
            flush_points=s.flush_points,
            max_batch=s.max_batch,
            max_buffered=s.max_buffered,
            put_timeout=s.put_timeout,
            heartbeat=heartbeat,
            heartbeat_interval=s.heartbeat_interval,
            max_backoff=s.max_backoff,
        )
        # Log lines travel like points, through their own sender (same batching and retries).
        self._line_sender = Sender(
            send_lines,
            flush_interval=s.flush_interval,
            flush_points=s.flush_points,
            max_batch=s.max_batch,
            max_buffered=s.max_buffered,
            put_timeout=s.put_timeout,
            max_backoff=s.max_backoff,
            name="atrium-track-logs",
        )
        self._console: list[_ConsoleTee] = []
        if s.console:
            self._console = [_ConsoleTee(self, "stdout"), _ConsoleTee(self, "stderr")]
        self._sampler: SystemSampler | None = None
        if s.system_interval > 0:
            self._sampler = SystemSampler(self._log_system, s.system_interval)
            self._sampler.start()
        _active_runs.add(self)
        _install_exit_hooks()

    # --- online plumbing ---------------------------------------------------------------------

    def _send_online(self, points) -> None:
        assert self._api is not None and self.id is not None
        self._api.post_points(self.id, points)

    def _send_lines_online(self, lines) -> None:
        assert self._api is not None and self.id is not None
        self._api.post_logs(self.id, lines)

    def _heartbeat(self) -> None:
        assert self._api is not None and self.id is not None
        self._api.heartbeat(self.id)

    def _log_system(self, values: dict[str, float]) -> None:
        with self._lock:
            step = self._system_step
            self._system_step += 1
        ts = int(time.time() * 1000)
        self._sender.add([(f"system/{k}", step, wire_value(float(v)), ts) for k, v in values.items()])

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("run is finished")

    # --- logging -----------------------------------------------------------------------------

    def log(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Queues metric points (see the module comment for steps and accepted values)."""
        self._check_open()
        flat = flatten(values)
        ts = int(time.time() * 1000)
        with self._lock:
            if step is None:
                step = self._step
                self._step += 1
            else:
                if not isinstance(step, int) or isinstance(step, bool) or step < 0:
                    raise ValueError(f"step must be a non-negative int, got {step!r}")
                self._step = max(self._step, step + 1)
        points = []
        for k, v in flat.items():
            if isinstance(v, bool):
                v = int(v)
            if not isinstance(v, (int, float)):
                try:
                    v = float(v)  # numpy scalars, Decimal, ...
                except (TypeError, ValueError):
                    raise TypeError(f"metric {k!r} must be a number, got {type(v).__name__}") from None
            v = float(v)
            points.append((k, step, wire_value(v), ts))
            self.summary[k] = v
        self._sender.add(points)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Same as `log()` (the seed's name)."""
        self.log(metrics, step=step)

    def log_text(self, message: str, level: str = "info") -> None:
        """Appends a console/log line to the run (`level`: debug, info, warning, error, stdout,
        stderr). Delivered in the background like metric points."""
        self._check_open()
        if level not in LOG_LEVELS:
            raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        self._line_sender.add([(level, str(message), int(time.time() * 1000))])

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Merges `params` into the run's config (nested dicts allowed)."""
        self._check_open()
        params = dict(params)
        self.config.update(params)
        if self._api is not None:
            self._api.log_params(self.id, params)
        else:
            self._writer.write({"type": "params", "params": params})

    def update(self, *, name: str | None = None, tags: list[str] | None = None, notes: str | None = None) -> None:
        """Changes the run's name, tags or notes."""
        self._check_open()
        fields = {k: v for k, v in {"name": name, "tags": tags, "notes": notes}.items() if v is not None}
        if not fields:
            return
        if self._api is not None:
            self._api.update_run(self.id, fields)
        else:
            self._writer.write({"type": "update", "fields": fields})

    def should_stop(self) -> bool:
        """For a sweep run with early termination: True when the sweep's Hyperband says this run
        should stop (call it every few steps, after logging the sweep metric)."""
        if self._api is None or not self.sweep_id:
            return False
        self.flush(self.settings.request_deadline)
        return bool(self._api.should_stop(self.sweep_id, self.id).get("stop"))

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every point logged so far was delivered; False on timeout."""
        return self._sender.flush(timeout)

    @property
    def step(self) -> int:
        return self._step

    @property
    def sender(self) -> Sender:
        return self._sender

    # --- files and artifacts -----------------------------------------------------------------

    def save(self, path: str, name: str | None = None) -> list[str]:
        """Uploads a file (or every file matching a glob pattern) as run files; returns the names.
        `name` (single file only) defaults to the file's base name."""
        self._check_open()
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        files = [m for m in matches if os.path.isfile(m)]
        if not files:
            raise FileNotFoundError(f"save: no such file: {path}")
        if name is not None and len(files) != 1:
            raise ValueError("save: name= needs exactly one file")
        names = []
        for f in files:
            n = name or os.path.basename(f)
            if self._api is not None:
                self._api.upload_file(self.id, n, f)
            else:
                self._writer.add_file(n, f)
            names.append(n)
        return names

    def log_artifact(
        self,
        path: str,
        name: str | None = None,
        type: str = "dataset",  # noqa: A002 - the seed's parameter name
        aliases: list[str] | None = None,
        metadata: dict | None = None,
    ) -> dict:
        """Logs a file or directory as a new version of artifact `name` (default: the base name),
        produced by this run. Returns the server's version record ({"version": "v0", ...}); online,
        an unchanged content returns the existing version. Offline, returns {"manifest": [...]}."""
        self._check_open()
        name = name or os.path.basename(os.path.normpath(path))
        entries = []
        for rel, local in walk_artifact_source(path):
            digest, size = sha256_file(local)
            entries.append((rel, local, digest, size))
        aliases = list(aliases or [])
        if self._api is not None:
            return self._api.upload_artifact(self.project_id, name, type, entries, aliases, self.id, metadata)
        return {"manifest": self._writer.add_artifact(name, type, entries, aliases, metadata)}

    def use_artifact(self, ref: str, root: str | None = None) -> str:
        """Downloads artifact version `ref` ("name", "name:alias" or "name:v3"; default alias
        `latest`) of this run's project, records it as an input of this run, and returns the local
        directory holding its files (under the cache dir, or `root`). Blobs are cached by sha256,
        so a second use downloads nothing. Online only."""
        self._check_open()
        if self._api is None:
            raise RuntimeError("use_artifact needs an online run")
        name = ref.partition(":")[0]
        rec = self._api.resolve_artifact(self.project_id, ref if ":" in ref else f"{ref}:latest")
        self._api.link_artifact(self.id, rec["id"], "used")
        return materialize(self._api, rec, self.settings.cache_dir, name, root)

    # --- finish ------------------------------------------------------------------------------

    def finish(self, status: str = "finished", timeout: float | None = None) -> None:
        """Delivers pending points (waiting at most `timeout`, default `finish_timeout` seconds),
        then marks the run `status`. Online, whatever could not be delivered is written to a
        recovery directory (`run.recovery_dir`, logged) that `atrium-track sync` uploads later.
        Calling it again does nothing."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        with self._lock:
            if self._finished:
                return
            self._finished = True
        for tee in self._console:
            tee.restore()
        if self._sampler is not None:
            self._sampler.stop()
        limit = self.settings.finish_timeout if timeout is None else timeout
        started = time.monotonic()
        left = self._sender.close(limit)
        left_lines = self._line_sender.close(max(0.0, limit - (time.monotonic() - started)))
        _active_runs.discard(self)
        self.status = status
        if self._writer is not None:
            if left:
                self._writer.write_points(left)
            if left_lines:
                self._writer.write_lines(left_lines)
            self._writer.write({"type": "finish", "status": status})
            self._writer.close()
            return
        try:
            if not left and not left_lines:
                self._api.finish_run(self.id, status)
                return
        except ApiError as e:
            log.warning("atrium_track: cannot mark run %s %s: %s", self.id, status, e)
        self._write_recovery(left, left_lines, status)

    def _write_recovery(self, points, lines, status: str) -> None:
        writer = OfflineWriter(self.settings.dir, prefix=f"recovery-{self.id}")
        writer.write(
            {"type": "run", "format": 1, "project": self.project, "fields": {}, "run_id": self.id, "project_id": self.project_id}
        )
        if points:
            writer.write_points(points)
        if lines:
            writer.write_lines(lines)
        writer.write({"type": "finish", "status": status})
        writer.close()
        self.recovery_dir = writer.path
        log.warning(
            "atrium_track: run %s: %d points and %d log lines not delivered; saved to %s — "
            "upload with `atrium-track sync %s`",
            self.id,
            len(points),
            len(lines),
            writer.path,
            writer.path,
        )

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("killed")
        else:
            self.finish("failed")
        return False

    def __repr__(self) -> str:
        where = self.id if self.id else self.offline_dir
        return f"<atrium_track.Run {self.project}/{self.name or ''} {where} {self.status}>"


class _ConsoleTee:
    """Replaces sys.stdout or sys.stderr: writes go to the original stream unchanged, and every
    complete line is also logged to the run with level "stdout"/"stderr". restore() puts the
    original back (if nobody replaced the stream since) and logs a trailing partial line."""

    def __init__(self, run: "Run", which: str):
        self._run = run
        self._which = which
        self._orig = getattr(sys, which)
        self._partial = ""
        self._lock = threading.Lock()
        setattr(sys, which, self)

    def write(self, text: str) -> int:
        n = self._orig.write(text)
        with self._lock:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
        if lines and not self._run._finished:
            ts = int(time.time() * 1000)
            self._run._line_sender.add([(self._which, line, ts) for line in lines])
        return n

    def flush(self) -> None:
        self._orig.flush()

    def __getattr__(self, name: str):
        return getattr(self._orig, name)

    def restore(self) -> None:
        if getattr(sys, self._which) is self:
            setattr(sys, self._which, self._orig)
        with self._lock:
            rest, self._partial = self._partial, ""
        if rest:
            self._run._line_sender.add([(self._which, rest, int(time.time() * 1000))])


def materialize(api: TrackApi, rec: dict, cache_dir: str, name: str, root: str | None) -> str:
    """Downloads the blobs of an artifact version record into the cache and lays its files out in
    a directory; returns that directory."""
    blobs = os.path.join(cache_dir, "blobs")
    os.makedirs(blobs, exist_ok=True)
    version = rec.get("version") or rec.get("id") or "unknown"
    dest = root or os.path.join(cache_dir, "artifacts", str(rec.get("project_id", "project")), name, version)
    for m in rec.get("files", []):
        if m.get("url"):
            continue  # external reference: not downloaded
        digest, rel = m["sha256"], m["path"]
        if rel.startswith("/") or ".." in rel.split("/"):
            raise ValueError(f"artifact path escapes the directory: {rel!r}")
        blob = os.path.join(blobs, digest[:2], digest)
        if not os.path.exists(blob):
            os.makedirs(os.path.dirname(blob), exist_ok=True)
            tmp = f"{blob}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                with open(tmp, "w+b") as f:
                    api.download_blob(digest, f)
                if sha256_file(tmp)[0] != digest:
                    raise ValueError(f"artifact {name}: blob {digest} failed its sha256 check")
                os.replace(tmp, blob)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        target = os.path.join(dest, *rel.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(target) and sha256_file(target)[0] == digest:
            continue
        tmp = f"{target}.{os.getpid()}.tmp"
        try:
            os.link(blob, tmp)
        except OSError:
            shutil.copyfile(blob, tmp)
        os.replace(tmp, target)
    os.makedirs(dest, exist_ok=True)
    return dest


_hooks_installed = False


def _install_exit_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    import atexit

    previous = sys.excepthook

    def excepthook(tp, value, tb):
        _uncaught["exc"] = True
        previous(tp, value, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_active_runs)


def _finish_active_runs() -> None:
    status = "failed" if _uncaught["exc"] else "finished"
    for run in list(_active_runs):
        try:
            run.finish(status)
        except Exception as e:  # noqa: BLE001 - at exit, report and go on
            log.warning("atrium_track: finishing run at exit failed: %s", e)
