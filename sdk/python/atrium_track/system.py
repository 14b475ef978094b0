"""System metrics sampler: CPU and memory from /proc, GPUs through `nvidia-smi` when present.

`SystemSampler` runs a daemon thread that every `interval` seconds calls `sample()` and hands the
values to `emit(values: dict[str, float])`; the run logs them as metrics under `system/`
(`system/cpu_percent`, `system/memory_percent`, `system/memory_used_mb`, `system/proc_rss_mb`,
`system/proc_cpu_percent`, `system/gpu.<i>.utilization`, `system/gpu.<i>.memory_used_mb`,
`system/gpu.<i>.memory_percent`, `system/gpu.<i>.temperature`, `system/gpu.<i>.power_w`).
Missing sources (no /proc, no GPU) are skipped silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from typing import Callable


def _read(path: str) -> str | None:
    try:
        with open(path, "r", encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    text = _read("/proc/stat")
    if not text or not text.startswith("cpu "):
        return None
    fields = [int(x) for x in text.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest times are already included in user/nice
    return total - idle, total


def _proc_cpu_seconds() -> float | None:
    text = _read("/proc/self/stat")
    if not text:
        return None
    after = text.rsplit(")", 1)[-1].split()
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (int(after[11]) + int(after[12])) / ticks  # utime + stime


def memory() -> dict[str, float]:
    out: dict[str, float] = {}
    meminfo = _read("/proc/meminfo")
    if meminfo:
        kv = {}
        for line in meminfo.splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                kv[name] = int(parts[0])  # kB
        if "MemTotal" in kv and "MemAvailable" in kv and kv["MemTotal"] > 0:
            used = kv["MemTotal"] - kv["MemAvailable"]
            out["memory_used_mb"] = used / 1024
            out["memory_percent"] = 100.0 * used / kv["MemTotal"]
    status = _read("/proc/self/status")
    if status:
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                out["proc_rss_mb"] = int(line.split()[1]) / 1024
    return out


def gpus(nvidia_smi: str | None = None, timeout: float = 5.0) -> dict[str, float]:
    exe = nvidia_smi or shutil.which("nvidia-smi")
    if not exe:
        return {}
    query = "index,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"
    try:
        res = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if res.returncode != 0:
        return {}
    return parse_nvidia_smi(res.stdout)


def parse_nvidia_smi(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    names = ["utilization", "memory_used_mb", "memory_total_mb", "temperature", "power_w"]
    for line in text.strip().splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != 6:
            continue
        idx = cols[0]
        values = {}
        for name, col in zip(names, cols[1:]):
            try:
                values[name] = float(col)
            except ValueError:  # "[N/A]", "[Not Supported]"
                pass
        if values.get("memory_total_mb"):
            values["memory_percent"] = 100.0 * values.get("memory_used_mb", 0.0) / values["memory_total_mb"]
        values.pop("memory_total_mb", None)
        for name, v in values.items():
            out[f"gpu.{idx}.{name}"] = v
    return out


class SystemSampler:
    def __init__(self, emit: Callable[[dict[str, float]], None], interval: float = 10.0):
        self._emit = emit
        self.interval = interval
        self._stop = threading.Event()
        self._last_cpu = _cpu_times()
        self._last_proc = (_proc_cpu_seconds(), time.monotonic())
        self._thread = threading.Thread(target=self._loop, name="atrium-track-system", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        cpu = _cpu_times()
        if cpu and self._last_cpu and cpu[1] > self._last_cpu[1]:
            busy = cpu[0] - self._last_cpu[0]
            values["cpu_percent"] = 100.0 * busy / (cpu[1] - self._last_cpu[1])
        self._last_cpu = cpu
        proc, now = _proc_cpu_seconds(), time.monotonic()
        if proc is not None and self._last_proc[0] is not None and now > self._last_proc[1]:
            values["proc_cpu_percent"] = 100.0 * (proc - self._last_proc[0]) / (now - self._last_proc[1])
        self._last_proc = (proc, now)
        values.update(memory())
        values.update(gpus())
        return values

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                values = self.sample()
                if values:
                    self._emit(values)
            except Exception:  # noqa: BLE001 - sampling must never disturb training
                pass
