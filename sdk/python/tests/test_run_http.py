"""Runs against the in-memory fake server: HTTP retries, steps, offline file format and sync."""

import json
import math
import os
import subprocess
import sys

import pytest

import atrium_track
from atrium_track.offline import find_run_dirs, sync_run
from atrium_track.api import ApiClient, ApiError
from atrium_track.run import flatten
from atrium_track.system import SystemSampler, parse_nvidia_smi
from atrium_track.track_api import TrackApi

FAST = dict(flush_interval=0.05, system_interval=0, max_backoff=0.05, heartbeat_interval=0.2)


def test_points_survive_5xx_and_dropped_connections(fake_server):
    run = atrium_track.init(project="p", url=fake_server.url, api_key="atr_test", **FAST)
    fake_server.fail_next(2, 503)
    fake_server.fail_next(1, 0)  # connection closed without an answer
    fake_server.fail_next(1, 500)
    for i in range(2500):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 2500})
    run.finish()
    stored = fake_server.points[run.id]
    assert len(stored) == 5000
    assert stored[("loss", 2499)][0] == pytest.approx(1 / 2500)
    assert fake_server.runs[run.id]["status"] == "finished"
    assert fake_server.faults == [] and run.sender.retries >= 3  # a dropped keep-alive reconnects once at once
    auth = {h.get("Authorization") for _, _, h in fake_server.requests}
    assert auth == {"Bearer atr_test"}


def test_wrong_key_fails_init_with_401(fake_server):
    with pytest.raises(ApiError) as e:
        atrium_track.init(project="p", url=fake_server.url, api_key="atr_wrong", **FAST)
    assert e.value.status == 401


def test_steps_auto_increment_and_explicit_steps_move_the_counter(fake_server):
    with atrium_track.init(project="p", url=fake_server.url, api_key="atr_test", **FAST) as run:
        run.log({"a": 1})  # step 0
        run.log({"a": 2, "b": {"c": 3}})  # step 1
        run.log({"a": 3}, step=10)
        run.log({"a": 4})  # step 11
        run.log_metrics({"a": float("nan"), "inf": float("inf")}, step=12)
        run.log({"flag": True}, step=12)
    pts = fake_server.points[run.id]
    assert pts[("a", 0)][0] == 1 and pts[("a", 1)][0] == 2 and pts[("b/c", 1)][0] == 3
    assert pts[("a", 10)][0] == 3 and pts[("a", 11)][0] == 4
    assert pts[("a", 12)][0] == "NaN" and pts[("inf", 12)][0] == "Infinity"
    assert pts[("flag", 12)][0] == 1
    assert all(isinstance(ts, int) and ts > 1.6e12 for _, ts in pts.values())
    assert math.isnan(run.summary["a"])


def test_bad_values_raise_in_the_training_thread(fake_server):
    run = atrium_track.init(project="p", url=fake_server.url, api_key="atr_test", **FAST)
    with pytest.raises(TypeError):
        run.log({"x": "text"})
    with pytest.raises(ValueError):
        run.log({"x": 1}, step=-1)
    run.finish()
    with pytest.raises(RuntimeError):
        run.log({"x": 1})


def test_context_manager_marks_failed_on_exception(fake_server):
    with pytest.raises(ZeroDivisionError):
        with atrium_track.init(project="p", url=fake_server.url, api_key="atr_test", **FAST) as run:
            run.log({"x": 1})
            1 / 0
    assert fake_server.runs[run.id]["status"] == "failed"


def test_params_files_and_heartbeats(fake_server, tmp_path):
    f = tmp_path / "model.txt"
    f.write_text("weights")
    run = atrium_track.init(project="p", url=fake_server.url, api_key="atr_test",
                            config={"lr": 0.1}, tags=["a"], **FAST)
    run.log_params({"batch": 32})
    assert run.save(str(f)) == ["model.txt"]
    import time
    time.sleep(0.5)
    run.finish()
    assert fake_server.runs[run.id]["config"] == {"lr": 0.1, "batch": 32}
    assert fake_server.files[(run.id, "model.txt")] == b"weights"
    beats = [p for m, p, _ in fake_server.requests if p.endswith("/heartbeat")]
    assert len(beats) >= 2


