#!/usr/bin/env bash
# libtlsrpt datagrams both ways (README "TLSRPT datagrams"), with the real
# daemon behind a real Postfix in the bed's network namespace (lib/mailbed.sh):
#   forward-failure   mail to expired.plain.test (enforce, expired MX
#                     certificate, an _smtp._tls record): the collector socket
#                     (tlsrpt.datagram_forward, a python3 reader) gets exactly
#                     the datagram libtlsrpt would send for that probe, byte
#                     for byte: its record in "pr", the policy's lines, code
#                     204, the MX name and address
#   forward-no-record mail to good.plain.test (no _smtp._tls record): no
#                     datagram; the stop line counts it as no_record
#   socket-mode       tlsrpt.datagram_socket is a socket with milter.socket_mode
#   receive-counts    three datagrams written by hand in libtlsrpt's layout
#                     (`"key": "value"`, no "dpv") and one with "dpv": after
#                     SIGTERM the store holds their sessions for the day
#   receive-rejects   a cut datagram, an unknown failure code and a "t" that
#                     does not match: nothing stored, one log line naming
#                     the path of the bad field
#   receive-report    the next day's `report build` (faketime) has the
#                     received domain's report: 2 successful and 3 failed
#                     sessions, the failure details by result type
#
# Usage: tlsrpt_datagrams.sh   (as root)
#   MTASTS_BIN  the executable (default: <repo>/build/milter/mta-sts-milter)
#   TB_KEEP=1   keep the bed's temporary directory
# Prints "ok NAME" or "FAIL NAME: why" per check and last "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/mailbed.sh
source "$HERE/lib/mailbed.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
SMTP_CLIENT="$HERE/lib/smtp_client.py"
RECORD="v=TLSRPTv1; rua=mailto:tlsrpt@expired.plain.test"
PASSED=0
FAILED=0
COLLECTOR_PID=""

check() {  # check NAME WHY ("" = ok)
  if [ -z "$2" ]; then echo "ok $1"; PASSED=$((PASSED + 1))
  else echo "FAIL $1: $(tr '\n' ' ' <<<"$2")"; FAILED=$((FAILED + 1)); fi
}

# A libtlsrpt collector stand-in: every datagram on socket $1 saved as $2/N.json.
start_collector() {
  local socket=$1 out=$2
  mkdir -p "$out"
  python3 - "$socket" "$out" <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(os.path.join(out, "ready"), "w").close()
n = 0
while True:
    data = s.recv(16 * 1024 * 1024)
    n += 1
    with open(os.path.join(out, "%d.json" % n), "wb") as f:
        f.write(data)
PY
  COLLECTOR_PID=$!
  for _ in $(seq 50); do [ -e "$out/ready" ] && return 0; sleep 0.1; done
  return 1
}

send_datagram() {  # send_datagram SOCKET BYTES
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(sys.argv[2].encode(), sys.argv[1])' "$1" "$2"
}

smtp_to() {  # smtp_to RCPT: one message through the bed's Postfix
  tb_exec python3 "$SMTP_CLIENT" 25 "$1"
}

cleanup() {
  [ -n "$COLLECTOR_PID" ] && kill "$COLLECTOR_PID" 2>/dev/null
  mailbed_down
}

setup() {
  mailbed_up || return 1
  trap cleanup EXIT
  mb_domain_add plain expired enforce expired &&
    mb_domain_add plain good enforce good &&
    tb_dns_set plain "tlsrpt.expired" "_smtp._tls.expired IN TXT \"$RECORD\"" &&
    mb_commit &&
    mb_postfix_start "$ROOT/contrib/postfix" || return 1
  DIR="$MB_DIR/datagrams"
  mkdir -p "$DIR"
  CONF="$MB_DIR/milter.toml"
  mb_milter_config "$CONF" "tlsrpt.datagram_forward=\"$DIR/collector.sock\"" \
    "tlsrpt.datagram_socket=\"$DIR/in/tlsrpt.sock\"" 'report.contact_info="tlsrpt@sender.test"' &&
    start_collector "$DIR/collector.sock" "$DIR/collected" &&
    mb_milter_start "$CONF" "$MB_DIR/milter.log"
}

