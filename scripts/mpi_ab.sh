#!/usr/bin/env bash
# mpi_ab.sh: ranks against threads on the same cores: alternating pairs of `bprop train --threads
# R` and `mpirun -np R bprop-mpi train --threads 1` with the same other options; prints each
# pair's training samples/s (the median over the epochs after the first, from --metrics) and the
# median over the pairs of MPI/plain.
# usage: scripts/mpi_ab.sh BUILD PAIRS [-np R] [bprop train options...]
#   e.g. scripts/mpi_ab.sh build 7 --batch 128 --hidden 1024 --epochs 4 --reproducible
set -euo pipefail
[ $# -ge 2 ] || { sed -n '6,7p' "$0" >&2; exit 2; }
build=$1 pairs=$2
shift 2
ranks=2
if [ "${1:-}" = -np ]; then ranks=$2; shift 2; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Open MPI refuses to start as root without these two (containers, CI).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rate() { # command... -> samples/s: the median over the run's epochs after the first
  "$@" --quiet --test-limit 100 --metrics "$work/m.jsonl" >/dev/null
  sed -n '2,$s/.*"samples_per_s":\([0-9.]*\).*/\1/p' "$work/m.jsonl" | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
plain=("$build/bprop" train --threads "$ranks" "$@")
mpi=(mpirun --oversubscribe -np "$ranks" "$build/bprop-mpi" train --threads 1 "$@")
ratios=()
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then p=$(rate "${plain[@]}"); m=$(rate "${mpi[@]}")
  else m=$(rate "${mpi[@]}"); p=$(rate "${plain[@]}"); fi
  ratio=$(awk -v m="$m" -v p="$p" 'BEGIN { printf "%.3f", m / p }')
  ratios+=("$ratio")
  echo "pair $i: plain ${ranks}t $p mpi ${ranks}x1 $m ratio $ratio"
done
printf '%s\n' "${ratios[@]}" | sort -g |
  awk -v o="$*" -v r="$ranks" '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
                   print "median mpi " r "x1 / plain " r "t over " NR " pairs (" o "): " m }'