def test_server_gone_at_finish_leaves_a_recovery_dir_that_sync_uploads(fake_server, tmp_path):
    run = atrium_track.init(project="p", url=fake_server.url, api_key="atr_test",
                            dir=str(tmp_path), finish_timeout=0.5, **FAST)
    fake_server.fail_next(10_000, 503)
    for i in range(100):
        run.log({"loss": float(i)})
    run.finish()
    assert run.recovery_dir and os.path.isdir(run.recovery_dir)
    assert fake_server.points[run.id] == {}
    fake_server.faults.clear()
    state = sync_run(TrackApi(ApiClient(fake_server.url, "atr_test")), run.recovery_dir)
    assert state["run_id"] == run.id and state["finished"]
    assert len(fake_server.points[run.id]) == 100
    assert fake_server.runs[run.id]["status"] == "finished"


def _read_events(run_dir):
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_offline_run_file_format(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("hello")
    with atrium_track.init(project="p", mode="offline", dir=str(tmp_path / "runs"), name="off",
                           config={"lr": 0.5}, **FAST) as run:
        run.log({"loss": 1.5})
        run.log_params({"epochs": 3})
        run.save(str(src))
        run.log({"loss": 0.5})
    events = _read_events(run.offline_dir)
    assert [e["type"] for e in events] == ["run", "params", "file", "metrics", "finish"]
    assert events[0]["project"] == "p" and events[0]["format"] == 1
    assert events[0]["fields"]["name"] == "off" and events[0]["fields"]["config"] == {"lr": 0.5}
    assert [p[:3] for p in events[3]["points"]] == [["loss", 0, 1.5], ["loss", 1, 0.5]]
    assert events[4] == {"type": "finish", "status": "finished"}
    assert open(os.path.join(run.offline_dir, events[2]["local"])).read() == "hello"
    assert find_run_dirs(str(tmp_path / "runs")) == [run.offline_dir]


def test_sync_replays_offline_runs_once_and_resumes(fake_server, tmp_path):
    with atrium_track.init(project="p", mode="offline", dir=str(tmp_path), config={"a": 1}, **FAST) as run:
        for i in range(50):
            run.log({"loss": i * 0.5})
    api = TrackApi(ApiClient(fake_server.url, "atr_test"))
    fake_server.fail_next(1, 400)  # the first metrics line is rejected: sync stops there
    with pytest.raises(ApiError):
        sync_run(api, run.offline_dir)
    state = json.load(open(os.path.join(run.offline_dir, "sync.json")))
    rid = state["run_id"]
    assert fake_server.runs[rid]["status"] == "running"
    state = sync_run(api, run.offline_dir)  # resumes at the failed line
    assert state["finished"] and state["run_id"] == rid
    assert len(fake_server.runs) == 1
    assert len(fake_server.points[rid]) == 50
    assert fake_server.runs[rid]["config"] == {"a": 1}
    n = len(fake_server.requests)
    sync_run(api, run.offline_dir)  # nothing left to do
    assert len(fake_server.requests) == n


def test_sync_command_line(fake_server, tmp_path):
    with atrium_track.init(project="p", mode="offline", dir=str(tmp_path), **FAST) as run:
        run.log({"x": 1})
    env = dict(os.environ, ATRIUM_URL=fake_server.url, ATRIUM_API_KEY="atr_test",
               PYTHONPATH=os.path.join(os.path.dirname(__file__), ".."))
    res = subprocess.run([sys.executable, "-m", "atrium_track", "sync", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "synced run" in res.stdout
    rid = next(iter(fake_server.runs))
    assert fake_server.runs[rid]["status"] == "finished"
    res = subprocess.run([sys.executable, "-m", "atrium_track", "sync", str(tmp_path / "nope")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2


def test_system_metrics_are_logged_under_system_prefix(fake_server):
    run = atrium_track.init(project="p", url=fake_server.url, api_key="atr_test",
                            **dict(FAST, system_interval=0.1))
    import time
    time.sleep(0.5)
    run.finish()
    keys = {k for k, _ in fake_server.points[run.id]}
    assert "system/cpu_percent" in keys and "system/memory_percent" in keys
    assert "system/proc_rss_mb" in keys


def test_sampler_reads_proc():
    s = SystemSampler(lambda v: None)
    import time
    time.sleep(0.05)
    v = s.sample()
    assert 0 <= v["cpu_percent"] <= 100 and v["memory_used_mb"] > 0


def test_nvidia_smi_output_is_parsed():
    out = "0, 87, 40000, 81920, 65, 250.5\n1, [N/A], 100, 81920, 40, [Not Supported]\n"
    v = parse_nvidia_smi(out)
    assert v["gpu.0.utilization"] == 87 and v["gpu.0.power_w"] == 250.5
    assert v["gpu.0.memory_percent"] == pytest.approx(40000 / 81920 * 100)
    assert "gpu.1.utilization" not in v and v["gpu.1.temperature"] == 40


def test_flatten_nested_dicts():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a/b": 1, "a/c/d": 2, "e": 3}
    with pytest.raises(TypeError):
        flatten({1: 2})


def test_example_script_runs_offline(tmp_path):
    here = os.path.dirname(__file__)
    env = dict(os.environ, ATRIUM_SYSTEM_INTERVAL="0", PYTHONPATH=os.path.join(here, ".."))
    env.pop("ATRIUM_URL", None)
    res = subprocess.run([sys.executable, os.path.join(here, "..", "examples", "train_toy.py"), "--offline"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    (run_dir,) = find_run_dirs(str(tmp_path / "atrium-track"))
    types = [json.loads(line)["type"] for line in open(os.path.join(run_dir, "events.jsonl"))]
    assert types[0] == "run" and "artifact" in types and "file" in types and types[-1] == "finish"
    assert types.count("metrics") >= 1


def test_log_lines_and_console_capture(fake_server, capsys):
    run = atrium_track.init(project="p", url=fake_server.url, api_key="atr_test", console=True, **FAST)
    print("epoch 1 done")
    print("loss", 0.5, file=sys.stderr)
    sys.stdout.write("partial")
    run.log_text("custom message", level="warning")
    with pytest.raises(ValueError):
        run.log_text("x", level="loud")
    run.finish()
    assert not hasattr(sys.stdout, "_run")  # the original stream is back
    lines = [(x["level"], x["message"]) for x in fake_server.logs[run.id]]
    assert sorted(lines) == sorted([("stdout", "epoch 1 done"), ("stderr", "loss 0.5"),
                                    ("warning", "custom message"), ("stdout", "partial")])
    assert "epoch 1 done" in capsys.readouterr().out  # still printed


def test_offline_log_lines_are_synced(fake_server, tmp_path):
    with atrium_track.init(project="p", mode="offline", dir=str(tmp_path), **FAST) as run:
        run.log_text("hello")
        run.log_text("bye", level="error")
    types = [e["type"] for e in _read_events(run.offline_dir)]
    assert "logs" in types
    state = sync_run(TrackApi(ApiClient(fake_server.url, "atr_test")), run.offline_dir)
    got = [(x["level"], x["message"]) for x in fake_server.logs[state["run_id"]]]
    assert got == [("info", "hello"), ("error", "bye")]


@pytest.mark.parametrize("crash,status", [(False, "finished"), (True, "failed")])
def test_exit_without_finish_flushes_and_marks_the_run(fake_server, crash, status):
    script = (
        "import atrium_track\n"
        f"run = atrium_track.init(project='p', url='{fake_server.url}', api_key='atr_test', system_interval=0, flush_interval=30)\n"
        "for i in range(10):\n"
        "    run.log({'x': i})\n"
        + ("raise SystemError('boom')\n" if crash else "")
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), ".."))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert (res.returncode != 0) == crash, res.stderr
    (rid,) = fake_server.runs
    assert len(fake_server.points[rid]) == 10
    assert fake_server.runs[rid]["status"] == status
