#!/usr/bin/env bash
# ab_speed.sh: alternating bench/throughput runs of two builds at the same points; prints each
# pair's samples/s and, per point, the median of the per-pair ratios NEW/REF.
# usage: scripts/ab_speed.sh REF_BUILD NEW_BUILD [PAIRS] [POINTS] [-- throughput options]
#   PAIRS: alternating pairs per point (default 9); POINTS: space-separated THREADSxBATCHxHIDDEN
#   (default "1x512x256 2x32x256"). The order within a pair alternates (ref first, then new first)
#   so a drift of the machine's speed favours neither side. A ratio of 1.00 is the same speed.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '3,6p' "$0" >&2; exit 2; }
ref=$1 new=$2 pairs=${3:-9} points=${4:-"1x512x256 2x32x256"}
shift $(( $# < 4 ? $# : 4 ))
[ "${1:-}" = -- ] && shift
extra=("$@")
rate() { # build, threads, batch, hidden -> samples/s of one timed epoch
  "$1/bench/throughput" --threads "$2" --batch "$3" --hidden "$4" --train-samples 30000 \
    --warmup-samples 4096 --peak-seconds 0 --no-header --quiet "${extra[@]}" | cut -d, -f5
}
for p in $points; do
  IFS=x read -r t b h <<<"$p"
  ratios=()
  for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) = 1 ]; then r=$(rate "$ref" "$t" "$b" "$h"); n=$(rate "$new" "$t" "$b" "$h")
    else n=$(rate "$new" "$t" "$b" "$h"); r=$(rate "$ref" "$t" "$b" "$h"); fi
    ratio=$(awk -v n="$n" -v r="$r" 'BEGIN { printf "%.3f", n / r }')
    ratios+=("$ratio")
    echo "$p pair $i: ref $r new $n ratio $ratio"
  done
  med=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
  echo "$p median new/ref over $pairs pairs: $med"
done
