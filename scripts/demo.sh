#!/usr/bin/env bash
# Times ResNet18 on random data: installs what is missing, builds the examples in Release with -march=native,
# and runs the demo, which times forward, backward and an SGD step (scripts/train.sh is the quick start).
# Arguments are passed to the demo (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install_deps.sh
build_dir=${BUILD_DIR:-build-release}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DRESNET_NATIVE=ON -DRESNET_BUILD_TESTS=OFF \
  -DRESNET_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target demo
"$build_dir/examples/demo" "$@"
