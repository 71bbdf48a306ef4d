#!/usr/bin/env bash
# Accept-rate and latency benchmark through a real MTA (not a CI test): how
# much a milter costs the MTA per message. In the mail bed's network
# namespace (tests/integration/lib/mailbed.sh) smtp-source sends to the
# private Postfix on 127.0.0.1:25 (its smtp transport runs the discard
# daemon) or, with BENCH_MTA=sendmail, to Sendmail (lib/sendmail.sh: one
# queue-only instance per case on 127.0.0.1:2600+, the case's milter in its
# .mc), in two shapes:
#   parallel  MESSAGES messages over SESSIONS parallel SMTP sessions, one
#             message per session (throughput: msg/s)
#   serial    one SMTP session sending SERIAL_MESSAGES messages back to back
#             (latency: ms per message; nothing hides a per-message stall,
#             such as a 40 ms delayed ACK behind Nagle's algorithm)
# and for each shape these cases:
#   a       no milter                   smtpd_milters empty
#   b-inet  the do-nothing milter       null_milter on 127.0.0.1:8892: every
#                                       callback, nothing declined
#   c-inet  mta-sts-milter, warm        on 127.0.0.1:8891; every recipient in
#                                       bench.plain.test, an enforce domain
#                                       whose MX (a bed peer) offers STARTTLS
#                                       with a valid certificate; policy and
#                                       probe cached by a warm-up message
#   b-unix, c-unix  the same two milters on unix sockets (a second instance
#                   of each)
# RUNS rounds, each every shape and case in turn (smtpd_milters switched by
# postfix reload); every run must deliver all its messages to discard with no
# reject, and in (c) every decision line must read source=cache tls=verified
# action=continue with no new probe reaching the MX peer. Prints each run,
# the medians and, per shape and socket type, the ratios c/b and c/a.
#
# Usage: bash tests/bench/run_postfix_bench.sh        (as root)
#   MTASTS_BIN             the milter (default: <repo>/build/milter/mta-sts-milter)
#   BUILD_DIR              build tree for null_milter (default: <repo>/build;
#                          built there when missing), or NULL_MILTER_BIN
#   BENCH_MESSAGES         messages per parallel run (default 2000)
#   BENCH_SESSIONS         parallel sessions (default 20)
#   BENCH_SERIAL_MESSAGES  messages of the one-session run (default 500)
#   BENCH_RUNS             rounds (default 5)
#   BENCH_SOCKETS          milter socket types (default "inet unix")
#   BENCH_MTA              postfix (default) or sendmail
#   TB_KEEP=1              keep the bed's temporary directory (logs)
# Both binaries are copied into the bed's directory first, so a rebuild during
# the run does not change what is measured. Exits non-zero on any failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../integration/lib/mailbed.sh
source "$ROOT/tests/integration/lib/mailbed.sh"
# shellcheck source-path=SCRIPTDIR source=lib_postfix_bench.sh
source "$HERE/lib_postfix_bench.sh"
# shellcheck source=../integration/lib/sendmail.sh
source "$ROOT/tests/integration/lib/sendmail.sh"
MTA=${BENCH_MTA:-postfix}
SM_FIRST_PORT=2600
MTASTS_SRC=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NULL_SRC=${NULL_MILTER_BIN:-$BUILD_DIR/tests/null_milter}
MESSAGES=${BENCH_MESSAGES:-2000}
SESSIONS=${BENCH_SESSIONS:-20}
SERIAL_MESSAGES=${BENCH_SERIAL_MESSAGES:-500}
RUNS=${BENCH_RUNS:-5}
read -r -a SOCKETS <<<"${BENCH_SOCKETS:-inet unix}"
WARMUP_MESSAGES=200
NULL_PORT=8892
RCPT=user@bench.plain.test
SHAPES=(parallel serial)
CASES=(a)
declare -A MILTERS=([a]="")   # each case's milter as Postfix names it (smtpd_milters)
declare -A SOCKETS_OF=([a]="") # and as libmilter and Sendmail name it
declare -A PORTS=()            # the MTA port of each case (Postfix: 25 for all)
declare -A PIDS=()       # the milter process of each b and c case (pfb_cpu_ms)
declare -A LOGS=()       # the mta-sts-milter log of each c case
declare -A LABELS=([a]="no milter")
RESULTS=""  # file: "shape case run seconds milter-cpu-ms messages" lines
WARNINGS=""  # Postfix warnings of the last run (check_accepted)

