#!/usr/bin/env bash
# big_data.sh: one epoch on an N-image set written by scripts/make_big.sh (memory-mapped), with
# its peak memory, against the 60,000-image Fashion-MNIST run; a benchmark, never part of CI.
#
# usage: bench/big_data.sh N DIR [BUILD]
#   DIR: where the set is (written by scripts/make_big.sh N DIR unless already there);
#   BUILD: a build folder with bprop [build]. Threads: OMP_NUM_THREADS, else all cores.
# Prints, for each run, the epoch line, /usr/bin/time's peak RSS and wall time, and the peaks of
# anonymous and file-backed resident memory sampled from /proc every 0.5 s.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '4,7p' "$0" >&2; exit 2; }
n=$1 dir=$2 build=${3:-build}
cd "$(dirname "$0")/.."
fashion=/usr/share/datasets/fashion-mnist
img=$dir/train-images-idx3-ubyte lab=$dir/train-labels-idx1-ubyte
if [ "$(stat -c %s "$img" 2>/dev/null || echo 0)" != $((16 + n * 784)) ]; then
  scripts/make_big.sh "$n" "$dir"
fi
test_opts=(--test "$fashion/t10k-images-idx3-ubyte.gz" --test-labels "$fashion/t10k-labels-idx1-ubyte.gz")

# run LABEL ARGS...: bprop train ARGS under /usr/bin/time, sampling its memory.
run() {
  local label=$1 log out anon=0 file=0
  shift
  log=$(mktemp) out=$(mktemp)
  /usr/bin/time -v -o "$log" "$build/bprop" train --epochs 1 "$@" "${test_opts[@]}" >"$out" 2>&1 &
  local tpid=$! pid=""
  while kill -0 "$tpid" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(pgrep -P "$tpid" || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      local a f
      a=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      f=$(awk '/^RssFile/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${a:-0}" -gt "$anon" ] && anon=$a
      [ "${f:-0}" -gt "$file" ] && file=$f
    fi
    sleep 0.5
  done
  wait "$tpid" || { echo "$label: bprop failed:"; cat "$out"; exit 1; }
  echo "== $label: bprop train --epochs 1 $* ${test_opts[*]}"
  grep -E '^ *(epoch|1) ' "$out"
  grep -E '^final' "$out"
  grep -E 'Maximum resident|Elapsed \(wall' "$log" | sed 's/^\t//'
  echo "peak RssAnon (sampled): $anon kB; peak RssFile (sampled): $file kB"
  rm -f "$log" "$out"
}

run "60,000 images (gzip, decompressed into memory)" --data "$fashion"
run "$n images (mapped IDX)" --train "$img" --train-labels "$lab"
