#!/usr/bin/env bash
# Accept-rate benchmark through a real Postfix (not a CI test): how much a
# milter costs the MTA per message. In the mail bed's network namespace
# (tests/integration/lib/mailbed.sh) smtp-source sends MESSAGES messages over
# SESSIONS parallel SMTP sessions, one message per session, to the private
# Postfix on 127.0.0.1:25 (its smtp transport runs the discard daemon), for
#   a  no milter                 smtpd_milters empty
#   b  the do-nothing milter     null_milter: every callback, nothing declined
#   c  mta-sts-milter, warm      every recipient in bench.plain.test, an
#                                enforce domain whose MX (a bed peer) offers
#                                STARTTLS with a valid certificate; policy and
#                                probe cached by a warm-up message, TXT re-check
#                                and probe TTL at their maximum (86400 s)
# RUNS rounds, each a, b, c in turn (smtpd_milters switched by postfix
# reload); every run must deliver all its messages to discard with no reject,
# and in (c) every decision line must read source=cache tls=verified
# action=continue with no new probe reaching the MX peer. Prints each run,
# the medians and the time-per-message ratios c/b, c/a, b/a.
#
# Usage: bash tests/bench/run_postfix_bench.sh        (as root)
#   MTASTS_BIN      the milter (default: <repo>/build/milter/mta-sts-milter)
#   BUILD_DIR       build tree for null_milter (default: <repo>/build; built
#                   there when missing), or NULL_MILTER_BIN to name it
#   BENCH_MESSAGES  messages per run (default 2000)
#   BENCH_SESSIONS  parallel sessions (default 20)
#   BENCH_RUNS      runs per case (default 5)
#   TB_KEEP=1       keep the bed's temporary directory (logs)
# Both binaries are copied into the bed's directory first, so a rebuild during
# the run does not change what is measured. Exits non-zero on any failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../integration/lib/mailbed.sh
source "$ROOT/tests/integration/lib/mailbed.sh"
# shellcheck source-path=SCRIPTDIR source=lib_postfix_bench.sh
source "$HERE/lib_postfix_bench.sh"
MTASTS_SRC=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NULL_SRC=${NULL_MILTER_BIN:-$BUILD_DIR/tests/null_milter}
MESSAGES=${BENCH_MESSAGES:-2000}
SESSIONS=${BENCH_SESSIONS:-20}
RUNS=${BENCH_RUNS:-5}
WARMUP_MESSAGES=200
NULL_PORT=8892
RCPT=user@bench.plain.test
CASES=(a b c)
declare -A MILTERS=([a]="" [b]="inet:127.0.0.1:$NULL_PORT" [c]="inet:127.0.0.1:$MB_MILTER_PORT")
declare -A PIDS=()  # the milter process of cases b and c (pfb_cpu_ms)
declare -A LABELS=([a]="no milter" [b]="null_milter" [c]="mta-sts-milter (warm)")
RESULTS=""  # file: "case run seconds milter-cpu-ms" lines
WARNINGS=""  # Postfix warnings of the last run (check_postfix)
MILTER_LOG=""

die() { echo "run_postfix_bench: error: $*" >&2; exit 1; }
say() { echo "$*"; }

cleanup() {
  pfb_null_stop
  mailbed_down
}

binaries() {
  [ -x "$MTASTS_SRC" ] || die "no mta-sts-milter at $MTASTS_SRC (set MTASTS_BIN)"
  if [ ! -x "$NULL_SRC" ]; then
    [ -z "${NULL_MILTER_BIN:-}" ] || die "no null_milter at $NULL_SRC"
    say "building null_milter in $BUILD_DIR"
    cmake --build "$BUILD_DIR" --target null_milter -j2 >&2 || die "build of null_milter failed"
    [ -x "$NULL_SRC" ] || die "no $NULL_SRC after the build"
  fi
}

bed_up() {
  mailbed_up || die "mail bed did not start"
  trap cleanup EXIT
  mkdir -p "$MB_DIR/bin" && cp "$MTASTS_SRC" "$NULL_SRC" "$MB_DIR/bin/" || die "copy binaries"
  MTASTS_BIN="$MB_DIR/bin/$(basename "$MTASTS_SRC")"
  mb_domain_add plain bench enforce good && mb_commit || die "bench domain"
  mb_postfix_start "$ROOT/contrib/postfix" && pfb_postfix_tune || die "Postfix did not start"
  MILTER_LOG="$MB_DIR/milter.log"
  mb_milter_config "$MB_DIR/milter.toml" policy.txt_recheck_interval=86400 \
    probe.success_ttl=86400 || die "milter config"
  mb_milter_start "$MB_DIR/milter.toml" "$MILTER_LOG" || die "mta-sts-milter did not start"
  pfb_null_start "$MB_DIR/bin/$(basename "$NULL_SRC")" "$NULL_PORT" "$MB_DIR/null_milter.log" ||
    die "null_milter did not start"
  PIDS=([b]=$PFB_NULL_PID [c]=$MB_MILTER_PID)
}

