#!/usr/bin/env bash
# Soak benchmark (not a CI test; issue #10): SOAK_MINUTES of steady mixed
# mail through a real Postfix and mta-sts-milter, a flood of recipients at
# slow-DNS domains every SOAK_FLOOD_EVERY_S seconds, and the daemon sampled
# every 10 s. It asks two things: does anything grow (RSS, threads,
# descriptors: a leak), and are decisions for good domains as fast while a
# flood lasts as between floods?
#
# The bed (tests/integration/lib/mailbed.sh, a private network namespace):
# Postfix on 127.0.0.1:25 (contrib snippets; smtp transport = discard) with
# the milter on 127.0.0.1:8891, and these steady domains, each with an MX peer
# offering STARTTLS with a valid test-CA certificate:
#   bench.plain.test    enforce   the "good enforce domain" of the latency figures
#   testing.plain.test  testing
#   nopol.plain.test    no policy
#   sec.secure.test     enforce, in the DNSSEC-signed zone
# DNS as in the other benchmarks: the daemon's libunbound asks NSD itself
# (stub zone test.). The slow DNS: plain.test delegates fN-slow.plain.test,
# the zone of flood N, to its own name server 127.0.1.(10+N), where
# lib/servfail_dns.py answers every query after 3 s (SERVFAIL), as an
# attacker's slow name servers would. A server of its own per flood, so that
# no flood depends on what libunbound remembers of an earlier flood's server
# (it helps little: after a flood, libunbound has been seen to answer
# SERVFAIL at once, without a query, for later floods' names and for other
# new names; the "odd" column and the reasons in the summary show it).
# Forwarding to the bed's Unbound instead, like a daemon using a local
# resolver, does not work here: libunbound's built-in local zone test.
# answers NXDOMAIN for every forwarded .test name; the daemon displaces it
# only for stub zones.
# Traffic:
#   steady  SOAK_RATE messages a second, one recipient each, domains in turn
#           from MIX below (half to bench.plain.test), one smtp-source per
#           domain and second, one SMTP session per message. Every message
#           must be accepted.
#   flood   at 60 s, then every SOAK_FLOOD_EVERY_S (none that would start in
#           the last 30 s): SOAK_FLOOD_RCPTS recipients at distinct new domains
#           dI.fN-slow.plain.test over SOAK_FLOOD_CONNS milter connections at once,
#           straight to the milter socket (lib/limits_client.py spray: MAIL,
#           RCPT, abort), as an MTA would when made to mail such domains.
# tests/bench/soak_sampler.py samples the daemon every 10 s into soak.tsv in
# the bed's mail folder (TB_KEEP=1 keeps it; columns in the helper's header).
#
# Output: the bed, the warm-up decisions, the daemon's descriptors by kind,
# one line per flood, then the table (one row per quiet minute: RSS at its
# end, max threads and fds, mean CPU %, good-domain decisions with
# p50/p99/max elapsed_ms, steady decisions that were not continue (bad) or
# had a reason other than verified/no-policy (odd: decided without their
# usual DNS answers), flood decisions; one row per 10 s sample while a flood
# lasts) and the summary: RSS/threads/fds at the start (the last sample
# before the first flood), at the end (after the traffic stopped and
# SOAK_SETTLE_S of rest) and their maximum; the values just before each
# flood (a staircase is a leak); RSS in minutes 5-10 against the last 5 (for
# other lengths the same sixths of the run); good-domain latency in flood
# against quiet windows (the daemon's elapsed_ms and smtp-source's wall time
# per batch); each steady domain's reasons before and after the first flood;
# per domain sent/delivered/decided; the load at start and end.
#
# Usage: bash tests/bench/run_soak_bench.sh        (as root)
#   SOAK_MINUTES        length of the traffic (default 30)
#   SOAK_FLOOD_EVERY_S  seconds between floods (default 300; the first at 60 s)
#   SOAK_RATE           steady messages a second (default 6)
#   SOAK_FLOOD_RCPTS    recipients per flood (default 1000)
#   SOAK_FLOOD_CONNS    milter connections per flood (default 100)
#   SOAK_SETTLE_S       rest before the end sample (default 30)
#   SOAK_THREAD_MARGIN, SOAK_FD_MARGIN
#                       allowed growth from start to end (default 4, 8)
#   MTASTS_BIN          the daemon (default <repo>/build/milter/mta-sts-milter;
#                       copied into the bed first)
#   TB_KEEP=1           keep the bed's temporary directory
# Exits non-zero when a steady message was not accepted (any reply but 250,
# or a decision other than continue), the daemon died, or threads or
# descriptors at the end exceed the start by more than the margins. Never
# sends traffic outside 127.0.0.0/8 in the namespace.
set -u
export LC_ALL=C  # EPOCHREALTIME with a dot
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LIB="$ROOT/tests/integration/lib"
# shellcheck source-path=SCRIPTDIR source=../integration/lib/mailbed.sh
source "$LIB/mailbed.sh"
# shellcheck source-path=SCRIPTDIR source=lib_postfix_bench.sh
source "$HERE/lib_postfix_bench.sh"
MTASTS_SRC=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
MINUTES=${SOAK_MINUTES:-30}
FLOOD_EVERY=${SOAK_FLOOD_EVERY_S:-300}
RATE=${SOAK_RATE:-6}
FLOOD_RCPTS=${SOAK_FLOOD_RCPTS:-1000}
FLOOD_CONNS=${SOAK_FLOOD_CONNS:-100}
SETTLE=${SOAK_SETTLE_S:-30}
GOOD=bench.plain.test
MIX=(bench.plain.test testing.plain.test bench.plain.test nopol.plain.test bench.plain.test sec.secure.test)
STEADY=(bench.plain.test testing.plain.test nopol.plain.test sec.secure.test)
SLOW_SUFFIX=-slow.plain.test  # flood N: domains dI.fN-slow.plain.test
FLOODS_MAX=0                  # floods that fit in MINUTES (slow_zones)
SAMPLER="$HERE/soak_sampler.py"
OUT=""            # the bed's mail folder: soak.tsv and the other files
NEXT=0            # index into MIX of the next steady message
FLOOD_PIDS=()
SLOW_PIDS=()      # the slow name servers
SAMPLER_PID=""
SOAK_START=""     # EPOCHREALTIME when the steady traffic began
FAILURES=()

