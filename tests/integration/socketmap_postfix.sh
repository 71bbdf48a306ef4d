#!/usr/bin/env bash
# End-to-end test of the MTA-STS socketmap server with a real Postfix that
# delivers (RFC 8461 §4-5 applied by Postfix's own TLS client): Postfix in the
# bed's network namespace asks smtp_tls_policy_maps =
# socketmap:inet:127.0.0.1:8461:postfix for each next-hop domain, with
# smtp_tls_security_level = dane by default (its own DANE applies where the
# answer is NOTFOUND or dane-only), and delivers to SMTP peers playing the MX
# hosts (lib/mailbed.sh, lib/testbed.sh). One message per scenario; the
# outcome is read from Postfix's log, `postqueue -j` and the peers' log.
#
# Usage: socketmap_postfix.sh   (as root)
#   MTASTS_BIN        the executable (default: <repo>/build/milter/mta-sts-milter)
#   SOCKETMAP_SERVER  ours (default): $MTASTS_BIN -c CONF
#                     with a [socketmap] section; peer: Debian's
#                     postfix-mta-sts-resolver (mta-sts-daemon), whose known
#                     failures print "peer-known-fail NAME: why" and do not count
#   SOCKETMAP_WAIT    seconds to wait for the deliveries to settle (default 30)
#   TB_KEEP=1         keep the bed's temporary directory (logs) for inspection
# Prints "ok NAME" or "FAIL NAME: why" per check and last "N passed, M failed
# (K known peer failures)"; exits non-zero when anything failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/mailbed.sh
source "$HERE/lib/mailbed.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
SOCKETMAP_SERVER=${SOCKETMAP_SERVER:-ours}
SOCKETMAP_WAIT=${SOCKETMAP_WAIT:-30}
SMTP_CLIENT="$HERE/lib/smtp_client.py"
PASSED=0 FAILED=0 KNOWN=0

# The scenarios, one per policy domain LABEL.ZONE.test (user@ that domain gets
# one message). Columns:
#   name     the check's name (NAME/answer: the socketmap's answer)
#   domain   LABEL.ZONE: the policy domain (mb_domain_add ZONE LABEL POLICY MX)
#   policy   enforce | testing | nopolicy | enforce:PATTERN,...
#   mx       the kind of its MX host mx.LABEL.ZONE.test, preference 10 (mb_mx_add)
#   backup   PREF:KIND, a second MX host mx.bPREF.LABEL.ZONE.test (mb_mx_backup_add), or -
#   answer   the socketmap's answer (postmap -q): secure:HOST,... (OK secure
#            match= those patterns in any order, servername=hostname) |
#            notfound | dane-only | - (not checked)
#   outcome  deferred | sent:HOST (delivered to that MX host, and only there)
#   reason   deferred: ERE the delay_reason in postqueue -j must match; sent: -
#   log      EREs Postfix's log must match (TLS wording, smtp_tls_loglevel 2),
#            separated by " && ", or -
#   known    peer: a known failure of postfix-mta-sts-resolver | -
SCENARIOS=$(cat <<'TABLE'
# (1) enforce, the only MX fails TLS: deferred with Postfix's own TLS reason.
enforce-expired    | expired.plain    | enforce  | expired    | - | secure:mx.expired.plain.test    | deferred | Server certificate not verified | verification failed for mx\.expired\.plain\.test.*: certificate has expired | -
enforce-selfsigned | selfsigned.plain | enforce  | selfsigned | - | secure:mx.selfsigned.plain.test | deferred | Server certificate not verified | verification failed for mx\.selfsigned\.plain\.test.*: self-signed certificate | -
enforce-wrongname  | wrongname.plain  | enforce  | wrongname  | - | secure:mx.wrongname.plain.test  | deferred | Server certificate not verified | verification failed for mx\.wrongname\.plain\.test.*: num=62:hostname mismatch | -
enforce-nostarttls | nostarttls.plain | enforce  | nostarttls | - | secure:mx.nostarttls.plain.test | deferred | TLS is required, but was not offered by host mx\.nostarttls\.plain\.test | - | -
# (2) enforce, good MX: delivered over verified TLS.
enforce-good       | good.plain       | enforce  | good       | - | secure:mx.good.plain.test       | sent:mx.good.plain.test | - | Verified TLS connection established to mx\.good\.plain\.test && mx\.good\.plain\.test\[[0-9.]+\]:25: SNI hostname: mx\.good\.plain\.test$ | -
# (3) testing mode and no policy: NOTFOUND, opportunistic TLS (the zone is
# unsigned, so "dane" falls back to "may") delivers despite a bad certificate.
testing-expired    | testing.plain    | testing  | expired    | - | notfound | sent:mx.testing.plain.test  | - | Untrusted TLS connection established to mx\.testing\.plain\.test | -
nopolicy-selfsigned | nopolicy.plain  | nopolicy | selfsigned | - | notfound | sent:mx.nopolicy.plain.test | - | Untrusted TLS connection established to mx\.nopolicy\.plain\.test | -
# (4) signed zone, MX with a self-signed certificate and a matching DNSSEC-secure
# TLSA 3 1 1: only Postfix's DANE can deliver it. Without a policy (NOTFOUND)
# this shows the bed's DANE works; with an enforce policy the answer must leave
# DANE to Postfix (dane-only), never override it with "secure".
dane-nopolicy      | danenopol.secure | nopolicy | dane       | - | notfound  | sent:mx.danenopol.secure.test | - | DNSSEC-signed TLSA record: _25\._tcp\.mx\.danenopol\.secure\.test: 3 1 1 && mx\.danenopol\.secure\.test\[[0-9.]+\]:25: Matched DANE EE certificate at depth 0 && Verified TLS connection established to mx\.danenopol\.secure\.test | -
dane-enforce       | dane.secure      | enforce  | dane       | - | dane-only | sent:mx.dane.secure.test      | - | DNSSEC-signed TLSA record: _25\._tcp\.mx\.dane\.secure\.test: 3 1 1 && mx\.dane\.secure\.test\[[0-9.]+\]:25: Matched DANE EE certificate at depth 0 && Verified TLS connection established to mx\.dane\.secure\.test | peer
# (5) enforce, two MX: the preferred one's certificate has expired, the second
# is good: delivered to the second.
two-mx             | twomx.plain      | enforce:mx.twomx.plain.test,mx.b20.twomx.plain.test | expired | 20:good | secure:mx.twomx.plain.test,mx.b20.twomx.plain.test | sent:mx.b20.twomx.plain.test | - | Verified TLS connection established to mx\.b20\.twomx\.plain\.test | -
# (6) RFC 8461 §4.1: "*.deep.plain.test" matches one label only, so the
# preferred MX mx.b5.deep.plain.test (two labels, good certificate) must not
# get the mail; Postfix 3.7 reads ".deep.plain.test" (the usual translation)
# as any depth of subdomain.
wildcard-depth     | deep.plain       | enforce:*.deep.plain.test | good | 5:good | - | sent:mx.deep.plain.test | - | Verified TLS connection established to mx\.deep\.plain\.test | peer
TABLE
)