# decision_count FROM FIELDS...: decision lines after byte FROM of the milter
# log whose fields include all of FIELDS (key=value).
decision_count() {
  local from=$1 re="decision queue_id=" kv; shift
  tail -c +"$((from + 1))" "$MILTER_LOG" | grep -F "$re" | {
    local lines; lines=$(cat)
    for kv in "$@"; do lines=$(grep -E "(^| )$kv( |\$)" <<<"$lines"); done
    grep -c . <<<"$lines"
  }
}

# One message through mta-sts-milter: the policy is fetched and the MX probed
# (source=fetched), then a second one must come from the caches.
warm_up() {
  local from source
  pfb_set_milters "${MILTERS[c]}" || die "switch to mta-sts-milter"
  for source in fetched cache; do
    from=$(stat -c %s "$MILTER_LOG")
    pfb_send 1 1 "$RCPT" "$MB_DIR/warm.err" >/dev/null || die "warm-up message refused"
    for _ in $(seq 50); do
      [ "$(decision_count "$from" domain=bench.plain.test)" = 1 ] && break; sleep 0.1
    done
    [ "$(decision_count "$from" "source=$source" tls=verified action=continue)" = 1 ] ||
      die "warm-up: want source=$source tls=verified action=continue, got: $(tail -c +"$((from + 1))" "$MILTER_LOG" | grep 'decision ' | tail -n 1)"
  done
  say "warm: policy fetched and MX probed once; the next message used the caches"
  say "  $(grep 'decision ' "$MILTER_LOG" | tail -n 1 | sed -E 's/^.*decision /decision /')"
  pfb_drain || die "warm-up messages not delivered"
}

# An untimed round per case, so that every case meets a Postfix already past
# its first process starts and address lookups.
untimed_round() {
  local c
  for c in "${CASES[@]}"; do
    pfb_set_milters "${MILTERS[$c]}" && pfb_send "$WARMUP_MESSAGES" "$SESSIONS" "$RCPT" "$MB_DIR/send.err" >/dev/null &&
      pfb_drain || die "untimed round, case $c"
  done
}

# run CASE N: one timed run, then its checks; appends to RESULTS.
run() {
  local c=$1 n=$2 log_from milter_from peer_from opens_from opens secs cpu_from=0 cpu=0
  pfb_set_milters "${MILTERS[$c]}" && pfb_drain || die "switch to case $c"
  opens_from=$(pfb_settled_opens)
  log_from=$(stat -c %s "$MB_DIR/maillog")
  milter_from=$(stat -c %s "$MILTER_LOG")
  peer_from=$(stat -c %s "$MB_DIR/peers/peers.log")
  [ "$c" = a ] || cpu_from=$(pfb_cpu_ms "${PIDS[$c]}") || die "case $c: milter process gone"
  secs=$(pfb_send "$MESSAGES" "$SESSIONS" "$RCPT" "$MB_DIR/send.err") || die "case $c run $n: smtp-source failed"
  opens=$(( $(pfb_passive_opens) - opens_from ))
  [ "$c" = a ] || cpu=$(( $(pfb_cpu_ms "${PIDS[$c]}") - cpu_from )) || die "case $c: milter process gone"
  pfb_drain || die "case $c run $n: messages not delivered"
  check_postfix "$c" "$n" "$log_from" "$opens"
  check_milter "$c" "$n" "$milter_from" "$peer_from"
  echo "$c $n $secs $cpu" >>"$RESULTS"
  awk -v c="$c" -v l="${LABELS[$c]}" -v n="$n" -v s="$secs" -v m="$MESSAGES" -v cpu="$cpu" \
    'BEGIN { printf "  run %d  %s %-22s %7.3f s  %7.1f msg/s  %6.3f ms/msg  milter-cpu %.3f ms/msg  (%d delivered, 0 rejected)\n",
             n, c, l, s, m / s, 1000 * s / m, cpu / m, m }'
  [ -z "$WARNINGS" ] || say "         Postfix warnings: $WARNINGS"
}

