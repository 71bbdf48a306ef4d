#!/usr/bin/env bash
# Daemon memory benchmark (not a CI test): peak RSS of the real
# mta-sts-milter daemon after deciding for BENCH_DOMAINS (100,000) distinct
# recipient domains whose policies were seeded with `mta-sts-milter cache
# import`, against a baseline that carries the same traffic for ONE cached
# domain, so the difference is the memory the cached domains cost.
#
#   1. bed   tests/integration/lib/mailbed.sh: one SMTP peer mx.rss.plain.test
#            (STARTTLS, valid test-CA certificate; mb_mx_add) and, in the
#            unsigned zone, wildcards `*.rss IN MX 10 mx.rss` and
#            `*.rss IN TXT "v=STSv1; id=1"` (also covering _mta-sts.<domain>),
#            so 100,000 domains need no zone records; checked with dig in the
#            namespace for a random domain. The daemon is copied into the
#            bed's directory first and that copy does the imports.
#   2. seed  BENCH_DOMAINS policies dNNNNNN.rss.plain.test in the `cache
#            export` JSON-lines format (enforce, mx: mx.rss.plain.test, txt
#            id "1", fetched_at/last_checked = now, max_age 604800) and
#            `cache import` them into a fresh store; prints import time and
#            the store's size (db + wal). The baseline store gets one policy,
#            base.rss.plain.test, the same way.
#   3..6 for the baseline, then the 100k store: start the daemon
#            (mb_milter_start; mb_milter_config with store.path at that store,
#            policy.txt_recheck_interval=86400 so cached policies are used
#            without a TXT lookup), read VmRSS/VmHWM from /proc/PID/status
#            2 s after start (idle), drive it with tests/bench/milter_driver.py
#            (milter protocol 6 straight to its socket, BENCH_CONNECTIONS
#            parallel connections), read VmHWM (peak) and VmRSS again, check
#            the decision log, stop it with SIGTERM and time its exit.
#            Traffic: main = every domain once, BENCH_RCPTS recipients per
#            message (one decision per domain); baseline = BENCH_DOMAINS
#            messages of one recipient to base.rss.plain.test (the same
#            number of decisions, all for one cached domain). The main daemon
#            then gets BENCH_PASSES - 1 more passes over the same domains (all
#            in its memory cache by then): RSS that keeps growing pass after
#            pass would be a leak.
#   7. extra `cache refresh` (nothing due) on both stores under /usr/bin/time:
#            the daemon's background refresher runs the same pass 5 minutes
#            after start and every 5 minutes, reading the whole store into
#            memory at once (SqliteStore::list). A default run ends before the
#            daemon's first pass; BENCH_REFRESH_WAIT=1 holds the main daemon
#            idle until just after it and reads its VmHWM again.
#
# Sanity checks (a broken bed exits non-zero): every RCPT answered 'c'
# (continue; any tempfail means the bed is broken), one decision line per
# domain (per message in the baseline) with source=cache tls=verified
# action=continue, no NOQUEUE line, no request reached nginx (no policy
# fetch), the daemon alive after the traffic, exit status 0 within
# BENCH_STOP_TIMEOUT s of SIGTERM, last_used written to the store for every
# domain used. The shutdown time is printed, with a warning above 10 s (the
# bound of mailbed.sh's mb_milter_stop, which this script does not use for
# that reason: at shutdown the daemon writes last_used one row per domain).
#
# Prints: domains, import time, store size, then per daemon and pass idle
# VmRSS, peak (VmHWM), VmRSS after, RssAnon/RssFile, decisions/s through the
# socket, decision time p50/p99 (elapsed_ms of the log lines), the load
# average; finally per-domain bytes = (peak - idle) / domains for the 100k
# daemon after its first pass, the same with the baseline's growth
# subtracted, and the ratios of peaks and of growths.
#
# Usage: bash tests/bench/run_daemon_rss_bench.sh        (as root)
#   MTASTS_BIN          the daemon (default: <repo>/build/milter/mta-sts-milter;
#                       copied into the bed's directory first, so a rebuild
#                       during the run changes nothing)
#   BENCH_DOMAINS       distinct cached domains (default 100000; the daemon's
#                       policy.memory_cache_entries default is also 100000)
#   BENCH_CONNECTIONS   parallel milter connections (default 8)
#   BENCH_RCPTS         recipients per message, main run (default 250; keep a
#                       message well inside decision.message_budget_ms, 20 s)
#   BENCH_PASSES        passes over the domains, main daemon (default 2)
#   BENCH_REFRESH_WAIT  1: read the main daemon's memory again after its first
#                       background refresher pass (adds ~2-3 minutes)
#   BENCH_STOP_TIMEOUT  seconds to wait for exit after SIGTERM (default 120)
#   TB_KEEP=1           keep the bed's temporary directory (logs, stores)
# Needs the packages of scripts/setup.sh (NSD, Unbound, nginx, dig, jq,
# sqlite3) and python3. A default run takes about 2.5 minutes on a 2-core
# machine (6 minutes with BENCH_REFRESH_WAIT=1 BENCH_PASSES=4).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../integration/lib/mailbed.sh
source "$ROOT/tests/integration/lib/mailbed.sh"
MTASTS_SRC=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
DOMAINS=${BENCH_DOMAINS:-100000}
CONNECTIONS=${BENCH_CONNECTIONS:-8}
RCPTS=${BENCH_RCPTS:-250}
PASSES=${BENCH_PASSES:-2}
REFRESH_WAIT=${BENCH_REFRESH_WAIT:-0}
REFRESHER_FIRST_PASS=300             # s after start: daemon.cpp kRefreshPeriod
STOP_TIMEOUT=${BENCH_STOP_TIMEOUT:-120}
DRIVER="$HERE/milter_driver.py"
ZONE_LABEL=rss                       # rss.plain.test
DOMAIN_FORMAT="d%06d.$ZONE_LABEL.plain.test"
MX_HOST="mx.$ZONE_LABEL.plain.test"
BASE_DOMAIN="base.$ZONE_LABEL.plain.test"
MAX_AGE=604800
SETTLE_SECONDS=2                     # idle: after start-up work (threads, DNS) is done
declare -A FIG=()                    # figures, "<case>.<name>" -> value

