#!/usr/bin/env bash
# End-to-end milter test with a real Sendmail (RFC 8461 §4 policy application,
# §3.4 smart hosts; RFC 8460 result types in the log): Debian's Sendmail,
# unpacked from its packages (lib/sendmail.sh), runs in the bed's network
# namespace with contrib/sendmail/mta-sts-milter.mc included in its .mc and
# asks the milter about each recipient with Sendmail's own macros
# ({rcpt_mailer}=esmtp, {rcpt_host}=domain. or [relay]). SMTP peers play MX
# hosts and relays; NSD and nginx serve MX records and policies
# (lib/mailbed.sh, lib/testbed.sh). Data: scenarios/milter_sendmail.table.
#
# Usage: milter_sendmail.sh   (as root; the first run downloads the packages
#   into /var/cache/mtasts-test/sendmail, which needs Debian's mirror)
#   MTASTS_BIN  the executable (default: <repo>/build/milter/mta-sts-milter)
#   TB_KEEP=1   keep the bed's temporary directory (logs) for inspection
# Prints "ok NAME" or "FAIL NAME: why" per row and last "N passed, M failed";
# exits non-zero when anything failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/mailbed.sh
source "$HERE/lib/mailbed.sh"
# shellcheck source=lib/decision_checks.sh
source "$HERE/lib/decision_checks.sh"
# shellcheck source-path=SCRIPTDIR source=lib/sendmail.sh
source "$HERE/lib/sendmail.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
TABLE="$HERE/scenarios/milter_sendmail.table"
SM_CONTRIB_MC="$ROOT/contrib/sendmail/mta-sts-milter.mc"
# The decision line's keys, in this order (the milter contract).
DECISION_KEYS="queue_id domain next_hop mode policy_id source mx tls dane dane_reason action reason result_type elapsed_ms"
MILTER_CONF="" MILTER_LOG="" WHY=""
declare -A MTA_PORT=()

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }
split_row() {
  local raw f
  IFS='|' read -r -a raw <<<"$1"
  FIELDS=()
  for f in "${raw[@]}"; do FIELDS+=("$(trim "$f")"); done
}
table_rows() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1"; }

cleanup() { sendmail_down; mailbed_down; }

# One SMTP transaction, JSON out: lib/smtp_client.py PORT RCPT...
SMTP_CLIENT="$HERE/lib/smtp_client.py"

# ------------------------------------------------------------ setup
# Domains, relays and Sendmail instances from the table; the instances start
# once the peers, DNS and nginx are up.
setup_bed() {
  local line mtas=()
  while IFS= read -r line; do
    split_row "$line"
    case ${FIELDS[0]} in
      domain) mb_domain_add "${FIELDS[1]##*.}" "${FIELDS[1]%.*}" "${FIELDS[2]}" "${FIELDS[3]}" || return 1 ;;
      relay)  mb_relay_add "${FIELDS[1]##*.}" "${FIELDS[1]%.*}" "${FIELDS[2]}" "${FIELDS[3]}" || return 1 ;;
      mta)
        local smart=${FIELDS[3]}
        [ "$smart" != - ] || smart=""
        sm_instance "${FIELDS[1]}" "${FIELDS[2]}" "$smart" || return 1
        MTA_PORT[${FIELDS[1]}]=${FIELDS[2]}
        mtas+=("${FIELDS[1]}") ;;
    esac
  done < <(table_rows "$TABLE")
  mb_commit || return 1
  for line in "${mtas[@]}"; do sm_start "$line" || return 1; done
}

# The bed seen from the namespace, and the compiled .cf: the contrib lines
# made it into every instance (the filter and the RCPT macros).
bed_check() {
  local why="" out name
  out=$(tb_exec dig +short MX good.plain.test)
  [ "$out" = "10 mx.good.plain.test." ] || why+="MX: '$out'; "
  out=$(tb_exec dig +short A relay.plain.test)
  mb_wait_port "$out" 25 20 || why+="relay.plain.test ($out) does not answer; "
  for name in "${!MTA_PORT[@]}"; do
    out=$(grep '^Xmta-sts,' "$MB_DIR/sendmail/$name/$name.cf")
    [[ "$out" == *"S=inet:$MB_MILTER_PORT@127.0.0.1"*"F=T"* ]] || why+="$name.cf filter line '$out'; "
    out=$(sm_cf_option "$name" Milter.macros.envrcpt)
    for m in '{rcpt_addr}' '{rcpt_host}' '{rcpt_mailer}'; do
      [[ "$out" == *"$m"* ]] || why+="$name.cf Milter.macros.envrcpt '$out' lacks $m; "
    done
    out=$(sm_cf_option "$name" DeliveryMode)
    [ "$out" = queueonly ] || why+="$name.cf DeliveryMode '$out'; "
  done
  report bed "${why%; }"
}

start_milter() {
  MILTER_LOG="$MB_DIR/milter.log"
  [ -f "$MILTER_CONF" ] || mb_milter_config "$MILTER_CONF" || return 1
  mb_milter_start "$MILTER_CONF" "$MILTER_LOG"
}

# ------------------------------------------------------------ checks
# check_queue MTA QID DOMAIN...: Sendmail queued QID (queueonly: its qf file
# stays) with a recipient line for each accepted DOMAIN.
check_queue() {
  local qf="$MB_DIR/sendmail/$1/queue/qf$2" domain; shift 2
  [ -f "$qf" ] || { echo -n "no queue file $qf; "; return; }
  for domain in "$@"; do
    grep -q "^R.*user@$domain" "$qf" || echo -n "queue file ${qf##*/} has no recipient user@$domain; "
  done
}

