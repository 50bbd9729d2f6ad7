#!/usr/bin/env bash
# The test command: installs what is missing, configures and builds everything (library tests, examples and
# benchmarks, so none can rot), then runs the GoogleTest suite with ctest. OpenMPI too: the data-parallel
# tests run 2 ranks under mpirun.
# Environment: BUILD_DIR (default build), JOBS (default: all cores), CMAKE_ARGS (extra configure flags).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install_deps.sh libopenmpi-dev openmpi-bin
build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
