#!/usr/bin/env bash
# Resolution benchmark against real servers (RFC 8461 §3 discovery and fetch):
# brings up the integration test bed (tests/integration/lib/testbed.sh) with
# BENCH_DOMAINS policy domains dNNNN.bench.plain.test (unsigned zone, one
# _mta-sts TXT record and one policy host each, served by nginx with
# BENCH_CERTS multi-name certificates from the test CA), then runs
#   resolve_bench warm --runs 5
#   resolve_bench cold  (every domain, empty cache, 1, 16 and 100 callers)
# inside the bed's network namespace and prints the figures. Not a CI test.
#
# Usage: bash tests/bench/run_resolve_bench.sh          (as root)
#   BUILD_DIR      build tree with resolve_bench (default: <repo>/build)
#   BENCH_DOMAINS  number of policy domains (default 2000)
#   BENCH_CERTS    nginx servers/certificates the hosts are spread over (default 20)
#   TB_KEEP=1      keep the bed's temporary directory
# Exits non-zero when the bed or a benchmark fails, or when a cold run did not
# find a policy for every domain (the figures would be meaningless).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/tests/integration/lib/testbed.sh"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
BENCH_BIN="$BUILD_DIR/tests/resolve_bench"
DOMAINS=${BENCH_DOMAINS:-2000}
CERTS=${BENCH_CERTS:-20}
SLOW_RUN_SECONDS=60  # one cold run with 1 caller slower than this: no repeats
RUNS=3               # cold runs per caller count (median)
WARM_DOMAINS=10000
RUN_TIMEOUT=600
CONF="" LIST=""

die() { echo "run_resolve_bench: error: $*" >&2; exit 1; }
say() { echo "$*"; }

build_bench() {
  [ -x "$BENCH_BIN" ] && return 0
  say "building resolve_bench in $BUILD_DIR"
  cmake --build "$BUILD_DIR" --target resolve_bench -j2 >&2 || die "build of resolve_bench failed"
  [ -x "$BENCH_BIN" ] || die "no $BENCH_BIN after the build"
}

# The bed, the domain list and the CLI config; checks one domain end to end.
bed_up() {
  testbed_up || die "test bed did not start"
  CONF="$TB_DIR/run/bench.toml" LIST="$TB_DIR/run/domains.txt"
  printf 'version: STSv1\nmode: enforce\nmx: *.mx.bench.plain.test\nmax_age: 604800\n' \
    >"$TB_DIR/run/policy.txt"
  tb_nginx_tune auto 1024
  tb_bulk_hosts plain 'd%04d.bench' "$DOMAINS" "$CERTS" "$TB_DIR/run/policy.txt" >"$LIST" &&
    tb_commit || die "bulk hosts"
  tb_config "$CONF" 'log.level="warn"'
  bed_check "$(head -n 1 "$LIST")" 1 && bed_check "$(tail -n 1 "$LIST")" $(( (DOMAINS - 1) % CERTS + 1 ))
}

