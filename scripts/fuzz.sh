#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.cpp) with clang-14 and
# ASan/UBSan into build-fuzz/, then runs each for N seconds.
#   scripts/fuzz.sh [seconds-per-target]      (default 10; or FUZZ_SECONDS)
#   FUZZ_PARALLEL  targets run at once (default: one per CPU)
#   FUZZ_RUNS      also stop a target after this many executions (a long run
#                  for a fixed count: FUZZ_RUNS=10000000 scripts/fuzz.sh 36000)
# Corpora grow in build-fuzz/corpus/<target>; crash inputs land in
# build-fuzz/artifacts/<target>/. Optional read-only seeds: tests/fuzz/corpus/<target>/,
# optional dictionary: tests/fuzz/<target>.dict. Exits non-zero if any target
# fails to build or finds a crash, leak, timeout or sanitizer report.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-fuzz"
seconds=${1:-${FUZZ_SECONDS:-10}}
jobs=${FUZZ_BUILD_JOBS:-2}

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "fuzz: seconds must be a positive integer, got '$seconds'" >&2
  exit 64
fi
if [ -n "${FUZZ_RUNS:-}" ] && ! [[ "$FUZZ_RUNS" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz: FUZZ_RUNS must be a positive integer, got '$FUZZ_RUNS'" >&2
  exit 64
fi

shopt -s nullglob
targets=()
for source in "$root"/tests/fuzz/fuzz_*.cpp; do
  name=$(basename "$source" .cpp)
  targets+=("$name")
done
if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz: no tests/fuzz/fuzz_*.cpp targets" >&2
  exit 66
fi

# Ninja builds the list of targets in parallel; the Makefiles generator built
# them one after the other (its top-level Makefile is .NOTPARALLEL). A tree
# configured for Makefiles before is reconfigured; corpora and artifacts stay.
if grep -qs '^CMAKE_GENERATOR:INTERNAL=Unix Makefiles$' "$build/CMakeCache.txt"; then
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi
cmake -S "$root" -B "$build" -G Ninja -DMTASTS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$build" --target "${targets[@]}" -j"$jobs"

# UBSan stops at the first report (-fno-sanitize-recover); make it say where.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# run_target NAME: one target for $seconds; its log in $build/NAME.log.
run_target() {
  local name=$1 corpus="$build/corpus/$1" artifacts="$build/artifacts/$1"
  mkdir -p "$corpus" "$artifacts"
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$artifacts/")
  [ -f "$root/tests/fuzz/$name.dict" ] && args+=(-dict="$root/tests/fuzz/$name.dict")
  [ -n "${FUZZ_RUNS:-}" ] && args+=(-runs="$FUZZ_RUNS")
  local dirs=("$corpus")
  [ -d "$root/tests/fuzz/corpus/$name" ] && dirs+=("$root/tests/fuzz/corpus/$name")
  "$build/tests/fuzz/$name" "${args[@]}" "${dirs[@]}" >"$build/$name.log" 2>&1
}

# FUZZ_PARALLEL targets at a time (default: one per CPU), so CI spends
# seconds x targets / CPUs, each target still getting its full time.
parallel=${FUZZ_PARALLEL:-$(nproc)}
failed=()
declare -A pid_of=()
report() {  # report NAME STATUS
  if [ "$2" != 0 ]; then
    echo "fuzz: $1 FAILED; see $build/$1.log and $build/artifacts/$1/" >&2
    tail -n 30 "$build/$1.log" >&2
    failed+=("$1")
  else
    echo "fuzz: $1 $(grep -E '^#[0-9]+.*DONE' "$build/$1.log" | tail -n 1)" >&2
  fi
}
for name in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  echo "fuzz: $name for ${seconds}s" >&2
  run_target "$name" &
  pid_of[$name]=$!
done
for name in "${targets[@]}"; do
  status=0
  wait "${pid_of[$name]}" || status=$?
  report "$name" "$status"
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz: failing targets: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean" >&2