die() { echo "run_daemon_rss_bench: error: $*" >&2; exit 1; }
say() { echo "$*"; }

bed_up() {
  [ -x "$MTASTS_SRC" ] || die "no mta-sts-milter at $MTASTS_SRC (set MTASTS_BIN)"
  mailbed_up || die "mail bed did not start"
  { mkdir -p "$MB_DIR/bin" && cp "$MTASTS_SRC" "$MB_DIR/bin/mta-sts-milter"; } || die "copy the daemon"
  MTASTS_BIN="$MB_DIR/bin/mta-sts-milter"
  # The MX host and its peer; the wildcards give every dNNNNNN.rss domain
  # (and its _mta-sts name) an answer without one zone record per domain.
  mb_mx_add plain "$ZONE_LABEL" good || die "MX host $MX_HOST"
  tb_dns_set plain "_wildcard.$ZONE_LABEL" \
    "*.$ZONE_LABEL IN MX 10 mx.$ZONE_LABEL" "*.$ZONE_LABEL IN TXT \"v=STSv1; id=1\""
  mb_commit || die "bed commit (DNS, nginx, SMTP peer)"
  dns_check
}

# A random domain gets the MX and the TXT record, the MX host its address,
# and the peer answers on port 25.
dns_check() {
  local domain mx txt addr
  # shellcheck disable=SC2059  # DOMAIN_FORMAT is our printf format
  printf -v domain "$DOMAIN_FORMAT" $(( (RANDOM * 32768 + RANDOM) % DOMAINS + 1 ))
  mx=$(tb_exec dig +short MX "$domain")
  txt=$(tb_exec dig +short TXT "_mta-sts.$domain")
  addr=$(tb_exec dig +short A "$MX_HOST")
  [ "$mx" = "10 $MX_HOST." ] || die "MX of $domain: '$mx'"
  [ "$txt" = '"v=STSv1; id=1"' ] || die "TXT of _mta-sts.$domain: '$txt'"
  mb_wait_port "$addr" 25 20 || die "peer $MX_HOST ($addr) does not answer on port 25"
  say "bed: namespace $TB_NS; $domain MX $mx; _mta-sts TXT $txt; $MX_HOST A $addr (STARTTLS, test-CA certificate)"
}

# seed_lines FORMAT FIRST COUNT: `cache export` JSON lines, one per domain.
seed_lines() {
  awk -v fmt="$1" -v first="$2" -v n="$3" -v now="$(date +%s)" -v mx="$MX_HOST" -v age="$MAX_AGE" 'BEGIN {
    raw = "version: STSv1\\nmode: enforce\\nmx: " mx "\\nmax_age: " age "\\n"
    for (i = first; i < first + n; i++)
      printf "{\"domain\":\"%s\",\"txt_id\":\"1\",\"raw\":\"%s\",\"fetched_at\":%d,\"last_checked\":%d}\n",
        sprintf(fmt, i), raw, now, now
  }'
}