bed_check() {  # bed_check DOMAIN GROUP: TXT from NSD, policy over HTTPS
  local txt code
  txt=$(tb_exec dig +short +time=2 +tries=1 @"$TB_DNS_ADDR" TXT "_mta-sts.$1")
  [ "$txt" = '"v=STSv1; id=1"' ] || die "bed: TXT of $1 is '$txt'"
  code=$(tb_exec curl -sS --max-time 5 --cacert "$TB_CA_FILE" -o /dev/null -w '%{http_code}' \
    --resolve "mta-sts.$1:443:127.1.100.$2" "https://mta-sts.$1/.well-known/mta-sts.txt" 2>&1)
  [ "$code" = 200 ] || die "bed: policy of $1: $code"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# cold CALLERS RUNS: one resolve_bench cold invocation; prints its figure lines,
# checks with-policy and appends "callers wall" lines to $TB_DIR/run/walls.
cold() {
  local out line callers got
  out=$(timeout --foreground "$RUN_TIMEOUT" ip netns exec "$TB_NS" "$BENCH_BIN" cold -c "$CONF" \
        --domain-file "$LIST" --runs "$2" --callers "$1" 2>"$TB_DIR/run/bench.err") ||
    die "resolve_bench cold --callers $1 failed: $(tail -n 3 "$TB_DIR/run/bench.err")"
  grep 'callers=' <<<"$out" | sed 's/^ */  /'
  while IFS= read -r line; do
    callers=$(sed -n 's/.*callers=\([0-9]*\).*/\1/p' <<<"$line")
    got=$(grep -o 'with-policy=[0-9]*/[0-9]*' <<<"$line")
    [ "$got" = "with-policy=$DOMAINS/$DOMAINS" ] ||
      die "callers=$callers: $got, want $DOMAINS/$DOMAINS (the bed is broken; figures meaningless)"
    echo "$callers $(sed -n 's/.*wall=\([0-9.]*\)s.*/\1/p' <<<"$line")" >>"$TB_DIR/run/walls"
  done < <(grep 'callers=' <<<"$out")
}

# resolve_bench counts the DNS lookups of its timed loops: any is a cache miss.
run_warm() {
  local out calls
  say "== warm: resolve_bench warm --domains $WARM_DOMAINS --runs 5 (no servers)"
  out=$(timeout --foreground "$RUN_TIMEOUT" ip netns exec "$TB_NS" "$BENCH_BIN" warm --domains "$WARM_DOMAINS" \
        --runs 5) || die "resolve_bench warm failed"
  echo "$out"
  calls=$(sed -n 's/.*dns lookups during warm runs: \([0-9]*\).*/\1/p' <<<"$out")
  [ "$calls" = 0 ] || die "warm lookups reached DNS $calls times: the memory cache missed"
}

# Callers=1 first, one run per invocation: repeated only when a run is fast
# enough to keep the whole benchmark within a few minutes.
run_cold() {
  local first runs1=$RUNS i
  say "== cold: $DOMAINS domains, empty cache per run (resolve_bench cold, one line per invocation)"
  : >"$TB_DIR/run/walls"
  cold 1 1
  first=$(awk '{ print $2 }' "$TB_DIR/run/walls")
  if awk -v w="$first" -v m="$SLOW_RUN_SECONDS" 'BEGIN { exit !(w > m) }'; then
    runs1=1
    say "  note: one run with 1 caller took ${first}s (> ${SLOW_RUN_SECONDS}s): callers=1 is measured once"
  fi
  for ((i = 2; i <= runs1; i++)); do cold 1 1; done
  cold 16,100 "$RUNS"
}

summary() {
  local base callers wall runs
  base=$(awk '$1 == 1 { print $2 }' "$TB_DIR/run/walls" | median)
  say "== summary: $DOMAINS distinct domains, cold cache; $CERTS certificates; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '  %-8s %-5s %-12s %-10s %s\n' callers runs median-wall domains/s speedup-vs-1
  for callers in 1 16 100; do
    wall=$(awk -v c="$callers" '$1 == c { print $2 }' "$TB_DIR/run/walls" | median)
    runs=$(awk -v c="$callers" '$1 == c' "$TB_DIR/run/walls" | wc -l)
    [ "$callers" = 1 ] || runs=$RUNS  # one median line per invocation
    awk -v c="$callers" -v r="$runs" -v w="$wall" -v b="$base" -v n="$DOMAINS" \
      'BEGIN { printf "  %-8s %-5s %-12s %-10.0f %.1fx\n", c, r, w "s", n / w, b / w }'
  done
  say "  with-policy = $DOMAINS/$DOMAINS in every cold run (the bench prints the fewest over its runs)"
}

main() {
  local start=$SECONDS
  build_bench
  bed_up
  say "bed: namespace $TB_NS, $DOMAINS domains in plain.test (unsigned), $CERTS certificates, DNS $TB_DNS_ADDR"
  run_warm
  run_cold
  summary
  say "total time $((SECONDS - start))s"
}

main "$@"
