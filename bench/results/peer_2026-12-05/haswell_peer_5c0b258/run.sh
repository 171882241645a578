#!/usr/bin/env bash
# run.sh: the current grids against PyTorch with OpenBLAS's own choice (both pinning variables
# unset: Cooperlake here) and with OPENBLAS_CORETYPE=Haswell (OPENBLAS_L2_SIZE unset), which
# on this Zen 4 VM is the faster of the two; the two peers' sweeps alternate, and each sweep
# is bprop and PyTorch in alternating rounds. Run from this folder, with main's Release build in
# ../../../../build, under the exclusive CPU lock.
set -euo pipefail
repo=$(cd ../../../.. && pwd)
sweep() { # STEM [thread_sweep options...]
    local stem=$1; shift
    "$repo/build/bench/core_pingpong" >"$stem.state" 2>&1
    "$repo/scripts/thread_sweep.sh" --no-build --build-dir "$repo/build" --rounds 5 --no-plot \
        --out "$PWD/$stem.csv" "$@" >"$stem.log" 2>&1
    "$repo/build/bench/core_pingpong" >>"$stem.state" 2>&1
}
h256=(--threads 1,2 --batch 32,128,512 --hidden 256 --train-samples 20000)
wide=(--threads 1,2 --batch 128 --hidden 1024,4096 --train-samples 8192 --warmup-samples 2048)
for run in a b; do
    first=() second=(--peer-coretype Haswell) s1="" s2=_hsw
    if [ $run = b ]; then first=(--peer-coretype Haswell) second=() s1=_hsw s2=""; fi
    sweep "h256_sparse${s1}_$run" "${h256[@]}" ${first[@]+"${first[@]}"}
    sweep "h256_sparse${s2}_$run" "${h256[@]}" ${second[@]+"${second[@]}"}
    BPROP_ISA=avx2 sweep "h256_sparse_avx2${s1}_$run" "${h256[@]}" ${first[@]+"${first[@]}"}
    BPROP_ISA=avx2 sweep "h256_sparse_avx2${s2}_$run" "${h256[@]}" ${second[@]+"${second[@]}"}
    sweep "h256_dense${s1}_$run" "${h256[@]}" --standardize ${first[@]+"${first[@]}"}
    sweep "h256_dense${s2}_$run" "${h256[@]}" --standardize ${second[@]+"${second[@]}"}
    sweep "wide${s1}_$run" "${wide[@]}" ${first[@]+"${first[@]}"}
    sweep "wide${s2}_$run" "${wide[@]}" ${second[@]+"${second[@]}"}
done
