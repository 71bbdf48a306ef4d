#!/usr/bin/env bash
# TLSRPT report benchmark (not a CI test): what `report build` and `report
# send` cost, against floors measured in the same run on the same bed
# (tests/integration/lib/report_bed.sh: NSD + validating Unbound, one HTTPS
# sink with a test-CA certificate at 127.3.0.1, everything in the bed's
# network namespace).
#   build   BUILD domains' counts of one day (a success row and a failure row
#           each) seeded with sqlite3, then `report build --day` from a fresh
#           copy, RUNS times: wall, CPU (user + system of the process, from
#           wait4), CPU per report. Floor: sqlite3 printing the same rows
#           piped through gzip -6 (reading and compressing the data, nothing
#           else).
#   send-1  REPORTS reports (each domain's own _smtp._tls record, rua=https:
#           the sink), one `report send --now`: the destination lookups and
#           the POSTs, one at a time; wall, CPU per report; the sink must
#           count exactly REPORTS POSTs. Floor: one curl process POSTing the
#           same REPORTS files (from `report build --out`) to the same URI,
#           one at a time, on one kept-alive connection (no DNS per report,
#           no TLS handshake per report: a floor, not a like-for-like), and
#           curl again with a new connection and a full handshake per POST
#           ("Connection: close", no session reuse), as each real receiver
#           needs: the difference left is our DNS lookup and SQLite state.
#   send-P  the same with SENDERS `report send` processes started at once on
#           one store (two timers, an operator's manual run): wall, total CPU;
#           exactly REPORTS POSTs, none twice (the claims are compare-and-set).
# Medians of RUNS for every figure. The machine is shared: ratios within one
# run mean more than absolute numbers.
#
# Usage: bash tests/bench/run_report_bench.sh    (as root)
#   MTASTS_BIN      the executable (default: <repo>/build/milter/mta-sts-milter)
#   BENCH_BUILD     domains of the build bench (default 10000)
#   BENCH_REPORTS   reports of the send benches (default 300)
#   BENCH_SENDERS   concurrent senders (default 4)
#   BENCH_RUNS      runs per figure (default 3)
#   BENCH_PROFILE   a folder: one more send-1 run under `perf record`, and its
#                   CPU by library (perf report --sort dso) printed
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../integration/lib/report_bed.sh
source "$ROOT/tests/integration/lib/report_bed.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
BUILD=${BENCH_BUILD:-10000}
REPORTS=${BENCH_REPORTS:-300}
SENDERS=${BENCH_SENDERS:-4}
RUNS=${BENCH_RUNS:-3}
DAY=$(date -u -d '-2 days' +%F)
URI=https://reports.bench.secure.test/r

die() { echo "run_report_bench: error: $*" >&2; exit 1; }

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

# timed OUT CMD...: runs CMD in the namespace; "wall user system" (s) to OUT.
timed() {
  local out=$1; shift
  ip netns exec "$TB_NS" /usr/bin/time -f '%e %U %S' -o "$out" "$@"
}
# ratio A B: A/B, or 0 when B is 0 (a figure below /usr/bin/time's 10 ms).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0 ? a / b : 0) }'; }
cpu_of() { awk '{print $2 + $3}' "$1"; }
wall_of() { awk '{print $1}' "$1"; }

# seed CONF COUNT LABEL: COUNT domains dN.LABEL.secure.test with one success
# and one failure row each on $DAY, in one transaction.
seed() {
  local conf=$1 count=$2 label=$3
  rb_cli "$conf" report status >/dev/null || die "report status on $conf"
  awk -v n="$count" -v day="$DAY" -v label="$label" 'BEGIN {
    print "BEGIN;"
    for (i = 1; i <= n; i++) {
      d = "d" i "." label ".secure.test"
      p = "version: STSv1\nmode: enforce\nmx: mx." d "\nmax_age: 86400"
      printf "INSERT INTO tlsrpt_successes (day, policy_type, policy_domain, policy_string, mx_patterns, successful_session_count) VALUES (%s, %s, %s, %s, %s, %d);\n", q(day), q("sts"), q(d), q(p), q("mx." d), 100 + i % 7
      printf "INSERT INTO tlsrpt_failures (day, policy_type, policy_domain, policy_string, mx_patterns, result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip, failed_session_count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %d);\n", q(day), q("sts"), q(d), q(p), q("mx." d), q("certificate-expired"), q("192.0.2.1"), q("mx." d), q("198.51.100.7"), 1 + i % 3
    }
    print "COMMIT;"
  }
  function q(s) { gsub(/\047/, "\047\047", s); return "\047" s "\047" }' | sqlite3 "$(rb_store "$conf")" ||
    die "seeding $conf"
}

