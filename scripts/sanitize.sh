#!/usr/bin/env bash
# Builds the project once more with sanitizers and runs the tests on it.
#   scripts/sanitize.sh asan   ASan+UBSan in build-asan/: every unit test
#                              (ctest), then the integration suite
#                              (tests/integration/run_all.sh, as root)
#   scripts/sanitize.sh tsan   TSan in build-tsan/: only the concurrency
#                              tests (single flight, probe cache, caches,
#                              refresher, tlsrpt buffer, store, shutdown)
# Every sanitizer report is written to <build>/sanitizer-reports/<phase>/
# (log_path), including those of the daemon, whose stderr the integration
# scripts keep or drop as they please, and of a process that reports only at
# exit. A phase fails when its tests fail or when any report file appears.
# Prints the wall and CPU time of each phase ("sanitize: time PHASE wall N s,
# cpu N s") and leaves them in <build>/sanitize-times.txt.
#   SANITIZE_JOBS   build and ctest parallelism (default: nproc)
#   SANITIZE_CXX    compiler (default g++, the only one tried; the log_path notes below are g++'s)
#   SANITIZE_TEST_TIMEOUT  seconds per unit test (default 300)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
jobs=${SANITIZE_JOBS:-$(nproc)}
cxx=${SANITIZE_CXX:-g++}

case "$mode" in
  asan)
    flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    link_flags="-fsanitize=address,undefined" ;;
  tsan)
    flags="-fsanitize=thread"
    link_flags="-fsanitize=thread" ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan" >&2; exit 64 ;;
esac
build="$root/build-$mode"
reports="$build/sanitizer-reports"
times="$build/sanitize-times.txt"

# TSan runs the units whose code runs on several threads (any folder prefix:
# tests/unit/<folder>_<unit>_test.cpp), and of them the suites below.
tsan_units='(resolver|next_hop_checker|probe_cache|memory_cache|mx_dns_cache|tlsrpt_buffer|refresher'
tsan_units+='|worker_pool|single_flight|lock_guarded|sqlite_store|tlsrpt_store|override_store|session'
tsan_units+='|tcp_tuning|callback_gate|unbound_dns|curl_fetcher|tls_prober|socketmap_server|socketmap_lookup|metrics'
tsan_units+='|tlsrpt_datagram_socket)_test'
tsan_tests='^(Resolver|BackgroundRefresher|Refresher|NextHopChecker|ProbeCache|MemoryCache|MxDnsCache'
tsan_tests+='|TlsrptBuffer|WorkerPool|SingleFlight|LockGuarded|SqliteStoreTest|SqliteTlsrptStore'
tsan_tests+='|OverrideStore|Session|TcpTuning|CallbackGate|SocketmapServerTest|SocketmapLookup|MetricsTest'
tsan_tests+='|NetTlsrptDatagramSocket)\.'
tsan_tests+='|^UnboundDnsHermetic\.ConcurrentTimeoutsAndShutdown$'
tsan_tests+='|^CurlFetcherTest\.ConcurrentFetchesShareOneFetcher$|^TlsProberTest\.ConcurrentProbesShareOneProber$'