declare -A QID=() SETTLED=()
ROWS=()

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }
split_row() {
  local raw f
  IFS='|' read -r -a raw <<<"$1"
  FIELDS=()
  for f in "${raw[@]}"; do FIELDS+=("$(trim "$f")"); done
}

# report NAME WHY KNOWN: "" = ok; KNOWN "peer" with SOCKETMAP_SERVER=peer
# turns a failure into peer-known-fail.
report() {
  if [ -z "$2" ]; then
    echo "ok $1$([ "$3" = "$SOCKETMAP_SERVER" ] && echo " (the known $3 failure did not occur)")"
    PASSED=$((PASSED + 1))
  elif [ "$3" = peer ] && [ "$SOCKETMAP_SERVER" = peer ]; then
    echo "peer-known-fail $1: $(tr '\n' ' ' <<<"$2")"; KNOWN=$((KNOWN + 1))
  else
    echo "FAIL $1: $(tr '\n' ' ' <<<"$2")"; FAILED=$((FAILED + 1))
  fi
}

# ------------------------------------------------------------ setup
setup_domains() {
  local line zone label
  while IFS= read -r line; do
    split_row "$line"
    ROWS+=("$line")
    zone=${FIELDS[1]##*.} label=${FIELDS[1]%.*}
    mb_domain_add "$zone" "$label" "${FIELDS[2]}" "${FIELDS[3]}" || return 1
    [ "${FIELDS[4]}" = - ] ||
      mb_mx_backup_add "$zone" "$label" "${FIELDS[4]%%:*}" "${FIELDS[4]#*:}" || return 1
  done < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' <<<"$SCENARIOS")
  mb_commit
}

start_server() {
  SERVER_LOG="$MB_DIR/socketmap.log"
  case $SOCKETMAP_SERVER in
    peer) mb_sts_resolver_start "$SERVER_LOG" ;;
    ours)
      [ -x "$MTASTS_BIN" ] || { mb_die "MTASTS_BIN '$MTASTS_BIN' is not an executable"; return 1; }
      mb_socketmap_config "$MB_DIR/socketmap.toml" && mb_socketmap_start "$MB_DIR/socketmap.toml" "$SERVER_LOG" ;;
    *) mb_die "SOCKETMAP_SERVER must be ours or peer, not '$SOCKETMAP_SERVER'" ;;
  esac
}

