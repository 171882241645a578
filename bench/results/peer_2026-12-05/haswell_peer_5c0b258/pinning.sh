#!/usr/bin/env bash
# pinning.sh: which of the two pinning variables held PyTorch back: 5 alternating rounds of
# PyTorch alone at H 256 with OpenBLAS's own choice, OPENBLAS_CORETYPE=Haswell, and
# OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=1048576 (the environment the README once measured
# with). Prints one CSV row per round and setting, the setting first. Run from this folder.
set -euo pipefail
repo=$(cd ../../../.. && pwd)
for r in 1 2 3 4 5; do
    for set in own haswell haswell_l2; do
        case $set in
            own) pre=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE) ;;
            haswell) pre=(env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell) ;;
            haswell_l2) pre=(env OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=1048576) ;;
        esac
        "${pre[@]}" /usr/bin/python3 "$repo/bench/torch_throughput.py" --threads 1,2 --batch 128,512 \
            --hidden 256 --train-samples 20000 --quiet --no-header 2>/dev/null | sed "s/^/$set,$r,/"
    done
done
