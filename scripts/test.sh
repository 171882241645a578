#!/usr/bin/env bash
# test.sh: the test command: build with warnings as errors and run the suite through ctest, then
# build again with AddressSanitizer + UndefinedBehaviorSanitizer and run the suite once more.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
# Many test processes share few cores: threads that sleep at barriers instead of spinning.
export OMP_WAIT_POLICY=passive

echo "== warnings-as-errors build (build-test/)"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DBPROP_WERROR=ON >/dev/null
cmake --build build-test -j"$jobs"
ctest --test-dir build-test --output-on-failure

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBPROP_WERROR=ON -DBPROP_SANITIZE=ON \
  -DBPROP_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure
