#!/usr/bin/env bash
# train.sh: set up (packages, Release build in build/) and train on Fashion-MNIST; arguments go
# to `bprop train` (defaults: 784-256-10, 10 epochs, Nesterov momentum, cosine schedule).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/bprop train "$@"
