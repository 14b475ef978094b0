"""End-to-end tests against a real `atrium serve` (skipped without $ATRIUM_BINARY or track routes)."""

import hashlib
import os
import threading
import time

import pytest

import atrium_track
from atrium_track.api import ApiClient, ApiError
from atrium_track.offline import sync_run
from atrium_track.track_api import TrackApi

FAST = dict(flush_interval=0.2, system_interval=0, max_backoff=1.0, heartbeat_interval=1.0)


def online(server, key, project, **kw):
    return atrium_track.init(project=project, url=server.url, api_key=key, **{**FAST, **kw})


def api_of(server, key):
    return TrackApi(ApiClient(server.url, key), deadline=30)


def values(api, run_id, key):
    return {p["step"]: p["value"] for p in api.metric_points(run_id, key)}


def test_restarting_the_server_mid_run_loses_no_points(own_atrium, project_name):
    server, key = own_atrium
    run = online(server, key, project_name, config={"lr": 0.01})
    expected = {}
    for step in range(1500):
        if step == 400:
            server.kill()  # hard crash: batches in flight get no answer and are retried
        if step == 700:
            server.start()  # same port, same data
        if step == 1000:
            server.stop()  # clean shutdown while points keep coming
        if step == 1200:
            server.start()
        if step in (550, 1100):
            time.sleep(1.5)  # the server is down: let the sender fail and back off for a while
        expected[step] = 1.0 / (step + 1)
        run.log({"loss": expected[step], "acc": step / 1500})
        if step % 50 == 0:
            time.sleep(0.03)  # a training loop takes time: the restarts happen mid-stream
    run.finish()
    assert run.recovery_dir is None
    assert run.sender.retries > 0 and run.sender.rejected_points == 0
    api = api_of(server, key)
    got = values(api, run.id, "loss")
    assert len(got) == 1500
    assert got == pytest.approx(expected)
    assert len(values(api, run.id, "acc")) == 1500
    info = api.get_run(run.id)
    assert info["status"] == "finished"
    assert info["summary"]["loss"]["last"] == pytest.approx(1 / 1500)


def train(run, src_file):
    """A deterministic little training loop used online and offline."""
    run.log_params({"epochs": 3, "optimizer": {"name": "sgd", "momentum": 0.9}})
    w = 0.0
    for step in range(300):
        grad = 2 * (w - 3.0)
        w -= 0.01 * grad
        run.log({"train/loss": (w - 3.0) ** 2, "w": w})
        if step % 100 == 99:
            run.log({"val/loss": (w - 3.0) ** 2 + 0.01}, step=step)
            run.log_text(f"step {step}: w={w:.4f}")
    run.log({"nan_metric": float("nan")}, step=299)
    run.save(src_file)


def test_offline_then_sync_gives_the_same_data_as_online(atrium, project_name, tmp_path):
    server, key = atrium
    api = api_of(server, key)
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(4096))
    meta = dict(config={"lr": 0.01, "model": {"layers": 2}}, tags=["baseline"], notes="n",
                group="g", job_type="train")

    with online(server, key, project_name, name="online-run", **meta) as on:
        train(on, str(src))
    with atrium_track.init(project=project_name, mode="offline", dir=str(tmp_path / "off"),
                           name="offline-run", **meta, **FAST) as off:
        train(off, str(src))

    state = sync_run(api, off.offline_dir)
    assert state["finished"]
    a, b = api.get_run(on.id), api.get_run(state["run_id"])
    for field in ("project_id", "status", "config", "tags", "notes", "group", "job_type"):
        assert a[field] == b[field], field
    assert a["config"]["optimizer"] == {"name": "sgd", "momentum": 0.9}
    assert a["summary"].keys() == b["summary"].keys()
    for k in a["summary"]:
        for f in ("last", "min", "max", "step", "count"):
            assert a["summary"][k].get(f) == b["summary"][k].get(f), (k, f)
    assert api.metric_keys(on.id) == api.metric_keys(state["run_id"]) == [
        "nan_metric", "train/loss", "val/loss", "w"]
    pa = api.metric_points(on.id)
    pb = api.metric_points(state["run_id"])
    assert sorted((p["key"], p["step"], str(p["value"])) for p in pa) == sorted(
        (p["key"], p["step"], str(p["value"])) for p in pb)
    assert len(pa) == 300 * 2 + 3 + 1
    # The synced points keep the timestamps taken when they were logged offline.
    import json
    logged = {}
    for line in open(os.path.join(off.offline_dir, "events.jsonl")):
        e = json.loads(line)
        if e["type"] == "metrics":
            for k, s, v, ts in e["points"]:
                logged[(k, s)] = ts
    assert {(p["key"], p["step"]): p["timestamp"] for p in pb} == pytest.approx(logged)
    la, lb = api.read_logs(on.id), api.read_logs(state["run_id"])
    assert [(x["level"], x["message"]) for x in la] == [(x["level"], x["message"]) for x in lb]
    assert len(la) == 3 and la[0]["message"].startswith("step 99:")
    fa, fb = api.list_files(on.id), api.list_files(state["run_id"])
    assert [(f["path"], f["sha256"], f["size"]) for f in fa] == [(f["path"], f["sha256"], f["size"]) for f in fb]
    assert api.download_file(state["run_id"], "weights.bin") == src.read_bytes()
    # A second sync uploads nothing new.
    assert sync_run(api, off.offline_dir)["run_id"] == state["run_id"]
    assert len(api.list_runs(a["project_id"])) == 2


