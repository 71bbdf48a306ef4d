#!/usr/bin/env bash
# Evidence for the per-message cost of the milter on a TCP socket (not a CI
# test): a packet capture of the milter connection while a real Postfix
# receives MESSAGES messages back to back in one SMTP session, decoded by
# milter_pcap.py into one line per segment (time, gap, direction, TCP flags,
# milter packets). A stall shows as a ~40 ms gap before the segment that
# follows an unanswered one.
#
# Usage: bash tests/bench/capture_milter_session.sh   (as root)
#   CAPTURE_MTA       postfix (default) or sendmail (unpacked from Debian's
#                     packages by tests/integration/lib/sendmail.sh)
#   CAPTURE_MILTER    mta-sts (default) or null: the do-nothing baseline
#                     milter of run_postfix_bench.sh, on the same port
#   MTASTS_BIN        the milter (default: <repo>/build/milter/mta-sts-milter)
#   NULL_MILTER_BIN   the baseline (default: <repo>/build/tests/null_milter)
#   CAPTURE_MESSAGES  messages in the session (default 3)
#   CAPTURE_OUT       where to keep the pcap (default: printed, then removed)
# Needs tcpdump (scripts/setup.sh installs it).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../integration/lib/mailbed.sh
source "$ROOT/tests/integration/lib/mailbed.sh"
# shellcheck source-path=SCRIPTDIR source=lib_postfix_bench.sh
source "$HERE/lib_postfix_bench.sh"
# shellcheck source=../integration/lib/sendmail.sh
source "$ROOT/tests/integration/lib/sendmail.sh"
SM_CONTRIB_MC="$ROOT/contrib/sendmail/mta-sts-milter.mc"
MTA=${CAPTURE_MTA:-postfix}
MILTER=${CAPTURE_MILTER:-mta-sts}
NULL_MILTER_BIN=${NULL_MILTER_BIN:-$ROOT/build/tests/null_milter}
SM_PORT=2525
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
MESSAGES=${CAPTURE_MESSAGES:-3}
RCPT=user@bench.plain.test
TCPDUMP_PID=""

die() { echo "capture_milter_session: error: $*" >&2; exit 1; }

cleanup() {
  [ -z "$TCPDUMP_PID" ] || { kill "$TCPDUMP_PID" 2>/dev/null; wait "$TCPDUMP_PID" 2>/dev/null; }
  pfb_null_stop
  sendmail_down
  mailbed_down
}

# The MTA under test on 127.0.0.1:$MTA_PORT, with the milter in front.
mta_up() {
  case $MTA in
    postfix)
      MTA_PORT=25
      mb_postfix_start "$ROOT/contrib/postfix" && pfb_postfix_tune ;;
    sendmail)
      MTA_PORT=$SM_PORT
      sm_fetch && sm_instance capture "$SM_PORT" && sm_start capture ;;
    *) die "CAPTURE_MTA: postfix or sendmail, not '$MTA'" ;;
  esac
}

# send MESSAGES [-d]: one SMTP session to the MTA; prints the wall time.
send() { mb_smtp_source "$MTA_PORT" "$RCPT" "$1" 1 "$MB_DIR/send.err" ${2:+"$2"}; }

main() {
  local pcap secs
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v tcpdump >/dev/null || die "tcpdump not found (scripts/setup.sh installs it)"
  mailbed_up || die "mail bed did not start"
  trap cleanup EXIT
  mb_domain_add plain bench enforce good && mb_commit || die "bench domain"
  mta_up || die "$MTA did not start"
  case $MILTER in
    mta-sts)
      mb_milter_config "$MB_DIR/milter.toml" || die "milter config"
      mb_milter_start "$MB_DIR/milter.toml" "$MB_DIR/milter.log" || die "milter did not start" ;;
    null)
      pfb_null_start "$NULL_MILTER_BIN" "inet:$MB_MILTER_PORT@127.0.0.1" "$MB_DIR/null.log" ||
        die "null_milter did not start" ;;
    *) die "CAPTURE_MILTER: mta-sts or null, not '$MILTER'" ;;
  esac
  send 1 >/dev/null || die "warm-up message refused"
  pcap=${CAPTURE_OUT:-$MB_DIR/milter.pcap}
  ip netns exec "$TB_NS" tcpdump -i lo -n -s 0 --immediate-mode -U -w "$pcap" "tcp port $MB_MILTER_PORT" 2>"$MB_DIR/tcpdump.log" &
  TCPDUMP_PID=$!
  for _ in $(seq 50); do grep -q listening "$MB_DIR/tcpdump.log" && break; sleep 0.1; done
  secs=$(send "$MESSAGES" -d) || die "smtp-source failed"
  echo "== $MTA, $MILTER milter: $MESSAGES messages in one SMTP session: $secs s"
  sleep 0.5
  kill "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null; TCPDUMP_PID=""
  python3 "$HERE/milter_pcap.py" "$pcap" "$MB_MILTER_PORT"
  [ -z "${CAPTURE_OUT:-}" ] || echo "capture kept in $pcap"
}

main "$@"
