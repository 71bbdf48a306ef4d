#!/usr/bin/env bash
# Socketmap benchmark (not a CI test): our daemon's socketmap server against
# Debian's postfix-mta-sts-resolver (`mta-sts-daemon`, Python, asyncio +
# uvloop), side by side over the same bed, both answering Postfix
# socketmap_table(5) lookups of MTA-STS TLS policies. The driver is
# tests/bench/socketmap_load (one outstanding request per connection, as
# Postfix). Only one server runs at a time.
#
#   bed    tests/integration/lib/testbed.sh as run_resolve_bench.sh builds it:
#          BENCH_DOMAINS enforce domains dNNNN.bench.plain.test (unsigned zone,
#          `mx: *.mx.bench.plain.test`, BENCH_CERTS nginx addresses/certificates),
#          plus, for the memory figure, BENCH_RSS_DOMAINS (100,000) more policy
#          domains xNNNNNN.gG.rss.plain.test: 1,000 per group G, one wildcard
#          pair `*.gG.rss IN TXT "v=STSv1; id=1"` / `IN A 127.1.101.G` per
#          group and one test-CA certificate naming its 1,000 policy hosts, so
#          100,000 real policies cost 100 certificates and 200 zone records.
#          Real policies rather than NOTFOUND names: the peer caches only
#          policies it fetched (responder.py stores VALID results only), so
#          100,000 NOTFOUND keys would leave its cache empty.
#   peer   mta-sts-daemon on 127.0.0.3:8461 in the bed's namespace, its own YAML:
#          internal LRU cache of 200,000 entries (default 10,000 would evict
#          the 100k set), cache_grace 86400 (default 60: a cached policy older
#          than that is re-checked with a TXT lookup on use), timeout 4,
#          proactive fetching off, log level warn. DNS: aiodns/pycares (TXT)
#          and getaddrinfo (policy host) read the namespace's /etc/resolv.conf,
#          which this script points straight at NSD, as ours asks it (/etc/netns/NS/
#          resolv.conf, removed on exit). HTTPS: aiohttp's
#          ssl.create_default_context() loads OpenSSL's default paths, so
#          SSL_CERT_FILE=<bed CA> makes it trust the test CA.
#   ours   "$MTASTS_BIN" -c CONF (the daemon stays in the foreground) with
#          tb_config's DNS and HTTPS settings (libunbound stub to NSD, test CA),
#          log.level warn, policy.txt_recheck_interval 86400 (as cache_grace
#          above), policy.memory_cache_entries 200000 and
#          `[socketmap] socket = "inet:8461@127.0.0.2"` (+ BENCH_OURS_SOCKETMAP,
#          extra TOML lines for that section). Runs only when
#          `--print-config` shows a [socketmap] section; otherwise the figures
#          say "ours: skipped (no socketmap in this build)".
#   null   socketmap_load --null-server on 127.0.0.4:8461: answers NOTFOUND at
#          once; its warm figures are the ceiling of the generator itself.
#
# Per run (BENCH_RUNS, default 3; medians reported), for null, peer, ours:
#   cold   fresh server (empty caches) per connection count: every domain
#          once over 16, then (restarted) 100 connections: wall time and OK
#          answers. The bed's Unbound caches nothing (cache-max-ttl 0), so
#          there is nothing to flush; a restart empties the server's own caches
#          (ours also gets a new store file).
#   warm   after the 100-connection cold run (all domains cached): BENCH_WARM_SECONDS
#          each at 1, 16 and 100 connections, every key cycled: qps, p50/p99,
#          server CPU µs per query (/proc/PID/stat), the generator's own CPU.
#   memory VmRSS idle (2 s after the socket opens), after the 2,000 cached;
#          once per server: after BENCH_DOMAINS + BENCH_RSS_DOMAINS cached
#          (one cold pass over 100 connections, wall time printed).
# Checks before measuring: one query per server must answer
# `OK secure match=...` (ours names the MX host, mx1.mx.bench.plain.test; the
# peer sends the pattern, .mx.bench.plain.test).
# Warm runs must answer OK to every request; a cold run that answers fewer
# than all domains OK is reported and flagged, not hidden.
#
# Usage: bash tests/bench/run_socketmap_bench.sh        (as root)
#   BUILD_DIR            build tree (default <repo>/build): milter/mta-sts-milter and
#                        tests/socketmap_load (built there when missing)
#   MTASTS_BIN           our daemon (default $BUILD_DIR/milter/mta-sts-milter)
#   BENCH_DOMAINS        2000       BENCH_CERTS          20
#   BENCH_RSS_DOMAINS    100000 (0 skips the 100k memory figure)
#   BENCH_RUNS           3          BENCH_WARM_SECONDS   5
#   BENCH_OURS_SOCKETMAP extra lines for our [socketmap] section
#   TB_KEEP=1            keep the bed's directory (server logs in run/)
# Needs the packages of scripts/setup.sh, including postfix-mta-sts-resolver.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../integration/lib/testbed.sh
source "$ROOT/tests/integration/lib/testbed.sh"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
MTASTS_SRC=${MTASTS_BIN:-$BUILD_DIR/milter/mta-sts-milter}
LOAD_SRC="$BUILD_DIR/tests/socketmap_load"
PEER_DAEMON=/usr/bin/mta-sts-daemon
DOMAINS=${BENCH_DOMAINS:-2000}
CERTS=${BENCH_CERTS:-20}
RSS_DOMAINS=${BENCH_RSS_DOMAINS:-100000}
RSS_PER_GROUP=1000
RUNS=${BENCH_RUNS:-3}
WARM_SECONDS=${BENCH_WARM_SECONDS:-5}
WARM_CONNS=(1 16 100)
COLD_CONNS=(16 100)
PORT=8461
declare -A ADDR=([ours]=127.0.0.2 [peer]=127.0.0.3 [null]=127.0.0.4)
EXPECT_DATA="OK secure match="  # ours: mx1.mx.bench.plain.test; the peer: .mx.bench.plain.test
SETTLE_SECONDS=2
RUN_TIMEOUT=1800
LOADGEN_BUSY_PCT=85  # the generator near one CPU: its figure may be its own limit
LIST="" RSS_LIST="" LOAD_BIN="" OURS_BIN="" OURS=skipped
SERVER_PID="" LINE=""
declare -A FIG=()  # "<side>.<figure>.<run>" -> value

