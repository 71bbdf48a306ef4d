#!/usr/bin/env bash
# End-to-end socketmap test with a real Sendmail (RFC 8461 §4.2: an enforce
# policy's MX host must present a valid certificate, else the message waits):
# Debian's Sendmail 8.17 (built with _FFR_MTA_STS), unpacked from its packages
# (lib/sendmail.sh), runs in the bed's network namespace with
#   FEATURE(`sts', `socket -d5 -T<TMPF> inet:PORT@127.0.0.1')
# trusting the bed's CA, and really delivers (DeliveryMode background) over
# esmtp with STARTTLS to the bed's MX peers (lib/smtp_peer.py). Per recipient
# it asks the socketmap server "sts DOMAIN" and, on `OK secure match=...
# servername=hostname`, requires verify=OK, the MX name in match= and in the
# certificate's SANs (cf/m4/proto.m4: STS_secure, STS_Check, STS_SAN).
# NSD, Unbound and nginx serve MX records and policies (lib/mailbed.sh).
#
# The server under test, SOCKETMAP_SERVER:
#   ours (default)  "$MTASTS_BIN" --config CONF: the bed's config
#                   (mb_milter_config) plus a [socketmap] section
#   peer            Debian's postfix-mta-sts-resolver (mta-sts-daemon), the
#                   server Sendmail's documentation names; it trusts the bed's
#                   CA through SSL_CERT_FILE (aiohttp's default SSL context
#                   loads OpenSSL's default verify paths)
#
# Usage: socketmap_sendmail.sh   (as root; the first run downloads the
#   Sendmail packages into /var/cache/mtasts-test/sendmail)
#   MTASTS_BIN        the executable (default: <repo>/build/milter/mta-sts-milter)
#   SOCKETMAP_SERVER  ours | peer
#   TB_KEEP=1         keep the bed's directory (logs: mail/sendmail/sts/syslog.log,
#                     mail/socketmap.log, mail/peers/peers.log)
# Prints "ok NAME" or "FAIL NAME: why" per row and last "N passed, M failed";
# exits non-zero when anything failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/mailbed.sh
source "$HERE/lib/mailbed.sh"
# shellcheck source-path=SCRIPTDIR source=lib/sendmail.sh
source "$HERE/lib/sendmail.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
SOCKETMAP_SERVER=${SOCKETMAP_SERVER:-ours}
SOCKETMAP_PORT=8461
MTA=sts
MTA_PORT=2530
SMTP_CLIENT="$HERE/lib/smtp_client.py"
SERVER_PID=""
SERVER_LOG=""
SYSLOG=""

