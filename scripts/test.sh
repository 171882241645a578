#!/usr/bin/env bash
# test.sh: the test command. Builds with warnings as errors and runs the suite through ctest;
# again with AddressSanitizer + UndefinedBehaviorSanitizer; then on the other kernel code paths
# (the portable build's 4-wide vectors, and 8-wide AVX2 where the CPU has it), since the default
# build tunes for the host (16-wide AVX-512 here).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
# Many test processes share few cores: threads that sleep at barriers instead of spinning.
export OMP_WAIT_POLICY=passive

run_suite() { # name, build dir, cmake options...
  local name=$1 dir=$2
  shift 2
  echo "== $name build ($dir/)"
  cmake -S . -B "$dir" -DBPROP_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure
}

run_suite "warnings-as-errors" build-test -DCMAKE_BUILD_TYPE=Release
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite "AddressSanitizer + UndefinedBehaviorSanitizer" build-asan \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBPROP_SANITIZE=ON -DBPROP_BUILD_BENCH=OFF
run_suite "portable (-DBPROP_NATIVE=OFF)" build-portable -DCMAKE_BUILD_TYPE=Release \
  -DBPROP_NATIVE=OFF -DBPROP_BUILD_BENCH=OFF
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  run_suite "AVX2" build-avx2 -DCMAKE_BUILD_TYPE=Release -DBPROP_NATIVE=OFF \
    -DBPROP_BUILD_BENCH=OFF -DCMAKE_C_FLAGS="-mavx2 -mfma"
fi