die() { echo "run_socketmap_bench: error: $*" >&2; exit 1; }
warn() { echo "run_socketmap_bench: warning: $*" >&2; }
say() { echo "$*"; }

prerequisites() {
  dpkg-query -W -f '${Status}' postfix-mta-sts-resolver 2>/dev/null | grep -q 'ok installed' ||
    die "postfix-mta-sts-resolver is not installed (scripts/setup.sh installs it)"
  [ -x "$PEER_DAEMON" ] || die "no $PEER_DAEMON"
  [ -x "$MTASTS_SRC" ] || die "no mta-sts-milter at $MTASTS_SRC (set MTASTS_BIN or BUILD_DIR)"
  if [ ! -x "$LOAD_SRC" ]; then
    say "building socketmap_load in $BUILD_DIR"
    cmake --build "$BUILD_DIR" --target socketmap_load -j2 >&2 || die "build of socketmap_load failed"
  fi
  "$MTASTS_SRC" --print-config 2>/dev/null | grep -q '^\[socketmap\]' && OURS=yes
}

bench_down() {
  server_stop
  [ -n "$TB_NS" ] && rm -rf "/etc/netns/$TB_NS"
  testbed_down
}

# rss_hosts: the 100k policy domains (see the header), one a line.
rss_hosts() {
  local groups=$(( (RSS_DOMAINS + RSS_PER_GROUP - 1) / RSS_PER_GROUP )) g first count records=()
  [ "$groups" -le 254 ] || die "BENCH_RSS_DOMAINS: at most $((254 * RSS_PER_GROUP))"
  for ((g = 1; g <= groups; g++)); do
    records+=("*.g$g.rss IN TXT \"v=STSv1; id=1\"" "*.g$g.rss IN A 127.1.101.$g")
    first=$(( (g - 1) * RSS_PER_GROUP + 1 ))
    count=$(( RSS_DOMAINS - first + 1 < RSS_PER_GROUP ? RSS_DOMAINS - first + 1 : RSS_PER_GROUP ))
    seq -f "x%06g.g$g.rss.plain.test" "$first" $((first + count - 1))
    # shellcheck disable=SC2046  # a list of host names
    tb_cert_multi "$TB_DIR/certs/_rss$g.crt" $(seq -f "mta-sts.x%06g.g$g.rss.plain.test" "$first" $((first + count - 1))) ||
      return 1
    cat >"$TB_DIR/nginx/hosts/_rss$g.conf" <<CONF
server {
  listen 127.1.101.$g:443 ssl;
  server_name _;
  access_log off;
  ssl_certificate $TB_DIR/certs/_rss$g.crt;
  ssl_certificate_key $TB_DIR/ca/leaf.key;
  location = /.well-known/mta-sts.txt { root $TB_DIR/www/_bulk; }
  location / { return 404; }
}
CONF
  done
  tb_dns_set plain _rss "${records[@]}"
}