setup() {
  local i records=()
  report_bed_up || die "report bed did not start"
  rb_sink_add bench secure bench 200 || die "sink"
  for ((i = 1; i <= REPORTS; i++)); do records+=("_smtp._tls.d$i.send IN TXT \"v=TLSRPTv1; rua=$URI\""); done
  tb_dns_set secure tlsrpt-bench "${records[@]}"
  tb_dns_reload secure || die "DNS reload"
  [ "$(tb_exec dig +short TXT "_smtp._tls.d$REPORTS.send.secure.test")" = "\"v=TLSRPTv1; rua=$URI\"" ] ||
    die "_smtp._tls.d$REPORTS.send.secure.test does not resolve"
  rb_config "$RB_DIR/build.toml" && seed "$RB_DIR/build.toml" "$BUILD" build
  cp "$(rb_store "$RB_DIR/build.toml")" "$RB_DIR/build-seeded.db"
  rb_config "$RB_DIR/send.toml" && seed "$RB_DIR/send.toml" "$REPORTS" send
  cp "$(rb_store "$RB_DIR/send.toml")" "$RB_DIR/send-seeded.db"
}

fresh_store() { cp "$RB_DIR/$2-seeded.db" "$(rb_store "$1")" && rm -f "$(rb_store "$1")"-{wal,shm}; }

bench_build() {
  local r t ours=() floor=() walls=()
  for ((r = 1; r <= RUNS; r++)); do
    fresh_store "$RB_DIR/build.toml" build
    timed "$RB_DIR/t" "$MTASTS_BIN" -c "$RB_DIR/build.toml" report build --day "$DAY" >"$RB_DIR/build.out" 2>>"$RB_LOG" ||
      die "report build failed: $(tail -n 2 "$RB_LOG")"
    [ "$(wc -l <"$RB_DIR/build.out")" = "$BUILD" ] || die "report build made $(wc -l <"$RB_DIR/build.out") reports, want $BUILD"
    ours+=("$(cpu_of "$RB_DIR/t")") walls+=("$(wall_of "$RB_DIR/t")")
    timed "$RB_DIR/t" bash -c "sqlite3 '$RB_DIR/build-seeded.db' 'SELECT * FROM tlsrpt_successes; SELECT * FROM tlsrpt_failures;' | gzip -6 >/dev/null"
    floor+=("$(cpu_of "$RB_DIR/t")")
  done
  t=$(printf '%s\n' "${ours[@]}" | median)
  printf 'build   %d reports: wall %.2f s, CPU %.2f s = %.0f us/report; floor (sqlite3 | gzip) CPU %.2f s = %.0f us/report; ratio %.1fx\n' \
    "$BUILD" "$(printf '%s\n' "${walls[@]}" | median)" "$t" "$(echo "$t * 1000000 / $BUILD" | bc -l)" \
    "$(printf '%s\n' "${floor[@]}" | median)" "$(echo "$(printf '%s\n' "${floor[@]}" | median) * 1000000 / $BUILD" | bc -l)" \
    "$(ratio "$t" "$(printf '%s\n' "${floor[@]}" | median)")"
}

posts() { rb_sink_posts bench; }

