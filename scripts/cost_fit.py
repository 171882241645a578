#!/usr/bin/env python3
"""cost_fit.py: the split grid's measured step times (scripts/split_grid.sh) against the cost model's predictions (bench/cost_model), and a fit of its weights.

Per point and split: the median over rounds of the measured seconds per step (batch /
samples_per_s). auto/best is the median over rounds of (the measured time of the split the
model chooses) / (the faster of data and hidden in that round): auto runs the very code of the
split it chooses, and both splits of a round ran back to back in one process. With --fit, the
weights of the model's terms are fitted by non-negative least squares on relative error
(each point's terms divided by its measured time should sum to 1) and printed; they are put into
src/cost.c by hand. Needs numpy (and scipy for --fit): Debian's /usr/bin/python3.
"""

import argparse
import csv
import statistics
import subprocess
import sys
from collections import defaultdict

TERMS = ["fma", "rows", "l2", "l3", "mem", "net", "barrier", "step"]


def measured(path):
    """{(threads, batch, hidden): {split: {round: seconds per step}}}."""
    cells = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            b = int(row["batch"])
            key = (int(row["threads"]), b, int(row["hidden"]))
            cells[key][row["parallel"]][row["round"]] = b / float(row["samples_per_s"])
    return cells


def model(build, threads, batches, hiddens, kernels="avx512"):
    """{(threads, batch, hidden): {split: row of bench/cost_model}}."""
    out = subprocess.run([f"{build}/bench/cost_model", ",".join(map(str, threads)),
                          ",".join(map(str, batches)), ",".join(map(str, hiddens)), kernels],
                         check=True, capture_output=True, text=True).stdout
    rows = defaultdict(dict)
    for row in csv.DictReader(out.splitlines()):
        rows[(int(row["threads"]), int(row["samples"]), int(row["hidden"]))][row["split"]] = row
    return rows


def med(d):
    return statistics.median(d.values()) if d else None


def fit(cells, pred):
    import numpy as np
    from scipy.optimize import nnls
    a, names = [], []
    for key, splits in cells.items():
        for split, rounds in splits.items():
            if split not in pred.get(key, {}):
                continue  # a split that does not apply ran as the data split
            t = med(rounds)
            a.append([float(pred[key][split][k]) / t for k in TERMS])
            names.append((key, split))
    a = np.array(a)
    used = [j for j in range(len(TERMS)) if a[:, j].any()]
    w, _ = nnls(a[:, used], np.ones(len(a)))
    weights = dict.fromkeys(TERMS, 0.0)
    for j, v in zip(used, w):
        weights[TERMS[j]] = v
    res = a[:, used] @ w
    print("fitted weights (seconds per unit):")
    for k in TERMS:
        v = weights[k]
        print(f"  {k:8s} {v:.4g}" + (f"   (1 / {1 / v:.4g})" if v > 0 else ""))
    print(f"relative error: median |pred/meas - 1| = {np.median(abs(res - 1)):.3f}, "
          f"max {max(abs(res - 1)):.3f}")
    worst = sorted(zip(abs(res - 1), res, names), key=lambda x: -x[0])[:10]
    print("largest: " + "; ".join(f"{k[0]}x{k[1]}x{k[2]} {s} {r:.2f}" for _, r, (k, s) in worst))


def tables(cells, pred):
    print("| threads | batch | hidden | data µs | hidden µs | auto | auto/best | model data µs | model hidden µs |")
    print("|---|---|---|---|---|---|---|---|---|")
    misses = []
    for key in sorted(cells):
        t, b, h = key
        splits, p = cells[key], pred[key]
        chosen = next(s for s in p if p[s]["chosen"] == "1")
        d, hd = med(splits.get("data", {})), med(splits.get("hidden", {}))
        if "hidden" not in p:
            hd = None  # the hidden split does not apply: it ran as the data split
        ratios = []
        for r, td in splits.get("data", {}).items():
            th = splits.get("hidden", {}).get(r) if hd is not None else None
            best = min(td, th) if th is not None else td
            ratios.append((th if chosen == "hidden" else td) / best)
        q = statistics.median(ratios)
        if q > 1.05:
            misses.append((key, q))
        ph = p.get("hidden")
        print(f"| {t} | {b} | {h} | {d * 1e6:.0f} | {hd * 1e6 if hd else float('nan'):.0f} | "
              f"{chosen} | {q:.3f} | {float(p['data']['seconds']) * 1e6:.0f} | "
              f"{float(ph['seconds']) * 1e6 if ph else float('nan'):.0f} |"
              .replace("| nan |", "| - |"))
    print()
    print("auto more than 5% slower than the faster split at: " +
          (", ".join(f"{k[0]}x{k[1]}x{k[2]} ({q:.3f})" for k, q in misses) or "no point"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="rows of scripts/split_grid.sh")
    ap.add_argument("--build", default="build", help="build directory with bench/cost_model")
    ap.add_argument("--fit", action="store_true", help="fit the weights of the model's terms")
    args = ap.parse_args()
    cells = measured(args.csv)
    if not cells:
        sys.exit("cost_fit: no rows")
    keys = list(cells)
    pred = model(args.build, sorted({k[0] for k in keys}), sorted({k[1] for k in keys}),
                 sorted({k[2] for k in keys}))
    if args.fit:
        fit(cells, pred)
        print()
    tables(cells, pred)


if __name__ == "__main__":
    main()
