#!/usr/bin/env bash
# split_states.sh: the data and hidden splits timed back to back in one process per round, each
# round tagged with the cores' state (bench/core_pingpong before and after it); prints every round
# and, per point, the medians of the per-round time ratio hidden / data in the fast and the slow
# state separately. On the shared 2-core VMs the faster split at some points flips with that state
# (docs/performance.md, "The cost model"); an untagged median mixes the two at whatever share the
# run happened to catch.
# usage: scripts/split_states.sh BUILD ROUNDS "TxBxH ..." [-- throughput options]
#   A round counts as slow when either probe reads SLOW_NS or more (default 120 ns one way).
#   The order of the two splits alternates from round to round. Time it under an exclusive lock.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '8,10p' "$0" >&2; exit 2; }
build=$1 rounds=$2 points=$3
shift 3
[ "${1:-}" = -- ] && shift
extra=("$@")
slow_ns=${SLOW_NS:-120}
probe() { "$build/bench/core_pingpong" | awk '{ print $2 }'; }
med() { # median of the arguments, or - for none
  [ $# = 0 ] && { echo -; return; }
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
for p in $points; do
  IFS=x read -r t b h <<<"$p"
  fast=() slow=()
  for r in $(seq 1 "$rounds"); do
    order=data,hidden
    [ $((r % 2)) = 0 ] && order=hidden,data
    p1=$(probe)
    out=$("$build/bench/throughput" --threads "$t" --batch "$b" --hidden "$h" --train-samples 30000 \
      --warmup-samples 4096 --peak-seconds 0 --no-header --quiet --no-exec-count \
      --parallel "$order" "${extra[@]}")
    p2=$(probe)
    d=$(awk -F, '$13 == "data" { print $5 }' <<<"$out")
    hd=$(awk -F, '$13 == "hidden" { print $5 }' <<<"$out")
    ratio=$(awk -v d="$d" -v h="$hd" 'BEGIN { printf "%.3f", d / h }') # time hidden / time data
    state=fast
    if [ "$p1" -ge "$slow_ns" ] || [ "$p2" -ge "$slow_ns" ]; then state=slow; fi
    if [ $state = fast ]; then fast+=("$ratio"); else slow+=("$ratio"); fi
    echo "$p round $r probes $p1/$p2 ns ($state) data $d hidden $hd samples/s, time hidden/data $ratio"
  done
  echo "$p median time hidden/data: fast $(med "${fast[@]}") (${#fast[@]} rounds), slow $(med "${slow[@]}") (${#slow[@]} rounds)"
done
