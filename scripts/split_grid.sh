#!/usr/bin/env bash
# split_grid.sh: one round of the data/hidden split grid (bench/throughput), short epochs sized to the hidden width, CSV rows with the round in front.
# usage: scripts/split_grid.sh BUILD_DIR ROUND OUT_CSV [THREADS [BATCHES [HIDDENS [SPLITS]]]] [-- throughput options]
#   Appends one row per (threads, batch, hidden, split) to OUT_CSV (header written when the file
#   is new). Each point is one process that runs the splits back to back (same memory layout for
#   both); the order of the splits alternates from point to point and from round to round, so
#   that neither split is always measured first. Epochs shrink with the hidden width
#   (30000 samples at 32 units, 16000 at 256, 4096 at 1024, 8192 at 4096: enough steps that the
#   once-an-epoch load and store of the hidden split's private W1 slices stays small); a round of the
#   default grid takes about 15-30 seconds on a 2-core machine. One thread runs the data split alone: every split is the
#   data split there. Run each round on an otherwise idle machine and
#   take per-round medians (scripts/cost_fit.py).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '3,11p' "$0" >&2; exit 2; }
build=$1 round=$2 out=$3
shift 3
threads=1,2 batches=32,128,512 hiddens=32,256,1024,4096 splits=data,hidden
for v in threads batches hiddens splits; do
  if [ $# -gt 0 ] && [ "$1" != -- ]; then printf -v "$v" '%s' "$1"; shift; fi
done
[ "${1:-}" = -- ] && shift
extra=("$@")
samples_for() { # hidden -> timed epoch length
  if [ "$1" -le 32 ]; then echo 30000; elif [ "$1" -le 256 ]; then echo 16000
  elif [ "$1" -le 1024 ]; then echo 4096; else echo 8192; fi
}
reverse() { tr , '\n' <<<"$1" | tac | paste -sd, -; }
[ -s "$out" ] || echo "round,$("$build/bench/throughput" --threads 1 --batch 32 --hidden 32 \
  --train-samples 64 --warmup-samples 0 --peak-seconds 0 --no-exec-count --quiet | head -n 1)" >"$out"
i=0
IFS=, read -ra T <<<"$threads"; IFS=, read -ra B <<<"$batches"; IFS=, read -ra H <<<"$hiddens"
for h in "${H[@]}"; do
  n=$(samples_for "$h")
  for t in "${T[@]}"; do
    for b in "${B[@]}"; do
      i=$((i + 1))
      order=$splits
      (((i + round) % 2)) && order=$(reverse "$splits")
      # One thread always runs the data split (the hidden split needs two threads).
      ((t == 1)) && order=data
      "$build/bench/throughput" --threads "$t" --batch "$b" --hidden "$h" --parallel "$order" \
        --train-samples "$n" --warmup-samples $((n / 4)) --peak-seconds 0 --no-exec-count \
        --no-header --quiet "${extra[@]}" | sed "s/^/$round,/" >>"$out"
    done
  done
done
