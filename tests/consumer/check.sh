#!/usr/bin/env bash
# check.sh: install bprop from BUILD_DIR into a scratch prefix, then build and run the XOR
# consumer with find_package(bprop) (shared and static) and with pkg-config; when the MPI part
# was built (MPIEXEC given), also the MPI consumer (component mpi, pkg-config bprop-mpi) on 2 ranks.
set -euo pipefail
build_dir=$1 mpiexec=${2:-} src_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$src_dir" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
libdir=$(ls -d "$work/prefix"/lib*/pkgconfig | head -n 1)
export LD_LIBRARY_PATH="$(dirname "$libdir"):${LD_LIBRARY_PATH:-}"
"$work/build/xor_consumer"
"$work/build/xor_consumer_static"
export PKG_CONFIG_PATH="$libdir"
cc -std=c11 "$src_dir/xor_consumer.c" $(pkg-config --cflags --libs bprop) -o "$work/xor_pc"
"$work/xor_pc"
echo "consumer: find_package (shared, static) and pkg-config builds all learned XOR"
[ -n "$mpiexec" ] || exit 0
[ -f "$work/build/mpi_consumer" ] || { echo "check.sh: MPI part not installed or not found" >&2; exit 1; }
cc -std=c11 "$src_dir/mpi_consumer.c" $(pkg-config --cflags --libs bprop-mpi) -o "$work/mpi_pc"
for prog in mpi_consumer mpi_consumer_static; do
  "$mpiexec" --oversubscribe -np 2 "$work/build/$prog"
done
"$mpiexec" --oversubscribe -np 2 "$work/mpi_pc"
echo "consumer: MPI builds (component mpi shared, static; pkg-config bprop-mpi) learned XOR on 2 ranks"