die() { echo "run_postfix_bench: error: $*" >&2; exit 1; }
say() { echo "$*"; }

cleanup() {
  local c
  sendmail_down
  pfb_null_stop
  for c in "${!LOGS[@]}"; do pfb_stop_pids "${PIDS[$c]}"; done
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

# The milters of one socket type: cases b-TYPE and c-TYPE.
milters_up() {
  local type=$1 null_socket mtasts_socket="" extra=() conf="$MB_DIR/milter-$1.toml" log="$MB_DIR/milter-$1.log"
  case $type in
    inet)
      null_socket="inet:$NULL_PORT@127.0.0.1"
      MILTERS[b-inet]="inet:127.0.0.1:$NULL_PORT"
      MILTERS[c-inet]="inet:127.0.0.1:$MB_MILTER_PORT" ;;
    unix)
      null_socket="unix:$MB_DIR/sock/null.sock" mtasts_socket="$MB_DIR/sock/mtasts.sock"
      MILTERS[b-unix]=$null_socket
      MILTERS[c-unix]="unix:$mtasts_socket"
      extra=("milter.socket=\"unix:$mtasts_socket\"" milter.socket_group='"postfix"') ;;
    *) die "unknown socket type '$type' (BENCH_SOCKETS: inet, unix)" ;;
  esac
  pfb_null_start "$MB_DIR/bin/$(basename "$NULL_SRC")" "$null_socket" "$MB_DIR/null-$type.log" ||
    die "null_milter ($type) did not start"
  PIDS[b-$type]=$PFB_NULL_PIDS_LAST
  SOCKETS_OF[b-$type]=$null_socket
  SOCKETS_OF[c-$type]=${mtasts_socket:+unix:$mtasts_socket}
  SOCKETS_OF[c-$type]=${SOCKETS_OF[c-$type]:-inet:$MB_MILTER_PORT@127.0.0.1}
  mb_milter_config "$conf" policy.txt_recheck_interval=86400 probe.success_ttl=86400 "${extra[@]}" ||
    die "milter config"
  # MB_MILTER_PID names the last one started; cleanup stops them all.
  mb_milter_start "$conf" "$log" ${mtasts_socket:+"$mtasts_socket"} || die "mta-sts-milter ($type) did not start"
  PIDS[c-$type]=$MB_MILTER_PID
  LOGS[c-$type]=$log
  LABELS[b-$type]="null_milter ($type)"
  LABELS[c-$type]="mta-sts-milter ($type)"
  CASES+=("b-$type" "c-$type")
}

bed_up() {
  local type
  mailbed_up || die "mail bed did not start"
  trap cleanup EXIT
  mkdir -p "$MB_DIR/bin" "$MB_DIR/sock" && cp "$MTASTS_SRC" "$NULL_SRC" "$MB_DIR/bin/" || die "copy binaries"
  # smtpd (user postfix) reaches the unix sockets below the bed's folders.
  chmod 711 "$TB_DIR" "$MB_DIR" && chmod 755 "$MB_DIR/sock" || die "chmod bed folders"
  MTASTS_BIN="$MB_DIR/bin/$(basename "$MTASTS_SRC")"
  mb_domain_add plain bench enforce good && mb_commit || die "bench domain"
  case $MTA in
    postfix) mb_postfix_start "$ROOT/contrib/postfix" && pfb_postfix_tune || die "Postfix did not start" ;;
    sendmail) sm_fetch || die "Sendmail packages could not be fetched" ;;
    *) die "BENCH_MTA: postfix or sendmail, not '$MTA'" ;;
  esac
  for type in "${SOCKETS[@]}"; do milters_up "$type"; done
  mta_cases_up
}