die() { echo "run_soak_bench: error: $*" >&2; exit 1; }
say() { echo "$*"; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

cleanup() {
  local pid
  for pid in "${FLOOD_PIDS[@]}" $SAMPLER_PID; do kill "$pid" 2>/dev/null; done
  pfb_stop_pids "${SLOW_PIDS[@]}" 2>/dev/null
  mailbed_down
}

# ---------------------------------------------------------------- the bed
domains_up() {
  slow_zones &&
    mb_domain_add plain bench enforce good &&
    mb_domain_add plain testing testing good &&
    mb_domain_add plain nopol nopolicy good &&
    mb_domain_add secure sec enforce good &&
    mb_commit
}

slow_addr() { echo "127.0.1.$((10 + $1))"; }  # slow_addr N: flood N's name server

# plain.test delegates fN-slow.plain.test to ns-fN-slow.plain.test (an
# address record NSD serves itself, outside the delegated zone).
slow_zones() {
  local n label records=()
  for ((n = 1; n <= FLOODS_MAX; n++)); do
    label="f$n${SLOW_SUFFIX%.plain.test}"
    records+=("$label IN NS ns-$label" "ns-$label IN A $(slow_addr "$n")")
  done
  tb_dns_set plain slow "${records[@]}"
}

# One slow server per flood (lib/servfail_dns.py: names with "slow" after
# 3 s); every query they get is listed in slow-queries.
slow_dns_up() {
  local n
  FLOODS_MAX=$(( (MINUTES * 60 - 90) / FLOOD_EVERY + 1 ))
  [ "$FLOODS_MAX" -le 200 ] || die "more than 200 floods: raise SOAK_FLOOD_EVERY_S"
  for ((n = 1; n <= FLOODS_MAX; n++)); do
    ip netns exec "$TB_NS" python3 "$LIB/servfail_dns.py" "$(slow_addr "$n")" "$OUT/slow-queries" \
      >>"$OUT/slow-dns.log" 2>&1 &
    SLOW_PIDS+=($!)
  done
}

milter_up() {
  mb_milter_config "$OUT/milter.toml" || die "milter config"
  mb_milter_start "$OUT/milter.toml" "$OUT/milter.log" || die "mta-sts-milter did not start"
}

bed_up() {
  mailbed_up || die "mail bed did not start"
  trap cleanup EXIT
  OUT=$MB_DIR
  mkdir -p "$OUT/bin" "$OUT/err" && cp "$MTASTS_SRC" "$OUT/bin/" || die "copy the daemon"
  MTASTS_BIN="$OUT/bin/$(basename "$MTASTS_SRC")"
  slow_dns_up || die "slow DNS"
  domains_up || die "domains"
  mb_postfix_start "$ROOT/contrib/postfix" && pfb_postfix_tune || die "Postfix did not start"
  milter_up
}

# Each steady domain twice: the first message fetches the policy and probes
# the MX, the second must be decided from the caches; both continue.
warm_up() {
  local d from line pass n
  for pass in 1 2; do
    from=$(stat -c %s "$OUT/milter.log")
    for d in "${STEADY[@]}"; do
      mb_smtp_source 25 "user@$d" 1 1 "$OUT/warm.err" >/dev/null || die "warm-up message to $d refused"
    done
    for d in "${STEADY[@]}"; do
      for _ in $(seq 100); do
        line=$(tail -c +"$((from + 1))" "$OUT/milter.log" | grep " domain=$d " | tail -n 1)
        [ -n "$line" ] && break; sleep 0.1
      done
      [[ $line == *" action=continue "* ]] || die "warm-up $d: ${line:-no decision line}"
      [ "$pass" = 1 ] || say "warm $d: ${line#*decision }"
    done
  done
  # The bed is what it claims: NSD delegates each flood's zone, its server listens.
  for ((n = 1; n <= FLOODS_MAX; n++)); do
    tb_exec dig +norecurse @"$TB_DNS_ADDR" NS "f$n$SLOW_SUFFIX" | grep -qE "NS[[:space:]]+ns-f$n-" ||
      die "NSD does not delegate f$n$SLOW_SUFFIX"
    tb_exec dig +time=1 +tries=1 @"$(slow_addr "$n")" TXT "_mta-sts.probe.f$n$SLOW_SUFFIX" >/dev/null 2>&1
  done
  [ "$(grep -c '^_mta-sts\.probe\.' "$OUT/slow-queries" 2>/dev/null)" = "$FLOODS_MAX" ] ||
    die "not every slow DNS server answered: $(cat "$OUT/slow-queries" 2>/dev/null)"
  pfb_drain || die "warm-up messages not delivered"
}

# ---------------------------------------------------------------- traffic
# send_batch DOMAIN N: N messages to user@DOMAIN over N sessions at once; a
# line "start-epoch domain n wall-ms rc" in traffic.tsv, failures (any reply
# smtp-source did not expect) in send-failures.log.
send_batch() {
  local d=$1 n=$2 err="$OUT/err/$1.$BASHPID" t0 t1 rc
  t0=$EPOCHREALTIME
  tb_exec smtp-source -4 -s "$n" -m "$n" -M client.sender.test -f bench@sender.test \
    -t "user@$d" 127.0.0.1:25 >/dev/null 2>"$err"
  rc=$?
  t1=$EPOCHREALTIME
  [ "$rc" != 0 ] || [ ! -s "$err" ] || rc=1
  printf '%s\t%s\t%d\t%d\t%d\n' "$t0" "$d" "$n" $(( (${t1/./} - ${t0/./}) / 1000 )) "$rc" >>"$OUT/traffic.tsv"
  [ "$rc" = 0 ] || printf '%s %s x%d rc=%d: %s\n' "$t0" "$d" "$n" "$rc" "$(head -c 300 "$err" | tr '\n' ' ')" \
    >>"$OUT/send-failures.log"
  rm -f "$err"
}

# The next RATE messages of MIX, one smtp-source per domain, all at once.
send_tick() {
  local -A count=()
  local i d pids=()
  for ((i = 0; i < RATE; i++)); do
    d=${MIX[NEXT % ${#MIX[@]}]}
    NEXT=$((NEXT + 1))
    count[$d]=$(( ${count[$d]:-0} + 1 ))
  done
  for d in "${!count[@]}"; do
    send_batch "$d" "${count[$d]}" &
    pids+=($!)
  done
  wait "${pids[@]}"
}

# flood N: the N-th flood; "N start EPOCH" and then "N end EPOCH ANSWERED
# ASKED START_T_S SECONDS" in floods.tsv (the sampler reads the start).
flood() {
  local n=$1 out="$OUT/flood-$1.out" t0 t1 answered
  t0=$EPOCHREALTIME
  echo "$n start $t0" >>"$OUT/floods.tsv"
  tb_exec timeout 300 python3 "$LIB/limits_client.py" "$MB_MILTER_PORT" spray \
    "$FLOOD_RCPTS" "$FLOOD_CONNS" "f$n$SLOW_SUFFIX" >"$out" 2>&1
  t1=$EPOCHREALTIME
  answered=$(sed -n 's/.*answered=\([0-9]*\).*/\1/p' "$out")
  echo "$n end $t1 ${answered:-0} $FLOOD_RCPTS $(( (${t0/./} - ${SOAK_START/./}) / 1000000 ))" \
    "$(( (${t1/./} - ${t0/./}) / 1000000 ))" >>"$OUT/floods.tsv"
  say "flood $n: $(tail -n 1 "$out"); queries at its slow server $(grep -c "\.f$n$SLOW_SUFFIX" "$OUT/slow-queries")" \
    "(t=$(( (${t0/./} - ${SOAK_START/./}) / 1000000 ))s; load $(cut -d' ' -f1-3 /proc/loadavg))"
}

# One tick a second for MINUTES; floods started in the background on time.
soak_loop() {
  local start_us end_us next_flood_us tick=0 n=0 wait_us
  start_us=$(now_us)
  end_us=$((start_us + MINUTES * 60 * 1000000))
  next_flood_us=$((start_us + 60 * 1000000))
  while [ "$(now_us)" -lt "$end_us" ]; do
    kill -0 "$MB_MILTER_PID" 2>/dev/null || { FAILURES+=("the daemon died at t=$tick s"); return; }
    if [ "$(now_us)" -ge "$next_flood_us" ] && [ $((next_flood_us + 30000000)) -le "$end_us" ]; then
      n=$((n + 1))
      flood "$n" &
      FLOOD_PIDS+=($!)
      next_flood_us=$((next_flood_us + FLOOD_EVERY * 1000000))
    fi
    send_tick
    tick=$((tick + 1))
    wait_us=$((start_us + tick * 1000000 - $(now_us)))
    [ "$wait_us" -le 0 ] || sleep "$(printf '%d.%06d' $((wait_us / 1000000)) $((wait_us % 1000000)))"
  done
}

# fd_kinds PID: open descriptors by kind (socket, pipe, anon_inode:..., or the file).
fd_kinds() {
  find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | sed -E 's/:\[[0-9]+\]$//' |
    sort | uniq -c | awk '{ printf "%s=%d ", $2, $1 }'
}

# ---------------------------------------------------------------- checks
# sent / delivered / decided per steady domain; every failure into FAILURES.
check_steady() {
  local from=$1 d sent delivered decided notcont bad
  printf '  %-20s %7s %9s %8s %12s\n' domain sent delivered decided not-continue
  for d in "${STEADY[@]}"; do
    sent=$(awk -F'\t' -v d="$d" '$2 == d { n += $3 } END { print n + 0 }' "$OUT/traffic.tsv")
    delivered=$(pfb_count "$OUT/maillog" "$from" "postfix/discard\[[0-9]+\]: .* to=<user@$d>.* status=sent")
    decided=$(awk -F'\t' -v d="$d" '$4 == d' "$OUT/decisions.tsv" | wc -l)
    notcont=$(awk -F'\t' -v d="$d" '$4 == d && $5 != "continue"' "$OUT/decisions.tsv" | wc -l)
    printf '  %-20s %7d %9d %8d %12d\n' "$d" "$sent" "$delivered" "$decided" "$notcont"
    [ "$sent" = "$delivered" ] || FAILURES+=("$d: $sent sent, $delivered delivered")
    [ "$sent" = "$decided" ] || FAILURES+=("$d: $sent sent, $decided decision lines")
    [ "$notcont" = 0 ] || FAILURES+=("$d: $notcont decisions not continue")
  done
  if [ -s "$OUT/send-failures.log" ]; then
    FAILURES+=("$(wc -l <"$OUT/send-failures.log") smtp-source batches failed, first: $(head -n 1 "$OUT/send-failures.log")")
  fi
  bad=$(pfb_count "$OUT/maillog" "$from" "milter-reject|reject:|warning: milter|fatal:|panic:")
  [ "$bad" = 0 ] || FAILURES+=("Postfix logged $bad reject/milter lines, first: $(tail -c +"$((from + 1))" "$OUT/maillog" |
    grep -E 'milter-reject|reject:|warning: milter|fatal:|panic:' | head -n 1)")
}

main() {
  local from load_start pid rc=0
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v smtp-source >/dev/null || die "smtp-source (package postfix) not found"
  [ -x "$MTASTS_SRC" ] || die "no mta-sts-milter at $MTASTS_SRC (set MTASTS_BIN)"
  bed_up
  say "bed: namespace $TB_NS, folder $OUT; daemon $MTASTS_SRC (pid $MB_MILTER_PID)"
  warm_up
  load_start=$(uptime)
  say "== soak: $MINUTES min, $RATE msg/s to ${MIX[*]}; flood of $FLOOD_RCPTS recipients over $FLOOD_CONNS connections at 60 s and every $FLOOD_EVERY s"
  say "start: $load_start"
  say "descriptors at the start: $(fd_kinds "$MB_MILTER_PID")"
  from=$(stat -c %s "$OUT/maillog")
  python3 "$SAMPLER" sample --pid "$MB_MILTER_PID" --log "$OUT/milter.log" --from "$(stat -c %s "$OUT/milter.log")" \
    --dir "$OUT" --good "$GOOD" --steady "$(IFS=,; echo "${STEADY[*]}")" --flood-suffix="$SLOW_SUFFIX" &
  SAMPLER_PID=$!
  SOAK_START=$EPOCHREALTIME
  soak_loop
  # Bash forgets finished jobs after thousands of batches: wait only for running floods.
  for pid in "${FLOOD_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && wait "$pid"; done
  FLOOD_PIDS=()
  pfb_drain 1200 || FAILURES+=("queue not empty at the end")
  touch "$OUT/rest"
  say "traffic over; resting ${SETTLE}s before the end sample"
  sleep "$SETTLE"
  kill -0 "$MB_MILTER_PID" 2>/dev/null || FAILURES+=("the daemon is gone at the end")
  say "descriptors at the end: $(fd_kinds "$MB_MILTER_PID")"
  touch "$OUT/stop"
  wait "$SAMPLER_PID" || FAILURES+=("the sampler found the daemon gone")
  SAMPLER_PID=""
  python3 "$SAMPLER" report --dir "$OUT" --good "$GOOD" \
    --thread-margin "${SOAK_THREAD_MARGIN:-4}" --fd-margin "${SOAK_FD_MARGIN:-8}" || rc=1
  check_steady "$from"
  say "start: $load_start"
  say "end:   $(uptime)"
  for f in "${FAILURES[@]}"; do say "FAIL $f"; done
  [ "$rc" = 0 ] && [ ${#FAILURES[@]} = 0 ] && { say "soak: ok"; return 0; }
  say "soak: FAILED"
  return 1
}

main "$@"
