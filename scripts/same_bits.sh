#!/usr/bin/env bash
# same_bits.sh: train the same small runs with two builds and compare the parameters bit for bit.
#
# usage: scripts/same_bits.sh REF_BUILD NEW_BUILD [--quick]
#   REF_BUILD, NEW_BUILD: CMake build folders, each with bprop (and bprop-mpi for the MPI rows).
#   --quick: only the default kernel set (otherwise every set this CPU runs: generic, avx2, avx512).
# Each configuration trains 1 epoch on the first 3,000 Fashion-MNIST images with both builds and
# compares the saved models from the first parameter byte (456) to before the closing CRC, so that
# the header's timestamps and build facts do not count. Prints one line per run and
#   "same-bits: N passed, M failed"; exit 1 when any configuration differs or fails to run.
# A refactor that must not move a bit (or a new data path that must give the old values) runs this
# against a build of the commit before it, e.g.
#   git worktree add /tmp/ref <commit> && cmake -S /tmp/ref -B /tmp/ref/build -DCMAKE_BUILD_TYPE=Release
#   cmake --build /tmp/ref/build -j2 && scripts/same_bits.sh /tmp/ref/build build-release
set -uo pipefail
[ $# -ge 2 ] || { sed -n '3,6p' "$0" >&2; exit 2; }
ref=$(cd "$1" && pwd) new=$(cd "$2" && pwd)
quick=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
base=(--train-limit 3000 --test-limit 500 --epochs 1 --quiet)

# One configuration a line: a label, then the train options (the runner decides the command).
# Where --parallel auto now chooses another split than c2ce5d8's auto did (its rule: hidden when a
# batch has fewer 64-sample blocks than threads; today's: the cost model, src/cost.c), a row names
# the split c2ce5d8's auto took for every step, so that both builds run the same split. On 2
# threads at 256 and 1,024 hidden units c2ce5d8 took the data split for batches of two blocks and
# the hidden split for the last, shorter batch (3,000 = 23 x 128 + 56), which no single
# --parallel reproduces: those rows train at batch 125 (24 batches of two blocks: data) with
# --parallel data (default-2t, decay-clip, nobias-plain, standardize, wide-h1024). default-3t
# (3 threads, batch 128: fewer blocks than threads) names hidden. mpi2x1-float names data: on
# 2 ranks with float sums auto now splits the hidden units over the ranks (docs/parallel.md,
# "The hidden split over ranks"), which trains plain bprop's one-thread bits (tests/test_mpi.c
# checks them) where c2ce5d8 split the samples.
configs=(
  "default-1t|--threads 1"
  "default-2t|--threads 2 --batch 125 --parallel data"
  "default-3t|--threads 3 --parallel hidden"
  "data-2t|--threads 2 --parallel data"
  "hidden-2t|--threads 2 --parallel hidden"
  "repro-1t|--reproducible --threads 1"
  "repro-2t-data|--reproducible --threads 2 --parallel data"
  "repro-3t-hidden|--reproducible --threads 3 --parallel hidden"
  "batch20-h8|--batch 20 --hidden 8 --threads 2"
  "batch32-h32|--batch 32 --hidden 32 --threads 2"
  "batch512-h300|--batch 512 --hidden 300 --threads 2"
  "decay-clip|--weight-decay 5e-4 --clip 1 --threads 2 --batch 125 --parallel data"
  "nobias-plain|--no-bias --no-nesterov --threads 2 --batch 125 --parallel data"
  "momentum0-step|--momentum 0 --schedule step --step-epochs 1 --threads 1"
  "standardize|--standardize --threads 2 --batch 125 --parallel data"
  "standardize-repro|--standardize --reproducible --threads 3 --hidden 64"
  "wide-h1024|--hidden 1024 --threads 2 --batch 125 --parallel data"
  "hidden-decay-clip|--threads 2 --parallel hidden --weight-decay 5e-4 --clip 1 --reproducible"
)
mpi_configs=(
  "mpi2x1-float|--threads 1 --parallel data"
  "mpi2x1-repro|--threads 1 --reproducible"
  "mpi2x1-standardize|--threads 1 --standardize --hidden 64"
)

isas=(default)
if [ "$quick" != --quick ]; then
  isas=(generic)
  grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && isas+=(avx2)
  grep -qw avx512f /proc/cpuinfo && isas+=(avx512)
fi

params() { # model file -> its parameter bytes (from byte 456, without the 4-byte CRC at the end)
  tail -c +457 "$1" | head -c -4
}

pass=0 fail=0
run_one() { # label, isa, mpi(0/1), options...
  local label=$1 isa=$2 mpi=$3
  shift 3
  local out=() ok=1
  for side in ref new; do
    local dir=${!side} model="$work/$side.bpm"
    rm -f "$model"
    if [ "$mpi" = 1 ]; then
      mpirun --oversubscribe -np 2 -x OMP_WAIT_POLICY ${BPROP_ISA:+-x BPROP_ISA} \
        "$dir/bprop-mpi" train "${base[@]}" "$@" --save "$model" >"$work/$side.log" 2>&1 || ok=0
    else
      "$dir/bprop" train "${base[@]}" "$@" --save "$model" >"$work/$side.log" 2>&1 || ok=0
    fi
    [ -s "$model" ] || ok=0
  done
  if [ $ok = 1 ] && cmp -s <(params "$work/ref.bpm") <(params "$work/new.bpm"); then
    pass=$((pass + 1)); echo "same      $isa $label"
  else
    fail=$((fail + 1)); echo "DIFFERENT $isa $label ($*)"
    [ $ok = 1 ] || { echo "  a run failed:"; tail -n 3 "$work"/ref.log "$work"/new.log | sed 's/^/  /'; }
  fi
}

for isa in "${isas[@]}"; do
  [ "$isa" = default ] || export BPROP_ISA=$isa
  for c in "${configs[@]}"; do
    read -r -a opts <<<"${c#*|}"
    run_one "${c%%|*}" "$isa" 0 "${opts[@]}"
  done
  if [ -x "$ref/bprop-mpi" ] && [ -x "$new/bprop-mpi" ] && command -v mpirun >/dev/null; then
    for c in "${mpi_configs[@]}"; do
      read -r -a opts <<<"${c#*|}"
      run_one "${c%%|*}" "$isa" 1 "${opts[@]}"
    done
  fi
  unset BPROP_ISA
done
echo "same-bits: $pass passed, $fail failed"
[ $fail -eq 0 ]