# row_send NAME MTA "DOMAINS" "CODES" "EXPECT" -> why on stdout
row_send() {
  local mta=$2 domains codes expect from json qid="NOQUEUE" why="" i d tok accepted=()
  local port=${MTA_PORT[$mta]:-}
  [ -n "$port" ] || { echo "table: unknown MTA '$mta'"; return; }
  read -r -a domains <<<"$3"; read -r -a codes <<<"$4"; read -r -a expect <<<"$5"
  [ ${#domains[@]} = ${#codes[@]} ] || { echo "table: ${#domains[@]} domains, ${#codes[@]} codes"; return; }
  for i in "${!domains[@]}"; do domains[i]="${domains[i]}.test"; done
  from=$(stat -c %s "$MILTER_LOG")
  json=$(tb_exec /usr/bin/python3 "$SMTP_CLIENT" "$port" "${domains[@]/#/user@}")
  [ "$(jq -r '.mail[0] // "none"' <<<"$json")" = 250 ] || { echo "MAIL not accepted: $json"; return; }
  why+=$(check_codes "$json" "${#domains[@]}" "${domains[@]}" "${codes[@]}")
  for i in "${!domains[@]}"; do [ "${codes[i]}" != 250 ] || accepted+=("${domains[i]}"); done
  if [ ${#accepted[@]} -gt 0 ]; then
    qid=$(jq -r '.queue_id // "none"' <<<"$json")
    [ "$qid" != none ] || { echo "${why}DATA not queued: $json"; return; }
    why+=$(check_queue "$mta" "$qid" "${accepted[@]}")
  fi
  why+=$(check_decisions "$from" "$qid" "${#domains[@]}" "${domains[@]}" "${expect[@]}")
  echo "${why%; }"
}

# row_down MTA CODE: with the milter stopped, Sendmail (F=T) refuses the
# transaction; the first reply that is not 220/250 has CODE.
row_down() {
  local port=${MTA_PORT[$1]:-} json got
  [ -n "$port" ] || { echo "table: unknown MTA '$1'"; return; }
  json=$(tb_exec /usr/bin/python3 "$SMTP_CLIENT" "$port" user@good.plain.test)
  got=$(jq -r '[.connect, .mail, .rcpt[0]] | map(select(. != null and .[0] != 250 and .[0] != 220)) | .[0][0] // "none"' <<<"$json")
  [ "$got" = "$2" ] || echo "first refusal $got (want $2): $json"
}

# row_route MTA LABEL.ZONE "MAILER HOST": how MTA's .cf routes
# user@LABEL.ZONE.test (sendmail -bt): the macros the milter will see.
row_route() {
  local got
  [ -n "${MTA_PORT[$1]:-}" ] || { echo "table: unknown MTA '$1'"; return; }
  got=$(sm_route "$1" "user@$2.test")
  [ "$got" = "$3" ] || echo "$1 routes user@$2.test as '$got' (want '$3')"
}

# row_pace MTA LABEL.ZONE MESSAGES MAX_MS EXPECT: check_session_pace through
# Sendmail instance MTA.
row_pace() {
  local port=${MTA_PORT[$1]:-}
  [ -n "$port" ] || { echo "table: unknown MTA '$1'"; return; }
  # shellcheck disable=SC2086  # EXPECT: several KEY=VALUE words
  check_session_pace "$port" "$2.test" "$3" "$4" $5
}

row_stop() {
  mb_milter_stop
  [ "$MB_MILTER_RC" = 0 ] ||
    WHY="milter exit status $MB_MILTER_RC after SIGTERM (want 0): $(tail -n 2 "$MILTER_LOG" | tr '\n' ' ')"
}

row_start() {
  start_milter 2>"$MB_DIR/start.err" || WHY="$(cat "$MB_DIR/start.err")"
}

run_rows() {
  local line
  while IFS= read -r line; do
    split_row "$line"
    WHY=""
    case ${FIELDS[0]} in
      domain|relay|mta) continue ;;
      send)  WHY=$(row_send "${FIELDS[@]:1}") ;;
      route) WHY=$(row_route "${FIELDS[2]}" "${FIELDS[3]}" "${FIELDS[4]}") ;;
      pace)  WHY=$(row_pace "${FIELDS[@]:2}") ;;
      down)  row_stop; [ -n "$WHY" ] || WHY=$(row_down "${FIELDS[2]}" "${FIELDS[3]}") ;;
      start) row_start ;;
      *)     WHY="unknown row kind '${FIELDS[0]}'" ;;
    esac
    report "${FIELDS[1]}" "$WHY"
  done < <(table_rows "$TABLE")
}

main() {
  if ! [ -x "$MTASTS_BIN" ]; then
    report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  if ! sm_fetch; then
    report setup "Sendmail packages could not be fetched into $SM_CACHE"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  if ! { mailbed_up && trap cleanup EXIT && setup_bed; }; then
    report setup "mail bed with Sendmail did not start"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  bed_check
  MILTER_CONF="$MB_DIR/milter.toml"
  WHY=""
  row_start
  report milter-start "$WHY"
  [ -n "$WHY" ] || run_rows
  report_summary
}

main "$@"