now() { date +%s.%N; }
# CPU seconds (user + system) used so far by finished child processes: with
# the wall time it tells a slow phase from a busy machine.
# `times` runs here, not in a $(...) subshell, which would have no children.
cpu_now() {
  times >"$build/.times"
  cpu=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); t += p[1] * 60 + p[2] } print t }' \
    "$build/.times")
}
# phase_time NAME START_WALL START_CPU: prints and records the phase's times.
phase_time() {
  local wall used
  wall=$(awk -v a="$2" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  cpu_now
  used=$(awk -v a="$3" -v b="$cpu" 'BEGIN { printf "%.1f", b - a }')
  echo "sanitize: time $1 wall $wall s, cpu $used s" >&2
  echo "$1 wall=$wall cpu=$used" >>"$times"
}

# Sanitizer options for the test phases; PHASE names the report folder. The
# folder is world-writable: the daemon may have dropped to another user.
# g++ links libasan and libubsan as two shared runtimes that share exported
# names: UBSan's log_path becomes ASan's too (so the two must agree), while
# UBSan's own message always goes to stderr. handle_abort=1 turns UBSan's
# abort into an ASan "ABRT" report in the folder, with the faulting line on
# its stack, so no UBSan finding is lost with a daemon's stderr.
sanitizer_env() {
  local dir="$reports/$1"
  mkdir -p "$dir" && chmod 1777 "$reports" "$dir"
  local common="log_path=$dir/report:print_stacktrace=1:halt_on_error=1"
  local asan="$common:detect_leaks=1:abort_on_error=1:handle_abort=1:detect_stack_use_after_return=1"
  # verify_asan_link_order=0: check_scenarios.sh runs the daemon under
  # faketime(1), whose LD_PRELOAD library comes before the ASan runtime.
  export ASAN_OPTIONS="$asan:check_initialization_order=1:strict_string_checks=1:verify_asan_link_order=0"
  export UBSAN_OPTIONS="$common:abort_on_error=1"
  export TSAN_OPTIONS="$common:second_deadlock_stack=1:suppressions=$root/tests/sanitizers/tsan.supp"
}

# no_reports PHASE: fails, printing the start of each, when reports exist.
no_reports() {
  local dir="$reports/$1" files
  mapfile -t files < <(find "$dir" -type f | sort)
  [ "${#files[@]}" -eq 0 ] && return 0
  echo "sanitize: ${#files[@]} sanitizer report(s) in $dir:" >&2
  for f in "${files[@]}"; do
    echo "---- $f" >&2
    head -n 40 "$f" >&2
  done
  return 1
}

unit_targets() {
  local source
  for source in "$root"/tests/unit/*_test.cpp; do basename "$source" .cpp; done
}

rm -rf "$reports"
mkdir -p "$build"
: >"$times"
status=0

cpu_now; start=$(now) start_cpu=$cpu
# -O1 -g1: a third less compile time than -O2 -g (the largest share of CI),
# and still the line tables reports need; NDEBUG as in the shipped build.
# Ninja: the Makefiles generator builds a list of --target goals one after
# the other (its top-level Makefile is .NOTPARALLEL), each test being one
# source file, so the sanitizer builds used one core of two.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$link_flags" >/dev/null
if [ "$mode" = asan ]; then
  mapfile -t targets < <(unit_targets)
  targets+=(mta-sts-milter man_pages)
else
  mapfile -t targets < <(unit_targets | grep -E "$tsan_units")
fi
cmake --build "$build" -j"$jobs" --target "${targets[@]}"
phase_time build "$start" "$start_cpu"

cpu_now; start=$(now) start_cpu=$cpu
sanitizer_env unit
ctest_args=(--test-dir "$build" --output-on-failure -j"$jobs" --timeout "${SANITIZE_TEST_TIMEOUT:-300}")
[ "$mode" = tsan ] && ctest_args+=(-R "$tsan_tests")
ctest "${ctest_args[@]}" | tee "$build/ctest.log" || status=1
phase_time unit "$start" "$start_cpu"
if grep -E '\(Skipped\)$' "$build/ctest.log"; then echo "sanitize: unit tests skipped (above)" >&2; status=1; fi
no_reports unit || status=1

if [ "$mode" = asan ]; then
  cpu_now; start=$(now) start_cpu=$cpu
  sanitizer_env integration
  # Measured: ASan itself adds little per message (Postfix 2-5 ms), but
  # with a busy disk (synced writes of 1-2 ms) Sendmail's pace reached
  # 17-21 ms in every build. This run gets a bound that still catches a
  # 40 ms delayed-ACK stall; run_all.sh run by hand keeps its 15 ms.
  MTASTS_PACE_BOUND_MS=35 MTASTS_BIN="$build/milter/mta-sts-milter" BUILD_DIR="$build" \
    bash "$root/tests/integration/run_all.sh" ||
    status=1
  phase_time integration "$start" "$start_cpu"
  no_reports integration || status=1
fi

if [ "$status" -ne 0 ]; then echo "sanitize: $mode FAILED" >&2; exit 1; fi
echo "sanitize: $mode clean" >&2
