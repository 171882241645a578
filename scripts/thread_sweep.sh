#!/usr/bin/env bash
# thread_sweep.sh: bprop and PyTorch training throughput over one thread x batch grid: one CSV, plots, a summary.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    cat <<EOF
usage: scripts/thread_sweep.sh [options]
Builds bprop (Release) if needed, runs build/bench/throughput and, when PyTorch imports,
bench/torch_throughput.py over the same grid, writes one CSV, plots it with gnuplot and prints
bprop/PyTorch ratios. PyTorch runs at its best: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which
can pin OpenBLAS to another CPU's kernels, are unset for its process alone (bprop, tests and CI
keep the environment as it is); every row records the peer's BLAS, the kernel architecture
OpenBLAS chose, the PyTorch version, the CPU, its widest ISA and bprop's kernel set.
  --build-dir DIR       build directory (default $repo/build-release; configured as Release
                        with tests off when it has no CMakeCache.txt)
  --no-build            use the build directory as it is
  --out FILE            CSV output (default $repo/out/thread_sweep.csv); plots go beside it
  --threads LIST        thread counts (default 1,2,4,... up to nproc)
  --batch LIST          batch sizes (default 32,128,512)
  --hidden LIST         hidden sizes (default 256; e.g. 32,256,1024,4096)
  --parallel LIST       bprop's splits, run back to back at each point: auto, data, hidden
                        (default auto; data,hidden,auto gives the rows to compare auto with
                        the faster of the other two, scripts/perf_tables.py)
  --standardize         dense inputs: both standardise the features with the training set's
                        statistics (as bprop train --standardize), so no input is zero
  --repeats N           timed epochs per point, median reported (default 1)
  --rounds N            run the bprop grid and the PyTorch grid N times, alternating, so that
                        each round's pair is measured close in time on a noisy machine; every
                        round goes to OUT's _rounds.csv (first column: the round), OUT gets each
                        point's median-speed round, and the summary adds the median of the
                        per-round bprop/PyTorch ratios (default 1)
  --warmup-samples N    untimed warm-up epoch length in samples (default 8192)
  --train-samples N     time epochs over the first N training samples only (quick checks)
  --data DIR            Fashion-MNIST IDX directory (default /usr/share/datasets/fashion-mnist)
  --python PY           interpreter for the PyTorch script (default \$PYTHON, else the first of
                        /usr/bin/python3, python3 that imports torch)
  --peer-coretype NAME  run PyTorch with OPENBLAS_CORETYPE=NAME (OPENBLAS_L2_SIZE still unset).
                        OpenBLAS's own choice is not always its fastest (on Zen 4, Haswell
                        beats its AVX-512 kernels): run the grid both ways and quote the lower
                        ratio. With BPROP_ISA=avx2 and NAME Haswell (Intel's AVX2 CPUs) or Zen
                        (AMD's), both sides run as on a CPU without AVX-512 (docs/performance.md)
  --no-torch            bprop only
  --bind                export OMP_PLACES=cores OMP_PROC_BIND=close (one thread per core)
  --no-plot             skip gnuplot
EOF
}

build="$repo/build-release"
do_build=1
out="$repo/out/thread_sweep.csv"
threads=""
batch="32,128,512"
hidden="256"
parallel="auto"
standardize=()
repeats=1
rounds=1
warmup=8192
train_samples=0
data="/usr/share/datasets/fashion-mnist"
python="${PYTHON:-}"
peer_coretype=""
torch=1
plot=1

need() { [[ $# -ge 2 && -n "$2" ]] || { echo "thread_sweep: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-dir) need "$@"; build="$2"; shift ;;
        --no-build) do_build=0 ;;
        --out) need "$@"; out="$2"; shift ;;
        --threads) need "$@"; threads="$2"; shift ;;
        --batch) need "$@"; batch="$2"; shift ;;
        --hidden) need "$@"; hidden="$2"; shift ;;
        --parallel) need "$@"; parallel="$2"; shift ;;
        --standardize) standardize=(--standardize) ;;
        --repeats) need "$@"; repeats="$2"; shift ;;
        --rounds) need "$@"; rounds="$2"; shift ;;
        --warmup-samples) need "$@"; warmup="$2"; shift ;;
        --train-samples) need "$@"; train_samples="$2"; shift ;;
        --data) need "$@"; data="$2"; shift ;;
        --python) need "$@"; python="$2"; shift ;;
        --peer-coretype) need "$@"; peer_coretype="$2"; shift ;;
        --no-torch) torch=0 ;;
        --bind) export OMP_PLACES=cores OMP_PROC_BIND=close ;;
        --no-plot) plot=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "thread_sweep: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [[ -z "$threads" ]]; then
    procs=$(nproc)
    threads=1
    for ((t = 2; t < procs; t *= 2)); do threads+=",$t"; done
    ((procs > 1)) && threads+=",$procs"
