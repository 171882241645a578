#!/usr/bin/env python3
"""cost_fit.py: the split grid's measured step times (scripts/split_grid.sh) against the cost model's predictions (bench/cost_model), and a fit of its weights.

Per point and split: the median over rounds of the measured seconds per step (batch /
samples_per_s). auto/best is the median over rounds of (the measured time of the split the
model chooses) / (the faster of data and hidden in that round): auto runs the very code of the
split it chooses, and both splits of a round ran back to back in one process. With --fit, the
weights of the model's terms are fitted by non-negative least squares on relative error
(each point's terms divided by its measured time should sum to 1) and printed; they are put into
src/cost.c by hand. Needs numpy (and scipy for --fit): Debian's /usr/bin/python3.
With --kernels SET other than avx512 (a grid measured with BPROP_ISA=SET), --fit fits only
that set's two rates (seconds per executed FMA and per input value) and holds the weights every
set shares at the values src/cost.c has (from the avx512 fit).
"""

import argparse
import csv
import statistics
import subprocess
import sys
from collections import defaultdict

TERMS = ["fma", "rows", "l2", "l3", "mem", "xcore", "net", "barrier", "step"]


def measured(paths):
    """{(threads, batch, hidden): {split: {round: seconds per step}}} over every file (round
    labels must differ between files)."""
    cells = defaultdict(lambda: defaultdict(dict))
    for path in paths:
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


STAT = statistics.median  # --mean: statistics.mean


def med(d):
    return STAT(list(d.values())) if d else None


def split_ratio(splits):
    """Median over rounds of data / hidden time (both ran in one process each round)."""
    q = [td / splits["hidden"][r] for r, td in splits.get("data", {}).items()
         if r in splits.get("hidden", {})]
    return STAT(q) if q else None


def fit(cells, pred, ratio_weight):
    """Positive weights minimising the squared log errors of every measured time, plus
    ratio_weight times those of every point's data/hidden ratio (what auto decides by)."""
    import numpy as np
    from scipy.optimize import least_squares
    rows, times, pairs = [], [], []
    for key, splits in cells.items():
        for split, rounds in splits.items():
            if split in pred.get(key, {}):  # a split that does not apply ran as the data split
                rows.append([float(pred[key][split][k]) for k in TERMS])
                times.append(med(rounds))
        if "hidden" in pred.get(key, {}):
            pairs.append(([float(pred[key]["data"][k]) for k in TERMS],
                          [float(pred[key]["hidden"][k]) for k in TERMS], split_ratio(splits),
                          key, splits))
    a, t = np.array(rows), np.array(times)
    used = [j for j in range(len(TERMS)) if a[:, j].any()]
    pd = np.array([[p[0][j] for j in used] for p in pairs])
    ph = np.array([[p[1][j] for j in used] for p in pairs])
    q = np.array([p[2] for p in pairs])

    names = [TERMS[j] for j in used]
    order = [names.index(k) for k in ("l2", "l3", "mem") if k in names]

    def weights_of(lw):
        """exp of the parameters; the byte weights as increments, so that a byte never costs
        less at a farther level (L2 <= L3 <= memory): the model stays monotone in the sizes."""
        w = np.exp(lw)
        for a, b in zip(order, order[1:]):
            w[b] = w[a] + w[b]
        return w

    def residuals(lw):
        w = weights_of(lw)
        r1 = np.log(a[:, used] @ w / t)
        r2 = ratio_weight * np.log((pd @ w) / (ph @ w) / q)
        return np.concatenate([r1, r2])

    x0 = np.log(np.full(len(used), 1e-10))
    sol = least_squares(residuals, x0, bounds=(-40.0, -5.0), max_nfev=20000)
    weights = dict.fromkeys(TERMS, 0.0)
    for j, v in zip(used, weights_of(sol.x)):
        weights[TERMS[j]] = v
    res = residuals(sol.x)[:len(t)]
    print(f"fitted weights (seconds per unit; ratio weight {ratio_weight}):")
    for k in TERMS:
        v = weights[k]
        print(f"  {k:8s} {v:.4g}" + (f"   (1 / {1 / v:.4g})" if v > 0 else ""))
    print(f"time error: median |pred/meas - 1| = {np.median(abs(np.exp(res) - 1)):.3f}, "
          f"max {max(abs(np.exp(res) - 1)):.3f}")
    w = weights_of(sol.x)
    out = []
    for (d, h, _, key, splits), sd, sh in zip(pairs, pd @ w, ph @ w):
        choice = "hidden" if sh < sd else "data"
        out.append(f"{key[0]}x{key[1]}x{key[2]} {choice} {auto_over_best(splits, choice, True):.3f}")
    print("with these weights, auto/best: " + "; ".join(out))
    return weights