# ------------------------------------------------------------ forward
check_forward_failure() {
  local mx_ip expected got files
  smtp_to rcpt@expired.plain.test >"$DIR/expired.json"
  smtp_to rcpt@good.plain.test >"$DIR/good.json"
  mx_ip=$(tb_exec dig +short A mx.expired.plain.test)
  expected='{"dpv":"1","d":"expired.plain.test","pr":"'"$RECORD"'","policies":[{"policy-type":2,'
  expected+='"policy-domain":"expired.plain.test","policy-string":["version: STSv1","mode: enforce",'
  expected+='"mx: mx.expired.plain.test","max_age: 86400"],"mx-host":["mx.expired.plain.test"],'
  expected+='"failure-details":[{"c":204,"s":"127.0.0.1","n":"mx.expired.plain.test","r":"'"$mx_ip"'",'
  expected+='"f":"cert-expired"}],"t":1,"f":1}]}'
  for _ in $(seq 50); do
    files=$(find "$DIR/collected" -name '*.json' | wc -l)
    [ "$files" -ge 1 ] && break
    sleep 0.1
  done
  sleep 0.5  # a second datagram, if one were wrongly sent, has arrived by now
  files=$(find "$DIR/collected" -name '*.json' | wc -l)
  [ "$files" = 1 ] || { echo "$files datagrams: $(cat "$DIR"/collected/*.json 2>/dev/null)"; return; }
  got=$(cat "$DIR/collected/1.json")
  [ "$got" = "$expected" ] || echo "got '$got' want '$expected'"
}

check_socket_mode() {
  local mode
  [ -S "$DIR/in/tlsrpt.sock" ] || { echo "no socket at $DIR/in/tlsrpt.sock"; return; }
  mode=$(stat -c %a "$DIR/in/tlsrpt.sock")
  [ "$mode" = 660 ] || echo "mode $mode, want 660 (milter.socket_mode)"
}

# ------------------------------------------------------------ receive
send_received_datagrams() {
  local socket="$DIR/in/tlsrpt.sock"
  # sts, delivered after one MX failed: 1 failure (201) + 1 success.
  send_datagram "$socket" '{"d": "pfx.plain.test","pr": "v=TLSRPTv1; rua=mailto:r@pfx.plain.test","policies":[{"policy-type":2,"policy-domain": "pfx.plain.test","policy-string":["version: STSv1","mode: enforce","mx: *.pfx.plain.test","max_age: 604800"],"mx-host":["*.pfx.plain.test"],"failure-details":[{"c":201,"s": "192.0.2.1","n": "mx1.pfx.plain.test","r": "198.51.100.1","f": "starttls-not-offered"}],"t":1,"f":0}]}'
  # The same policy, delivery failed on two MX hosts: 2 failures (202, 204).
  send_datagram "$socket" '{"d": "pfx.plain.test","pr": "v=TLSRPTv1; rua=mailto:r@pfx.plain.test","policies":[{"policy-type":2,"policy-domain": "pfx.plain.test","policy-string":["version: STSv1","mode: enforce","mx: *.pfx.plain.test","max_age: 604800"],"mx-host":["*.pfx.plain.test"],"failure-details":[{"c":202,"s": "192.0.2.1","n": "mx1.pfx.plain.test","r": "198.51.100.1"},{"c":204,"s": "192.0.2.1","n": "mx2.pfx.plain.test","r": "198.51.100.2"}],"t":2,"f":1}]}'
  # A success, with the protocol version.
  send_datagram "$socket" '{"dpv": "1","d": "pfx.plain.test","pr": "v=TLSRPTv1; rua=mailto:r@pfx.plain.test","policies":[{"policy-type":2,"policy-domain": "pfx.plain.test","policy-string":["version: STSv1","mode: enforce","mx: *.pfx.plain.test","max_age: 604800"],"mx-host":["*.pfx.plain.test"],"t":0,"f":0}]}'
  # Bad ones: cut short, an unknown code, a "t" that does not match.
  send_datagram "$socket" '{"d": "bad.plain.test","pr": "x","policies":[{"policy-type":2'
  send_datagram "$socket" '{"d": "bad.plain.test","pr": "x","policies":[{"policy-type":2,"failure-details":[{"c":299}],"t":1,"f":1}]}'
  send_datagram "$socket" '{"d": "bad.plain.test","pr": "x","policies":[{"policy-type":2,"failure-details":[{"c":201}],"t":3,"f":1}]}'
}