bed_up() {
  testbed_up || die "test bed did not start"
  trap bench_down EXIT
  mkdir -p "/etc/netns/$TB_NS" "$TB_DIR/bin" || die "mkdir /etc/netns/$TB_NS"
  # Straight to NSD (authoritative for the bench zones), as ours asks it
  # (tb_config's stub): the same DNS path and cost for both servers.
  echo "nameserver $TB_DNS_ADDR" >"/etc/netns/$TB_NS/resolv.conf" || die "/etc/netns/$TB_NS/resolv.conf"
  # Copies: a rebuild during the run changes nothing.
  cp "$LOAD_SRC" "$MTASTS_SRC" "$TB_DIR/bin/" || die "copy the binaries"
  LOAD_BIN="$TB_DIR/bin/socketmap_load" OURS_BIN="$TB_DIR/bin/$(basename "$MTASTS_SRC")"
  LIST="$TB_DIR/run/domains.txt" RSS_LIST="$TB_DIR/run/rss-domains.txt"
  printf 'version: STSv1\nmode: enforce\nmx: *.mx.bench.plain.test\nmax_age: 604800\n' >"$TB_DIR/run/policy.txt"
  tb_nginx_tune auto 1024
  tb_bulk_hosts plain 'd%04d.bench' "$DOMAINS" "$CERTS" "$TB_DIR/run/policy.txt" >"$LIST" || die "bulk hosts"
  # One MX per domain inside the policy's pattern, as real domains have (the
  # bulk hosts have none: the domain itself would be the only host, outside
  # `*.mx.bench.plain.test`, and ours answers that no host is allowed).
  sed 's/\.plain\.test$/ IN MX 10 mx1.mx.bench.plain.test./' "$LIST" >"$TB_DIR/zones/plain.d/bench-mx" ||
    die "bench MX records"
  cat "$LIST" >"$RSS_LIST"
  if [ "$RSS_DOMAINS" -gt 0 ]; then rss_hosts >>"$RSS_LIST" || die "100k hosts"; fi
  tb_commit || die "bed commit"
  bed_check "$(head -n 1 "$LIST")" "127.1.100.1"
  bed_check "$(tail -n 1 "$LIST")" "127.1.100.$(( (DOMAINS - 1) % CERTS + 1 ))"
  [ "$RSS_DOMAINS" -gt 0 ] && bed_check "$(tail -n 1 "$RSS_LIST")" "127.1.101.$(( (RSS_DOMAINS - 1) / RSS_PER_GROUP + 1 ))"
  write_configs
}

bed_check() {  # bed_check DOMAIN ADDRESS: TXT through the namespace's resolver, policy over HTTPS
  local txt code
  txt=$(tb_exec dig +short +time=2 +tries=1 TXT "_mta-sts.$1")
  [ "$txt" = '"v=STSv1; id=1"' ] || die "bed: TXT of $1 is '$txt'"
  code=$(tb_exec curl -sS --max-time 5 --cacert "$TB_CA_FILE" -o /dev/null -w '%{http_code}' \
    --resolve "mta-sts.$1:443:$2" "https://mta-sts.$1/.well-known/mta-sts.txt" 2>&1)
  [ "$code" = 200 ] || die "bed: policy of $1: $code"
}

write_configs() {
  cat >"$TB_DIR/run/peer.yml" <<EOF
host: ${ADDR[peer]}
port: $PORT
reuse_port: true
shutdown_timeout: 2
cache_grace: 86400
cache:
  type: internal
  options:
    cache_size: 200000
default_zone:
  strict_testing: false
  timeout: 4
proactive_policy_fetching:
  enabled: false
EOF
  tb_config "$TB_DIR/run/ours.toml" 'log.level="warn"' policy.txt_recheck_interval=86400 \
    policy.memory_cache_entries=200000 "socketmap.socket=\"inet:$PORT@${ADDR[ours]}\""
  printf '%s\n' "${BENCH_OURS_SOCKETMAP:-}" >>"$TB_DIR/run/ours.toml"  # [socketmap] is the last section
}

