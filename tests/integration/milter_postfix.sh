#!/usr/bin/env bash
# End-to-end milter test with a real Postfix (RFC 8461 §4 policy application,
# §5 enforce/testing; RFC 8460 result types in the log and the TLSRPT session
# records in the milter's store): Postfix in the bed's
# network namespace, configured with contrib/postfix/*.snippet, asks the
# milter about each recipient; SMTP peers (lib/smtp_peer.py) play the MX hosts,
# NSD and nginx serve MX records and policies (lib/mailbed.sh, lib/testbed.sh).
# Data: scenarios/milter_postfix.table; this script only interprets it.
#
# Usage: milter_postfix.sh [--bed-only]   (as root)
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
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
TABLE="$HERE/scenarios/milter_postfix.table"
SNIPPETS="$ROOT/contrib/postfix"
# The decision line's keys, in this order (the milter contract).
DECISION_KEYS="queue_id domain next_hop mode policy_id source mx tls dane dane_reason action reason result_type elapsed_ms"
MILTER_CONF="" MILTER_LOG="" WHY=""

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }
split_row() {
  local raw f
  IFS='|' read -r -a raw <<<"$1"
  FIELDS=()
  for f in "${raw[@]}"; do FIELDS+=("$(trim "$f")"); done
}
table_rows() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1"; }

# The milter's Prometheus endpoint in the namespace (README "Metrics"), on
# for the first block of rows (row_config writes a config without it).
METRICS_PORT=9489

# One SMTP transaction, JSON out: lib/smtp_client.py PORT RCPT...
SMTP_CLIENT="$HERE/lib/smtp_client.py"

# A connection held open across a reload: held.py PORT RCPT READY GO ->
# JSON {"before": [code, text], "after", "data", "queue_id"}: one transaction
# whose RCPT is answered "before" (then RSET), the file READY, a wait for the
# file GO, then the next transaction on the SAME connection.
HELD_PY=$(cat <<'PY'
import json, os, re, smtplib, sys, time
port, rcpt, ready, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
out = {"before": None, "after": None, "data": None, "queue_id": None}
def pair(code, text):
    return [code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)]
try:
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.sender.test", timeout=60)
    s.ehlo()
    s.mail("sender@sender.test")
    out["before"] = pair(*s.rcpt(rcpt))
    s.rset()
    open(ready, "w").close()
    for _ in range(600):
        if os.path.exists(go):
            break
        time.sleep(0.1)
    s.mail("sender@sender.test")
    out["after"] = pair(*s.rcpt(rcpt))
    if out["after"][0] == 250:
        out["data"] = pair(*s.data(b"From: <sender@sender.test>\r\n"
                                   b"Subject: mta-sts milter override test\r\n\r\ntest\r\n"))
        m = re.search(r"queued as ([0-9A-Za-z]+)", out["data"][1])
        out["queue_id"] = m.group(1) if m else None
    s.quit()
except (OSError, smtplib.SMTPException) as e:
    out["error"] = str(e)
print(json.dumps(out))
PY
)

# ------------------------------------------------------------ setup
setup_domains() {
  local line
  while IFS= read -r line; do
    split_row "$line"
    [ "${FIELDS[0]}" = domain ] || continue
    mb_domain_add "${FIELDS[1]##*.}" "${FIELDS[1]%.*}" "${FIELDS[2]}" "${FIELDS[3]}" || return 1
  done < <(table_rows "$TABLE")
  mb_commit
}

# The bed seen from the namespace: Postfix's resolver finds MX hosts, a peer
# answers, the snippets are in Postfix's effective configuration.
bed_check() {
  local why="" out
  out=$(tb_exec dig +short MX good.plain.test)
  [ "$out" = "10 mx.good.plain.test." ] || why+="MX via /etc/resolv.conf: '$out'; "
  out=$(tb_exec dig +short A mx.good.plain.test)
  mb_wait_port "$out" 25 20 || why+="peer mx.good.plain.test ($out) does not answer; "
  out=$(mb_postconf smtpd_milters)
  [ "$out" = "inet:127.0.0.1:8891" ] || why+="smtpd_milters='$out'; "
  tb_exec postconf -c "$MB_PF" -M submission/inet | grep -q smtpd || why+="no submission service; "
  report bed "${why%; }"
}

start_milter() {
  MILTER_LOG="$MB_DIR/milter.log"
  [ -f "$MILTER_CONF" ] || mb_milter_config "$MILTER_CONF" "metrics.listen='inet:$METRICS_PORT@127.0.0.1'" || return 1
  mb_milter_start "$MILTER_CONF" "$MILTER_LOG"
}

