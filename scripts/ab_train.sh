#!/usr/bin/env bash
# ab_train.sh: alternating `bprop train` runs of two builds on the same options; prints each
# pair's training samples/s (the epochs' own figure from --metrics: no loading, no evaluation)
# and the median of the per-pair ratios NEW/REF. Unlike bench/throughput it goes through the
# whole CLI route, data loading as the user's run does it included (bytes kept as bytes, say).
# usage: scripts/ab_train.sh REF_BUILD NEW_BUILD PAIRS [bprop train options...]
#   e.g. scripts/ab_train.sh ref/build build 9 --threads 1 --batch 512 --standardize --epochs 2
set -euo pipefail
[ $# -ge 3 ] || { sed -n '6,7p' "$0" >&2; exit 2; }
ref=$1 new=$2 pairs=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rate() { # build, train options -> samples/s: the median over the run's epochs
  local build=$1
  shift
  "$build/bprop" train --quiet --test-limit 100 --metrics "$work/m.jsonl" "$@" >/dev/null
  sed -n 's/.*"samples_per_s":\([0-9.]*\).*/\1/p' "$work/m.jsonl" | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratios=()
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then r=$(rate "$ref" "$@"); n=$(rate "$new" "$@")
  else n=$(rate "$new" "$@"); r=$(rate "$ref" "$@"); fi
  ratio=$(awk -v n="$n" -v r="$r" 'BEGIN { printf "%.3f", n / r }')
  ratios+=("$ratio")
  echo "pair $i: ref $r new $n ratio $ratio"
done
printf '%s\n' "${ratios[@]}" | sort -g |
  awk -v o="$*" '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
                   print "median new/ref over " NR " pairs (" o "): " m }'