def test_sweep_and_agent_end_to_end(atrium, project_name):
    server, key = atrium
    config = {
        "method": "grid",
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"x": {"values": [1, 2, 3]}, "y": {"values": ["a", "b"]}},
    }
    sweep_id = atrium_track.sweep(config, project=project_name, url=server.url, api_key=key)
    seen = []

    def objective(run):
        x, y = run.config["x"], run.config["y"]
        seen.append((x, y))
        for step in range(5):
            run.log({"score": x * (2 if y == "b" else 1) * (step + 1) / 5})
        if (x, y) == (2, "a"):
            raise RuntimeError("this trial crashes; the agent goes on")

    settings = atrium_track.Settings(**FAST)
    runs = atrium_track.agent(sweep_id, objective, url=server.url, api_key=key, settings=settings)
    assert sorted(seen) == [(1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "a"), (3, "b")]
    assert len(runs) == 6
    assert sorted(r.status for r in runs).count("failed") == 1
    api = api_of(server, key)
    for r in runs:
        info = api.get_run(r.id)
        assert str(info["sweep_id"]) == sweep_id
        assert info["config"] == r.config
    stats = api.sweep_stats(sweep_id)
    assert stats["run_count"] == 6
    assert stats["best"]["value"] == 6 and stats["best"]["params"] == {"x": 3, "y": "b"}
    # Done: another agent has nothing to do.
    assert atrium_track.agent(sweep_id, objective, url=server.url, api_key=key, settings=settings) == []

    # A function without arguments reads atrium_track.config; count= limits the runs.
    random_id = atrium_track.sweep(
        {"method": "random", "metric": {"name": "v", "goal": "minimize"},
         "parameters": {"lr": {"distribution": "log_uniform", "min": 1e-4, "max": 1e-1}}},
        project=project_name, url=server.url, api_key=key)
    lrs = []

    def no_args():
        lrs.append(atrium_track.config["lr"])
        atrium_track.log({"v": atrium_track.config["lr"]})

    runs = atrium_track.agent(random_id, no_args, count=2, url=server.url, api_key=key, settings=settings)
    assert len(runs) == 2 and all(1e-4 <= lr <= 1e-1 for lr in lrs)
    assert atrium_track.run is None


def tree(path):
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_artifact_log_and_use_round_trip(atrium, project_name, tmp_path):
    server, key = atrium
    data = tmp_path / "dataset"
    (data / "sub").mkdir(parents=True)
    (data / "train.csv").write_text("x,y\n1,2\n")
    (data / "sub" / "labels.txt").write_bytes(os.urandom(10_000))
    (data / "sub" / "copy.csv").write_text("x,y\n1,2\n")  # same content: one blob

    with online(server, key, project_name, job_type="prepare") as producer:
        v0 = producer.log_artifact(str(data), name="ds", type="dataset", aliases=["prod"])
        assert v0["created"] is True and v0["version"]["version"] == "v0"
        again = producer.log_artifact(str(data), name="ds", type="dataset", aliases=["prod"])
        assert again["created"] is False and again["version"]["version"] == "v0"
        (data / "train.csv").write_text("x,y\n1,2\n3,4\n")
        v1 = producer.log_artifact(str(data), name="ds", type="dataset")
        assert v1["created"] is True and v1["version"]["version"] == "v1"
        single = producer.log_artifact(str(data / "train.csv"), name="one-file", type="model")
        assert [f["path"] for f in single["version"]["files"]] == ["train.csv"]

    cache = tmp_path / "cache"
    with online(server, key, project_name, job_type="train", cache_dir=str(cache)) as consumer:
        latest = consumer.use_artifact("ds:latest")
        assert tree(latest) == tree(data)
        prod = consumer.use_artifact("ds:prod")
        assert open(os.path.join(prod, "train.csv")).read() == "x,y\n1,2\n"
        assert tree(prod).keys() == tree(data).keys()
        assert consumer.use_artifact("ds") == latest
        with pytest.raises(ApiError) as e:
            consumer.use_artifact("ds:v9")
        assert e.value.status == 404
    api = api_of(server, key)
    used = api.run_artifacts(consumer.id)["used"]
    assert {v["version"] for v in used} == {"v0", "v1"}
    produced = api.run_artifacts(producer.id)["produced"]
    assert {(v["name"], v["version"]) for v in produced} >= {("ds", "v0"), ("ds", "v1"), ("one-file", "v0")}
    blobs = os.listdir(cache / "blobs")
    assert blobs  # content cached by sha256


