"""Background sender: batches metric points off the training thread and delivers them.

Points are `(key, step, value, timestamp_ms)` tuples. `Sender.add()` is what `Run.log()` calls; it
appends to an in-memory buffer and returns. A daemon thread takes batches out of the buffer and
hands them to a *transport* (`send(points)`: an HTTP POST online, a line in the offline file
offline):

- flush: as soon as `flush_points` (1,000) points are buffered, or `flush_interval` (1 s) after
  the oldest unsent point arrived; one delivery carries at most `max_batch` points.
- retries: a transport error that is `retryable` (network error, 408, 429, 5xx — e.g. the server
  restarting) is retried with exponential backoff (capped at `max_backoff`), forever, until it
  succeeds or `close()` gives up; points are never dropped for these. A non-retryable error (4xx:
  the batch itself is invalid) drops that batch, counts it in `rejected_points` and logs a warning.
- bounded memory, bounded blocking: the buffer holds at most `max_buffered` points. When it is
  full, `add()` waits at most `put_timeout` seconds for the sender to make room; if there is still
  no room, the points are *spilled* to an append-only overflow file on disk (JSON lines, in
  `spill_dir`), which the sender drains after the memory buffer. So the training loop blocks at most
  `put_timeout` per call and no point is dropped unless the disk write fails (then they are
  counted in `dropped_points` with a warning).
- heartbeats: `heartbeat()` (if given) is called from the sender thread every
  `heartbeat_interval` seconds; its errors are logged and ignored.

Thread-safety: `add()`, `flush()` and `close()` may be called from any thread.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from typing import Callable, Sequence

from .api import ApiError, Backoff

log = logging.getLogger("atrium_track")

Point = tuple  # (key: str, step: int, value: float, timestamp_ms: int)


class _SpillFile:
    """Append-only overflow file of points; read back in order from a moving offset."""

    def __init__(self, directory: str | None):
        fd, self.path = tempfile.mkstemp(prefix="atrium-spill-", suffix=".jsonl", dir=directory)
        self._w = os.fdopen(fd, "a", encoding="utf-8")
        self._r = open(self.path, "r", encoding="utf-8")
        self.pending = 0  # points written and not yet read back

    def write(self, points: Sequence[Point]) -> None:
        self._w.write(json.dumps([list(p) for p in points], separators=(",", ":")) + "\n")
        self._w.flush()
        self.pending += len(points)

    def read(self, limit: int) -> list[Point]:
        out: list[Point] = []
        while len(out) < limit and self.pending > 0:
            line = self._r.readline()
            if not line:
                break
            batch = [tuple(p) for p in json.loads(line)]
            out.extend(batch)
            self.pending -= len(batch)
        return out

    def close(self) -> None:
        self._w.close()
        self._r.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class Sender:
    def __init__(
        self,
        send: Callable[[list[Point]], None],
        *,
        flush_interval: float = 1.0,
        flush_points: int = 1000,
        max_batch: int = 10_000,
        max_buffered: int = 200_000,
        put_timeout: float = 1.0,
        spill_dir: str | None = None,
        heartbeat: Callable[[], None] | None = None,
        heartbeat_interval: float = 15.0,
        max_backoff: float = 10.0,
        name: str = "atrium-track-sender",
    ):
        self._send = send
        self.flush_interval = flush_interval
        self.flush_points = flush_points
        self.max_batch = max_batch
        self.max_buffered = max_buffered
        self.put_timeout = put_timeout
        self._spill_dir = spill_dir
        self._heartbeat = heartbeat
        self.heartbeat_interval = heartbeat_interval
        self._max_backoff = max_backoff

        self._cv = threading.Condition()
        self._buf: deque[Point] = deque()  # guarded by _cv
        self._spill: _SpillFile | None = None  # guarded by _cv
        self._inflight: list[Point] = []  # guarded by _cv; the batch being delivered
        self._oldest_at: float | None = None  # guarded by _cv; arrival of the oldest unsent point
        self._flush_wanted = False  # guarded by _cv
        self._closing = False  # guarded by _cv
        self._abort = threading.Event()  # set when close() gives up on retrying

        # Counters (guarded by _cv): enqueued = delivered + rejected + dropped + still pending.
        self.enqueued_points = 0
        self.delivered_points = 0
        self.rejected_points = 0
        self.dropped_points = 0
        self.spilled_points = 0
        self.retries = 0
        self.last_error: str | None = None

        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # --- producer side -----------------------------------------------------------------------

    def add(self, points: Sequence[Point]) -> None:
        """Queues points; blocks at most `put_timeout` seconds (see the module comment)."""
        n = len(points)
        if n == 0:
            return
        with self._cv:
            if self._closing and not self._thread.is_alive():
                raise RuntimeError("sender is closed")
            if len(self._buf) + n > self.max_buffered and (self._spill is None or not self._spill.pending):
                end = time.monotonic() + self.put_timeout
                while len(self._buf) + n > self.max_buffered:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            self.enqueued_points += n
            if len(self._buf) + n <= self.max_buffered and (self._spill is None or not self._spill.pending):
                self._buf.extend(points)
            else:
                # Once spilling, keep spilling until the file is drained, so that memory stays
                # bounded while the server is away.
                try:
                    if self._spill is None:
                        self._spill = _SpillFile(self._spill_dir)
                        log.warning(
                            "atrium_track: send buffer full (%d points); spilling to %s",
                            self.max_buffered,
                            self._spill.path,
                        )
                    self._spill.write(points)
                    self.spilled_points += n
                except OSError as e:
                    self.dropped_points += n
                    self.last_error = f"spill failed: {e}"
                    log.warning("atrium_track: dropped %d points: cannot spill: %s", n, e)
            if self._oldest_at is None:
                # The sender may be sleeping without a deadline: wake it to arm the interval.
                self._oldest_at = time.monotonic()
                self._cv.notify_all()
            elif self._pending_locked() >= self.flush_points:
                self._cv.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every point added before this call was delivered (or rejected); returns
        False on timeout."""
        with self._cv:
            target = self.enqueued_points
            self._flush_wanted = True
            self._cv.notify_all()
            return self._cv.wait_for(
                lambda: self._settled_locked() >= target or not self._thread.is_alive(), timeout
            ) and self._settled_locked() >= target

    def close(self, timeout: float | None = None) -> list[Point]:
        """Delivers what is pending (retrying for at most `timeout` seconds, None: no limit),
        stops the thread and returns the points that could not be delivered."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            with self._cv:
                self._cv.notify_all()
            self._thread.join()
        with self._cv:
            left = list(self._inflight) + list(self._buf)
            if self._spill is not None:
                left.extend(self._spill.read(1 << 62))
                self._spill.close()
                self._spill = None
            self._buf.clear()
            self._inflight = []
        return left

    @property
    def pending_points(self) -> int:
        with self._cv:
            return self._pending_locked() + len(self._inflight)

    # --- sender thread -----------------------------------------------------------------------

    def _pending_locked(self) -> int:
        return len(self._buf) + (self._spill.pending if self._spill else 0)

    def _settled_locked(self) -> int:
        return self.delivered_points + self.rejected_points + self.dropped_points

    def _take_batch_locked(self) -> list[Point]:
        batch: list[Point] = []
        while self._buf and len(batch) < self.max_batch:
            batch.append(self._buf.popleft())
        if len(batch) < self.max_batch and self._spill is not None and self._spill.pending:
            batch.extend(self._spill.read(self.max_batch - len(batch)))
        if not self._pending_locked():
            self._oldest_at = None
            if self._spill is not None:
                self._spill.close()
                self._spill = None
        else:
            self._oldest_at = time.monotonic()
        self._cv.notify_all()  # room in the buffer
        return batch

    def _loop(self) -> None:
        next_heartbeat = time.monotonic()
        while True:
            with self._cv:
                while True:
                    now = time.monotonic()
                    pending = self._pending_locked()
                    due = self._oldest_at is not None and now - self._oldest_at >= self.flush_interval
                    if pending and (
                        pending >= self.flush_points or due or self._flush_wanted or self._closing
                    ):
                        break
                    if not pending:
                        self._flush_wanted = False
                        if self._closing:
                            return
                    if self._heartbeat is not None and now >= next_heartbeat:
                        break
                    waits = [next_heartbeat - now] if self._heartbeat is not None else []
                    if self._oldest_at is not None:
                        waits.append(self._oldest_at + self.flush_interval - now)
                    self._cv.wait(max(0.001, min(waits)) if waits else None)
                batch = self._take_batch_locked() if self._pending_locked() else []
                self._inflight = batch
            if batch:
                self._deliver(batch)
            if self._heartbeat is not None and time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + self.heartbeat_interval
                try:
                    self._heartbeat()
                except Exception as e:  # noqa: BLE001 - heartbeats are best effort
                    log.debug("atrium_track: heartbeat failed: %s", e)
            if self._abort.is_set():
                return

    def _deliver(self, batch: list[Point]) -> None:
        backoff = Backoff(cap=self._max_backoff)
        while True:
            try:
                self._send(batch)
                with self._cv:
                    self.delivered_points += len(batch)
                    self._inflight = []
                    self._cv.notify_all()
                return
            except ApiError as e:
                with self._cv:
                    self.last_error = str(e)
                if not e.retryable:
                    log.warning("atrium_track: server rejected %d points: %s", len(batch), e)
                    with self._cv:
                        self.rejected_points += len(batch)
                        self._inflight = []
                        self._cv.notify_all()
                    return
                delay = backoff.next_delay(e.retry_after)
                with self._cv:
                    self.retries += 1
                if backoff.attempt == 3:
                    log.warning("atrium_track: cannot deliver metrics yet (%s); retrying", e)
                if self._abort.wait(delay):
                    return  # close() gave up: the batch stays in _inflight for the caller
            except Exception as e:  # noqa: BLE001 - a transport bug must not kill the thread
                log.exception("atrium_track: unexpected error delivering %d points", len(batch))
                with self._cv:
                    self.last_error = f"{type(e).__name__}: {e}"
                    self.rejected_points += len(batch)
                    self._inflight = []
                    self._cv.notify_all()
                return