# store_size DB: bytes of the store file and its WAL.
store_size() { du -cb "$1" "$1-wal" 2>/dev/null | awk 'END { print $1 }'; }

# seed CASE FORMAT COUNT: config $MB_DIR/CASE.toml (store $MB_DIR/CASE.db,
# tb_config's rule) and COUNT policies imported into that fresh store.
seed() {
  local c=$1 format=$2 count=$3 start ms
  mb_milter_config "$MB_DIR/$c.toml" policy.txt_recheck_interval=86400 || die "config $c"
  seed_lines "$format" 1 "$count" >"$MB_DIR/$c.jsonl" || die "seed file $c"
  start=$(date +%s%N)
  "$MTASTS_BIN" -c "$MB_DIR/$c.toml" cache import "$MB_DIR/$c.jsonl" >"$MB_DIR/$c.import.log" 2>&1 ||
    die "cache import ($c): $(tail -n 3 "$MB_DIR/$c.import.log")"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  grep -q "^imported=$count rejected=0\$" "$MB_DIR/$c.import.log" ||
    die "cache import ($c): $(tail -n 1 "$MB_DIR/$c.import.log")"
  FIG[$c.import_ms]=$ms
  FIG[$c.db_bytes]=$(store_size "$MB_DIR/$c.db")
  say "seed $c: $count policies imported in $(awk -v m="$ms" 'BEGIN { printf "%.2f", m / 1000 }') s" \
      "($(awk -v m="$ms" -v n="$count" 'BEGIN { printf "%.0f", n * 1000 / (m ? m : 1) }') policies/s);" \
      "store $(mib "${FIG[$c.db_bytes]}") MiB (db + wal)"
}

# status_kb PID FIELD: a field of /proc/PID/status in kB (VmRSS, VmHWM, ...).
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
kb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# read_memory CASE WHEN: VmRSS, VmHWM, RssAnon, RssFile of the daemon now.
read_memory() {
  local c=$1 when=$2 field
  kill -0 "$MB_MILTER_PID" 2>/dev/null || die "$c: daemon gone ($when): $(tail -n 3 "$MB_DIR/$c.log")"
  for field in VmRSS VmHWM RssAnon RssFile Threads; do
    FIG[$c.$when.$field]=$(status_kb "$MB_MILTER_PID" "$field")
  done
}

# drive CASE PASS: one pass of CASE's traffic through the daemon's socket;
# queue ids begin with PASS (upper case), so each pass's lines can be told apart.
drive() {
  local c=$1 pass=$2 args rc
  if [ "$c" = main ]; then
    args=(--format "$DOMAIN_FORMAT" --count "$DOMAINS" --rcpts "$RCPTS")
  else
    args=(--domain "$BASE_DOMAIN" --count "$DOMAINS" --rcpts 1)
  fi
  tb_exec python3 "$DRIVER" --port "$MB_MILTER_PORT" --connections "$CONNECTIONS" \
    --qid-prefix "${pass^^}" "${args[@]}" >"$MB_DIR/$pass.driver.out" 2>"$MB_DIR/$pass.driver.err"
  rc=$?
  say "  driver: $(cat "$MB_DIR/$pass.driver.out")"
  [ $rc = 0 ] || die "$pass: not every RCPT continued (a tempfail means the bed is broken): $(head -n 5 "$MB_DIR/$pass.driver.err")"
  FIG[$pass.elapsed]=$(grep -o 'elapsed_s=[0-9.]*' "$MB_DIR/$pass.driver.out" | cut -d= -f2)
}

# decision_lines CASE PASS: the daemon's decision lines of one pass (queue
# ids: PASS, the driver's two-digit worker number, Q, the message number).
decision_lines() { grep -E "decision queue_id=${2^^}[0-9]{2}Q" "$MB_DIR/$1.log"; }

# elapsed_quantiles CASE PASS: p50, p99 and max of the lines' elapsed_ms.
elapsed_quantiles() {
  decision_lines "$1" "$2" | grep -o 'elapsed_ms=[0-9]*' | cut -d= -f2 | sort -n |
    awk '{ v[NR] = $1 } END { printf "p50 %d ms, p99 %d ms, max %d ms", v[int((NR + 1) / 2)], v[int((NR * 99 + 99) / 100)], v[NR] }'
}