# ---------------------------------------------------------------- the MTA
# Postfix: one instance on port 25, its smtpd_milters switched per case.
# Sendmail: one instance per case (its milter is compiled into the .cf),
# each on its own port; queue-only, so accepted mail stays as qf files.
mta_cases_up() {
  local c i=0 mc
  for c in "${CASES[@]}"; do
    if [ "$MTA" = postfix ]; then PORTS[$c]=25; continue; fi
    PORTS[$c]=$((SM_FIRST_PORT + i)); i=$((i + 1))
    mc="$MB_DIR/bench-$c.mc"
    # Load-average limits off: a busy shared machine must not make Sendmail
    # refuse or delay connections in the middle of a run.
    printf "define(\`confREFUSE_LA', \`999')dnl\ndefine(\`confDELAY_LA', \`999')dnl\n" >"$mc"
    # The bed lives below /tmp (world-writable, sticky): Sendmail refuses a
    # milter socket under it unless told to trust the sticky bit.
    printf "define(\`confDONT_BLAME_SENDMAIL', \`TrustStickyBit')dnl\n" >>"$mc"
    # The contrib lines with this case's socket (case a: no milter at all).
    [ -z "${SOCKETS_OF[$c]}" ] ||
      sed "s|S=inet:8891@127.0.0.1|S=${SOCKETS_OF[$c]}|" "$ROOT/contrib/sendmail/mta-sts-milter.mc" >>"$mc"
    SM_CONTRIB_MC=$mc sm_instance "$c" "${PORTS[$c]}" && sm_start "$c" || die "Sendmail instance $c"
  done
}

# mta_switch CASE: the MTA sends the next messages through CASE's milter.
mta_switch() {
  if [ "$MTA" = postfix ]; then pfb_set_milters "${MILTERS[$1]}" && pfb_drain; else mta_drain "$1"; fi
}

# mta_send CASE MESSAGES SESSIONS [-d]: mb_smtp_source to CASE's MTA port.
mta_send() { mb_smtp_source "${PORTS[$1]}" "$RCPT" "$2" "$3" "$MB_DIR/send.err" ${4:+"$4"}; }

# mta_drain CASE: Postfix delivered everything to discard; Sendmail's queue
# of CASE is emptied (queue-only: nothing else would).
mta_drain() {
  if [ "$MTA" = postfix ]; then pfb_drain; else rm -f "$MB_DIR/sendmail/$1/queue/"*; fi
}

# decision_count LOG FROM FIELDS...: decision lines after byte FROM of LOG
# whose fields include all of FIELDS (key=value).
decision_count() {
  local log=$1 from=$2 re="decision queue_id=" kv; shift 2
  tail -c +"$((from + 1))" "$log" | grep -F "$re" | {
    local lines; lines=$(cat)
    for kv in "$@"; do lines=$(grep -E "(^| )$kv( |\$)" <<<"$lines"); done
    grep -c . <<<"$lines"
  }
}

# One message through each mta-sts-milter: the policy is fetched and the MX
# probed (source=fetched), then a second one must come from the caches.
warm_up() {
  local c from source log
  for c in "${CASES[@]}"; do
    [[ $c == c-* ]] || continue
    log=${LOGS[$c]}
    mta_switch "$c" || die "switch to $c"
    for source in fetched cache; do
      from=$(stat -c %s "$log")
      mta_send "$c" 1 1 >/dev/null || die "warm-up message refused ($c)"
      for _ in $(seq 50); do
        [ "$(decision_count "$log" "$from" domain=bench.plain.test)" = 1 ] && break; sleep 0.1
      done
      [ "$(decision_count "$log" "$from" "source=$source" tls=verified action=continue)" = 1 ] ||
        die "warm-up $c: want source=$source tls=verified action=continue, got: $(tail -c +"$((from + 1))" "$log" | grep 'decision ' | tail -n 1)"
    done
    say "warm $c: policy fetched and MX probed once; the next message used the caches"
    mta_drain "$c" || die "warm-up messages not delivered"
  done
}

# An untimed round per case and shape, so that every case meets a Postfix
# already past its first process starts and address lookups.
untimed_round() {
  local c
  for c in "${CASES[@]}"; do
    mta_switch "$c" &&
      mta_send "$c" "$WARMUP_MESSAGES" "$SESSIONS" >/dev/null &&
      mta_send "$c" "$((WARMUP_MESSAGES / 4))" 1 -d >/dev/null &&
      mta_drain "$c" || die "untimed round, case $c"
  done
}