start_postfix() {
  mb_postfix_deliver_start \
    "smtp_tls_security_level = dane" \
    "smtp_tls_policy_maps = socketmap:inet:127.0.0.1:$MB_SOCKETMAP_PORT:postfix" \
    "smtp_tls_CAfile = $TB_CA_FILE" \
    "smtp_tls_loglevel = 2"
}

# The bed seen from the namespace: both MX of twomx, an AD-flagged TLSA answer
# from the validating resolver, Postfix's settings, no DNSSEC warning.
bed_check() {
  local why="" out
  out=$(tb_exec dig +short MX twomx.plain.test | sort | tr '\n' ' ')
  [ "$out" = "10 mx.twomx.plain.test. 20 mx.b20.twomx.plain.test. " ] || why+="MX of twomx.plain.test: '$out'; "
  tb_exec dig +dnssec TLSA _25._tcp.mx.dane.secure.test | grep -q 'flags:.* ad[ ;]' ||
    why+="TLSA of mx.dane.secure.test is not DNSSEC-secure; "
  out=$(mb_postconf smtp_tls_policy_maps)
  [ "$out" = "socketmap:inet:127.0.0.1:$MB_SOCKETMAP_PORT:postfix" ] || why+="smtp_tls_policy_maps='$out'; "
  tb_exec postconf -c "$MB_PF" -M smtp/unix | grep -qE ' smtp$' || why+="the smtp transport does not deliver; "
  ! grep -iE 'warning: .*dnssec' "$MB_DIR/maillog" || why+="Postfix warns about DNSSEC; "
  report bed "${why%; }" -
}

# ------------------------------------------------------------ sending
send_all() {
  local line domain json why=""
  for line in "${ROWS[@]}"; do
    split_row "$line"
    domain="${FIELDS[1]}.test"
    json=$(tb_exec /usr/bin/python3 "$SMTP_CLIENT" 25 "user@$domain")
    QID[${FIELDS[0]}]=$(jq -r '.queue_id // empty' <<<"$json")
    [ -n "${QID[${FIELDS[0]}]}" ] || why+="$domain not queued: $json; "
  done
  report submit "${why%; }" -
}

peer_addr() { jq -r --arg n "$1" '.[] | select(.name == $n) | .addr' "$MB_DIR/peers/spec.json"; }
domain_peer_addrs() {
  jq -r --arg d ".$1" '.[] | select(.name | endswith($d)) | .addr' "$MB_DIR/peers/spec.json"
}
peer_got_data() { grep -qx "$1 data" "$MB_DIR/peers/peers.log"; }

# log_lacks "ERE && ERE..." -> the first ERE Postfix's log does not match
log_lacks() {
  local re rest=$1
  [ "$rest" = - ] && return
  while [ -n "$rest" ]; do
    re=${rest%% && *}
    [ "$re" = "$rest" ] && rest="" || rest=${rest#* && }
    grep -qE -- "$re" "$MB_DIR/maillog" || { echo "$re"; return; }
  done
}

# judge ROW QUEUE_JSON -> "pass", "fail WHY" or "wait WHY"
judge() {
  local name domain outcome reason logre qid sent got addr a
  split_row "$1"
  name=${FIELDS[0]} domain="${FIELDS[1]}.test" outcome=${FIELDS[6]} reason=${FIELDS[7]} logre=${FIELDS[8]}
  qid=${QID[$name]}
  sent=$(grep -E "$qid: to=<user@$domain>, .*status=sent" "$MB_DIR/maillog" | head -n 1)
  got=$(jq -r --arg q "$qid" 'select(.queue_id == $q) | .recipients[0].delay_reason // empty' <<<"$2")
  case $outcome in
    sent:*)
      if [ -z "$sent" ]; then
        grep -qE "$qid: to=<user@$domain>, .*status=bounced" "$MB_DIR/maillog" &&
          { echo "fail bounced: $(grep -E "$qid: to=.*status=bounced" "$MB_DIR/maillog" | sed 's/.*status=//')"; return; }
        echo "wait not delivered; last reason: ${got:-none yet}"; return
      fi
      a=$(sed -E 's/.* relay=([^[]*)\[.*/\1/' <<<"$sent")
      [ "$a" = "${outcome#sent:}" ] || { echo "fail delivered to $a (want ${outcome#sent:})"; return; }
      addr=$(peer_addr "$a")
      peer_got_data "$addr" || { echo "fail Postfix says sent, but peer $a ($addr) logged no data"; return; }
      a=$(log_lacks "$logre")
      [ -z "$a" ] || { echo "fail delivered, but Postfix's log has no /$a/"; return; }
      echo pass ;;
    deferred)
      [ -z "$sent" ] || { echo "fail delivered: ${sent#*: }"; return; }
      grep -qE -- "$reason" <<<"$got" || { echo "wait deferral reason '${got:-none yet}' (want /$reason/)"; return; }
      a=$(log_lacks "$logre")
      [ -z "$a" ] || { echo "wait deferred, but Postfix's log has no /$a/ yet"; return; }
      for addr in $(domain_peer_addrs "$domain"); do
        ! peer_got_data "$addr" || { echo "fail deferred, but peer $addr logged data"; return; }
      done
      echo pass ;;
    *) echo "fail table: unknown outcome '$outcome'" ;;
  esac
}

