#!/usr/bin/env bash
# fuzz.sh: build the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and UBSan in
# build-fuzz/ (or $BPROP_FUZZ_BUILD), and run each for a while from a copy of its seed corpus.
# Usage: scripts/fuzz.sh [--seconds N] [TARGET...]   (TARGET: idx, csv, model, npy, ...; default all)
# Exit status 1 when any target finds a crash, leak, timeout or out-of-memory input; the
# reproducer's path is printed (replay it with build-fuzz/fuzz/fuzz_TARGET FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BPROP_FUZZ_BUILD:-build-fuzz} # build directory (git-ignored)

seconds=60
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("${1#fuzz_}"); shift ;;
  esac
done
case $seconds in ''|*[!0-9]*|0) echo "fuzz.sh: --seconds needs a positive integer" >&2; exit 2 ;; esac
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do
    n=${f##*/fuzz_}
    targets+=("${n%.c}")
  done
fi
for t in "${targets[@]}"; do
  [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target tests/fuzz/fuzz_$t.c" >&2; exit 2; }
done
scripts/deps.sh
command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 1; }

echo "== fuzz build ($build/)"
CC=clang cmake -S . -B "$build" -DBPROP_FUZZ=ON -DBPROP_WERROR=OFF -DBPROP_BUILD_TESTS=OFF \
  -DBPROP_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

# (Warnings stay warnings here: clang flags things GCC, which -Werror builds use, does not.)
# The readers are single-threaded; one OpenMP thread keeps the runs independent of the machine.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# Every input goes through scratch files: on tmpfs when there is one, so fsync costs nothing.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for t in "${targets[@]}"; do
  run=$build/runs/$t
  rm -rf "$run/artifacts" # reproducers of an earlier run are not this run's findings
  mkdir -p "$run/corpus" "$run/artifacts"
  if [ -d "tests/fuzz/corpus/$t" ]; then cp -r "tests/fuzz/corpus/$t/." "$run/corpus/"; fi
  extra=()
  [ -d "tests/fuzz/regressions/$t" ] && extra+=("tests/fuzz/regressions/$t")
  echo "== fuzz_$t: ${seconds}s (log: $run/log)"
  status=0
  "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=16384 -print_final_stats=1 -artifact_prefix="$run/artifacts/" \
    "$run/corpus" "${extra[@]}" >"$run/log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+DONE' "$run/log" | tail -1 || true
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$run/log" || true
  if [ $status -ne 0 ]; then
    failed=1
    echo "fuzz.sh: fuzz_$t FAILED (exit $status); the end of its log:" >&2
    tail -n 40 "$run/log" >&2
    for a in "$run"/artifacts/*; do
      [ -e "$a" ] && echo "fuzz.sh: reproducer: $a (replay: $build/fuzz/fuzz_$t $a)" >&2
    done
  fi
done
exit $failed
