#!/usr/bin/env bash
# deps.sh: install the Debian packages bprop needs to build, test and train (only the missing ones).
set -euo pipefail
packages=(build-essential cmake pkg-config zlib1g-dev libcriterion-dev dataset-fashion-mnist
          openmpi-bin libopenmpi-dev)
# NumPy interop test (numpy.load of exported models); scripts/fuzz.sh: clang with libFuzzer and
# the sanitizer runtimes (only recommended by clang, so named here) and clang's OpenMP.
packages+=(python3-numpy clang libclang-rt-14-dev libomp-dev)
# The Python package (python/): headers to build it, scikit-learn and pandas for its tests
# (check_estimator, DataFrames), pytest to run them, venv for the pip route.
packages+=(python3-dev python3-sklearn python3-pandas python3-pytest python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps.sh: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: run as root or install sudo" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
