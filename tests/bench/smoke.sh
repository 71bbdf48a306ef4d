#!/usr/bin/env bash
# Runs every benchmark once at a tiny size, so CI proves they still work:
# each benchmark's own sanity checks (the bed came up, every decision was
# the expected one, no cache missed, the daemon stopped cleanly) must pass.
# The figures printed are meaningless at this size and not read.
#
# Usage: bash tests/bench/smoke.sh   (as root; scripts/test.sh runs it)
#   BUILD_DIR   build tree with the benchmark programs (default <repo>/build)
#   MTASTS_BIN  the daemon (default $BUILD_DIR/milter/mta-sts-milter)
# Prints "ok NAME (Ns)" or "FAIL NAME" with the output's tail; exits non-zero
# when any benchmark failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
export BUILD_DIR=${BUILD_DIR:-$(cd "$HERE/../.." && pwd)/build}
export MTASTS_BIN=${MTASTS_BIN:-$BUILD_DIR/milter/mta-sts-milter}
failed=0

smoke() {  # smoke NAME VAR=VALUE...: runs tests/bench/NAME.sh with those settings
  local name=$1 start out rc; shift
  start=$(date +%s)
  out=$(env "$@" timeout 600 bash "$HERE/$name.sh" 2>&1); rc=$?
  if [ "$rc" = 0 ]; then
    echo "ok $name ($(( $(date +%s) - start ))s)"
  else
    echo "FAIL $name (exit $rc):"; tail -n 15 <<<"$out" | sed 's/^/  /'
    failed=$((failed + 1))
  fi
}

smoke run_resolve_bench BENCH_DOMAINS=40 BENCH_CERTS=4
smoke run_decision_bench BENCH_WARM=4 BENCH_DECISIONS=2000 BENCH_RUNS=1 BENCH_COLD=20 BENCH_CALLERS=4
smoke run_daemon_rss_bench BENCH_DOMAINS=2000 BENCH_PASSES=1
smoke run_postfix_bench BENCH_MESSAGES=100 BENCH_SESSIONS=5 BENCH_SERIAL_MESSAGES=20 BENCH_RUNS=1
smoke run_postfix_bench BENCH_MTA=sendmail BENCH_MESSAGES=40 BENCH_SESSIONS=4 BENCH_SERIAL_MESSAGES=10 BENCH_RUNS=1
smoke run_report_bench BENCH_BUILD=500 BENCH_REPORTS=20 BENCH_RUNS=1 BENCH_SENDERS=4
smoke run_datagram_bench BENCH_DATAGRAMS=500 BENCH_RUNS=1
[ "$failed" = 0 ]