# ------------------------------------------------------------ checks
# Postfix's own log shows QID handing the message to each accepted recipient
# (the discard transport), or QID put on hold by the milter (quarantine).
check_postfix_log() {
  local qid=$1 domain; shift
  for domain in "$@"; do
    for _ in $(seq 50); do
      grep -q -e "$qid: to=<user@$domain>" -e "$qid: milter-hold: " "$MB_DIR/maillog" && continue 2
      sleep 0.1
    done
    echo -n "Postfix log has no '$qid: to=<user@$domain>' nor '$qid: milter-hold'; "
  done
}

# row_send NAME PORT "DOMAINS" "CODES" "EXPECT" -> why on stdout
row_send() {
  local port=$2 domains codes expect from json qid="NOQUEUE" why="" i d tok accepted=()
  read -r -a domains <<<"$3"; read -r -a codes <<<"$4"; read -r -a expect <<<"$5"
  [ ${#domains[@]} = ${#codes[@]} ] || { echo "table: ${#domains[@]} domains, ${#codes[@]} codes"; return; }
  for i in "${!domains[@]}"; do domains[i]="${domains[i]}.test"; done
  from=$(stat -c %s "$MILTER_LOG")
  json=$(tb_exec /usr/bin/python3 "$SMTP_CLIENT" "$port" "${domains[@]/#/user@}")
  [ "$(jq -r '.mail[0] // "none"' <<<"$json")" = 250 ] ||
    { echo "MAIL not accepted: $json"; return; }
  why+=$(check_codes "$json" "${#domains[@]}" "${domains[@]}" "${codes[@]}")
  for i in "${!domains[@]}"; do [ "${codes[i]}" != 250 ] || accepted+=("${domains[i]}"); done
  if [ ${#accepted[@]} -gt 0 ]; then
    qid=$(jq -r '.queue_id // "none"' <<<"$json")
    [ "$qid" != none ] || { echo "${why}DATA not queued: $json"; return; }
    why+=$(check_postfix_log "$qid" "${accepted[@]}")
  fi
  why+=$(check_decisions "$from" "$qid" "${#domains[@]}" "${domains[@]}" "${expect[@]}")
  echo "${why%; }"
}

row_hits() {  # row_hits LABEL.ZONE N
  local got
  sleep 0.2
  got=$(tb_hits "mta-sts.$1.test" /.well-known/mta-sts.txt)
  [ "$got" = "$2" ] || echo "policy requests to mta-sts.$1.test: $got (want $2)"
}

# Start and stop run in this shell (not in $(...)): it is the milter's parent.
# They leave their complaint in WHY.
row_stop() {
  mb_milter_stop
  [ "$MB_MILTER_RC" = 0 ] ||
    WHY="milter exit status $MB_MILTER_RC after SIGTERM (want 0): $(tail -n 2 "$MILTER_LOG" | tr '\n' ' ')"
}

row_start() {
  start_milter 2>"$MB_DIR/start.err" || WHY="$(cat "$MB_DIR/start.err")"
}

# row_config KEY=VALUE...: restart the milter with these config overrides
# (mb_milter_config; none: the defaults again).
row_config() {
  local overrides=()
  read -r -a overrides <<<"${1:-}"
  row_stop
  [ -z "$WHY" ] || return
  rm -f "$MILTER_CONF"
  mb_milter_config "$MILTER_CONF" "${overrides[@]}" 2>"$MB_DIR/start.err" || { WHY=$(cat "$MB_DIR/start.err"); return; }
  row_start
}

row_queue() {  # row_queue QUEUE N: messages in Postfix's QUEUE (postqueue -j)
  local got
  sleep 0.5
  got=$(tb_exec postqueue -c "$MB_PF" -j | jq -s --arg q "$1" '[.[] | select(.queue_name == $q)] | length')
  [ "$got" = "$2" ] || echo "messages in queue $1: $got (want $2): $(tb_exec postqueue -c "$MB_PF" -j | head -c 300)"
}

row_down() {  # row_down CODE: Postfix without its milter
  local json got
  json=$(tb_exec /usr/bin/python3 "$SMTP_CLIENT" 25 user@good.plain.test)
  got=$(jq -r '[.connect, .mail, .rcpt[0]] | map(select(. != null and .[0] != 250 and .[0] != 220)) | .[0][0] // "none"' <<<"$json")
  [ "$got" = "$1" ] || echo "first refusal $got (want $1): $json"
}

# row_postconf "PARAM = VALUE": set it in the private Postfix, reload Postfix.
row_postconf() {
  tb_exec postconf -c "$MB_PF" -e "$1" || { echo "postconf -e '$1' failed"; return; }
  tb_exec postfix -c "$MB_PF" reload >/dev/null 2>&1 || { echo "postfix reload failed"; return; }
  sleep 1  # idle smtpd processes exit and new ones read the new value
  local name value
  name=$(trim "${1%%=*}"); value=$(trim "${1#*=}")
  [ "$(mb_postconf "$name" 2>/dev/null)" = "$value" ] || echo "Postfix did not take '$1': $(mb_postconf "$name" 2>&1)"
}

# row_held LABEL.ZONE SQL "BEFORE AFTER" "EXPECT": one SMTP connection stays
# open while SQL is run on the milter's cache database and the milter gets
# SIGUSR1; RCPT to user@LABEL.ZONE.test answers BEFORE on that connection
# before the reload and AFTER after it. EXPECT: decision-line fields of the
# message after the reload. Leaves the queue id of that message in held.qid.
row_held() {
  local domain="$1.test" sql=$2 codes=() db="${MILTER_CONF%.toml}.db" dir="$MB_DIR/held" json pid from pf_from
  local why="" count n line qid
  read -r -a codes <<<"$3"
  rm -rf "$dir"; mkdir -p "$dir"
  pf_from=$(stat -c %s "$MB_DIR/maillog")
  tb_exec /usr/bin/python3 -c "$HELD_PY" 25 "user@$domain" "$dir/ready" "$dir/go" >"$dir/out.json" &
  pid=$!
  for _ in $(seq 300); do [ -e "$dir/ready" ] && break; sleep 0.1; done
  [ -e "$dir/ready" ] || { kill "$pid" 2>/dev/null; echo "the held connection never got its first reply"; return; }
  sqlite3 "$db" "$sql" || why+="sqlite3 failed; "
  count=$(sqlite3 "$db" "SELECT count(*) FROM overrides")
  from=$(stat -c %s "$MILTER_LOG")
  kill -USR1 "$MB_MILTER_PID"
  for _ in $(seq 50); do
    line=$(tail -c +"$((from + 1))" "$MILTER_LOG" | grep -E 'reload event=(ok|refused)') && break; sleep 0.1
  done
  [[ "$line" == *"reload event=ok "*"overrides=$count "* ]] || why+="reload line '$line' (want event=ok overrides=$count); "
  touch "$dir/go"
  wait "$pid"
  json=$(cat "$dir/out.json")
  [ "$(jq -r '.before[0] // "none"' <<<"$json")" = "${codes[0]}" ] || why+="RCPT before the reload: $json; "
  [ "$(jq -r '.after[0] // "none"' <<<"$json")" = "${codes[1]}" ] || why+="RCPT after the reload on the held connection: $json; "
  qid=$(jq -r '.queue_id // "NOQUEUE"' <<<"$json")
  [ "${codes[1]}" != 250 ] || [ "$qid" != NOQUEUE ] || why+="DATA not queued: $json; "
  echo "$qid" >"$MB_DIR/held.qid"
  # The milter kept the connection: Postfix never lost or timed out on it.
  ! tail -c +"$((pf_from + 1))" "$MB_DIR/maillog" | grep -qE 'warning: milter|milter.*(lost|timeout|default action)' ||
    why+="Postfix warned about the milter; "
  # Postfix tells the milter about the RSET only when the next MAIL comes, so
  # the first transaction's line (NOQUEUE) may appear after the reload too.
  for _ in $(seq 50); do
    line=$(decision_lines "$from" "$domain" | grep " queue_id=$qid "); [ -n "$line" ] && break; sleep 0.1
  done
  n=$(grep -c . <<<"$line")
  [ "$n" = 1 ] || why+="$domain: $n decision lines with queue_id=$qid after the reload (want 1); "
  # shellcheck disable=SC2086  # the expectations are words
  [ "$n" = 0 ] || why+=$(check_line "$(head -n 1 <<<"$line")" "$domain" "$qid" $4)
  echo "${why%; }"
}

# row_header HEADER: the message left by row_held is in the hold queue and
# `postcat -q` shows exactly one MTA-STS header, equal to HEADER (so it names
# no domain: RFC 8461 says nothing of it, but Bcc recipients get it too).
row_header() {
  local qid headers queue
  qid=$(cat "$MB_DIR/held.qid" 2>/dev/null)
  if [ -z "$qid" ] || [ "$qid" = NOQUEUE ]; then echo "no queued message from the held row"; return; fi
  queue=$(tb_exec postqueue -c "$MB_PF" -j | jq -r --arg id "$qid" 'select(.queue_id == $id) | .queue_name')
  [ "$queue" = hold ] || echo -n "message $qid in queue '$queue' (want hold); "
  headers=$(tb_exec postcat -c "$MB_PF" -h -q "$qid" | grep -i '^MTA-STS:')
  [ "$headers" = "$1" ] || echo -n "postcat -q $qid: MTA-STS headers '$headers' (want '$1'); "
  ! grep -qiE '[a-z0-9-]+\.[a-z]' <<<"$headers" || echo -n "the header names a domain: '$headers'"
}

# row_tlsrpt LABEL.ZONE KIND EXPECT: the TLSRPT session records (RFC 8460
# §4.4 aggregates) in the milter's store for policy domain LABEL.ZONE.test,
# read with sqlite3 after a flush (the SIGTERM of a restart row flushes).
#   failure  a tlsrpt_failures row with every KEY=VALUE of EXPECT and
#            failed_session_count >= 1 ("receiving_ip=MX": the address of
#            mx.LABEL.ZONE.test, the peer's 127.25.0.N, from the bed's DNS)
#   success  a tlsrpt_successes row with EXPECT, successful_session_count >= 1
#   none     no tlsrpt_failures row for the domain at all
row_tlsrpt() {
  local domain="$1.test" kind=$2 db="${MILTER_CONF%.toml}.db" expect=() kv key value table count
  local where="policy_domain = '$domain'"
  read -r -a expect <<<"${3:-}"
  for kv in "${expect[@]}"; do
    key=${kv%%=*}; value=${kv#*=}
    [[ "$key" =~ ^[a-z_]+$ ]] || { echo "table: bad key '$key'"; return; }
    if [ "$value" = MX ]; then
      value=$(tb_exec dig +short A "mx.$domain")
      [[ "$value" =~ ^127\.25\.0\.[0-9]+$ ]] || { echo "A of mx.$domain: '$value'"; return; }
    fi
    where+=" AND $key = '${value//\'/\'\'}'"
  done
  case $kind in
    failure) table=tlsrpt_failures; where+=" AND failed_session_count >= 1" ;;
    success) table=tlsrpt_successes; where+=" AND successful_session_count >= 1" ;;
    none)    table=tlsrpt_failures ;;
    *) echo "table: unknown tlsrpt kind '$kind'"; return ;;
  esac
  count=$(sqlite3 -cmd ".timeout 5000" "$db" "SELECT count(*) FROM $table WHERE $where" 2>&1)
  if { [ "$kind" = none ] && [ "$count" = 0 ]; } || { [ "$kind" != none ] && [[ "$count" =~ ^[1-9][0-9]*$ ]]; }; then
    return
  fi
  echo "$table rows WHERE $where: '$count' (want $([ "$kind" = none ] && echo 0 || echo '>= 1')); the domain's rows: "
  sqlite3 -cmd ".timeout 5000" "$db" "SELECT * FROM $table WHERE policy_domain = '$domain'" 2>&1 | head -n 5
}

# row_report LABEL.ZONE: tomorrow (faketime +1 day), `report build` for
# today gives the domain a report whose counts are today's records, and
# `report read` accepts it (RFC 8460 §4: the records become the report).
row_report() {
  local domain="$1.test" db="${MILTER_CONF%.toml}.db" conf="$MB_DIR/report.toml" out="$MB_DIR/reports"
  local day json want_s want_f got why=""
  day=$(date -u +%F)
  sed '/^\[report\]$/a contact_info = "tlsrpt@sender.test"' "$MILTER_CONF" >"$conf"
  rm -rf "$out" && mkdir -p "$out"
  # libfaketime is preloaded: an ASan build must not insist on coming first.
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" faketime -f '+1d' \
    "$MTASTS_BIN" -c "$conf" report build --day "$day" --out "$out" >"$MB_DIR/report.out" 2>"$MB_DIR/report.err" ||
    { echo "report build: $(tail -n 2 "$MB_DIR/report.err")"; return; }
  json=$(gunzip -c "$out/sender.test!$domain!"*.json.gz 2>&1) || { echo "no report for $domain: $(ls "$out")"; return; }
  want_s=$(sqlite3 -cmd ".timeout 5000" "$db" "SELECT coalesce(sum(successful_session_count), 0) FROM tlsrpt_successes WHERE day = '$day' AND policy_domain = '$domain'")
  want_f=$(sqlite3 -cmd ".timeout 5000" "$db" "SELECT coalesce(sum(failed_session_count), 0) FROM tlsrpt_failures WHERE day = '$day' AND policy_domain = '$domain'")
  got=$(jq -r '[([.policies[].summary."total-successful-session-count"] | add), ([.policies[].summary."total-failure-session-count"] | add), ."report-id", .policies[0].policy."policy-domain"] | join(" ")' <<<"$json")
  [ "$got" = "$want_s $want_f $day.$domain@sender.test $domain" ] ||
    why+="report says '$got', records say '$want_s $want_f $day.$domain@sender.test $domain'; "
  [ "$want_s$want_f" != 00 ] || why+="no records for $domain today; "
  "$MTASTS_BIN" report read "$out/sender.test!$domain!"*.json.gz >/dev/null 2>"$MB_DIR/read.err" ||
    why+="report read refused it: $(head -c 300 "$MB_DIR/read.err"); "
  echo "${why%; }"
}

# row_metric SERIES OP VALUE: one scrape of /metrics; the sample SERIES
# (name and labels exactly as exposed) compared with VALUE (OP: >= or ==).
row_metric() {
  local series=$1 op=$2 want=$3 body got
  body=$(tb_exec curl -sS --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" 2>&1) || { echo "scrape: $body"; return; }
  got=$(awk -v s="$series" '$1 == s {print $2}' <<<"$body")
  [ -n "$got" ] ||
    { echo "no sample $series in the scrape; its samples: $(grep "^${series%%\{*}" <<<"$body" | head -n 12)"; return; }
  case $op in
    '>=') awk -v g="$got" -v w="$want" 'BEGIN {exit !(g + 0 >= w + 0)}' || echo "$series is $got, want >= $want" ;;
    '==') [ "$got" = "$want" ] || echo "$series is $got, want $want" ;;
    *) echo "unknown operator '$op'" ;;
  esac
}

