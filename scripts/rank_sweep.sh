#!/usr/bin/env bash
# rank_sweep.sh: bprop-mpi training throughput over ranks x threads layouts at one global batch,
# against plain bprop on as many threads, in reproducible and float-sum modes: one CSV, a summary.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    cat <<EOF
usage: scripts/rank_sweep.sh [options]
Builds bprop and bprop-mpi (Release) if needed. For every layout R x T it times
'mpirun -np R bprop-mpi train --threads T' and a plain 'bprop train --threads R*T' (the
baseline), each with --reproducible and --no-reproducible, and writes one CSV row per run:
samples/s (training samples over the epoch's seconds, best of the epochs after the first),
efficiency against the baseline, the cost of the reproducible mode, and the bytes each step
exchanges (computed from the parameter count P; see docs/clusters.md, "Communication per step").
  --build-dir DIR    build directory (default $repo/build-release; configured as Release
                     with tests off when it has no CMakeCache.txt)
  --no-build         use the build directory as it is
  --out FILE         CSV output (default $repo/bench/results/rank_sweep.csv)
  --layouts LIST     RxT,... (default: every R x T with R*T <= cores, then the oversubscribed
                     2x(cores), 3x1 and 4x1 on a 2-core machine: generally R >= 2, R*T <= 2*cores)
  --batch N          global batch (default 128)
  --hidden N         hidden units (default 256)
  --train-limit N    training samples (default 12000)
  --epochs N         epochs per run, the first untimed (default 4)
  --data DIR         Fashion-MNIST IDX directory (default /usr/share/datasets/fashion-mnist)
Oversubscribed layouts (R*T > cores) are marked in the CSV; their threads wait passively.
Ranks are not bound to cores (--bind-to none), so a rank's T threads can use T cores.
EOF
}

build="$repo/build-release"
do_build=1
out="$repo/bench/results/rank_sweep.csv"
layouts=""
batch=128
hidden=256
limit=12000
epochs=4
data="/usr/share/datasets/fashion-mnist"

need() { [[ $# -ge 2 && -n "$2" ]] || { echo "rank_sweep: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-dir) need "$@"; build="$2"; shift ;;
        --no-build) do_build=0 ;;
        --out) need "$@"; out="$2"; shift ;;
        --layouts) need "$@"; layouts="$2"; shift ;;
        --batch) need "$@"; batch="$2"; shift ;;
        --hidden) need "$@"; hidden="$2"; shift ;;
        --train-limit) need "$@"; limit="$2"; shift ;;
        --epochs) need "$@"; epochs="$2"; shift ;;
        --data) need "$@"; data="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "rank_sweep: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
((epochs >= 2)) || { echo "rank_sweep: --epochs must be at least 2 (the first is untimed)" >&2; exit 2; }

cores=$(nproc)
if [[ -z "$layouts" ]]; then
    for ((r = 1; r <= cores; r++)); do
        for ((t = 1; r * t <= cores; t++)); do layouts+="${layouts:+,}${r}x${t}"; done
    done
    for ((r = 2; r <= 2 * cores; r++)); do
        for ((t = 1; r * t <= 2 * cores; t++)); do
            ((r * t > cores)) && layouts+=",${r}x${t}"
        done
    done
fi

start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ((do_build)); then
    {
        if [[ ! -f "$build/CMakeCache.txt" ]]; then
            cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBPROP_BUILD_TESTS=OFF \
                -DBPROP_BUILD_BENCH=OFF -DBPROP_MPI=ON
        fi
        cmake --build "$build" --target bprop_cli bprop_mpi_cli -j "$cores"
    } >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; echo "rank_sweep: build failed" >&2; exit 1; }
fi
bprop="$build/bprop" bprop_mpi="$build/bprop-mpi"
for p in "$bprop" "$bprop_mpi"; do
    [[ -x "$p" ]] || { echo "rank_sweep: $p not found (build with MPI, or drop --no-build)" >&2; exit 1; }
done
mpirun=$(command -v mpirun || command -v mpiexec || true)
[[ -n "$mpirun" ]] || { echo "rank_sweep: no mpirun in PATH (apt-get install openmpi-bin)" >&2; exit 1; }
# Open MPI refuses to start as root without these two (containers, CI).
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

common=(train --data "$data" --hidden "$hidden" --batch "$batch" --epochs "$epochs"
        --train-limit "$limit" --test-limit 100 --quiet)

# Best over epochs 2.. of train samples / epoch seconds, from a --metrics file: on a machine
# shared with other work the fastest epoch is the least disturbed one.
rate() {
    awk -v n="$limit" 'NR > 1 && match($0, /"seconds":[0-9.eE+-]+/) {
                           printf "%.6f\n", n / substr($0, RSTART + 10, RLENGTH - 10) }' "$1" |
        sort -g | tail -n 1 | awk '{ printf "%.1f", $1 } END { if (NR == 0) exit 1 }'
}

