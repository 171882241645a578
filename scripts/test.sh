#!/usr/bin/env bash
# test.sh: the test command. Builds with warnings as errors and runs the suite through ctest;
# then builds once with AddressSanitizer + UndefinedBehaviorSanitizer and runs that suite once per
# kernel set this CPU can execute (BPROP_ISA=generic, avx2, avx512), since the library, CLI and
# tests all run the set that BPROP_ISA and the CPU choose. (test_kernels also runs every available set
# directly in each run.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
/usr/bin/python3 scripts/check_links.py # every relative link and #anchor in the Markdown files
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

# No dependency cycles between source files (from the objects just built), and no function in
# src/ longer than 60 lines.
echo "== source structure"
/usr/bin/python3 scripts/check_structure.py --build build-test --src src --max-lines 60 --strict

# The kernel sets this CPU runs, as src/kernels/choose.c sees them (cpu flags: avx2+fma, avx512f).
isas=(generic)
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  isas+=(avx2)
  if grep -qw avx512f /proc/cpuinfo; then
    isas+=(avx512)
  fi
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/)"
cmake -S . -B build-asan -DBPROP_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBPROP_SANITIZE=ON \
  -DBPROP_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
for isa in "${isas[@]}"; do
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer suite, BPROP_ISA=$isa"
  BPROP_ISA=$isa ctest --test-dir build-asan --output-on-failure
done