def current_weights(pred):
    """The weights the built model uses, recovered from its own rows (seconds = terms . weights,
    solved by least squares over every row: exact, as the rows are that sum)."""
    import numpy as np
    rows = [r for splits in pred.values() for r in splits.values()]
    a = np.array([[float(r[k]) for k in TERMS] for r in rows])
    sec = np.array([float(r["seconds"]) for r in rows])
    w, *_ = np.linalg.lstsq(a, sec, rcond=None)
    return dict(zip(TERMS, w))


def fit_set(cells, pred, ratio_weight):
    """A kernel set's two rates (fma, rows) with every other weight held at the built model's:
    the same objective as fit(), over those two."""
    import numpy as np
    from scipy.optimize import least_squares
    w0 = current_weights(pred)
    free = ["fma", "rows"]
    def split_arrays(row):
        f = np.array([float(row[k]) for k in free])
        rest = sum(float(row[k]) * w0[k] for k in TERMS if k not in free)
        return f, rest
    times, pairs = [], []
    for key, splits in cells.items():
        for split, rounds in splits.items():
            if split in pred.get(key, {}):
                times.append((*split_arrays(pred[key][split]), med(rounds)))
        if "hidden" in pred.get(key, {}):
            pairs.append((split_arrays(pred[key]["data"]), split_arrays(pred[key]["hidden"]),
                          split_ratio(splits)))
    def residuals(lw):
        w = np.exp(lw)
        r1 = [np.log((f @ w + rest) / t) for f, rest, t in times]
        r2 = [ratio_weight * np.log((d[0] @ w + d[1]) / (h[0] @ w + h[1]) / q) for d, h, q in pairs]
        return np.array(r1 + r2)
    sol = least_squares(residuals, np.log([w0[k] for k in free]), max_nfev=20000)
    w = dict(w0)
    w.update(zip(free, np.exp(sol.x)))
    res = residuals(sol.x)[:len(times)]
    print(f"fitted rates (seconds per unit; the other weights held; ratio weight {ratio_weight}):")
    for k in free:
        print(f"  {k:8s} {w[k]:.4g}   (1 / {1 / w[k]:.4g}; was {w0[k]:.4g})")
    print(f"time error: median |pred/meas - 1| = {np.median(abs(np.exp(res) - 1)):.3f}, "
          f"max {max(abs(np.exp(res) - 1)):.3f}")
    return w


def rate(sec):
    """1 / sec as a C literal with three significant digits ("42.7e9")."""
    r = 1.0 / sec
    return f"{r / 1e9:.3g}e9" if 1e6 <= r < 1e13 else f"{r:.3g}"


def write_c(path, w, kernels="avx512"):
    """The fitted weights into the lines of src/cost.c marked "fitted" (rounded as they print),
    each line's comment left in its column; for another set, only its two rates' lines."""
    if kernels != "avx512":
        up = kernels.upper()
        subs = {rf"(#define {up}_FMA_PER_SEC )": rate(w["fma"]),
                rf"(#define {up}_SEC_PER_ROW_VALUE )": f"{w['rows'] * 1e9:.2f}e-9"}
        return put_lines(path, subs)
    subs = {r"(SEC_PER_L2_BYTE = 1\.0 / )": rate(w["l2"]),
            r"(SEC_PER_L3_BYTE = 1\.0 / )": rate(w["l3"]),
            r"(SEC_PER_MEM_BYTE = 1\.0 / )": rate(w["mem"]),
            r"(SEC_PER_XCORE_BYTE = 1\.0 / )": rate(w["xcore"]),
            r"(SEC_PER_BARRIER = )": f"{w['barrier']:.2g}",
            r"(SEC_PER_STEP = )": f"{w['step']:.2g}" if w["step"] >= 1e-9 else "0.0",
            r"(#define AVX512_FMA_PER_SEC )": rate(w["fma"]),
            r"(#define AVX512_SEC_PER_ROW_VALUE )": f"{w['rows'] * 1e9:.2f}e-9"}
    put_lines(path, subs)


def put_lines(path, subs):
    """Each regex prefix's value replaced in its one line of path (comment column kept)."""
    import re
    with open(path) as f:
        text = f.read()
    for prefix, value in subs.items():
        def put(m, v=value):
            old = m.group(2) + m.group(3) + m.group(4)
            end = m.group(3) + " " * max(1, len(old) - len(v) - len(m.group(3)))
            return m.group(1) + v + end
        text, n = re.subn(prefix + r"([^;\s]+)(;?)( *)(?=/\*)", put, text)
        if n != 1:
            sys.exit(f"cost_fit: {path}: no single line for {prefix}")
    with open(path, "w") as f:
        f.write(text)
    print(f"weights written into {path}: rebuild bench/cost_model, then run again without --fit "
          "for the tables with them")


