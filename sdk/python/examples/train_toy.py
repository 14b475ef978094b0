#!/usr/bin/env python3
"""A toy training run and sweep with atrium_track (no numpy, no framework).

Fits y = 3x - 1 with plain SGD on a synthetic data set, logs losses, the dataset as an artifact
and the final weights as a run file; then runs a small grid sweep over the learning rate.

    export ATRIUM_URL=http://127.0.0.1:8080 ATRIUM_API_KEY=atr_...
    PYTHONPATH=sdk/python python3 sdk/python/examples/train_toy.py
    PYTHONPATH=sdk/python python3 sdk/python/examples/train_toy.py --offline   # then:
    PYTHONPATH=sdk/python python3 -m atrium_track sync atrium-track/
"""

import argparse
import json
import os
import random
import tempfile

import atrium_track


def make_dataset(path: str, n: int = 200, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            x = rng.uniform(-1, 1)
            f.write(f"{x},{3 * x - 1 + rng.gauss(0, 0.1)}\n")


def load(path: str) -> list[tuple[float, float]]:
    with open(path) as f:
        return [tuple(map(float, line.split(","))) for line in f if line.strip()]


def train(run: atrium_track.Run, data: list[tuple[float, float]]) -> float:
    lr, epochs, batch = run.config["lr"], run.config["epochs"], run.config["batch_size"]
    w = b = 0.0
    rng = random.Random(1)
    loss = float("inf")
    for epoch in range(epochs):
        rng.shuffle(data)
        for i in range(0, len(data), batch):
            chunk = data[i : i + batch]
            gw = sum(2 * (w * x + b - y) * x for x, y in chunk) / len(chunk)
            gb = sum(2 * (w * x + b - y) for x, y in chunk) / len(chunk)
            w, b = w - lr * gw, b - lr * gb
            loss = sum((w * x + b - y) ** 2 for x, y in chunk) / len(chunk)
            run.log({"train/loss": loss, "w": w, "b": b})
        val = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
        run.log({"val/loss": val, "epoch": epoch})
        if run.should_stop():  # Hyperband, for sweep runs with early_terminate
            break
    return val


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--project", default="toy-regression")
    ap.add_argument("--offline", action="store_true", help="log to ./atrium-track, sync later")
    ap.add_argument("--no-sweep", action="store_true")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="atrium-toy-")
    data_dir = os.path.join(workdir, "data")
    os.makedirs(data_dir)
    make_dataset(os.path.join(data_dir, "train.csv"))

    config = {"lr": 0.1, "epochs": 10, "batch_size": 16}
    mode = "offline" if args.offline else "online"
    with atrium_track.init(project=args.project, config=config, tags=["toy"], mode=mode) as run:
        run.log_artifact(data_dir, name="toy-data", type="dataset", aliases=["v-demo"])
        val = train(run, load(os.path.join(data_dir, "train.csv")))
        weights = os.path.join(workdir, "weights.json")
        with open(weights, "w") as f:
            json.dump({"val_loss": val}, f)
        run.save(weights)
        print(f"run {run.id or run.offline_dir}: val/loss {val:.4f}")

    if args.offline or args.no_sweep:
        return
    sweep_id = atrium_track.sweep(
        {
            "method": "grid",
            "metric": {"name": "val/loss", "goal": "minimize"},
            "parameters": {"lr": {"values": [0.01, 0.05, 0.2]}, "epochs": {"value": 5},
                           "batch_size": {"values": [8, 32]}},
        },
        project=args.project,
    )

    def trial(run: atrium_track.Run) -> None:
        path = run.use_artifact("toy-data:latest")
        train(run, load(os.path.join(path, "train.csv")))

    runs = atrium_track.agent(sweep_id, trial)
    print(f"sweep {sweep_id}: {len(runs)} runs")


if __name__ == "__main__":
    main()