# check_decisions CASE PASS: one line per decision (BENCH_DOMAINS), all from
# the cache with a verified MX; in main every domain once; nothing logged
# without a queue id, no policy fetch.
check_decisions() {
  local c=$1 pass=$2 want=$DOMAINS n good domains
  for _ in $(seq 50); do  # lines are written at end of message; the last may trail
    [ "$(decision_lines "$c" "$pass" | wc -l)" -ge "$want" ] && break; sleep 0.1
  done
  n=$(decision_lines "$c" "$pass" | wc -l)
  good=$(decision_lines "$c" "$pass" | grep -c ' source=cache .*tls=verified .*action=continue ')
  domains=$(decision_lines "$c" "$pass" | grep -o ' domain=[^ ]*' | sort -u | wc -l)
  [ "$n" = "$want" ] || die "$pass: $n decision lines, want $want"
  [ "$good" = "$want" ] ||
    die "$pass: $good of $want decisions source=cache tls=verified action=continue; e.g. $(decision_lines "$c" "$pass" | grep -v ' source=cache .*action=continue ' | head -n 1)"
  [ "$c" = base ] || [ "$domains" = "$DOMAINS" ] || die "$pass: $domains distinct domains decided, want $DOMAINS"
  ! grep -q 'queue_id=NOQUEUE' "$MB_DIR/$c.log" || die "$pass: NOQUEUE decision lines: $(grep -m1 NOQUEUE "$MB_DIR/$c.log")"
  [ ! -s "$TB_DIR/nginx/access.log" ] || die "$pass: nginx got requests (a policy fetch): $(head -n 2 "$TB_DIR/nginx/access.log")"
  say "  decisions: $n lines, $good source=cache tls=verified action=continue, $domains distinct domain(s);" \
      "0 NOQUEUE; 0 nginx requests; STARTTLS probes at the peer so far: $(grep -c ' starttls-ok' "$MB_DIR/peers/peers.log")"
  say "  decision time (elapsed_ms): $(elapsed_quantiles "$c" "$pass")"
}

# memory_line CASE WHEN: the readings of read_memory, for people.
memory_line() {
  local c=$1 w=$2
  echo "VmHWM (peak) $(kb "${FIG[$c.$w.VmHWM]}")  VmRSS $(kb "${FIG[$c.$w.VmRSS]}")" \
       "(anon $(kb "${FIG[$c.$w.RssAnon]}"), file $(kb "${FIG[$c.$w.RssFile]}"))  threads ${FIG[$c.$w.Threads]}"
}

# run_pass CASE PASS: traffic, checks, then the memory reading "PASS".
run_pass() {
  local c=$1 pass=$2
  drive "$c" "$pass"
  read_memory "$c" "$pass"
  check_decisions "$c" "$pass"
  FIG[$pass.load]=$(cut -d' ' -f1-3 /proc/loadavg)
  say "  after: $(memory_line "$c" "$pass")  load ${FIG[$pass.load]}"
}

# measure CASE: start, idle reading, traffic (main: a second, warm pass over
# the same domains as a leak check), stop with SIGTERM.
measure() {
  local c=$1 n
  if [ "$c" = main ]; then
    say "== main: $DOMAINS cached domains, each once, $RCPTS recipients per message, $CONNECTIONS connections"
  else
    say "== base: $DOMAINS messages of 1 recipient to $BASE_DOMAIN (1 cached domain), $CONNECTIONS connections"
  fi
  : >"$MB_DIR/$c.log"
  mb_milter_start "$MB_DIR/$c.toml" "$MB_DIR/$c.log" || die "$c: daemon did not start"
  STARTED=$SECONDS
  sleep "$SETTLE_SECONDS"
  read_memory "$c" idle
  say "  idle: VmRSS $(kb "${FIG[$c.idle.VmRSS]}")  VmHWM $(kb "${FIG[$c.idle.VmHWM]}")  threads ${FIG[$c.idle.Threads]}"
  run_pass "$c" "$c"
  if [ "$c" = main ]; then
    for ((n = 2; n <= PASSES; n++)); do
      say "-- main, pass $n: the same $DOMAINS domains again (all in the memory cache)"
      run_pass main "pass$n"
    done
    [ "$REFRESH_WAIT" != 1 ] || wait_for_refresher
  fi
  stop_daemon "$c"
}

