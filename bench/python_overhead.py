#!/usr/bin/env python3
"""python_overhead.py: bprop.MLPClassifier.fit against `bprop train` in training samples/s.

Alternating runs (CLI, Python, CLI, Python, ...) on the same data, seed and settings; medians.
The CLI's figure is its own: samples over the summed epoch times of its metrics log (training
only: no data loading, no per-epoch test evaluation). Python's is taken the hard way: samples
over the wall time of the whole fit() call (input checks, label encoding, trainer set-up and
every epoch). Also printed: fit's own epoch times, which measure the same thing as the CLI's.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_overhead.py --cli build/bprop
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cli", default="build/bprop", help="the bprop program [build/bprop]")
    p.add_argument("--data", default=DATA, help=f"Fashion-MNIST IDX directory [{DATA}]")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--threads", type=int, default=0, help="0: all cores (OMP_NUM_THREADS)")
    p.add_argument("--runs", type=int, default=5, help="runs of each, alternating [5]")
    p.add_argument("--train-limit", type=int, default=0, help="first N samples only (0: all)")
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args()


def cli_run(a, images, labels, workdir):
    metrics = os.path.join(workdir, "cli.jsonl")
    cmd = [a.cli, "train", "--train", images, "--train-labels", labels, "--epochs", str(a.epochs),
           "--hidden", str(a.hidden), "--threads", str(a.threads), "--seed", str(a.seed), "--quiet",
           "--metrics", metrics]
    if a.train_limit:
        cmd += ["--train-limit", str(a.train_limit)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(metrics) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    seconds = sum(r["seconds"] for r in rows)
    samples = sum(r["samples_per_s"] * r["seconds"] for r in rows)
    return samples / seconds


def py_run(a, X, y):
    import bprop
    clf = bprop.MLPClassifier(epochs=a.epochs, hidden=a.hidden, random_state=a.seed,
                              n_jobs=a.threads or None)
    t0 = time.perf_counter()
    clf.fit(X, y)
    wall = time.perf_counter() - t0
    epoch_seconds = sum(r["seconds"] for r in clf._net.history)
    return a.epochs * len(X) / wall, a.epochs * len(X) / epoch_seconds, clf


def main():
    a = parse()
    import bprop
    images = os.path.join(a.data, "train-images-idx3-ubyte.gz")
    labels = os.path.join(a.data, "train-labels-idx1-ubyte.gz")
    X, y = bprop.load_idx(images, labels)
    if a.train_limit:
        X, y = np.ascontiguousarray(X[:a.train_limit]), y[:a.train_limit]
    print(f"data: {len(X)} samples x {X.shape[1]} features (float32, C order); {a.epochs} epochs, "
          f"hidden {a.hidden}, threads {a.threads or 'all'}, kernels {bprop.isa()}, {a.runs} runs each",
          flush=True)
    cli_rates, py_wall, py_epoch = [], [], []
    with tempfile.TemporaryDirectory() as work:
        for i in range(a.runs):
            cli_rates.append(cli_run(a, images, labels, work))
            wall, inner, clf = py_run(a, X, y)
            py_wall.append(wall)
            py_epoch.append(inner)
            print(f"run {i + 1}: cli {cli_rates[-1]:.0f}  fit {wall:.0f} (epochs only {inner:.0f}) samples/s",
                  flush=True)
    c, p, e = (statistics.median(v) for v in (cli_rates, py_wall, py_epoch))
    print(f"median samples/s: cli {c:.0f}, fit {p:.0f} (whole call), fit epochs {e:.0f}")
    print(f"fit / cli: {p / c:.3f} (whole call), {e / c:.3f} (epochs only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