sql() { sqlite3 -cmd ".timeout 5000" "${CONF%.toml}.db" "$1"; }

check_receive_counts() {
  local day ok failed details
  day=$(date -u +%F)
  ok=$(sql "SELECT coalesce(sum(successful_session_count),0) FROM tlsrpt_successes WHERE day='$day' AND policy_domain='pfx.plain.test'")
  failed=$(sql "SELECT coalesce(sum(failed_session_count),0) FROM tlsrpt_failures WHERE day='$day' AND policy_domain='pfx.plain.test'")
  details=$(sql "SELECT result_type FROM tlsrpt_failures WHERE day='$day' AND policy_domain='pfx.plain.test' ORDER BY result_type" | tr '\n' ' ')
  [ "$ok $failed" = "2 3" ] || echo "stored successes/failures '$ok $failed', want '2 3'"
  [ "$details" = "certificate-expired certificate-host-mismatch starttls-not-supported " ] ||
    echo "result types '$details'"
}

check_receive_rejects() {
  local bad lines
  bad=$(sql "SELECT count(*) FROM tlsrpt_failures WHERE policy_domain='bad.plain.test'")
  bad=$((bad + $(sql "SELECT count(*) FROM tlsrpt_successes WHERE policy_domain='bad.plain.test'")))
  [ "$bad" = 0 ] || echo "$bad rows stored for the bad datagrams"
  # Throttled to one line a minute: the first rejection is the line, the
  # stop line counts all three.
  lines=$(grep -c 'tlsrpt-datagram event=rejected' "$MB_DIR/milter.log")
  [ "$lines" = 1 ] || echo "$lines rejection lines, want 1"
  grep -q 'tlsrpt-datagram event=rejected datagrams=1 .*detail="invalid JSON' "$MB_DIR/milter.log" ||
    echo "rejection line: $(grep 'event=rejected' "$MB_DIR/milter.log")"
  grep -q 'tlsrpt-datagram event=stopped datagrams=3 rejected=3 sessions=5' "$MB_DIR/milter.log" ||
    echo "stop line: $(grep 'event=stopped' "$MB_DIR/milter.log")"
}

check_receive_report() {
  local day out json got
  day=$(date -u +%F)
  out="$DIR/reports"
  tb_exec faketime -f "+1d" "$MTASTS_BIN" -c "$CONF" report build --day "$day" --out "$out" \
    >"$DIR/build.out" 2>"$DIR/build.err" || { echo "report build: $(tail -n 2 "$DIR/build.err")"; return; }
  json=$(gunzip -c "$out/sender.test!pfx.plain.test!"*.json.gz 2>&1) ||
    { echo "no report for pfx.plain.test: $(ls "$out")"; return; }
  got=$(jq -c '[.policies[] | [.policy."policy-type", .policy."mx-host", .summary."total-successful-session-count",
    .summary."total-failure-session-count", ([."failure-details"[] | ."result-type"] | sort)]]' <<<"$json")
  [ "$got" = '[["sts",["*.pfx.plain.test"],2,3,["certificate-expired","certificate-host-mismatch","starttls-not-supported"]]]' ] ||
    echo "report policies $got"
}

check_forward_stop_line() {
  grep -q 'tlsrpt-datagram event=forward-stopped sent=1 no_record=[1-9]' "$MB_DIR/milter.log" ||
    echo "forward stop line: $(grep 'forward-stopped' "$MB_DIR/milter.log")"
}

main() {
  [ -x "$MTASTS_BIN" ] || { check setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"; echo "0 passed, 1 failed"; return 1; }
  if ! setup; then
    check setup "bed or milter did not start: $(tail -n 3 "$MB_DIR/milter.log" 2>/dev/null)"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  check forward-failure "$(check_forward_failure)"
  check socket-mode "$(check_socket_mode)"
  send_received_datagrams
  sleep 0.5
  mb_milter_stop
  [ "$MB_MILTER_RC" = 0 ] || check milter-stop "exit status $MB_MILTER_RC"
  check forward-no-record "$(check_forward_stop_line)"
  check receive-counts "$(check_receive_counts)"
  check receive-rejects "$(check_receive_rejects)"
  check receive-report "$(check_receive_report)"
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
}

main "$@"