run_rows() {
  local line
  while IFS= read -r line; do
    split_row "$line"
    WHY=""
    case ${FIELDS[0]} in
      domain) continue ;;
      send)    WHY=$(row_send "${FIELDS[@]:1}") ;;
      sendfrom) WHY=$(export SMTP_FROM="${FIELDS[3]}"; row_send "${FIELDS[1]}" "${FIELDS[2]}" "${FIELDS[@]:4}") ;;
      hits)    WHY=$(row_hits "${FIELDS[2]}" "${FIELDS[3]}") ;;
      restart) row_stop; [ -n "$WHY" ] || row_start ;;
      stop)    row_stop ;;
      start)   row_start ;;
      down)    WHY=$(row_down "${FIELDS[2]}") ;;
      config)  row_config "${FIELDS[2]:-}" ;;
      queue)   WHY=$(row_queue "${FIELDS[2]}" "${FIELDS[3]}") ;;
      postconf) WHY=$(row_postconf "${FIELDS[2]}") ;;
      held)    WHY=$(row_held "${FIELDS[@]:2}") ;;
      header)  WHY=$(row_header "${FIELDS[2]}") ;;
      tlsrpt)  WHY=$(row_tlsrpt "${FIELDS[@]:2}") ;;
      report)  WHY=$(row_report "${FIELDS[2]}") ;;
      metric)  WHY=$(row_metric "${FIELDS[2]}" ${FIELDS[3]}) ;;
      pace)    WHY=$(check_session_pace "${FIELDS[2]}" "${FIELDS[3]}.test" "${FIELDS[4]}" "${FIELDS[5]}" ${FIELDS[6]}) ;;
      *)       WHY="unknown row kind '${FIELDS[0]}'" ;;
    esac
    report "${FIELDS[1]}" "$WHY"
  done < <(table_rows "$TABLE")
}

main() {
  local bed_only=0
  [ "${1:-}" = --bed-only ] && bed_only=1
  if [ "$bed_only" = 0 ] && ! [ -x "$MTASTS_BIN" ]; then
    report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  if ! { mailbed_up && setup_domains && mb_postfix_start "$SNIPPETS"; }; then
    report setup "mail bed did not start"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  bed_check
  if [ "$bed_only" = 0 ]; then
    MILTER_CONF="$MB_DIR/milter.toml"
    WHY=""
    row_start
    report milter-start "$WHY"
    [ -n "$WHY" ] || run_rows
  fi
  report_summary
}

main "$@"