# server_start SIDE: the server alone in the namespace, with empty caches.
# Not through tb_exec: $! must be the server itself (ip and env exec it).
server_start() {
  local side=$1 log="$TB_DIR/run/$1.log" i
  case $side in
    peer) ip netns exec "$TB_NS" env SSL_CERT_FILE="$TB_CA_FILE" "$PEER_DAEMON" -c "$TB_DIR/run/peer.yml" \
            -v warn >>"$log" 2>&1 & ;;
    ours) rm -f "$TB_DIR/run/ours.db" "$TB_DIR/run/ours.db-wal" "$TB_DIR/run/ours.db-shm"
          ip netns exec "$TB_NS" "$OURS_BIN" -c "$TB_DIR/run/ours.toml" >>"$log" 2>&1 & ;;
    null) ip netns exec "$TB_NS" "$LOAD_BIN" --null-server "inet:${ADDR[null]}:$PORT" >>"$log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for ((i = 0; i < 100; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "$side exited before opening its socket: $(tail -n 3 "$log")"
    tb_exec bash -c "exec 3<>/dev/tcp/${ADDR[$side]}/$PORT" 2>/dev/null && { sleep "$SETTLE_SECONDS"; return 0; }
    sleep 0.1
  done
  die "$side: nothing listens on ${ADDR[$side]}:$PORT after 10 s"
}

