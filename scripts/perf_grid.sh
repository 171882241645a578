#!/usr/bin/env bash
# perf_grid.sh: the whole performance grid (threads x batch x hidden x split, sparse and dense inputs, bprop against PyTorch) in alternating rounds, then the tables of per-round medians.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    cat <<EOF
usage: scripts/perf_grid.sh [options]
Runs scripts/thread_sweep.sh once per round and kind of inputs, alternating: round r measures
the whole bprop grid (every split of a point back to back) then the PyTorch grid, for sparse
inputs (the images as they are) and dense ones (--standardize), in an order that alternates
from round to round. Every row goes to DIR/rounds.csv (first column: the round);
scripts/perf_tables.py turns it into DIR/tables.md: bprop/PyTorch, auto against the faster of
data and hidden, T threads against 1, and % of peak by the dense count and on the executed
FMAs, each the median of per-round ratios (docs/performance.md, "Method").
  --build-dir DIR       build directory (default $repo/build-release; see thread_sweep.sh)
  --no-build            use the build directory as it is
  --out-dir DIR         where rounds.csv, tables.md and log.txt go (default $repo/out/perf_grid)
  --rounds N            rounds (default 5)
  --threads LIST        default 1,2
  --batch LIST          default 32,128,512
  --hidden LIST         default 32,256,1024,4096
  --parallel LIST       bprop's splits (default data,hidden,auto)
  --inputs LIST         sparse, dense or both (default sparse,dense)
  --warmup-samples N    untimed warm-up epoch length (default 8192)
  --train-samples N     time epochs over the first N training samples only (default: all)
  --python PY           interpreter for PyTorch (default: thread_sweep.sh's choice)
  --no-torch            bprop only (no bprop/PyTorch table)
  --bind                one thread per core (OMP_PLACES=cores OMP_PROC_BIND=close)
  --quick               tiny sizes that only show the scripts work: threads 1,2, batch 32,128,
                        hidden 32,256, 2 rounds over 512 samples (the timings mean nothing)
EOF
}

build="$repo/build-release"
build_flag=()
out_dir="$repo/out/perf_grid"
rounds=5
threads="1,2"
batch="32,128,512"
hidden="32,256,1024,4096"
parallel="data,hidden,auto"
inputs="sparse,dense"
warmup=8192
train_samples=0
extra=()

need() { [[ $# -ge 2 && -n "$2" ]] || { echo "perf_grid: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-dir) need "$@"; build="$2"; shift ;;
        --no-build) build_flag=(--no-build) ;;
        --out-dir) need "$@"; out_dir="$2"; shift ;;
        --rounds) need "$@"; rounds="$2"; shift ;;
        --threads) need "$@"; threads="$2"; shift ;;
        --batch) need "$@"; batch="$2"; shift ;;
        --hidden) need "$@"; hidden="$2"; shift ;;
        --parallel) need "$@"; parallel="$2"; shift ;;
        --inputs) need "$@"; inputs="$2"; shift ;;
        --warmup-samples) need "$@"; warmup="$2"; shift ;;
        --train-samples) need "$@"; train_samples="$2"; shift ;;
        --python) need "$@"; extra+=(--python "$2"); shift ;;
        --no-torch) extra+=(--no-torch) ;;
        --bind) extra+=(--bind) ;;
        --quick) threads="1,2"; batch="32,128"; hidden="32,256"; rounds=2; train_samples=512
                 warmup=128 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "perf_grid: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "perf_grid: --rounds needs a positive integer" >&2; exit 2; }
kinds=()
IFS=, read -ra asked <<<"$inputs"
for k in "${asked[@]}"; do
    case "$k" in
        sparse|dense) kinds+=("$k") ;;
        *) echo "perf_grid: --inputs: '$k' is neither sparse nor dense" >&2; exit 2 ;;
    esac
done
((${#kinds[@]} > 0)) || { echo "perf_grid: --inputs is empty" >&2; exit 2; }

mkdir -p "$out_dir"
rounds_csv="$out_dir/rounds.csv"
log="$out_dir/log.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
: >"$tmp/rows.csv"
: >"$log"
for ((r = 1; r <= rounds; r++)); do
    # Odd rounds start with the first kind, even ones with the last, so that neither kind is
    # always measured first.
    order=("${kinds[@]}")
    if ((r % 2 == 0)); then
        order=()
        for ((i = ${#kinds[@]} - 1; i >= 0; i--)); do order+=("${kinds[i]}"); done
    fi
    for kind in "${order[@]}"; do
        echo "== perf_grid round $r/$rounds, $kind inputs ($((SECONDS - start)) s so far)" | tee -a "$log" >&2
        dense=()
        if [[ "$kind" == dense ]]; then dense=(--standardize); fi
        "$repo/scripts/thread_sweep.sh" --build-dir "$build" "${build_flag[@]}" --no-plot \
            --threads "$threads" --batch "$batch" --hidden "$hidden" --parallel "$parallel" \
            --warmup-samples "$warmup" --train-samples "$train_samples" "${dense[@]}" \
            "${extra[@]}" --out "$tmp/sweep.csv" >>"$log" 2>&1 \
            || { tail -n 20 "$log" >&2; echo "perf_grid: thread_sweep.sh failed (log: $log)" >&2; exit 1; }
        build_flag=(--no-build) # built once, by the first sweep
        head -n 1 "$tmp/sweep.csv" >"$tmp/header.csv"
        tail -n +2 "$tmp/sweep.csv" | sed "s/^/$r,/" >>"$tmp/rows.csv"
    done
done
{ echo "round,$(cat "$tmp/header.csv")"; cat "$tmp/rows.csv"; } >"$rounds_csv"

tables="$out_dir/tables.md"
{
    echo "# bprop performance grid"
    echo
    echo "scripts/perf_grid.sh: $rounds rounds; threads $threads, batch $batch, hidden $hidden," \
         "splits $parallel, inputs ${kinds[*]}; train samples $( ((train_samples)) && echo "$train_samples" || echo all)," \
         "warm-up $warmup; $(date -u +%Y-%m-%dT%H:%MZ), $((SECONDS - start)) s"
    echo
    python3 "$repo/scripts/perf_tables.py" "$rounds_csv"
} >"$tables"
cat "$tables"
echo "rounds: $rounds_csv; tables: $tables; log: $log" >&2
