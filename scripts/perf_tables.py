#!/usr/bin/env python3
"""perf_tables.py: Markdown tables of per-round medians from the CSVs of scripts/thread_sweep.sh and scripts/perf_grid.sh.

Reads rows in bench/throughput's format, with a leading `round` column (a sweep's _rounds.csv,
perf_grid.sh's rounds.csv) or without one (each file is then one round). Every ratio is formed
within a round, between runs measured close in time, and the table gives the median over the
rounds (docs/performance.md, "Method"). Standard library only: any python3 runs it.
"""

import argparse
import csv
import statistics
import sys
from collections import defaultdict

SPLITS = ("auto", "data", "hidden")


def read_rows(paths):
    """Every data row of every file, with its round ('1', '2', ... or the file's position)."""
    rows = []
    for index, path in enumerate(paths, 1):
        try:
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    if "round" not in row:
                        row["round"] = str(index)
                    rows.append(row)
        except OSError as e:
            sys.exit(f"perf_tables: {path}: {e.strerror}")
    if not rows:
        sys.exit("perf_tables: no data rows")
    return rows


class Grid:
    """The rows indexed by (inputs, impl, split, threads, batch, hidden) -> {round: row}."""

    def __init__(self, rows):
        self.cells = defaultdict(dict)
        for row in rows:
            inputs = "dense" if row.get("standardize") == "1" else "sparse"
            split = row.get("parallel") or ("auto" if row["impl"] == "bprop" else "")
            key = (inputs, row["impl"], split, int(row["threads"]), int(row["batch"]),
                   int(row["hidden"]))
            self.cells[key][row["round"]] = row
        keys = self.cells.keys()
        self.inputs = sorted({k[0] for k in keys}, key=("sparse", "dense").index)
        self.threads = sorted({k[3] for k in keys})
        self.batches = sorted({k[4] for k in keys})
        self.hiddens = sorted({k[5] for k in keys})
        self.splits = [s for s in SPLITS if any(k[1] == "bprop" and k[2] == s for k in keys)]
        self.has_torch = any(k[1] == "pytorch" for k in keys)

    def series(self, inputs, impl, split, threads, batch, hidden, column="samples_per_s"):
        """{round: float value of column} at one point (empty fields left out)."""
        rows = self.cells.get((inputs, impl, split, threads, batch, hidden), {})
        return {r: float(row[column]) for r, row in rows.items() if row.get(column)}


def median_ratio(num, den):
    """Median over the rounds both have of num / den, and how many rounds that is."""
    q = [num[r] / den[r] for r in num if r in den and den[r] > 0]
    return (statistics.median(q), len(q)) if q else (None, 0)


def median_of(values):
    v = list(values.values())
    return (statistics.median(v), len(v)) if v else (None, 0)


def table(title, columns, rows, cell):
    """A Markdown table: rows of hidden widths, one column per (threads, batch) or batch."""
    counts = []
    lines = [f"| hidden | {' | '.join(label for label, _ in columns)} |",
             "|---" * (len(columns) + 1) + "|"]
    for h in rows:
        out = []
        for _, col in columns:
            text, n = cell(h, col)
            out.append(text)
            counts.append(n)
        lines.append(f"| {h:,} | {' | '.join(out)} |")
    used = [n for n in counts if n]
    rounds = f"{min(used)}" if used and min(used) == max(used) else \
        (f"{min(used)}-{max(used)}" if used else "0")
    print(f"\n{title} ({rounds} rounds)\n")
    print("\n".join(lines))


def fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)


def point_columns(g):
    return [(f"{t} x {b}", (t, b)) for t in g.threads for b in g.batches]


