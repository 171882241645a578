#!/bin/bash
# run.sh: the 2-thread split grid on standardised (dense) inputs, 6 rounds, each tagged by a
# ping-pong probe before and after. Run from the repository root with main's Release build:
#   bench/results/cost_dense_2026-12-05/run.sh OUT.csv > PROBES.txt            (avx512)
#   BPROP_ISA=avx2 bench/results/cost_dense_2026-12-05/run.sh OUT.csv > PROBES.txt
# then: scripts/cost_fit.py --build build [--kernels avx2] OUT.csv
set -euo pipefail
out=$1
for r in 1 2 3 4 5 6; do
  echo "round $r $(build/bench/core_pingpong | tail -1)"
  scripts/split_grid.sh build $r "$out" 2 32,128,512 32,256,1024,4096 data,hidden -- --standardize
  echo "round $r after $(build/bench/core_pingpong | tail -1)"
done
