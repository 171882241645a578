#!/bin/bash
# coretypes.sh: PyTorch alone at H 256 (threads 1, 2 x batch 32, 128, 512) with OpenBLAS's own
# choice (both pinning variables unset) and with OPENBLAS_CORETYPE=Haswell or Zen (the AVX2 core
# types of Intel's and AMD's CPUs; OPENBLAS_L2_SIZE unset), 5 alternating rounds. Output: one
# line per round and setting, "ROUND SETTING CSV-ROW" (coretypes.txt). Run from this folder.
cd ../../../..
for r in 1 2 3 4 5; do
 for ct in default Haswell Zen; do
  if [ $ct = default ]; then pre=(env -u OPENBLAS_L2_SIZE -u OPENBLAS_CORETYPE); else pre=(env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=$ct); fi
  "${pre[@]}" /usr/bin/python3 bench/torch_throughput.py --threads 1,2 --batch 32,128,512 --hidden 256 --repeats 1 --train-samples 20000 --quiet --no-header 2>/dev/null | awk -F, -v ct=$ct -v r=$r '{print r, ct, $0}'
 done
done