# The daemon's background refresher first runs REFRESHER_FIRST_PASS s after
# start and reads every stored policy at once (SqliteStore::list): hold the
# main daemon idle until just after it, then read the memory again.
wait_for_refresher() {
  local left=$((STARTED + REFRESHER_FIRST_PASS + 15 - SECONDS))
  say "-- main, idle until its first refresher pass (${REFRESHER_FIRST_PASS} s after start): waiting ${left} s"
  [ "$left" -le 0 ] || sleep "$left"
  read_memory main refresher
  say "  after the refresher pass: $(memory_line main refresher)"
}

# stop_daemon CASE: SIGTERM, then how long the daemon takes to exit and with
# what status. Like mb_milter_stop, but it waits STOP_TIMEOUT seconds, not
# 10: at shutdown the daemon writes every policy's last_used to the store,
# one row per domain used since start, and that is part of what we measure.
stop_daemon() {
  local c=$1 start rc i used
  start=$(date +%s%N)
  kill -TERM "$MB_MILTER_PID" 2>/dev/null
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do kill -0 "$MB_MILTER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$MB_MILTER_PID" 2>/dev/null && kill -KILL "$MB_MILTER_PID" 2>/dev/null
  wait "$MB_MILTER_PID" 2>/dev/null; rc=$?
  MB_MILTER_PID=""
  FIG[$c.stop_s]=$(awk -v ns="$(( $(date +%s%N) - start ))" 'BEGIN { printf "%.1f", ns / 1e9 }')
  used=$(sqlite3 -readonly "$MB_DIR/$c.db" 'SELECT count(*) FROM policies WHERE last_used > fetched_at;')
  [ "$rc" = 0 ] ||
    die "$c: daemon exit status $rc ${FIG[$c.stop_s]} s after SIGTERM (last_used written for $used policies): $(tail -n 2 "$MB_DIR/$c.log")"
  ! grep -q 'internal-error\|event=flush-failed' "$MB_DIR/$c.log" ||
    die "$c: daemon logged: $(grep -m1 'internal-error\|flush-failed' "$MB_DIR/$c.log")"
  say "  SIGTERM: exit status 0 after ${FIG[$c.stop_s]} s; last_used written for $used of $(expected_used "$c") policies"
  [ "$used" = "$(expected_used "$c")" ] || die "$c: last_used written for $used policies, want $(expected_used "$c")"
  awk -v s="${FIG[$c.stop_s]}" 'BEGIN { exit !(s > 10) }' &&
    say "  WARNING: shutdown took ${FIG[$c.stop_s]} s: over mailbed.sh's 10 s stop bound (mb_milter_stop would SIGKILL)" \
        "$(awk -v s="${FIG[$c.stop_s]}" 'BEGIN { if (s > 20) print "and over contrib/systemd TimeoutStopSec=20" }')"
  return 0
}
expected_used() { if [ "$1" = main ]; then echo "$DOMAINS"; else echo 1; fi; }
# refresh_pass CASE: peak RSS of one `cache refresh` (no policy due, so no
# fetch): the pass loads every stored policy at once.
refresh_pass() {
  local c=$1 out="$MB_DIR/$1.refresh.time" peak_kb secs
  tb_exec /usr/bin/time -f '%M %e' -o "$out" "$MTASTS_BIN" -c "$MB_DIR/$c.toml" cache refresh \
    >"$MB_DIR/$c.refresh.out" 2>"$MB_DIR/$c.refresh.err" || die "cache refresh ($c): $(tail -n 2 "$MB_DIR/$c.refresh.err")"
  grep -q '"refreshed":0' "$MB_DIR/$c.refresh.out" || die "cache refresh ($c) refreshed something: $(cat "$MB_DIR/$c.refresh.out")"
  read -r peak_kb secs <"$out"
  FIG[$c.refresh_kb]=$peak_kb
  FIG[$c.refresh_s]=$secs
}

# summary_row LABEL CASE PASS: idle of CASE, the readings after PASS.
summary_row() {
  local c=$2 p=$3
  [ -n "${FIG[$c.$p.VmHWM]:-}" ] || return 0
  awk -v l="$1" -v i="${FIG[$c.idle.VmRSS]}" -v h="${FIG[$c.$p.VmHWM]}" -v r="${FIG[$c.$p.VmRSS]}" \
    -v an="${FIG[$c.$p.RssAnon]}" -v f="${FIG[$c.$p.RssFile]}" -v e="${FIG[$p.elapsed]}" -v n="$DOMAINS" \
    -v load="${FIG[$p.load]}" 'BEGIN { printf "  %-10s %-8.1f %-8.1f %-8.1f %-8.1f %-8.1f %-11.0f %s\n",
      l, i / 1024, h / 1024, r / 1024, an / 1024, f / 1024, n / e, load }'
}