# run SHAPE CASE N: one timed run, then its checks; appends to RESULTS.
run() {
  local shape=$1 c=$2 n=$3 log_from peer_from opens_from opens secs cpu_from=0 cpu=0 messages sessions
  local -A milter_from=()
  local k
  if [ "$shape" = parallel ]; then messages=$MESSAGES sessions=$SESSIONS; else messages=$SERIAL_MESSAGES sessions=1; fi
  mta_switch "$c" || die "switch to case $c"
  opens_from=$(pfb_settled_opens)
  log_from=$(stat -c %s "$MB_DIR/maillog" 2>/dev/null || echo 0)
  for k in "${!LOGS[@]}"; do milter_from[$k]=$(stat -c %s "${LOGS[$k]}"); done
  peer_from=$(stat -c %s "$MB_DIR/peers/peers.log")
  [ "$c" = a ] || cpu_from=$(pfb_cpu_ms "${PIDS[$c]}") || die "case $c: milter process gone"
  secs=$(mta_send "$c" "$messages" "$sessions" "$([ "$shape" = serial ] && echo -d)") ||
    die "$shape $c run $n: smtp-source failed"
  opens=$(( $(pfb_passive_opens) - opens_from ))
  [ "$c" = a ] || cpu=$(( $(pfb_cpu_ms "${PIDS[$c]}") - cpu_from )) || die "case $c: milter process gone"
  # parallel: one SMTP session per message; serial: one session in all
  check_accepted "$shape $c run $n" "$c" "$log_from" "$opens" "$messages" "$([ "$shape" = parallel ] && echo "$messages" || echo 1)"
  sleep 0.2  # decision lines are written at end of message; the last may trail
  for k in "${!LOGS[@]}"; do
    check_milter "$shape $c run $n" "$k" "$([ "$k" = "$c" ] && echo "$messages" || echo 0)" "${milter_from[$k]}" "$peer_from"
  done
  echo "$shape $c $n $secs $cpu $messages" >>"$RESULTS"
  awk -v sh="$shape" -v c="$c" -v l="${LABELS[$c]}" -v n="$n" -v s="$secs" -v m="$messages" -v cpu="$cpu" \
    'BEGIN { printf "  run %d  %-8s %-6s %-23s %7.3f s  %7.1f msg/s  %7.3f ms/msg  milter-cpu %.3f ms/msg\n",
             n, sh, c, l, s, m / s, 1000 * s / m, cpu / m }'
  [ -z "$WARNINGS" ] || say "         $MTA warnings: $WARNINGS"
}

# Every message was accepted and the switch took effect: with an inet milter
# the MTA opens one more TCP connection per SMTP session (a unix socket adds
# none). Then the queue is drained (mta_drain).
check_accepted() {
  local what=$1 c=$2 from=$3 opens=$4 messages=$5 sessions=$6 per_session=1 queued
  if [ "$MTA" = postfix ]; then
    pfb_drain || die "$what: messages not delivered"
    check_postfix_log "$what" "$from" "$messages"
  else
    queued=$(find "$MB_DIR/sendmail/$c/queue" -name 'qf*' | wc -l)
    [ "$queued" = "$messages" ] || die "$what: $queued messages in Sendmail's queue, want $messages"
    mta_drain "$c"
  fi
  [[ ${MILTERS[$c]} != inet:* ]] || per_session=2
  [ "$opens" = $((sessions * per_session)) ] ||
    die "$what: $opens TCP connections accepted, want $((sessions * per_session)) ($sessions sessions, milter ${MILTERS[$c]:-none})"
}

# Postfix delivered every message to discard, refused nothing and logged no
# milter trouble. Other warnings (e.g. cleanup's "file system clock is 1
# seconds ahead") are counted into WARNINGS, not fatal.
check_postfix_log() {
  local what=$1 from=$2 messages=$3 sent bad
  local bad_re="reject|[Mm]ilter|fatal:|panic:|error:"
  sent=$(pfb_count "$MB_DIR/maillog" "$from" "postfix/discard\[[0-9]+\]: .* to=<$RCPT>.* status=sent")
  [ "$sent" = "$messages" ] || die "$what: $sent discard deliveries in Postfix's log, want $messages"
  bad=$(pfb_count "$MB_DIR/maillog" "$from" "$bad_re")
  [ "$bad" = 0 ] ||
    die "$what: Postfix logged: $(tail -c +"$((from + 1))" "$MB_DIR/maillog" | grep -E "$bad_re" | head -n 2)"
  WARNINGS=$(tail -c +"$((from + 1))" "$MB_DIR/maillog" | grep 'warning:' | sed -E 's/^.*warning: //' |
    sort | uniq -c | awk '{ $1 = $1 "x"; print }' | paste -sd ';' -)
}

