#!/usr/bin/env bash
# The TLSRPT datagram paths (forwarder and receiver) beside their same-run
# floors: tests/bench/datagram_bench.cpp says what is measured. No network
# namespace is needed: unix datagram sockets in a temporary folder.
#   BUILD_DIR        build tree with tests/datagram_bench (default <repo>/build)
#   BENCH_DATAGRAMS  datagrams per run (default 20000)
#   BENCH_RUNS       runs, alternating with the floors (default 5)
# Exit status: the program's (1 when a datagram went unaccounted).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=${BUILD_DIR:-$(cd "$HERE/../.." && pwd)/build}
BIN="$BUILD_DIR/tests/datagram_bench"
[ -x "$BIN" ] || { echo "run_datagram_bench: no $BIN (cmake --build $BUILD_DIR --target datagram_bench)" >&2; exit 1; }
"$BIN" --datagrams "${BENCH_DATAGRAMS:-20000}" --runs "${BENCH_RUNS:-5}"
