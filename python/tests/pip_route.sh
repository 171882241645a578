#!/usr/bin/env bash
# pip_route.sh: the pip route from a bare copy of the sources (include/, src/, python/ only: no
# CMake build): a venv with the system packages, pip install --no-build-isolation, then import
# bprop and the same-bits tests against the CLI. Usage: pip_route.sh SOURCE_DIR WORK_DIR PYTHON
# Exits 77 (ctest: skipped) when PYTHON cannot make a venv at all (Debian without python3-venv);
# every other failure fails the test.
set -euo pipefail
src=$1 work=$2 python=$3
# venv needs ensurepip, which Debian ships apart from the interpreter (python3-venv).
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "python_pip: skipped: $python has no venv/ensurepip module (Debian: apt-get install python3-venv)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work/tree"
cp -r "$src/include" "$src/src" "$src/python" "$work/tree/"
rm -rf "$work/tree/python/build" "$work/tree/python"/*.egg-info
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --no-build-isolation --no-index --no-deps "$work/tree/python"
cd "$work"
"$work/venv/bin/python" -c 'import bprop, os; f = bprop._core.__file__; print("bprop from", f); assert f.startswith(os.getcwd())'
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$src/python/tests/test_cli_bits.py" -k "same_bits or reproducible"