fi

start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Build: configure once as Release; later runs only rebuild what changed.
if ((do_build)); then
    {
        if [[ ! -f "$build/CMakeCache.txt" ]]; then
            cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBPROP_BUILD_TESTS=OFF
        fi
        cmake --build "$build" --target throughput -j "$(nproc)"
    } >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; echo "thread_sweep: build failed" >&2; exit 1; }
fi
bench="$build/bench/throughput"
[[ -x "$bench" ]] || { echo "thread_sweep: $bench not found (build it, or drop --no-build)" >&2; exit 1; }
type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
[[ "$type" == "Release" ]] || echo "thread_sweep: warning: $build is a '${type:-unknown}' build, not Release" >&2

# The PyTorch interpreter: the one asked for, else the first that imports torch.
if ((torch)); then
    if [[ -n "$python" ]]; then
        "$python" -c 'import torch, numpy' 2>/dev/null \
            || { echo "thread_sweep: $python cannot import torch and numpy; bprop only" >&2; torch=0; }
    else
        for candidate in /usr/bin/python3 python3; do
            if "$candidate" -c 'import torch, numpy' 2>/dev/null; then python=$candidate; break; fi
        done
        [[ -n "$python" ]] || { echo "thread_sweep: no python with torch and numpy; bprop only" >&2; torch=0; }
    fi
fi

# The peer at its best: these variables can pin OpenBLAS to another CPU's kernels (Haswell's
# AVX2 ones on an AVX-512 CPU); they are dropped for PyTorch's process only.
peer=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python")
# Or the peer as it runs on another CPU type (an AVX2 CPU, emulated), asked for by name.
[[ -z "$peer_coretype" ]] || peer=(env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE="$peer_coretype" "$python")
if ((torch)); then
    for v in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
        if [[ -n "${!v:-}" ]]; then echo "thread_sweep: $v=${!v} is set here; not passed to PyTorch's process" >&2; fi
    done
    echo "pytorch: $("${peer[@]}" "$repo/bench/torch_throughput.py" --describe)" >&2
fi

mkdir -p "$(dirname "$out")"
grid=(--threads "$threads" --batch "$batch" --hidden "$hidden" --repeats "$repeats"
      --warmup-samples "$warmup" --train-samples "$train_samples" --data "$data" "${standardize[@]}")

[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "thread_sweep: --rounds needs a positive integer" >&2; exit 2; }
rounds_csv="${out%.csv}_rounds.csv"
: >"$tmp/all.csv"
for ((r = 1; r <= rounds; r++)); do
    echo "== round $r/$rounds: bprop: $bench, threads $threads, batch $batch, hidden $hidden," \
         "parallel $parallel${standardize:+, standardised}" >&2
    # bprop saves each width's initial model (with --standardize, its statistics); PyTorch
    # starts from the very same weights and data, and both train in the file's order, so their
    # accuracies after the epoch are directly comparable.
    "$bench" "${grid[@]}" --parallel "$parallel" --init-dir "$tmp" --out "$tmp/bprop.csv"
    head -n 1 "$tmp/bprop.csv" >"$tmp/header.csv"
    tail -n +2 "$tmp/bprop.csv" | sed "s/^/$r,/" >>"$tmp/all.csv"
    if ((torch)); then
        # PyTorch's rows use the peaks that bprop's run just measured.
        peaks=$(awk -F, 'NR > 1 && $7 != "" && !seen[$2]++ { print $2 ":" $7 }' "$tmp/bprop.csv" | paste -sd, -)
        kernels=$(awk -F, 'NR == 2 { print $20 }' "$tmp/bprop.csv")
        echo "== round $r/$rounds: pytorch: ${peer[*]}" >&2
        "${peer[@]}" "$repo/bench/torch_throughput.py" "${grid[@]}" --peak "$peaks" --no-header \
            --kernel-set "$kernels" --init-dir "$tmp" --out "$tmp/torch.csv"
        sed "s/^/$r,/" "$tmp/torch.csv" >>"$tmp/all.csv"
    fi
