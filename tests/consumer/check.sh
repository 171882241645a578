#!/usr/bin/env bash
# check.sh: install bprop from BUILD_DIR into a scratch prefix, then build and run the XOR
# consumer with find_package(bprop) (shared and static) and with pkg-config.
set -euo pipefail
build_dir=$1 src_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$src_dir" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib64:${LD_LIBRARY_PATH:-}" "$work/build/xor_consumer"
"$work/build/xor_consumer_static"
libdir=$(ls -d "$work/prefix"/lib*/pkgconfig | head -n 1)
export PKG_CONFIG_PATH="$libdir"
cc -std=c11 "$src_dir/xor_consumer.c" $(pkg-config --cflags --libs bprop) -o "$work/xor_pc"
LD_LIBRARY_PATH="$(dirname "$libdir")" "$work/xor_pc"
echo "consumer: find_package (shared, static) and pkg-config builds all learned XOR"