# Every message went to discard, nothing was refused and no milter trouble
# logged, and the switch took effect: with a milter, Postfix opens one more
# connection per session. Other warnings (e.g. cleanup's "file system clock
# is 1 seconds ahead") are counted and shown, not fatal.
check_postfix() {
  local c=$1 n=$2 from=$3 opens=$4 sent bad per_session=2
  local bad_re="reject|[Mm]ilter|fatal:|panic:|error:"
  sent=$(pfb_count "$MB_DIR/maillog" "$from" "postfix/discard\[[0-9]+\]: .* to=<$RCPT>.* status=sent")
  [ "$sent" = "$MESSAGES" ] || die "case $c run $n: $sent discard deliveries in Postfix's log, want $MESSAGES"
  bad=$(pfb_count "$MB_DIR/maillog" "$from" "$bad_re")
  [ "$bad" = 0 ] ||
    die "case $c run $n: Postfix logged: $(tail -c +"$((from + 1))" "$MB_DIR/maillog" | grep -E "$bad_re" | head -n 2)"
  [ "$c" != a ] || per_session=1
  [ "$opens" = $((MESSAGES * per_session)) ] ||
    die "case $c run $n: $opens TCP connections accepted, want $MESSAGES sessions$([ "$c" = a ] || echo " + $MESSAGES milter connections")"
  WARNINGS=$(tail -c +"$((from + 1))" "$MB_DIR/maillog" | grep 'warning:' | sed -E 's/^.*warning: //' |
    sort | uniq -c | awk '{ $1 = $1 "x"; print }' | paste -sd ';' -)
}

# Case c: one decision per message, all from the caches, no probe at the peer.
# Cases a and b: mta-sts-milter saw nothing.
check_milter() {
  local c=$1 n=$2 from=$3 peer_from=$4 want=0 all cached probes
  sleep 0.2  # decision lines are written at end of message; the last may trail
  [ "$c" = c ] && want=$MESSAGES
  all=$(decision_count "$from")
  [ "$all" = "$want" ] || die "case $c run $n: $all decision lines from mta-sts-milter, want $want"
  [ "$c" = c ] || return 0
  cached=$(decision_count "$from" source=cache tls=verified action=continue)
  [ "$cached" = "$MESSAGES" ] || die "case $c run $n: $cached of $MESSAGES decisions with source=cache tls=verified action=continue"
  probes=$(pfb_count "$MB_DIR/peers/peers.log" "$peer_from" " connect")
  [ "$probes" = 0 ] || die "case $c run $n: $probes probe connections reached the MX peer (probe cache missed)"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

summary() {
  local c med cpu
  local -A meds=()
  say "== summary: $MESSAGES messages per run, $SESSIONS sessions, one message each; median of $RUNS runs; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '  %-2s %-22s %-9s %-9s %-9s %-16s %s\n' case what median-s msg/s ms/msg milter-cpu-ms/msg runs-s
  for c in "${CASES[@]}"; do
    med=$(awk -v c="$c" '$1 == c { print $3 }' "$RESULTS" | median)
    cpu=$(awk -v c="$c" '$1 == c { print $4 }' "$RESULTS" | median)
    meds[$c]=$med
    awk -v c="$c" -v l="${LABELS[$c]}" -v s="$med" -v m="$MESSAGES" -v cpu="$cpu" \
      -v all="$(awk -v c="$c" '$1 == c { printf "%s ", $3 }' "$RESULTS")" \
      'BEGIN { printf "  %-2s %-22s %-9.3f %-9.1f %-9.3f %-16.3f %s\n", c, l, s, m / s, 1000 * s / m, cpu / m, all }'
  done
  say "  time per message, ratios of medians (lower is faster; extra ms per message):"
  awk -v a="${meds[a]}" -v b="${meds[b]}" -v c="${meds[c]}" -v m="$MESSAGES" 'BEGIN {
    printf "    c/b  %.3f  (%+.3f ms)   mta-sts-milter vs do-nothing milter\n", c / b, 1000 * (c - b) / m
    printf "    c/a  %.3f  (%+.3f ms)   mta-sts-milter vs no milter\n", c / a, 1000 * (c - a) / m
    printf "    b/a  %.3f  (%+.3f ms)   do-nothing milter vs no milter\n", b / a, 1000 * (b - a) / m
    printf "  target c <= b: %s\n", (c <= b ? "met" : "NOT met")
  }'
}

main() {
  local start=$SECONDS n c
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v smtp-source >/dev/null || die "smtp-source (package postfix) not found"
  binaries
  bed_up
  RESULTS="$MB_DIR/results"
  : >"$RESULTS"
  say "bed: namespace $TB_NS; Postfix 127.0.0.1:25 (smtp -> discard); mta-sts-milter :$MB_MILTER_PORT; null_milter :$NULL_PORT"
  say "binaries: $MTASTS_SRC, $NULL_SRC (copied to $MB_DIR/bin)"
  warm_up
  untimed_round
  say "== $RUNS rounds of a, b, c: $MESSAGES messages, $SESSIONS sessions, to $RCPT"
  for ((n = 1; n <= RUNS; n++)); do
    for c in "${CASES[@]}"; do run "$c" "$n"; done
  done
  summary
  say "total time $((SECONDS - start))s"
}

main "$@"