summary() {
  local n
  say "== summary: $DOMAINS cached domains; $CONNECTIONS connections; $(nproc) CPUs; load now $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '  %-10s %-8s %-8s %-8s %-8s %-8s %-11s %s\n' case idle peak after anon file decisions/s load
  summary_row base base base
  summary_row main main main
  for ((n = 2; n <= PASSES; n++)); do summary_row "main #$n" main "pass$n"; done
  say "  (MiB; idle = VmRSS ${SETTLE_SECONDS} s after start; peak = VmHWM, after = VmRSS (anon + file) after the traffic;" \
      "base: 1 cached domain, $DOMAINS messages of 1 recipient; main: $DOMAINS cached domains, $RCPTS recipients per message)"
  awk -v n="$DOMAINS" -v bi="${FIG[base.idle.VmRSS]}" -v bp="${FIG[base.base.VmHWM]}" \
      -v mi="${FIG[main.idle.VmRSS]}" -v mp="${FIG[main.main.VmHWM]}" 'BEGIN {
    printf "  per-domain bytes = (peak - idle) / domains, main:           %.0f\n", (mp - mi) * 1024 / n
    printf "  per-domain bytes, less the baseline growth (%+.1f MiB):      %.0f\n", (bp - bi) / 1024, ((mp - mi) - (bp - bi)) * 1024 / n
    printf "  ratio peak main / peak base: %.2f;  growth main / growth base: %s\n", mp / bp,
      (bp > bi ? sprintf("%.1f", (mp - mi) / (bp - bi)) : "-")
  }'
  [ "$PASSES" -lt 2 ] ||
    say "  passes 2..$PASSES over the same domains: VmHWM $(delta "${FIG[main.main.VmHWM]}" "${FIG[main.pass$PASSES.VmHWM]}")," \
        "VmRSS $(delta "${FIG[main.main.VmRSS]}" "${FIG[main.pass$PASSES.VmRSS]}") after pass 1 (all domains already cached:" \
        "steady growth pass after pass would be a leak)"
  [ "$REFRESH_WAIT" != 1 ] ||
    say "  main daemon after its first refresher pass: VmHWM $(kb "${FIG[main.refresher.VmHWM]}")" \
        "($(delta "${FIG[main.$(last_pass).VmHWM]}" "${FIG[main.refresher.VmHWM]}")), VmRSS $(kb "${FIG[main.refresher.VmRSS]}")"
  say "  import: $DOMAINS policies in $(awk -v m="${FIG[main.import_ms]}" 'BEGIN { printf "%.2f s", m / 1000 }');" \
      "store $(mib "${FIG[main.db_bytes]}") MiB ($(awk -v b="${FIG[main.db_bytes]}" -v n="$DOMAINS" 'BEGIN { printf "%.0f", b / n }') bytes/domain)"
  say "  refresher pass (\`cache refresh\`, nothing due; the daemon runs one every 5 min):" \
      "peak RSS $(kb "${FIG[main.refresh_kb]}") in ${FIG[main.refresh_s]} s with $DOMAINS policies," \
      "$(kb "${FIG[base.refresh_kb]}") with 1"
}
last_pass() { if [ "$PASSES" -ge 2 ]; then echo "pass$PASSES"; else echo main; fi; }
delta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f MiB", (b - a) / 1024 }'; }

main() {
  local start=$SECONDS
  [ "$(id -u)" = 0 ] || die "must run as root"
  [ "$DOMAINS" -ge 1 ] 2>/dev/null || die "BENCH_DOMAINS must be a positive number"
  [ "$PASSES" -ge 1 ] 2>/dev/null || die "BENCH_PASSES must be a positive number"
  bed_up
  say "daemon: $MTASTS_SRC (copied to $MTASTS_BIN)"
  seed base "$BASE_DOMAIN" 1
  seed main "$DOMAIN_FORMAT" "$DOMAINS"
  measure base
  measure main
  refresh_pass base
  refresh_pass main
  summary
  say "total time $((SECONDS - start))s"
}

main "$@"
