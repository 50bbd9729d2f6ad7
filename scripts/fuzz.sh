#!/usr/bin/env bash
# Fuzzes every file reader with libFuzzer under AddressSanitizer and UBSan (the targets in fuzz/): builds them
# with clang in build-fuzz, writes the seed corpus, runs each target for SECONDS_PER_TARGET (default 60) on a
# scratch copy of its seeds, and prints per target the executions, the run time, the corpus it grew to and its
# findings. Exits non-zero on any finding; the input behind it stays in build-fuzz/findings/<target>/ (replay it
# with build-fuzz/fuzz/fuzz_<target> FILE) and the whole log in build-fuzz/fuzz-logs/<target>.log.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# Environment: BUILD_DIR (default build-fuzz), JOBS (build jobs, default: all cores), TARGETS (default: all),
#              FUZZ_ARGS (more libFuzzer flags, e.g. -max_len=65536).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
build_dir=${BUILD_DIR:-build-fuzz}
jobs=${JOBS:-$(nproc)}
read -r -a targets <<<"${TARGETS:-cifar10 idx mnist safetensors checkpoint}"

scratch_parent=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch_parent=/dev/shm; fi  # inputs become files: keep them in memory
work=$(mktemp -d "$scratch_parent/resnet_fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# clang, and libFuzzer's runtime: on Debian 12 that is its own package (libclang-rt-14-dev), which clang only
# recommends.
scripts/install_deps.sh clang
echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' >"$work/probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$work/probe.cpp" -o "$work/probe" 2>/dev/null; then
  scripts/install_deps.sh "libclang-rt-$(clang++ -dumpversion | cut -d. -f1)-dev"
fi

# Without OpenMP: the readers are serial, and one thread keeps the sanitizers' reports deterministic.
CC=clang CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESNET_BUILD_FUZZERS=ON \
  -DRESNET_BUILD_TESTS=OFF -DRESNET_BUILD_EXAMPLES=OFF -DRESNET_BUILD_BENCHMARKS=OFF -DRESNET_USE_OPENMP=OFF
cmake --build "$build_dir" -j "$jobs"
"$build_dir/fuzz/fuzz_make_seeds" "$work/seeds"

mkdir -p "$build_dir/fuzz-logs"
failed=0
results=()
for target in "${targets[@]}"; do
  corpus=$work/corpus/$target
  findings=$build_dir/findings/$target
  log=$build_dir/fuzz-logs/$target.log
  rm -rf "$findings"
  mkdir -p "$corpus" "$findings"
  cp -r "$work/seeds/$target/." "$corpus/"
  seeds=$(find "$corpus" -type f | wc -l)
  dict=()
  case $target in safetensors | checkpoint) dict=(-dict=fuzz/safetensors.dict) ;; esac
  echo "fuzz_$target: ${seconds}s from $seeds seeds ..."
  # A reader may allocate what its input justifies (IDX gzip: 1032 bytes per input byte): -malloc_limit_mb
  # catches one that believes a size field instead. -timeout catches hangs.
  status=0
  start=$(date +%s)
  # shellcheck disable=SC2086
  TMPDIR=$work OMP_NUM_THREADS=1 "$build_dir/fuzz/fuzz_$target" "$corpus" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=64 \
    -artifact_prefix="$findings/" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  found=$(find "$findings" -type f | wc -l)
  if [ "$status" -ne 0 ] && [ "$found" -eq 0 ]; then found=1; fi  # e.g. the fuzzer itself failed to start
  results+=("$(printf '%-12s %12s executions in %5ss, corpus %5s files (from %s seeds), %s findings' \
    "$target" "${executions:-?}" "$elapsed" "$(find "$corpus" -type f | wc -l)" "$seeds" "$found")")
  if [ "$found" -ne 0 ]; then
    failed=1
    echo "fuzz_$target: FINDING (exit status $status); the end of $log:"
    tail -n 40 "$log"
    find "$findings" -type f -printf 'kept %p\n'
  fi
done

echo
echo "Fuzzing summary:"
printf '  %s\n' "${results[@]}"
exit "$failed"
