# Shared checks of the milter's decision log lines and of per-recipient RCPT
# replies, for the end-to-end MTA tests (milter_postfix.sh, milter_sendmail.sh).
# Needs DECISION_KEYS (the keys, in order) and MILTER_LOG set by the caller.
# shellcheck shell=bash

# decision_lines FROM DOMAIN: decision lines for DOMAIN after byte FROM of the
# milter log (the text from "decision " on).
decision_lines() {
  tail -c +"$(($1 + 1))" "$MILTER_LOG" |
    grep -E "(^|[[:space:]])decision queue_id=.* domain=$2( |\$)" | sed -E 's/^.*decision /decision /'
}

field() {  # field LINE KEY -> value (quotes removed) or "<absent>"
  local m
  m=$(grep -oE "(^| )$2=(\"[^\"]*\"|[^ ]*)" <<<"$1" | head -n 1) || { echo "<absent>"; return; }
  m=${m# }; m=${m#*=}; m=${m#\"}; echo "${m%\"}"
}

# check_line LINE DOMAIN QID EXPECT... -> mismatches ("" when all match)
check_line() {
  local line=$1 domain=$2 qid=$3 kv key want got keys; shift 3
  keys=$(grep -oE '(^| )[a-z_]+=' <<<"${line#decision }" | tr -d ' =' | tr '\n' ' ')
  [ "${keys% }" = "$DECISION_KEYS" ] || echo -n "$domain: keys '${keys% }'; "
  got=$(field "$line" queue_id)
  [ "$got" = "$qid" ] || echo -n "$domain: queue_id=$got (want $qid); "
  for kv in "$@"; do
    key=${kv%%=*}; want=${kv#*=}; got=$(field "$line" "$key")
    [[ "/$want/" == *"/$got/"* ]] || echo -n "$domain: $key=$got (want $want); "
  done
}

# check_codes JSON N DOMAIN... CODE...: RCPT replies -> mismatches
check_codes() {
  local json=$1 n=$2 i code text; shift 2
  local domains=("${@:1:n}") codes=("${@:n+1}")
  for ((i = 0; i < n; i++)); do
    code=$(jq -r ".rcpt[$i][0] // \"none\"" <<<"$json")
    text=$(jq -r ".rcpt[$i][1] // \"\"" <<<"$json")
    [ "$code" = "${codes[i]}" ] || { echo -n "${domains[i]}: RCPT $code $text (want ${codes[i]}); "; continue; }
    [ "$code" != 451 ] || [[ "$text" == "4.7.5 MTA-STS: ${domains[i]}: "* ]] ||
      [[ "$text" == "4.7.5 DANE: ${domains[i]}: "* ]] ||
      echo -n "${domains[i]}: 451 text '$text' (want 4.7.5 MTA-STS: or DANE: ${domains[i]}: ...); "
  done
}

# check_decisions FROM QID N DOMAIN... TOKEN...: exactly one decision line per
# DOMAIN after byte FROM of the milter log, carrying queue id QID and the
# expectations in TOKENs (KEY=VALUE; "@LABEL.ZONE" switches the domain they
# apply to, the first DOMAIN before any) -> mismatches ("" when all match)
check_decisions() {
  local from=$1 qid=$2 n=$3 why="" d tok; shift 3
  local domains=("${@:1:n}") expect=("${@:n+1}")
  local -A want=()
  d=${domains[0]}
  for tok in "${expect[@]}"; do
    if [[ "$tok" == @* ]]; then d="${tok#@}.test"; else want[$d]+="$tok "; fi
  done
  for d in "${domains[@]}"; do
    local lines n
    for _ in $(seq 50); do  # written at end of message or when the transaction ends
      lines=$(decision_lines "$from" "$d"); [ -n "$lines" ] && break; sleep 0.1
    done
    sleep 0.2; lines=$(decision_lines "$from" "$d")
    n=$(grep -c . <<<"$lines")
    [ "$n" = 1 ] || { why+="$d: $n decision lines (want 1); "; [ "$n" -gt 0 ] || continue; }
    # shellcheck disable=SC2086  # the expectations are words
    why+=$(check_line "$(head -n 1 <<<"$lines")" "$d" "$qid" ${want[$d]:-})
    [ -z "$why" ] || echo "  $d: $(head -n 1 <<<"$lines")" >&2
  done
  echo -n "$why"
}

# check_session_pace PORT DOMAIN MESSAGES MAX_MS EXPECT... -> why ("" = ok)
# One SMTP session (smtp-source -d) sends MESSAGES messages back to back to
# user@DOMAIN through the MTA on 127.0.0.1:PORT; they must average under
# MAX_MS milliseconds each, and each must have its decision line with every
# EXPECT field (KEY=VALUE). Why a bound at all: on a TCP milter socket a
# packet that gets no answer, followed by another write, waits for a delayed
# ACK (Nagle's algorithm on the writer, 40 ms or more on Linux) once per
# message; a healthy message takes about 2 ms here. The bound sits far from
# both, so a loaded machine does not trip it and a stall cannot pass it.
# Parallel sessions would hide the stall (20 sessions x 40 ms look like
# throughput), hence one session. MTASTS_PACE_BOUND_MS raises the bound
# (scripts/sanitize.sh, where a busy disk was seen to push Sendmail's pace
# to 17-21 ms); below 40 ms it still catches the stall.
check_session_pace() {
  local port=$1 domain=$2 messages=$3 max_ms=$4 from secs ms lines count kv why=""; shift 4
  [ "${MTASTS_PACE_BOUND_MS:-0}" -gt "$max_ms" ] && max_ms=$MTASTS_PACE_BOUND_MS
  from=$(stat -c %s "$MILTER_LOG")
  secs=$(mb_smtp_source "$port" "user@$domain" "$messages" 1 "$TB_DIR/pace.err" -d 2>&1) ||
    { echo "$secs"; return; }
  ms=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 1000 }')
  for _ in $(seq 50); do
    count=$(decision_lines "$from" "$domain" | grep -c .)
    [ "$count" -ge "$messages" ] && break
    sleep 0.1
  done
  lines=$(decision_lines "$from" "$domain")
  [ "$count" = "$messages" ] || why+="$count decision lines for $domain, want $messages; "
  for kv in "$@"; do
    count=$(grep -cE "(^| )$kv( |\$)" <<<"$lines")
    [ "$count" = "$messages" ] || why+="$count of $messages decision lines have $kv; "
  done
  [ "$ms" -lt $((max_ms * messages)) ] ||
    why+="$messages messages in one session took $ms ms, $((ms / messages)) ms each (bound $max_ms ms: a stall on the milter socket); "
  echo "pace: $messages messages to $domain in one session: $ms ms, $((ms * 1000 / messages)) us per message" >&2
  echo "${why%; }"
}