# curl_config FILE [EXTRA]: the floor's curl config, REPORTS POSTs of the
# built files to the sink, each with the config lines EXTRA.
curl_config() {
  local out=$1 extra=${2:-} f sep=""
  for f in "$RB_DIR"/files/*.json.gz; do
    # "next" resets the options of the previous URL: each block has them all.
    printf '%surl = "%s"\ncacert = "%s"\ndata-binary = "@%s"\nheader = "Content-Type: application/tlsrpt+gzip"\noutput = "/dev/null"\nfail\n%s' \
      "$sep" "$URI" "$TB_CA_FILE" "$f" "$extra"
    sep=$'next\n'
  done >"$out"
}

# timed_curl CONFIG: the floor, "wall cpu" appended to the arrays named.
timed_curl() {
  local before
  before=$(posts)
  timed "$RB_DIR/t" curl -sS -K "$1" || die "curl floor failed"
  [ "$(($(posts) - before))" = "$REPORTS" ] || die "the curl floor posted $(($(posts) - before))"
}

bench_send() {
  local r i before ours=() walls=() floor=() floor_walls=() floor_new=() floor_new_walls=() par=() par_walls=() pids=()
  for ((r = 1; r <= RUNS; r++)); do
    fresh_store "$RB_DIR/send.toml" send
    rm -rf "$RB_DIR/files" && rb_cli "$RB_DIR/send.toml" report build --day "$DAY" --out "$RB_DIR/files" >/dev/null
    before=$(posts)
    timed "$RB_DIR/t" "$MTASTS_BIN" -c "$RB_DIR/send.toml" report send --now --day "$DAY" >/dev/null 2>>"$RB_LOG"
    [ "$(($(posts) - before))" = "$REPORTS" ] || die "send-1 posted $(($(posts) - before)), want $REPORTS"
    ours+=("$(cpu_of "$RB_DIR/t")") walls+=("$(wall_of "$RB_DIR/t")")

    curl_config "$RB_DIR/curl.cfg"
    timed_curl "$RB_DIR/curl.cfg"
    floor+=("$(cpu_of "$RB_DIR/t")") floor_walls+=("$(wall_of "$RB_DIR/t")")
    # A new connection and a full handshake per POST, as each real receiver needs.
    curl_config "$RB_DIR/curl-new.cfg" $'header = "Connection: close"\nno-sessionid\n'
    timed_curl "$RB_DIR/curl-new.cfg"
    floor_new+=("$(cpu_of "$RB_DIR/t")") floor_new_walls+=("$(wall_of "$RB_DIR/t")")

    fresh_store "$RB_DIR/send.toml" send
    rb_cli "$RB_DIR/send.toml" report build --day "$DAY" >/dev/null
    before=$(posts)
    local start=$EPOCHREALTIME
    pids=()
    for ((i = 1; i <= SENDERS; i++)); do
      timed "$RB_DIR/t$i" "$MTASTS_BIN" -c "$RB_DIR/send.toml" report send --now --day "$DAY" >/dev/null 2>>"$RB_LOG" &
      pids+=($!)
    done
    wait "${pids[@]}"
    par_walls+=("$(echo "$EPOCHREALTIME - $start" | bc -l)")
    [ "$(($(posts) - before))" = "$REPORTS" ] || die "send-$SENDERS posted $(($(posts) - before)), want exactly $REPORTS"
    par+=("$(for ((i = 1; i <= SENDERS; i++)); do cpu_of "$RB_DIR/t$i"; done | awk '{s += $1} END {print s}')")
  done
  local w c fw fc nw nc pw pc
  w=$(printf '%s\n' "${walls[@]}" | median) c=$(printf '%s\n' "${ours[@]}" | median)
  nw=$(printf '%s\n' "${floor_new_walls[@]}" | median) nc=$(printf '%s\n' "${floor_new[@]}" | median)
  fw=$(printf '%s\n' "${floor_walls[@]}" | median) fc=$(printf '%s\n' "${floor[@]}" | median)
  pw=$(printf '%s\n' "${par_walls[@]}" | median) pc=$(printf '%s\n' "${par[@]}" | median)
  printf 'send-1  %d reports: wall %.2f s (%.1f ms/report), CPU %.0f us/report; floor (one curl, kept-alive) wall %.2f s (%.1f ms/report), CPU %.0f us/report; ratios wall %.1fx CPU %.1fx\n' \
    "$REPORTS" "$w" "$(echo "$w * 1000 / $REPORTS" | bc -l)" "$(echo "$c * 1000000 / $REPORTS" | bc -l)" \
    "$fw" "$(echo "$fw * 1000 / $REPORTS" | bc -l)" "$(echo "$fc * 1000000 / $REPORTS" | bc -l)" \
    "$(ratio "$w" "$fw")" "$(ratio "$c" "$fc")"
  printf '        floor with a new connection and full handshake per POST (curl, Connection: close, no session reuse): wall %.2f s (%.1f ms/report), CPU %.0f us/report; ratios wall %.1fx CPU %.1fx\n' \
    "$nw" "$(echo "$nw * 1000 / $REPORTS" | bc -l)" "$(echo "$nc * 1000000 / $REPORTS" | bc -l)" \
    "$(ratio "$w" "$nw")" "$(ratio "$c" "$nc")"
  printf 'send-%d  %d reports: wall %.2f s (%.2fx send-1), CPU %.0f us/report (all senders); exactly %d POSTs in every run\n' \
    "$SENDERS" "$REPORTS" "$pw" "$(ratio "$pw" "$w")" "$(echo "$pc * 1000000 / $REPORTS" | bc -l)" "$REPORTS"
}

# One send-1 run under perf: where a report's CPU goes, by library.
profile_send() {
  local dir=${BENCH_PROFILE:-}
  [ -n "$dir" ] || return 0
  mkdir -p "$dir"
  fresh_store "$RB_DIR/send.toml" send
  rb_cli "$RB_DIR/send.toml" report build --day "$DAY" >/dev/null
  ip netns exec "$TB_NS" perf record -q -F 4999 -g -o "$dir/send.perf" \
    "$MTASTS_BIN" -c "$RB_DIR/send.toml" report send --now --day "$DAY" >/dev/null 2>>"$RB_LOG"
  echo "send-1 profile ($dir/send.perf), CPU by library:"
  perf report -i "$dir/send.perf" --sort dso --stdio --no-children 2>/dev/null | grep -E '^ +[0-9]' | head -n 12
}

main() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  [ -x "$MTASTS_BIN" ] || die "no executable at $MTASTS_BIN"
  command -v bc >/dev/null && [ -x /usr/bin/time ] || die "needs bc and /usr/bin/time (scripts/setup.sh)"
  setup
  echo "report bench: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); medians of $RUNS runs"
  bench_build
  bench_send
  profile_send
  echo "done: load $(cut -d' ' -f1-3 /proc/loadavg)"
}

main "$@"