done
# Every row gets the peer's columns (bprop's rows have them empty): the BLAS PyTorch ran with.
awk -F, -v OFS=, 'NR == FNR { if ($2 == "pytorch" && !peer) peer = $22 "," $23 "," $24 "," $25 "," $26; next }
    $2 == "bprop" && $22 == "" && peer { NF = 21; $0 = $0 "," peer } { print }' \
    "$tmp/all.csv" "$tmp/all.csv" >"$tmp/filled.csv"
mv "$tmp/filled.csv" "$tmp/all.csv"
# OUT: per implementation and point (bprop's split included), the round with the median
# samples/s (the lower middle one for an even count), in the plain format the plots read.
cp "$tmp/header.csv" "$out"
sort -t, -k2,2 -k3,3n -k4,4n -k5,5n -k14,14 -k6,6g "$tmp/all.csv" | awk -F, -v OFS=, '
    { key = $2 "," $3 "," $4 "," $5 "," $14; row[key, ++n[key]] = $0; if (!(key in seen)) { seen[key] = 1; keys[++nk] = key } }
    END { for (i = 1; i <= nk; i++) { k = keys[i]; m = int((n[k] + 1) / 2); line = row[k, m]
          sub(/^[^,]*,/, "", line); print line } }' >>"$out"
if ((rounds > 1)); then
    { echo "round,$(cat "$tmp/header.csv")"; cat "$tmp/all.csv"; } >"$rounds_csv"
fi

if ((plot)); then
    if command -v gnuplot >/dev/null; then
        gnuplot -e "csv='$out'; prefix='${out%.csv}'" "$repo/scripts/thread_plot.gp" \
            && echo "plots: $(ls "${out%.csv}"_{speedup,samples}_h*.* 2>/dev/null | tr '\n' ' ')" >&2 \
            || echo "thread_sweep: gnuplot failed; no plots" >&2
    else
        echo "thread_sweep: gnuplot not found; no plots" >&2
    fi
fi

# Summary: one line per grid point and split, bprop beside PyTorch. %peak counts the dense
# FLOPs, %exec the FMAs the kernels executed (exec_fma.h).
awk -F, '
    NR == 1 { next }
    $1 == "pytorch" { k = $2 "," $3 "," $4; sps[k] = $5; eff[k] = $10; acc[k] = $12; next }
    { rows[++n] = $0 }
    END {
        printf "%7s %6s %6s %8s | %10s %6s %6s %6s %6s %6s %7s | %10s %6s %7s | %6s\n", "threads",
               "batch", "hidden", "split", "bprop/s", "%peak", "%exec", "exec", "eff", "reduce", "acc",
               "pytorch/s", "eff", "acc", "ratio"
        for (i = 1; i <= n; i++) {
            split(rows[i], f, ","); k = f[2] "," f[3] "," f[4]; t = sps[k]
            printf "%7s %6s %6s %8s | %10.0f %5.1f%% %6s %5.1f%% %6s %5.1f%% %7s | %10s %6s %7s | %6s\n",
                   f[2], f[3], f[4], f[13], f[5], 100 * f[8], f[17] == "" ? "-" : sprintf("%5.1f%%", 100 * f[17]),
                   100 * f[15], f[10], 100 * f[11], f[12],
                   t == "" ? "-" : sprintf("%.0f", t), t == "" ? "-" : eff[k],
                   t == "" ? "-" : acc[k], t == "" ? "-" : sprintf("%.2fx", f[5] / t)
        }
    }' "$out"
if ((rounds > 1 && torch)); then
    echo "median of the $rounds per-round bprop/PyTorch ratios:"
    awk -F, 'NR > 1 { key = $3 " x " $4 " (H " $5 ")"; if ($2 == "pytorch") { pt[key, $1] = $6; next }
                      bkey = key ", " $14; if (!(bkey in seen)) { seen[bkey] = 1; keys[++nk] = bkey; base[bkey] = key }
                      v[bkey, $1] = $6 }
             END { for (i = 1; i <= nk; i++) { k = keys[i]; n = 0
                   for (r = 1; (k, r) in v; r++)
                       if ((base[k], r) in pt) q[++n] = v[k, r] / pt[base[k], r]
                   if (n == 0) continue
                   for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++) if (q[b] < q[a]) { t = q[a]; q[a] = q[b]; q[b] = t }
                   med = n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
                   s = ""; for (a = 1; a <= n; a++) s = s sprintf(" %.2f", q[a])
                   printf "  threads x batch %s: %.2fx  (sorted:%s)\n", k, med, s } }' "$rounds_csv"
    echo "rounds: $rounds_csv"
fi
echo "csv: $out; wall time $((SECONDS - start)) s" >&2
