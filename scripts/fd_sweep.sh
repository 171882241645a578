#!/usr/bin/env bash
# fd_sweep.sh: run the backprop-versus-finite-differences benchmark, then table and plot it.
#
# usage: scripts/fd_sweep.sh [-b BUILD_DIR] [-o OUT_DIR] [fd_scaling options...]
#   -b DIR   build directory holding bench/fd_scaling (default: build; configured and built
#            when the program is missing)
#   -o DIR   output directory (default: out)
#   anything else goes to fd_scaling (--hidden, --threads, --budget, --coords, --batch, --data).
# Writes DIR/fd_scaling.csv (rows), DIR/fd_fits.csv (fitted exponents), DIR/fd_scaling.log (the
# program's stderr), DIR/fd_table.md (a Markdown table for docs/performance.md) and, through
# scripts/fd_plot.gp, DIR/fd_time.png and DIR/fd_speedup.png (SVG when pngcairo is missing).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
out="$root/out"
while [ $# -gt 0 ]; do
    case $1 in
    -b) build=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) break ;;
    esac
done

bench="$build/bench/fd_scaling"
if [ ! -x "$bench" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
    cmake --build "$build" --target fd_scaling -j "$(nproc)"
fi
mkdir -p "$out"
csv="$out/fd_scaling.csv"
fits="$out/fd_fits.csv"

start=$(date +%s)
"$bench" --out "$csv" --fits "$fits" "$@" 2> >(tee "$out/fd_scaling.log" >&2)
wait
echo "fd_sweep: benchmark took $(( $(date +%s) - start )) s" >&2

# Fitted lines for gnuplot: a_METHOD_THREADS, b_METHOD_THREADS and p_METHOD_THREADS (intercept,
# exponent, smallest P fitted) over all points, and the same with _large for the points at or
# above --fit-min-hidden.
awk -F, 'NR > 1 {
    sfx = ($3 == "large") ? "_large" : ""
    printf "a_%s_%s%s = %s\nb_%s_%s%s = %s\np_%s_%s%s = %s\n", $1, $2, sfx, $5, $1, $2, sfx, $6, $1, $2, sfx, $7
}' "$fits" > "$out/fd_fits.gp"

# Markdown table: one line per hidden width and thread count; FD times marked * when estimated.
awk -F, '
NR == 1 { next }
{
    key = $3 "," $2
    if (!(key in seen)) { seen[key] = 1; order[++n] = key; P[key] = $4 }
    t[key, $1] = $5; est[key, $1] = $8; err[key, $1] = $7; ratio[key, $1] = $9
    rows++; if ($8 == 0) full++
}
END {
    print "| hidden | threads | P | backprop (s) | forward FD (s) | central FD (s) | central / backprop | rel. error (central) |"
    print "|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        k = order[i]; split(k, hk, ",")
        printf "| %s | %s | %s | %.3g | %.3g%s | %.3g%s | %.3g | %.1e |\n", hk[1], hk[2], P[k],
            t[k, "backprop"], t[k, "forward"], est[k, "forward"] ? "*" : "",
            t[k, "central"], est[k, "central"] ? "*" : "", ratio[k, "central"], err[k, "central"]
    }
    printf "\n%d of %d rows measured in full; * = extrapolated from sampled coordinates.\n", full, rows
}' "$csv" > "$out/fd_table.md"
cat "$out/fd_table.md"
grep '^# fit' "$out/fd_scaling.log" || true

if command -v gnuplot > /dev/null; then
    gnuplot -e "csv='$csv'; fits='$out/fd_fits.gp'; prefix='$out/fd'" "$root/scripts/fd_plot.gp"
    ls "$out"/fd_time.* "$out"/fd_speedup.* 2> /dev/null || true
else
    echo "fd_sweep: gnuplot not found, plots skipped" >&2
fi