def auto_over_best(splits, chosen, hidden_applies):
    """Median over rounds of the chosen split's time over the faster one's in that round."""
    ratios = []
    for r, td in splits.get("data", {}).items():
        th = splits.get("hidden", {}).get(r) if hidden_applies else None
        best = min(td, th) if th is not None else td
        ratios.append((th if chosen == "hidden" else td) / best)
    return statistics.median(ratios)


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
        q = auto_over_best(splits, chosen, hd is not None)
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


def auto_runs(cells, pred):
    """Where auto itself ran (split_grid.sh ... data,hidden,auto): per point, the median over
    rounds of auto's time over the faster of data and hidden in the same process, and of auto's
    over the split the model chooses (with these weights) in the same process."""
    keys = [k for k in sorted(cells) if "auto" in cells[k]]
    if not keys:
        return
    print("| threads | batch | hidden | rounds | data/hidden | auto | auto µs | auto/best | auto/chosen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        splits, p = cells[key], pred[key]
        chosen = next(s for s in p if p[s]["chosen"] == "1")
        rounds = [r for r in splits["auto"] if r in splits.get("data", {})]
        best, same, q = [], [], []
        for r in rounds:
            td, th = splits["data"][r], splits.get("hidden", {}).get(r)
            th = th if "hidden" in p else None  # it ran as the data split
            best.append(splits["auto"][r] / (min(td, th) if th else td))
            same.append(splits["auto"][r] / (th if chosen == "hidden" else td))
            if th:
                q.append(td / th)
        ratio = f"{statistics.median(q):.3f}" if q else "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(rounds)} | {ratio} | {chosen} | "
              f"{med(splits['auto']) * 1e6:.0f} | {statistics.median(best):.3f} | "
              f"{statistics.median(same):.3f} |")
    print()


def predictions(build, threads, batches, hiddens):
    """The model alone at other thread counts: predicted µs per step of each split and auto's
    choice (the memory-bound terms assume the team shares one memory bandwidth, as here)."""
    pred = model(build, threads, batches, hiddens)
    print("| threads | batch | hidden | model data µs | model hidden µs | auto |")
    print("|---|---|---|---|---|---|")
    for key in sorted(pred, key=lambda k: (k[0], k[1], k[2])):
        p = pred[key]
        chosen = next(s for s in p if p[s]["chosen"] == "1")
        ph = f"{float(p['hidden']['seconds']) * 1e6:.0f}" if "hidden" in p else "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {float(p['data']['seconds']) * 1e6:.0f} | "
              f"{ph} | {chosen} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", help="rows of scripts/split_grid.sh (several files: pooled)")
    ap.add_argument("--build", default="build", help="build directory with bench/cost_model")
    ap.add_argument("--fit", action="store_true", help="fit the weights of the model's terms")
    ap.add_argument("--ratio-weight", type=float, default=0.5,
                    help="weight of the data/hidden ratios against the times in the fit")
    ap.add_argument("--predict", metavar="THREADS",
                    help="also print the model's predictions at these thread counts (e.g. 4,8,16)")
    ap.add_argument("--write-c", metavar="COST_C",
                    help="with --fit: write the fitted weights into this src/cost.c")
    ap.add_argument("--kernels", default="avx512",
                    help="the kernel set the rows were measured with (BPROP_ISA); for a set other "
                         "than avx512, --fit fits only its FMA and input-value rates")
    ap.add_argument("--mean", action="store_true",
                    help="fit means over rounds instead of medians (every mode of a bimodal split "
                         "counted at its frequency)")
    args = ap.parse_args()
    if args.mean:
        global STAT
        STAT = statistics.mean
    cells = measured(args.csv)
    if not cells:
        sys.exit("cost_fit: no rows")
    keys = list(cells)
    pred = model(args.build, sorted({k[0] for k in keys}), sorted({k[1] for k in keys}),
                 sorted({k[2] for k in keys}), args.kernels)
    if args.fit:
        if args.kernels == "avx512":
            weights = fit(cells, pred, args.ratio_weight)
        else:
            weights = fit_set(cells, pred, args.ratio_weight)
        if args.write_c:
            write_c(args.write_c, weights, args.kernels)
        print()
    tables(cells, pred)
    print()
    auto_runs(cells, pred)
    if args.predict:
        print()
        predictions(args.build, [int(t) for t in args.predict.split(",")],
                    sorted({k[1] for k in keys}), sorted({k[2] for k in keys}))


if __name__ == "__main__":
    main()