# run KIND RANKS THREADS MODE: prints samples/s.
run() {
    local kind=$1 r=$2 t=$3 mode=$4 log="$tmp/m.jsonl" env=()
    rm -f "$log"
    ((r * t > cores)) && env=(OMP_WAIT_POLICY=passive OMPI_MCA_mpi_yield_when_idle=1)
    if [[ $kind == plain ]]; then
        env "${env[@]}" "$bprop" "${common[@]}" --threads "$t" "--$mode" --metrics "$log" >/dev/null
    else
        env "${env[@]}" "$mpirun" --oversubscribe --bind-to none -np "$r" "$bprop_mpi" "${common[@]}" \
            --threads "$t" "--$mode" --metrics "$log" >/dev/null
    fi
    rate "$log"
}

# P for this width: 784 inputs, 10 classes, biases.
params=$((784 * hidden + hidden + hidden * 10 + 10))
mkdir -p "$(dirname "$out")"
echo "layout,ranks,threads,cores_used,oversubscribed,batch,hidden,params,mode,samples_per_s,baseline_samples_per_s,efficiency,payload_bytes_per_step,ring_allreduce_bytes_per_rank,rs_ag_bytes_per_rank,load1" >"$tmp/rows.csv"
declare -A base
IFS=, read -ra list <<<"$layouts"
for layout in "${list[@]}"; do
    [[ $layout =~ ^([0-9]+)x([0-9]+)$ ]] || { echo "rank_sweep: bad layout '$layout' (want RxT)" >&2; exit 2; }
    r=${BASH_REMATCH[1]} t=${BASH_REMATCH[2]} c=$((r * t))
    over=no
    ((c > cores)) && over=yes
    for mode in reproducible no-reproducible; do
        key="$c/$mode"
        if [[ -z "${base[$key]:-}" ]]; then
            echo "== plain bprop, $c threads, $mode" >&2
            base[$key]=$(run plain 1 "$c" "$mode")
        fi
        echo "== $r ranks x $t threads, $mode${over/yes/ (oversubscribed)}" >&2
        load=$(cut -d' ' -f1 /proc/loadavg) # other work on the machine, for reading the figures
        sps=$(run mpi "$r" "$t" "$mode")
        # Bytes: the step's int64 sums of P values (8P), and what each rank sends for them in a
        # ring allreduce, 2(R-1)/R * 8P, against a reduce-scatter of the sums plus an allgather
        # of the updated float parameters, (R-1)/R * (8P + 4P).
        awk -v l="$layout" -v r="$r" -v t="$t" -v c="$c" -v o="$over" -v b="$batch" -v h="$hidden" \
            -v p="$params" -v m="$mode" -v s="$sps" -v bs="${base[$key]}" -v la="$load" 'BEGIN {
            printf "%s,%d,%d,%d,%s,%d,%d,%d,%s,%.1f,%.1f,%.3f,%d,%.0f,%.0f,%s\n", l, r, t, c, o, b, h, p,
                   (m == "reproducible" ? "reproducible" : "float"), s, bs, s / bs, 8 * p,
                   2 * (r - 1) / r * 8 * p, (r - 1) / r * 12 * p, la }' >>"$tmp/rows.csv"
    done
done
cp "$tmp/rows.csv" "$out"

# Summary: one line per layout, both modes side by side.
awk -F, 'NR == 1 { next }
    { k = $1; if (!(k in seen)) { seen[k] = ++n; keys[n] = k; over[k] = $5; ring[k] = $14; rsag[k] = $15 }
      sps[k, $9] = $10; eff[k, $9] = $12 }
    END {
        printf "%-7s %-5s | %12s %6s | %12s %6s | %10s | %14s %14s\n", "layout", "over", "repro/s", "eff",
               "float/s", "eff", "repro cost", "ring B/rank", "rs+ag B/rank"
        for (i = 1; i <= n; i++) {
            k = keys[i]
            printf "%-7s %-5s | %12.0f %6.3f | %12.0f %6.3f | %9.1f%% | %14d %14d\n", k, over[k],
                   sps[k, "reproducible"], eff[k, "reproducible"], sps[k, "float"], eff[k, "float"],
                   100 * (sps[k, "float"] / sps[k, "reproducible"] - 1), ring[k], rsag[k]
        }
    }' "$out"
echo "csv: $out; P = $params parameters, $((8 * params)) bytes of int64 sums per step; wall time $((SECONDS - start)) s" >&2