server_stop() {
  local i
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null
  for ((i = 0; i < 100; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVER_PID/status"; }

# load SIDE ARGS...: one socketmap_load run against the running server; its line in LINE.
load() {
  local side=$1; shift
  LINE=$(timeout --foreground "$RUN_TIMEOUT" ip netns exec "$TB_NS" "$LOAD_BIN" \
           --connect "inet:${ADDR[$side]}:$PORT" --server-pid "$SERVER_PID" "$@" 2>"$TB_DIR/run/load.err") ||
    die "$side: socketmap_load $*: $(tail -n 3 "$TB_DIR/run/load.err") [$LINE]"
}
fig() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $LINE"; }

# verify SIDE: one lookup answers the enforce policy.
verify() {
  local reply
  head -n 1 "$LIST" >"$TB_DIR/run/one.txt"
  server_start "$1"
  load "$1" --mode cold --keys "$TB_DIR/run/one.txt" --print-replies
  reply=$(cut -f2 "$TB_DIR/run/load.err")
  server_stop
  [[ $reply == "$EXPECT_DATA"* ]] || die "$1 answers '$reply' for $(cat "$TB_DIR/run/one.txt"), want '$EXPECT_DATA...'"
  say "check: $1 answers $(cat "$TB_DIR/run/one.txt") -> $reply"
}

warm() {  # warm SIDE RUN
  local c
  for c in "${WARM_CONNS[@]}"; do
    load "$1" --mode warm --connections "$c" --seconds "$WARM_SECONDS" --keys "$LIST"
    say "  $1 run $2 warm c=$c: $LINE"
    [ "$1" = null ] || [ "$(fig ok)" = "$(fig requests)" ] || warn "$1 warm c=$c: not every reply OK"
    [ "$(fig loadgen_cpu_pct)" -lt "$LOADGEN_BUSY_PCT" ] ||
      warn "$1 warm c=$c: socketmap_load used $(fig loadgen_cpu_pct)% of a CPU (may be its limit)"
    FIG[$1.qps$c.$2]=$(fig qps) FIG[$1.p50_$c.$2]=$(fig p50_us) FIG[$1.p99_$c.$2]=$(fig p99_us)
    FIG[$1.cpu$c.$2]=$(fig server_cpu_us_per_req) FIG[$1.gen$c.$2]=$(fig loadgen_cpu_pct)
  done
}

cold() {  # cold SIDE RUN CONNECTIONS
  load "$1" --mode cold --connections "$3" --keys "$LIST"
  say "  $1 run $2 cold c=$3: $LINE"
  [ "$(fig ok)" = "$DOMAINS" ] || warn "$1 cold c=$3: $(fig ok)/$DOMAINS answered OK"
  FIG[$1.cold$3.$2]=$(fig seconds) FIG[$1.coldok$3.$2]=$(fig ok)
}

# one_run SIDE RUN: cold per connection count (fresh server each), then warm
# and the memory after 2,000 on the last server.
one_run() {
  local side=$1 run=$2 c
  if [ "$side" = null ]; then server_start null; warm null "$run"; server_stop; return; fi
  for c in "${COLD_CONNS[@]}"; do
    server_start "$side"
    [ "$c" = "${COLD_CONNS[0]}" ] && FIG[$side.rss_idle.$run]=$(rss_kb)
    cold "$side" "$run" "$c"
    [ "$c" = "${COLD_CONNS[-1]}" ] || server_stop
  done
  FIG[$side.rss_2000.$run]=$(rss_kb)
  warm "$side" "$run"
  server_stop
}

rss_100k() {  # rss_100k SIDE
  local total
  total=$(wc -l <"$RSS_LIST")
  server_start "$1"
  load "$1" --mode cold --connections 100 --keys "$RSS_LIST"
  say "  $1 100k fill: $LINE"
  [ "$(fig ok)" = "$total" ] || warn "$1 100k fill: $(fig ok)/$total answered OK"
  FIG[$1.rss_100k.1]=$(rss_kb) FIG[$1.fill_100k.1]=$(fig seconds) FIG[$1.fillok_100k.1]=$(fig ok)
  server_stop
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
med() {  # med SIDE FIGURE: the median over the runs, "-" when not measured
  local run
  for ((run = 1; run <= RUNS; run++)); do
    [ -n "${FIG[$1.$2.$run]:-}" ] && echo "${FIG[$1.$2.$run]}"
  done | median
}

row() {  # row LABEL FIGURE [SCALE [noratio]]: null, peer, ours, ours/peer
  local n p o
  n=$(med null "$2") p=$(med peer "$2") o=$(med ours "$2")
  awk -v l="$1" -v n="$n" -v p="$p" -v o="$o" -v s="${3:-1}" -v nr="${4:-}" '
    function f(x) { return x == "-" ? "-" : (x == int(x) && s == 1) ? sprintf("%d", x) : sprintf("%.1f", x / s) }
    BEGIN { r = (nr != "" || p == "-" || o == "-" || p == 0) ? "-" : sprintf("%.2f", o / p)
            printf "  %-34s %10s %10s %10s %9s\n", l, f(n), f(p), f(o), r }'
}

summary() {
  local c
  say "== summary: median of $RUNS runs; $DOMAINS domains; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$OURS" = yes ] || say "  ours: skipped (no socketmap in this build)"
  printf '  %-34s %10s %10s %10s %9s\n' figure null peer ours ours/peer
  for c in "${WARM_CONNS[@]}"; do
    row "warm qps, $c conn (higher better)" "qps$c"
    row "warm p50 us, $c conn" "p50_$c"
    row "warm p99 us, $c conn" "p99_$c"
    row "server CPU us/query, $c conn" "cpu$c"
    row "socketmap_load CPU %, $c conn" "gen$c" 1 noratio
  done
  for c in "${COLD_CONNS[@]}"; do
    row "cold wall s, $c conn" "cold$c"
    row "cold answered OK of $DOMAINS, $c conn" "coldok$c"
  done
  row "VmRSS MiB idle" rss_idle 1024
  row "VmRSS MiB, $DOMAINS cached" rss_2000 1024
  if [ "$RSS_DOMAINS" -gt 0 ]; then
    row "VmRSS MiB, $((DOMAINS + RSS_DOMAINS)) cached (1 run)" rss_100k 1024
    row "fill wall s, $((DOMAINS + RSS_DOMAINS)) (1 run)" fill_100k
    row "fill answered OK (1 run)" fillok_100k
  fi
  say "  ours/peer: above 1 is more for ours (better for qps, worse for time, CPU and memory)"
}

main() {
  local start=$SECONDS run side sides=(null peer)
  prerequisites
  bed_up
  [ "$OURS" = yes ] && sides+=(ours)
  say "bed: namespace $TB_NS, $DOMAINS domains + $RSS_DOMAINS (memory) in plain.test; $CERTS certificates"
  verify peer
  if [ "$OURS" = yes ]; then verify ours; else say "ours: skipped (no socketmap in this build)"; fi
  for ((run = 1; run <= RUNS; run++)); do
    for side in "${sides[@]}"; do one_run "$side" "$run"; done
  done
  if [ "$RSS_DOMAINS" -gt 0 ]; then
    for side in "${sides[@]}"; do [ "$side" = null ] || rss_100k "$side"; done
  fi
  summary
  say "total time $((SECONDS - start))s"
}

main "$@"
