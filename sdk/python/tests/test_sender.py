"""Unit tests of the background sender: batching, retries, bounded blocking, close."""

import threading
import time

import pytest

from atrium_track.api import ApiError, Backoff, retry
from atrium_track.sender import Sender


class Recorder:
    def __init__(self, fail=None, delay=0.0):
        self.batches = []
        self.times = []
        self.fail = list(fail or [])  # statuses to raise, in order, before succeeding
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, points):
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            if self.fail:
                status = self.fail.pop(0)
                raise ApiError(status, "injected")
            self.batches.append(list(points))
            self.times.append(time.monotonic())

    def points(self):
        return [p for b in self.batches for p in b]


def pts(n, key="loss", start=0):
    return [(key, start + i, float(start + i), 1000 + start + i) for i in range(n)]


def test_batch_is_sent_as_soon_as_flush_points_are_buffered():
    rec = Recorder()
    s = Sender(rec, flush_interval=30.0, flush_points=1000)
    t0 = time.monotonic()
    s.add(pts(1000))
    assert s.flush(5)
    assert time.monotonic() - t0 < 2
    assert [len(b) for b in rec.batches] == [1000]
    assert s.close(5) == []


def test_small_batches_wait_for_the_flush_interval():
    rec = Recorder()
    s = Sender(rec, flush_interval=1.0, flush_points=1000)
    t0 = time.monotonic()
    s.add(pts(3))
    time.sleep(0.1)
    assert rec.batches == []  # not yet: fewer than flush_points and younger than the interval
    deadline = time.monotonic() + 5
    while not rec.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(rec.batches) == 1 and len(rec.batches[0]) == 3
    assert rec.times[0] - t0 >= 0.9
    s.close(5)


def test_one_delivery_carries_at_most_max_batch_points():
    rec = Recorder()
    s = Sender(rec, flush_interval=0.05, flush_points=10, max_batch=100)
    s.add(pts(1050))
    assert s.flush(5)
    assert sum(len(b) for b in rec.batches) == 1050
    assert max(len(b) for b in rec.batches) <= 100
    s.close(5)


def test_retryable_errors_are_retried_until_delivered():
    rec = Recorder(fail=[503, 0, 502, 429, 500])
    s = Sender(rec, flush_interval=0.01, max_backoff=0.05)
    s.add(pts(10))
    assert s.flush(10)
    assert rec.points() == pts(10)
    assert s.retries == 5 and s.delivered_points == 10 and s.rejected_points == 0
    s.close(5)


def test_client_errors_drop_the_batch_and_are_counted():
    rec = Recorder(fail=[400])
    s = Sender(rec, flush_interval=0.01)
    s.add(pts(5))
    assert s.flush(5)
    assert s.rejected_points == 5 and rec.batches == []
    s.add(pts(2, start=5))
    assert s.flush(5)
    assert s.delivered_points == 2
    assert "injected" in s.last_error
    s.close(5)


def test_full_buffer_blocks_at_most_put_timeout_then_spills_without_loss(tmp_path):
    gate = threading.Event()

    def slow(points):
        gate.wait()
        rec(points)

    rec = Recorder()
    s = Sender(slow, flush_interval=0.01, flush_points=10, max_batch=50, max_buffered=100,
               put_timeout=0.2, spill_dir=str(tmp_path))
    worst = 0.0
    for i in range(40):  # 4,000 points against a buffer of 100 and a stuck transport
        t0 = time.monotonic()
        s.add(pts(100, start=i * 100))
        worst = max(worst, time.monotonic() - t0)
    assert worst < 1.0, worst  # put_timeout (0.2 s) plus scheduling slack, not "until delivered"
    assert s.spilled_points > 0
    assert list(tmp_path.iterdir()), "spill file exists while spilling"
    gate.set()
    assert s.flush(20)
    got = sorted(rec.points(), key=lambda p: p[1])
    assert got == pts(4000)
    assert s.dropped_points == 0
    s.close(5)
    assert list(tmp_path.iterdir()) == []  # spill file removed once drained


def test_close_returns_what_could_not_be_delivered():
    rec = Recorder(fail=[503] * 1000)
    s = Sender(rec, flush_interval=0.01, max_backoff=0.05)
    s.add(pts(7))
    time.sleep(0.1)
    s.add(pts(3, start=7))
    left = s.close(0.3)
    assert sorted(left, key=lambda p: p[1]) == pts(10)


def test_heartbeat_is_called_periodically_and_its_errors_ignored():
    calls = []

    def hb():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ApiError(0, "down")

    s = Sender(Recorder(), heartbeat=hb, heartbeat_interval=0.05)
    time.sleep(0.4)
    s.close(5)
    assert len(calls) >= 3


def test_concurrent_producers_lose_nothing():
    rec = Recorder()
    s = Sender(rec, flush_interval=0.02, flush_points=100)
    threads = [threading.Thread(target=lambda k=k: [s.add(pts(10, key=f"k{k}", start=j * 10)) for j in range(100)])
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.flush(10)
    assert len(rec.points()) == 4000
    assert len(set((p[0], p[1]) for p in rec.points())) == 4000
    s.close(5)


def test_backoff_grows_exponentially_with_a_cap_and_honours_retry_after():
    b = Backoff(base=0.1, cap=1.0)
    delays = [b.next_delay() for _ in range(8)]
    assert delays[0] <= 0.1 and delays[3] >= 0.4 and max(delays) <= 1.0
    assert b.next_delay(retry_after=3.0) >= 3.0


def test_retry_gives_up_on_non_retryable_errors_and_after_the_deadline():
    calls = []

    def bad():
        calls.append(1)
        raise ApiError(404, "nope")

    with pytest.raises(ApiError):
        retry(bad, deadline=5)
    assert len(calls) == 1

    def down():
        raise ApiError(0, "down")

    t0 = time.monotonic()
    with pytest.raises(ApiError):
        retry(down, deadline=0.3, backoff=Backoff(base=0.05, cap=0.1))
    assert time.monotonic() - t0 < 2.0