def describe(rows):
    """The machine, bprop's kernel set and the peer, from the rows' own columns."""
    def values(column, impl=None):
        return sorted({r.get(column) or "" for r in rows if impl is None or r["impl"] == impl} - {""})
    print(f"CPU: {', '.join(values('cpu')) or 'unknown'} (widest ISA "
          f"{', '.join(values('cpu_isa')) or 'unknown'}); bprop kernel set: "
          f"{', '.join(values('kernel_set', 'bprop')) or 'unknown'}")
    peer = [", ".join(values(c, "pytorch")) for c in
            ("torch_version", "peer_blas", "peer_blas_version", "peer_arch", "peer_blas_file")]
    if any(peer):
        print(f"Peer: PyTorch {peer[0]}, {peer[1]} {peer[2]} with its {peer[3]} kernels ({peer[4]})")


def ratio_tables(g, inputs, split):
    table(f"bprop ({split}) / PyTorch samples/s, {inputs} inputs, threads x batch: median of "
          f"per-round ratios", point_columns(g), g.hiddens,
          lambda h, tb: _fmt_pair(median_ratio(g.series(inputs, "bprop", split, *tb, h),
                                               g.series(inputs, "pytorch", "", *tb, h))))


def _fmt_pair(pair, spec=".2f"):
    value, n = pair
    return fmt(value, spec), n


def auto_tables(g, inputs):
    def cell(h, tb):
        auto = g.series(inputs, "bprop", "auto", *tb, h)
        data = g.series(inputs, "bprop", "data", *tb, h)
        hidden = g.series(inputs, "bprop", "hidden", *tb, h)
        best = {r: max(data[r], hidden[r]) for r in data if r in hidden}
        value, n = median_ratio(auto, best)
        if value is None:
            return "-", 0
        # which of the two was faster in most rounds
        wins = sum(hidden[r] > data[r] for r in best)
        return f"{value:.2f} ({'hidden' if 2 * wins > len(best) else 'data'})", n
    table(f"auto / the faster of data and hidden (which one in most rounds), {inputs} inputs, "
          f"threads x batch: median of per-round ratios", point_columns(g), g.hiddens, cell)


def scaling_tables(g, inputs, split):
    if 1 not in g.threads or len(g.threads) < 2:
        return
    impls = [("bprop", split)] + ([("pytorch", "")] if g.has_torch else [])
    cols = [(f"{impl} {t}/1 x {b}", (impl, s, t, b)) for impl, s in impls
            for t in g.threads if t > 1 for b in g.batches]
    table(f"samples/s at T threads / at 1 thread (bprop {split}), {inputs} inputs, by batch: "
          f"median of per-round ratios", cols, g.hiddens,
          lambda h, c: _fmt_pair(median_ratio(g.series(inputs, c[0], c[1], c[2], c[3], h),
                                              g.series(inputs, c[0], c[1], 1, c[3], h))))


def peak_tables(g, inputs, split):
    def cell(h, tb):
        dense, n = median_of(g.series(inputs, "bprop", split, *tb, h, "peak_fraction"))
        executed, _ = median_of(g.series(inputs, "bprop", split, *tb, h, "exec_fraction"))
        share, _ = median_of(g.series(inputs, "bprop", split, *tb, h, "exec_share"))
        if dense is None:
            return "-", 0
        return f"{100 * dense:.0f} / {fmt(None if executed is None else 100 * executed, '.0f')}" \
               f" ({fmt(None if share is None else 100 * share, '.0f')})", n
    table(f"bprop ({split}) % of the FMA peak: by the dense FLOP count / on the FMAs executed "
          f"(executed as % of dense), {inputs} inputs, threads x batch: medians", point_columns(g),
          g.hiddens, cell)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv", nargs="+", help="rounds CSV(s) of thread_sweep.sh or perf_grid.sh")
    p.add_argument("--split", default=None,
                   help="bprop's split for the ratio, scaling and peak tables (default auto, "
                        "else the first in the data)")
    args = p.parse_args()
    rows = read_rows(args.csv)
    g = Grid(rows)
    split = args.split or (g.splits[0] if g.splits else "auto")
    describe(rows)
    for inputs in g.inputs:
        if g.has_torch:
            ratio_tables(g, inputs, split)
        if all(s in g.splits for s in SPLITS):
            auto_tables(g, inputs)
        scaling_tables(g, inputs, split)
        peak_tables(g, inputs, split)


if __name__ == "__main__":
    main()