# Polls until every scenario has passed or failed, or SOCKETMAP_WAIT seconds.
settle() {
  local end=$((SECONDS + SOCKETMAP_WAIT)) line queue verdict pending
  declare -A last=()
  while :; do
    queue=$(tb_exec postqueue -c "$MB_PF" -j 2>/dev/null)
    pending=0
    for line in "${ROWS[@]}"; do
      split_row "$line"
      [ -z "${SETTLED[${FIELDS[0]}]:-}" ] || continue
      [ -n "${QID[${FIELDS[0]}]}" ] || { SETTLED[${FIELDS[0]}]=1; report "${FIELDS[0]}" "not queued" "${FIELDS[9]}"; continue; }
      verdict=$(judge "$line" "$queue")
      case $verdict in
        pass)   SETTLED[${FIELDS[0]}]=1; report "${FIELDS[0]}" "" "${FIELDS[9]}" ;;
        fail\ *) SETTLED[${FIELDS[0]}]=1; report "${FIELDS[0]}" "${verdict#fail }" "${FIELDS[9]}" ;;
        *) pending=1; last[${FIELDS[0]}]=${verdict#wait } ;;
      esac
    done
    if [ "$pending" = 0 ] || [ "$SECONDS" -ge "$end" ]; then break; fi
    sleep 0.5
  done
  for line in "${ROWS[@]}"; do
    split_row "$line"
    [ -n "${SETTLED[${FIELDS[0]}]:-}" ] ||
      report "${FIELDS[0]}" "after ${SOCKETMAP_WAIT}s: ${last[${FIELDS[0]}]}" "${FIELDS[9]}"
  done
}

# ------------------------------------------------------------ answers
# check_answer WANT DOMAIN -> why ("" when the answer matches)
check_answer() {
  local want=$1 domain=$2 out rc pats
  out=$(tb_exec postmap -c "$MB_PF" -q "$domain" "socketmap:inet:127.0.0.1:$MB_SOCKETMAP_PORT:postfix" 2>&1)
  rc=$?
  case $want in
    notfound) [ "$rc" = 1 ] && [ -z "$out" ] || echo "answer '$out' (status $rc; want NOTFOUND)" ;;
    dane-only) [ "$rc" = 0 ] && [ "$out" = dane-only ] || echo "answer '$out' (status $rc; want dane-only)" ;;
    secure:*)
      pats=$(sed -nE 's/^secure match=([^ ]+) servername=hostname$/\1/p' <<<"$out" | tr ':' '\n' | sort | tr '\n' ,)
      [ "$rc" = 0 ] && [ "$pats" = "$(tr ',' '\n' <<<"${want#secure:}" | sort | tr '\n' ,)" ] ||
        echo "answer '$out' (status $rc; want secure match=${want#secure:} servername=hostname, any order)" ;;
    *) echo "table: unknown answer '$want'" ;;
  esac
}

check_answers() {
  local line
  for line in "${ROWS[@]}"; do
    split_row "$line"
    [ "${FIELDS[5]}" = - ] ||
      report "${FIELDS[0]}/answer" "$(check_answer "${FIELDS[5]}" "${FIELDS[1]}.test")" "${FIELDS[9]}"
  done
}

main() {
  if ! { mailbed_up && setup_domains && start_server && start_postfix; }; then
    report setup "mail bed did not start" -
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  # Postfix first: the peer waits for its clients' connections to close.
  trap 'tb_exec postfix -c "$MB_PF" stop >/dev/null 2>&1; mb_socketmap_stop; mailbed_down' EXIT
  bed_check
  send_all
  settle
  check_answers
  echo "$PASSED passed, $FAILED failed ($KNOWN known $SOCKETMAP_SERVER failures)"
  [ "$FAILED" = 0 ]
}

main "$@"