# The scenarios. Columns after the kind:
#   domain LABEL.ZONE | POLICY | MX KIND          (mb_domain_add)
#   lookup NAME | LABEL.ZONE | REPLY              the server's reply to
#          "sts LABEL.ZONE.test", payload without the netstring frame; Sendmail
#          needs this exact form (STS_Check strips a trailing
#          "servername=hostname" and takes everything after "match=")
#   send   NAME | LABEL.ZONE | OUTCOME | VERIFY | WHY
#          one message to user@LABEL.ZONE.test. OUTCOME sent: Sendmail logged
#          stat=Sent, the MX peer got RCPT and DATA, the queue file is gone.
#          OUTCOME deferred: stat=Deferred, the peer never saw RCPT, and WHY
#          (RULESET: TEXT) is both in Sendmail's "ruleset=RULESET, ...
#          relay=mx.LABEL.ZONE.test[.], reject=4NN 4.7.0 ...TEXT" line and in
#          the queue file's status (M) line. VERIFY: Sendmail's
#          STARTTLS=client line for the MX says verify=VERIFY (- = unchecked).
#          tls_server (after STARTTLS, STS_secure) rejects a certificate that
#          does not verify; tls_rcpt (before RCPT, STS_Check and STS_SAN) an MX
#          name outside match= or outside the certificate's SANs.
TABLE=$(cat <<'EOF'
domain | good.plain      | enforce  | good
domain | expired.plain   | enforce  | expired
domain | nopolicy.plain  | nopolicy | good
domain | testexp.plain   | testing  | expired
domain | wrongname.plain | enforce  | wrongname
domain | notinpol.plain  | enforce:mx.elsewhere.plain.test | good
domain | wild.plain      | enforce:*.wild.plain.test       | good
lookup | lookup-enforce  | good.plain     | OK secure match=mx.good.plain.test servername=hostname
lookup | lookup-wildcard | wild.plain     | OK secure match=mx.wild.plain.test servername=hostname
lookup | lookup-nopolicy | nopolicy.plain | NOTFOUND
send   | enforce-expired-mx-deferred  | expired.plain   | deferred | FAIL | tls_server: authentication failed
send   | enforce-good-mx-delivered    | good.plain      | sent     | OK   | -
send   | no-policy-delivered          | nopolicy.plain  | sent     | OK   | -
send   | testing-expired-mx-delivered | testexp.plain   | sent     | FAIL | -
send   | enforce-san-mismatch-deferred | wrongname.plain | deferred | OK  | tls_rcpt: mx.wrongname.plain.test not listed in SANs
send   | enforce-mx-not-in-policy-deferred | notinpol.plain | deferred | OK | tls_rcpt: mx.notinpol.plain.test not found in mx.elsewhere.plain.test
send   | enforce-wildcard-mx-delivered | wild.plain     | sent     | OK   | -
EOF
)
# Ours answers a wildcard with the MX names it matches (one label, RFC 8461
# §4.1; README "Delivery-time enforcement"); the peer sends the pattern.
[ "${SOCKETMAP_SERVER:-ours}" = peer ] &&
  TABLE=${TABLE//match=mx.wild.plain.test/match=.wild.plain.test}

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }
split_row() {
  local raw f
  IFS='|' read -r -a raw <<<"$1"
  FIELDS=()
  for f in "${raw[@]}"; do FIELDS+=("$(trim "$f")"); done
}
table_rows() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' <<<"$TABLE"; }

server_stop() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

cleanup() { sendmail_down; server_stop; mailbed_down; }

# ------------------------------------------------------------ servers
# Debian's postfix-mta-sts-resolver, every map name on the default zone.
peer_start() {
  local conf="$MB_DIR/mta-sts-daemon.yml"
  command -v mta-sts-daemon >/dev/null ||
    { echo "mta-sts-daemon not installed (apt-get install postfix-mta-sts-resolver)" >&2; return 1; }
  cat >"$conf" <<EOF
host: 127.0.0.1
port: $SOCKETMAP_PORT
reuse_port: true
shutdown_timeout: 2
cache:
  type: internal
  options:
    cache_size: 1000
default_zone:
  strict_testing: false
  timeout: 4
EOF
  # Not through tb_exec: $! must be the daemon itself (ip and env exec it).
  ip netns exec "$TB_NS" env SSL_CERT_FILE="$TB_CA_FILE" \
    /usr/bin/mta-sts-daemon -v debug -c "$conf" >>"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
}

# Our daemon: the bed's configuration plus the socketmap section.
ours_start() {
  local conf="$MB_DIR/socketmap.toml"
  [ -x "$MTASTS_BIN" ] || { echo "MTASTS_BIN '$MTASTS_BIN' is not an executable" >&2; return 1; }
  mb_milter_config "$conf" "socketmap.socket=\"inet:$SOCKETMAP_PORT@127.0.0.1\"" \
    'socketmap.map_names=["postfix", "sts"]' || return 1
  ip netns exec "$TB_NS" "$MTASTS_BIN" --config "$conf" >>"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
}

server_start() {
  SERVER_LOG="$MB_DIR/socketmap.log"
  case $SOCKETMAP_SERVER in
    peer) peer_start ;;
    ours) ours_start ;;
    *) echo "SOCKETMAP_SERVER must be ours or peer, not '$SOCKETMAP_SERVER'" >&2; false ;;
  esac || return 1
  local i
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID"
      echo "$SOCKETMAP_SERVER server exited with status $?: $(tail -n 3 "$SERVER_LOG" | tr '\n' ' ')" >&2
      SERVER_PID=""
      return 1
    fi
    mb_wait_port 127.0.0.1 "$SOCKETMAP_PORT" 1 && return 0
    sleep 0.1
  done
  echo "$SOCKETMAP_SERVER server does not listen on 127.0.0.1:$SOCKETMAP_PORT within 10 s" >&2
  return 1
}