def test_files_params_status_and_system_metrics(atrium, project_name, tmp_path):
    server, key = atrium
    api = api_of(server, key)
    f = tmp_path / "config.yaml"
    f.write_text("a: 1\n")
    with pytest.raises(KeyError):
        with online(server, key, project_name, config={"a": 1}, system_interval=0.2) as run:
            run.log_params({"b": 2})
            run.update(notes="changed", tags=["x", "y"])
            assert run.save(str(f), name="cfg/config.yaml") == ["cfg/config.yaml"]
            run.log({"loss": 1.0})
            time.sleep(0.7)
            raise KeyError("boom")
    info = api.get_run(run.id)
    assert info["status"] == "failed"
    assert info["config"] == {"a": 1, "b": 2}
    assert info["notes"] == "changed" and info["tags"] == {"x": "true", "y": "true"}
    assert info["host"]["python"] and info["end_time"]
    files = api.list_files(run.id)
    assert [x["path"] for x in files] == ["cfg/config.yaml"]
    assert api.download_file(run.id, "cfg/config.yaml") == b"a: 1\n"
    system = api.metric_keys(run.id, prefix="system/")
    assert "system/cpu_percent" in system and "system/memory_percent" in system
    hist = api.metric_history(run.id, "system/cpu_percent")
    assert hist["total"] >= 2


def test_wrong_or_read_only_key_is_refused(atrium, project_name):
    server, key = atrium
    with pytest.raises(ApiError) as e:
        online(server, "atr_" + "x" * 43, project_name)
    assert e.value.status == 401
    read_only = server.new_api_key(scopes=("track:read",))
    with pytest.raises(ApiError) as e:
        online(server, read_only, project_name)
    assert e.value.status == 403


def test_many_points_from_threads_arrive(atrium, project_name):
    server, key = atrium
    run = online(server, key, project_name)

    def worker(k):
        for s in range(2000):
            run.log({f"t{k}": float(s)}, step=s)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    api = api_of(server, key)
    assert len(api.metric_points(run.id)) == 8000


def test_example_script_runs_online_with_a_sweep(atrium, project_name, tmp_path):
    import subprocess
    import sys

    server, key = atrium
    here = os.path.dirname(__file__)
    env = dict(os.environ, ATRIUM_URL=server.url, ATRIUM_API_KEY=key, ATRIUM_SYSTEM_INTERVAL="0",
               ATRIUM_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=os.path.join(here, ".."))
    res = subprocess.run([sys.executable, os.path.join(here, "..", "examples", "train_toy.py"),
                          "--project", project_name], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "sweep" in res.stdout and ": 6 runs" in res.stdout, res.stdout
    api = api_of(server, key)
    project = api.find_project(project_name)
    runs = api.list_runs(project["id"])
    assert len(runs) == 7 and all(r["status"] == "finished" for r in runs)


def test_full_buffer_while_the_server_is_down_spills_and_delivers_everything(own_atrium, project_name):
    server, key = own_atrium
    run = online(server, key, project_name, max_buffered=2000, put_timeout=0.05)
    server.kill()
    worst = 0.0
    for step in range(2000):
        t0 = time.monotonic()
        run.log({f"k{i}": float(step * i) for i in range(10)})
        worst = max(worst, time.monotonic() - t0)
    assert worst < 1.0, worst  # bounded by put_timeout, not by the server's absence
    assert run.sender.spilled_points > 0
    server.start()
    run.finish()
    assert run.sender.dropped_points == 0 and run.recovery_dir is None
    api = api_of(server, key)
    assert len(api.metric_points(run.id)) == 20000
    assert values(api, run.id, "k7")[1999] == 1999.0 * 7