# check_milter WHAT INSTANCE WANT FROM PEER_FROM: the mta-sts-milter of
# INSTANCE logged WANT decisions, all from the caches, and no probe reached
# the peer.
check_milter() {
  local what=$1 k=$2 want=$3 from=$4 peer_from=$5 all cached probes
  all=$(decision_count "${LOGS[$k]}" "$from")
  [ "$all" = "$want" ] || die "$what: $all decision lines from mta-sts-milter $k, want $want"
  [ "$want" != 0 ] || return 0
  cached=$(decision_count "${LOGS[$k]}" "$from" source=cache tls=verified action=continue)
  [ "$cached" = "$want" ] || die "$what: $cached of $want decisions with source=cache tls=verified action=continue"
  probes=$(pfb_count "$MB_DIR/peers/peers.log" "$peer_from" " connect")
  [ "$probes" = 0 ] || die "$what: $probes probe connections reached the MX peer (probe cache missed)"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# med SHAPE CASE FIELD: median of a RESULTS field (4 seconds, 5 cpu-ms).
med() { awk -v sh="$1" -v c="$2" -v f="$3" '$1 == sh && $2 == c { print $f }' "$RESULTS" | median; }

summary_shape() {
  local shape=$1 c m s cpu type what
  if [ "$shape" = parallel ]; then
    m=$MESSAGES what="$MESSAGES messages per run, $SESSIONS parallel sessions, one message each"
  else
    m=$SERIAL_MESSAGES what="one session, $SERIAL_MESSAGES messages back to back"
  fi
  say "== $shape: $what; median of $RUNS runs"
  printf '  %-7s %-23s %-9s %-9s %-9s %-17s %s\n' case what median-s msg/s ms/msg milter-cpu-ms/msg runs-s
  for c in "${CASES[@]}"; do
    s=$(med "$shape" "$c" 4) cpu=$(med "$shape" "$c" 5)
    awk -v c="$c" -v l="${LABELS[$c]}" -v s="$s" -v m="$m" -v cpu="$cpu" \
      -v all="$(awk -v sh="$shape" -v c="$c" '$1 == sh && $2 == c { printf "%s ", $4 }' "$RESULTS")" \
      'BEGIN { printf "  %-7s %-23s %-9.3f %-9.1f %-9.3f %-17s %s\n", c, l, s, m / s, 1000 * s / m,
               (c == "a" ? "-" : sprintf("%.3f", cpu / m)), all }'
  done
  say "  ratios of medians, time per message (lower is faster; extra ms per message):"
  for type in "${SOCKETS[@]}"; do
    awk -v t="$type" -v sh="$shape" -v a="$(med "$shape" a 4)" -v b="$(med "$shape" "b-$type" 4)" \
      -v c="$(med "$shape" "c-$type" 4)" -v m="$m" 'BEGIN {
      printf "    %-4s c/b %.3f (%+.3f ms)  c/a %.3f (%+.3f ms)  b/a %.3f   target c <= b: %s\n",
             t, c / b, 1000 * (c - b) / m, c / a, 1000 * (c - a) / m, b / a, (c <= b ? "met" : "NOT met")
    }'
  done
}

main() {
  local start=$SECONDS n c shape
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v smtp-source >/dev/null || die "smtp-source (package postfix) not found"
  binaries
  bed_up
  RESULTS="$MB_DIR/results"
  : >"$RESULTS"
  say "bed: namespace $TB_NS; $MTA on 127.0.0.1 ports $(printf '%s ' "${PORTS[@]}" | tr ' ' '\n' | sort -u | paste -sd, -); milters: $(for c in "${CASES[@]:1}"; do printf '%s=%s ' "$c" "${MILTERS[$c]}"; done)"
  say "binaries: $MTASTS_SRC, $NULL_SRC (copied to $MB_DIR/bin)"
  warm_up
  untimed_round
  say "== $RUNS rounds of every shape and case, to $RCPT"
  for ((n = 1; n <= RUNS; n++)); do
    for shape in "${SHAPES[@]}"; do
      for c in "${CASES[@]}"; do run "$shape" "$c" "$n"; done
    done
  done
  say "== summary: $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
  for shape in "${SHAPES[@]}"; do summary_shape "$shape"; done
  say "total time $((SECONDS - start))s"
}

main "$@"
