#!/usr/bin/env bash
# The one command that sets up and runs every test on a fresh Debian 12
# machine (as root): installs what is missing, checks the format, builds the
# daemon and the benchmarks (RelWithDebInfo), runs the fuzzers (15 s each),
# every unit test and the real-server integration tests on an ASan+UBSan
# build, the concurrency tests on a TSan build, every benchmark once at a
# tiny size (on the RelWithDebInfo build), and the Debian package of that
# build. The unit tests run on the sanitizer builds only: compiling them a
# third time, without sanitizers, cost CI minutes and found nothing the
# ASan+UBSan run does not (`ctest --test-dir build` runs them on a full
# RelWithDebInfo build by hand). Prints the wall time of each phase at the end.
# Integration tests alone, on any build:
#   MTASTS_BIN=build/milter/mta-sts-milter bash tests/integration/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
phase_start=$started
times=()
phase() {  # phase NAME: closes the running phase, opens NAME
  local now
  now=$(date +%s)
  [ -n "${current:-}" ] && times+=("$current $((now - phase_start)) s")
  phase_start=$now
  current=$1
  [ -n "$current" ] && echo "== $current"
  return 0
}

phase setup
bash scripts/setup.sh

phase format
bash scripts/check_format.sh

phase "build (daemon, man pages, benchmarks)"
build=${MTASTS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
mapfile -t benchmarks < <(for source in tests/bench/*.cpp; do basename "$source" .cpp; done)
cmake --build "$build" -j"$(nproc)" --target mta-sts-milter man_pages "${benchmarks[@]}"

phase fuzzers
bash scripts/fuzz.sh "${MTASTS_FUZZ_SECONDS:-15}"

# The unit tests and the real-server integration suite run once, on the
# ASan+UBSan build (the same code as the RelWithDebInfo binary, with every
# memory error and UB a failure; a skipped unit test fails the phase);
# running the suite twice would cost CI about eight minutes.
phase "ASan+UBSan: unit and integration tests"
bash scripts/sanitize.sh asan

phase "TSan: concurrency tests"
bash scripts/sanitize.sh tsan

phase "benchmarks, tiny sizes (their sanity checks only; figures not read)"
BUILD_DIR="$PWD/$build" MTASTS_BIN="$PWD/$build/milter/mta-sts-milter" bash tests/bench/smoke.sh

# The Debian package of the RelWithDebInfo tree: built, lintian, installed on
# this machine, run, purged (dpkg-buildpackage from source is the same rules
# without MTASTS_DEB_PREBUILT, about 3.5 min more).
phase "Debian package"
MTASTS_DEB_PREBUILT="$PWD/$build" bash tests/integration/deb_package.sh

phase ""
printf 'time: %s\n' "${times[@]}"
echo "time: total $(($(date +%s) - started)) s"