# ------------------------------------------------------------ Sendmail
# The .mc lines under test: the feature pointed at our port, and a TLS
# client that trusts the bed's CA (the peers' certificates come from it).
sendmail_mc() {
  cat <<EOF
define(\`confCACERT_PATH', \`$(dirname "$TB_CA_FILE")')dnl
define(\`confCACERT', \`$TB_CA_FILE')dnl
define(\`confTO_CONNECT', \`10s')dnl
define(\`confTO_INITIAL', \`10s')dnl
FEATURE(\`sts', \`socket -d5 -T<TMPF> inet:$SOCKETMAP_PORT@127.0.0.1')dnl
EOF
}

setup_bed() {
  local line
  while IFS= read -r line; do
    split_row "$line"
    [ "${FIELDS[0]}" != domain ] ||
      mb_domain_add "${FIELDS[1]##*.}" "${FIELDS[1]%.*}" "${FIELDS[2]}" "${FIELDS[3]}" || return 1
  done < <(table_rows)
  mb_commit || return 1
  server_start || return 1
  sendmail_mc >"$MB_DIR/sts-extra.mc" || return 1
  SM_CONTRIB_MC="" SM_DELIVERY_MODE=background SM_MC_EXTRA="$MB_DIR/sts-extra.mc" \
    sm_instance "$MTA" "$MTA_PORT" || return 1
  SYSLOG="$MB_DIR/sendmail/$MTA/syslog.log"
  SM_SYSLOG=1 sm_start "$MTA"
}

# The compiled .cf has what the feature promises (cf/feature/sts.m4).
cf_check() {
  local cf="$MB_DIR/sendmail/$MTA/$MTA.cf" why="" want
  for want in "Ksts socket -d5 -T<TMPF> inet:$SOCKETMAP_PORT@127.0.0.1" \
              "O StrictTransportSecurity=true" "O SetCertAltnames=true" \
              "O DeliveryMode=background" "O CACertFile=$TB_CA_FILE"; do
    grep -qxF "$want" "$cf" || why+="no line '$want' in $MTA.cf; "
  done
  grep -q '^Xmta-sts' "$cf" && why+="$MTA.cf has a milter; "
  report cf "${why%; }"
}

# ------------------------------------------------------------ rows
# row_lookup DOMAIN REPLY: one request on a fresh connection, as Sendmail
# sends it (map name "sts", key lower case without the trailing dot).
row_lookup() {
  local got
  got=$(tb_exec /usr/bin/python3 - "$SOCKETMAP_PORT" "sts $1.test" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
req = sys.argv[2].encode()
s.sendall(b"%d:%s," % (len(req), req))
buf = b""
while True:
    head, sep, rest = buf.partition(b":")
    if sep and len(rest) > int(head):
        break
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
head, _, rest = buf.partition(b":")
n = int(head) if head.isdigit() else -1
if n < 0 or rest[n:n + 1] != b",":
    print("bad frame: %r" % buf)
else:
    print(rest[:n].decode("utf-8", "replace"))
EOF
  )
  [ "$(trim "$got")" = "$2" ] || echo "'sts $1.test' -> '$got' (want '$2')"
}

# wait_stat QID RCPT: Sendmail's delivery line for RCPT ("QID: to=<RCPT>, ...
# stat=...") once it is logged (30 s at most), on stdout.
wait_stat() {
  local i line
  for ((i = 0; i < 300; i++)); do
    line=$(grep -F "$1: to=<$2>," "$SYSLOG" | grep ' stat=' | tail -n 1)
    [ -n "$line" ] && { echo "$line"; return 0; }
    sleep 0.1
  done
  return 1
}

mx_addr() { jq -r --arg n "mx.$1" '.[] | select(.name == $n) | .addr' "$MB_DIR/peers/spec.json"; }

# rejected RULESET DOMAIN TEXT: Sendmail logged that RULESET refused the MX
# of DOMAIN with a 4NN 4.7.0 reply ending in TEXT.
rejected() {
  grep -F "ruleset=$1, " "$SYSLOG" | grep -F "relay=mx.$2" | grep -F "$3" |
    grep -qE "reject=4[0-9][0-9] 4\.7\.0 "
}

# row_send DOMAIN OUTCOME VERIFY WHY -> why on stdout
row_send() {
  local domain="$1.test" outcome=$2 verify=$3 reason=$4 rcpt json qid line addr why="" qf tls
  local peers="$MB_DIR/peers/peers.log"
  rcpt="user@$domain"
  addr=$(mx_addr "$domain")
  json=$(tb_exec /usr/bin/python3 "$SMTP_CLIENT" "$MTA_PORT" "$rcpt")
  qid=$(jq -r '.queue_id // "none"' <<<"$json")
  [ "$qid" != none ] || { echo "not accepted: $json"; return; }
  line=$(wait_stat "$qid" "$rcpt") ||
    { echo "no 'stat=' line for $qid within 30 s: $(grep -F "$qid" "$SYSLOG" | tail -n 3)"; return; }
  qf="$MB_DIR/sendmail/$MTA/queue/qf$qid"
  case $outcome in
    sent)
      [[ "$line" == *" stat=Sent"* ]] || why+="want stat=Sent: $line; "
      # Sendmail writes "RCPT To:<...>"; the peer logs the verb's argument.
      grep -qixF "$addr rcpt TO:<$rcpt>" "$peers" || why+="peer $addr logged no 'rcpt TO:<$rcpt>'; "
      grep -A3 -ixF "$addr rcpt TO:<$rcpt>" "$peers" | grep -qxF "$addr data" ||
        why+="peer $addr logged no 'data' after the RCPT; "
      [ ! -e "$qf" ] || why+="${qf##*/} still queued; " ;;
    deferred)
      [[ "$line" == *" stat=Deferred"* ]] || why+="want stat=Deferred: $line; "
      rejected "${reason%%:*}" "$domain" "${reason#*: }" ||
        why+="no 'ruleset=${reason%%:*}, ... reject=4NN 4.7.0 ...${reason#*: }' line for mx.$domain; "
      if [ -f "$qf" ]; then
        grep '^M' "$qf" | grep -qF "${reason#*: }" ||
          why+="${qf##*/} status is not '${reason#*: }': $(grep '^M' "$qf" | head -n 1); "
      else
        why+="no queue file ${qf##*/}; "
      fi
      ! grep -qixF "$addr rcpt TO:<$rcpt>" "$peers" || why+="peer $addr got RCPT TO:<$rcpt>; " ;;
    *) echo "table: outcome '$outcome'"; return ;;
  esac
  if [ "$verify" != - ]; then
    tls=$(grep -F "STARTTLS=client, relay=mx.$domain" "$SYSLOG" | tail -n 1)
    [[ "$tls" == *", verify=$verify,"* ]] ||
      why+="want STARTTLS=client ... verify=$verify for mx.$domain: '${tls:-no line}'; "
  fi
  echo "${why%; }"
}

run_rows() {
  local line why
  while IFS= read -r line; do
    split_row "$line"
    case ${FIELDS[0]} in
      domain) continue ;;
      lookup) why=$(row_lookup "${FIELDS[2]}" "${FIELDS[3]}") ;;
      send)   why=$(row_send "${FIELDS[2]}" "${FIELDS[3]}" "${FIELDS[4]}" "${FIELDS[5]}") ;;
      *)      why="unknown row kind '${FIELDS[0]}'" ;;
    esac
    report "${FIELDS[1]}" "$why"
  done < <(table_rows)
}

main() {
  echo "# socketmap server: $SOCKETMAP_SERVER"
  if ! sm_fetch; then
    report setup "Sendmail packages could not be fetched into $SM_CACHE"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  if ! { mailbed_up && trap cleanup EXIT && setup_bed; }; then
    report setup "mail bed with the $SOCKETMAP_SERVER socketmap server and Sendmail did not start"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  cf_check
  run_rows
  report_summary
}

main "$@"
