#!/usr/bin/env bash
# One daemon, two callers, one engine: the milter (RCPT per recipient) and the
# socketmap server (Postfix smtp_tls_policy_maps) in one process share one
# policy cache, one single-flight table and one worker pool, so that under load
# from both at once every policy domain is discovered once, not once per caller
# (RFC 8461 §3.3: a policy is fetched over HTTPS, then cached).
#
# The bed (lib/testbed.sh) serves SHARED_DOMAINS policy domains
# dNNN.shared.plain.test (unsigned zone; enforce policy, mx *.mx.shared.plain.test,
# no MX record, so the only host is the domain itself, outside the policy: the
# milter tempfails them with mx-not-in-policy and the socketmap answers
# "OK secure match=mx-not-in-policy.invalid ...", which no host passes). One daemon
# ($MTASTS_BIN -c CONF) listens on the milter socket 127.0.0.1:8891 and the
# socketmap socket 127.0.0.1:8461; lib/socketmap_shared_client.py then asks for
# every domain over both at the same moment, in one shuffled order, with
# SHARED_CONNS connections per side. Checks:
#   clients          every request answered, no connection failed
#   met              the two callers really overlapped: for many domains the
#                    first milter RCPT and the first socketmap request were in
#                    flight together (else "once" would prove only the cache)
#   fetched-once     nginx logged exactly one GET /.well-known/mta-sts.txt per
#                    policy host, and no other request
#   socketmap-answers every domain ends with OK secure match=...; a TEMP (the
#                    discovery outlived socketmap.deadline_ms) is followed by OK
#                    on the retry 1 s later
#   milter-answers   every RCPT got 451 4.7.5 MTA-STS: DOMAIN: ..., and the
#                    daemon logged one decision line per domain with
#                    mode=enforce policy_id=1 source=fetched|cache
#   socketmap-log    "socketmap event=lookup" lines for bed domains only; per
#                    domain no more than its requests, the last answer=OK
#                    mode=enforce source=fetched|cache (with the default
#                    deadline: exactly one line per domain); the
#                    "socketmap event=stopped" counts agree (requests = the
#                    client's, lookups = the lines, temp_deadline fits the
#                    TEMPs the client saw)
#   clean-stop       SIGTERM: exit status 0
#   control          the same load on two daemons with separate stores (one
#                    the milter, one the socketmap): the fetched-once check
#                    must now fail, with every policy host fetched exactly
#                    twice. It shows the check can fail and that the bed
#                    counts fetches at all (not a test that cannot fail).
#
# Usage: socketmap_shared_engine.sh   (as root)
#   MTASTS_BIN     the executable (default: <repo>/build/milter/mta-sts-milter)
#   SHARED_DOMAINS policy domains (default 200)
#   SHARED_CONNS   connections per side (default 16)
#   SHARED_SEED    shuffle seed (default: random, printed)
#   SHARED_DEADLINE_MS socketmap.deadline_ms of the shared daemon (default: the
#                  daemon's, 4000); 100 makes some first requests answer TEMP,
#                  which exercises the TEMP-then-OK path of the checks
#   TB_KEEP=1      keep the bed's temporary directory (logs) for inspection
# Prints "ok NAME" or "FAIL NAME: why" per check, then "N passed, M failed";
# exits non-zero when anything failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/mailbed.sh
source "$HERE/lib/mailbed.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
DOMAINS=${SHARED_DOMAINS:-200}
CONNS=${SHARED_CONNS:-16}
SEED=${SHARED_SEED:-$RANDOM}
DEADLINE_MS=${SHARED_DEADLINE_MS:-}
CLIENT="$HERE/lib/socketmap_shared_client.py"
ZONE_SUFFIX=shared.plain.test
MATCH="mx-not-in-policy.invalid"  # no MX host is allowed (policy/socketmap.h kNoHostAllowed)
CONTROL_MILTER_PORT=8892          # the control's socketmap daemon needs a milter socket too
MIN_OVERLAP_PERCENT=25            # "met": domains both callers had in flight at once
PASSED=0 FAILED=0
PIDS=()                           # daemons started here, stopped by pid
LIST="" RUN=""

die() { echo "FAIL setup: $*"; exit 1; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  testbed_down
}

# ------------------------------------------------------------ bed
bed_up() {
  testbed_up || die "test bed did not start"
  trap cleanup EXIT
  RUN="$TB_DIR/run" LIST="$TB_DIR/run/domains.txt"
  printf 'version: STSv1\nmode: enforce\nmx: *.mx.%s\nmax_age: 86400\n' "$ZONE_SUFFIX" >"$RUN/policy.txt"
  tb_nginx_tune 2 1024
  tb_bulk_hosts plain 'd%03d.shared' "$DOMAINS" 4 "$RUN/policy.txt" >"$LIST" || die "bulk hosts"
  # The bulk servers log nothing (benchmarks); here the access log is the
  # fetch counter, so their blocks use the bed's log format like the others.
  sed -i '/access_log off;/d' "$TB_DIR"/nginx/hosts/_bulk*.conf
  tb_commit || die "tb_commit"
  local first txt code
  first=$(head -n 1 "$LIST")
  txt=$(tb_exec dig +short +time=2 +tries=1 @"$TB_DNS_ADDR" TXT "_mta-sts.$first")
  [ "$txt" = '"v=STSv1; id=1"' ] || die "TXT of $first is '$txt'"
  code=$(tb_exec curl -sS --max-time 5 --cacert "$TB_CA_FILE" -o /dev/null -w '%{http_code}' \
    --resolve "mta-sts.$first:443:127.1.100.1" "https://mta-sts.$first/.well-known/mta-sts.txt" 2>&1)
  [ "$code" = 200 ] || die "policy of $first over HTTPS: $code"
  [ "$(tb_hits "mta-sts.$first" /.well-known/mta-sts.txt)" = 1 ] ||
    die "nginx did not log the bed check's fetch of mta-sts.$first: fetches cannot be counted"
}

# daemon_start CONF LOG PORT...: "$MTASTS_BIN" -c CONF in the namespace; waits
# for every PORT on 127.0.0.1; sets DAEMON_PID.
daemon_start() {
  local conf=$1 log=$2 port i; shift 2
  # Not through tb_exec: $! must be the daemon itself, so SIGTERM reaches it.
  ip netns exec "$TB_NS" "$MTASTS_BIN" -c "$conf" >>"$log" 2>&1 &
  DAEMON_PID=$!
  PIDS+=("$DAEMON_PID")
  for port in "$@"; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$DAEMON_PID" 2>/dev/null || die "daemon exited at start: $(tail -n 3 "$log" | tr '\n' ' ')"
      mb_wait_port 127.0.0.1 "$port" 1 && break
      sleep 0.1
    done
    ((i < 100)) || die "daemon does not listen on 127.0.0.1:$port after 10 s"
  done
}

# daemon_stop PID: SIGTERM, SIGKILL after 15 s; the exit status goes to
# DAEMON_RC (137: killed). Not in $(...): only the parent can wait.
daemon_stop() {
  local i
  kill -TERM "$1" 2>/dev/null
  for ((i = 0; i < 150; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  ((i < 150)) || kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  DAEMON_RC=$?
  DAEMON_STOP_S=$(awk -v i="$i" 'BEGIN { printf "%.1f", i / 10 }')
}

# drive OUT: both callers at once (see lib/socketmap_shared_client.py); prints
# its summary line.
drive() {
  tb_exec timeout 60 /usr/bin/python3 "$CLIENT" "$MB_MILTER_PORT" "$MB_SOCKETMAP_PORT" "$LIST" "$1" \
    "$SEED" "$CONNS" 2>"$1.err"
  local rc=$?
  [ "$rc" = 0 ] || echo "client-status=$rc $(head -n 3 "$1.err" | tr '\n' ' ')"
}

# ------------------------------------------------------------ checks
# fetch_problems FROM_LINE WANT: what is wrong with the policy fetches nginx
# logged after line FROM_LINE, when every policy host should have been fetched
# exactly WANT times and nothing else requested. Empty when all is well.
fetch_problems() {
  tail -n +"$(($1 + 1))" "$TB_DIR/nginx/access.log" |
    awk -v want="$2" -v list="$LIST" '
      BEGIN { while ((getline d < list) > 0) { hosts["mta-sts." d] = 0; n++ } }
      $4 == "/.well-known/mta-sts.txt\"" && $3 == "\"GET" && ($1 in hosts) && $5 == 200 { hosts[$1]++; next }
      { other++; if (other <= 3) sample = sample " [" $0 "]" }
      END {
        for (h in hosts) { c = hosts[h]; if (by[c]++ < 2) ex[c] = ex[c] " " h }
        for (c in by) if (c != want) printf "hosts fetched %s times: %d (e.g.%s); ", c, by[c], ex[c]
        if (other) printf "%d other requests:%s; ", other, sample
      }'
}

check_clients() {  # check_clients OUT SUMMARY
  local why="" m s
  m=$(awk -F'\t' '$1 == "milter"' "$1" | cut -f2 | sort -u | wc -l)
  s=$(awk -F'\t' '$1 == "socketmap"' "$1" | cut -f2 | sort -u | wc -l)
  [[ $2 == *"errors=0 "* && $2 != *client-status* ]] || why+="client: $2; "
  [ "$m" = "$DOMAINS" ] || why+="milter asked for $m of $DOMAINS domains; "
  [ "$s" = "$DOMAINS" ] || why+="socketmap asked for $s of $DOMAINS domains; "
  echo "${why%; }"
}

check_met() {  # check_met SUMMARY
  local n
  n=$(sed -n 's/.*overlapped=\([0-9]*\).*/\1/p' <<<"$1")
  ((${n:-0} * 100 >= DOMAINS * MIN_OVERLAP_PERCENT)) ||
    echo "only ${n:-0} of $DOMAINS domains were asked by both callers at once (want >= $MIN_OVERLAP_PERCENT%)"
}

# Per domain, the socketmap replies in order: TEMPs (each retried) then one
# final reply, OK secure match=...; nothing asked after it.
check_socketmap_answers() {  # OUT
  awk -F'\t' -v want="OK secure match=$MATCH servername=hostname" -v list="$LIST" '
    BEGIN { while ((getline d < list) > 0) domains[d] = 1 }
    $1 != "socketmap" { next }
    done[$2] { again++; next }
    $7 ~ /^TEMP/ { next }
    { done[$2] = 1; if (index($7, want) != 1 && bad++ < 3) ex = ex " [" $2 ": " $7 "]" }
    END {
      for (d in domains) if (!done[d]) { open_++; if (open_ <= 3) ex2 = ex2 " " d }
      if (open_) printf "%d domains without a final reply (TEMP to the end):%s; ", open_, ex2
      if (bad) printf "%d final replies not \"%s\":%s; ", bad, want, ex
      if (again) printf "%d requests after a final reply; ", again
    }' "$1"
}

check_milter_answers() {  # OUT LOG
  local why
  why=$(awk -F'\t' '$1 == "milter" && index($7, "y 451 4.7.5 MTA-STS: " $2 ": ") != 1 {
          if (bad++ < 3) ex = ex " [" $2 ": " $7 "]" }
        END { if (bad) printf "%d RCPT replies not 451 4.7.5 for their domain:%s; ", bad, ex }' "$1")
  why+=$(grep ' decision queue_id=' "$2" | awk -v list="$LIST" '
    BEGIN { while ((getline d < list) > 0) { want[d] = 1; n++ } }
    { delete kv; for (i = 1; i <= NF; i++) if ((p = index($i, "=")) > 0) kv[substr($i, 1, p - 1)] = substr($i, p + 1)
      d = kv["domain"]; lines[d]++; src[kv["source"]]++
      if (!(d in want) || kv["mode"] != "enforce" || kv["policy_id"] != "1" || kv["source"] !~ /^(fetched|cache)$/)
        if (bad++ < 3) ex = ex " [" $0 "]" }
    END {
      for (d in want) if (lines[d] != 1) { off++; if (off <= 3) ex2 = ex2 " " d "=" lines[d] + 0 }
      if (off) printf "%d domains without exactly one decision line (%s); ", off, ex2
      if (bad) printf "%d decision lines not mode=enforce policy_id=1 source=fetched|cache:%s; ", bad, ex
    }')
  echo "${why%; }"
}

# The lookup lines, and the counts the server logs when it stops. A request
# starts (or joins) at most one lookup, so a domain has 1..(its requests)
# lookup lines, the last answer=OK mode=enforce source=fetched|cache. Earlier
# ones only where the first answer could not be kept for the retry: the
# lookup itself ran out of the deadline (answer=TEMP why=pending
# reason=deadline), or it answered OK with dane=unknown (never reused).
# With the default deadline every domain has exactly one line.
check_socketmap_log() {  # OUT LOG
  local why stopped got lines lookup_temps client_temps requests temp_deadline
  why=$(awk -F'\t' -v list="$LIST" '
    BEGIN { while ((getline d < list) > 0) want[d] = 1 }
    FNR == NR { if ($1 == "socketmap") requests[$2]++; next }
    { delete kv; nf = split($0, f, " ")
      for (i = 1; i <= nf; i++) if ((p = index(f[i], "=")) > 0) kv[substr(f[i], 1, p - 1)] = substr(f[i], p + 1)
      k = kv["key"]; n[k]++; if (n[k] > 1 && !early[k]) early_bad[k] = prev[k]
      ok = kv["answer"] == "OK" && kv["mode"] == "enforce" && kv["source"] ~ /^(fetched|cache)$/ && kv["policy_domain"] == k
      pending = kv["answer"] == "TEMP" && kv["why"] == "pending" && kv["reason"] == "deadline" && kv["source"] == "none"
      if (!(k in want) || !(ok || pending)) if (bad++ < 3) ex = ex " [" $0 "]"
      last[k] = ok; early[k] = pending || (ok && kv["dane"] == "unknown"); prev[k] = $0 }
    END {
      for (d in want) if (n[d] < 1 || n[d] > requests[d] || !last[d]) {
        off++; if (off <= 3) ex2 = ex2 " " d ":lines=" n[d] + 0 ",requests=" requests[d] + 0 ",last-ok=" last[d] + 0 }
      for (d in early_bad) if (eb++ < 2) ex3 = ex3 " [" early_bad[d] "]"
      if (off) printf "%d domains whose lookup lines do not fit their requests (%s); ", off, ex2
      if (bad) printf "%d lookup lines neither OK for a bed domain nor TEMP pending:%s; ", bad, ex
      if (eb) printf "%d domains with a kept answer before another lookup:%s; ", eb, ex3
    }' "$1" <(grep 'socketmap event=lookup ' "$2"))
  lines=$(grep -c 'socketmap event=lookup ' "$2")
  lookup_temps=$(grep 'socketmap event=lookup ' "$2" | grep -c ' answer=TEMP ')
  client_temps=$(awk -F'\t' '$1 == "socketmap" && $7 ~ /^TEMP/' "$1" | wc -l)
  requests=$(awk -F'\t' '$1 == "socketmap"' "$1" | wc -l)
  stopped=$(grep -m1 'socketmap event=stopped ' "$2")
  if [ -z "$stopped" ]; then
    why+="no 'socketmap event=stopped' line; "
  else
    got=$(grep -o -E '(requests|lookups)=[0-9]+' <<<"$stopped" | tr '\n' ' ')
    [ "$got" = "requests=$requests lookups=$lines " ] ||
      why+="stop counts '$got', want requests=$requests (the client's) lookups=$lines (lookup lines); "
    # Each TEMP the client saw came from the server's deadline or from a
    # lookup that gave up; one request can cause both.
    temp_deadline=$(sed -n 's/.* temp_deadline=\([0-9]*\).*/\1/p' <<<"$stopped")
    ((temp_deadline <= client_temps && client_temps <= temp_deadline + lookup_temps)) ||
      why+="client saw $client_temps TEMP, server counted temp_deadline=$temp_deadline and $lookup_temps TEMP lookups; "
  fi
  echo "${why%; }"
}

# Sources as each caller saw them: who discovered, who found the cache.
sources() {  # LOG
  echo "decision $(grep ' decision queue_id=' "$1" | grep -o 'source=[a-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
  echo "socketmap $(grep 'socketmap event=lookup ' "$1" | grep -o 'source=[a-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
}

# ------------------------------------------------------------ runs
shared_run() {
  local conf="$RUN/shared.toml" log="$RUN/shared.log" out="$RUN/shared.tsv" offset summary rc
  mb_socketmap_config "$conf" 'log.level="info"' || die "config"
  # [socketmap] is the file's last section.
  [ -z "$DEADLINE_MS" ] || echo "deadline_ms = $DEADLINE_MS" >>"$conf"
  daemon_start "$conf" "$log" "$MB_MILTER_PORT" "$MB_SOCKETMAP_PORT"
  offset=$(wc -l <"$TB_DIR/nginx/access.log")
  summary=$(drive "$out" | tail -n 1)
  daemon_stop "$DAEMON_PID"; rc=$DAEMON_RC
  echo "shared engine: $summary; $(awk -F'\t' '$1 == "socketmap" && $7 ~ /^TEMP/' "$out" | wc -l) TEMP replies; SIGTERM to exit ${DAEMON_STOP_S}s"
  sources "$log" | sed 's/^/  sources: /'
  report clients "$(check_clients "$out" "$summary")"
  report met "$(check_met "$summary")"
  report fetched-once "$(fetch_problems "$offset" 1)"
  report socketmap-answers "$(check_socketmap_answers "$out")"
  report milter-answers "$(check_milter_answers "$out" "$log")"
  report socketmap-log "$(check_socketmap_log "$out" "$log")"
  report clean-stop "$([ "$rc" = 0 ] || echo "exit status $rc after ${DAEMON_STOP_S}s: $(tail -n 2 "$log" | tr '\n' ' ')")"
}

# Two engines: the milter in one daemon, the socketmap in another, each with
# its own store (tb_config names the store after the config file).
control_run() {
  local a="$RUN/control-milter" b="$RUN/control-socketmap" offset summary pid_a why
  mb_milter_config "$a.toml" 'log.level="info"' || die "config"
  # tb_config turns the socketmap off unless asked (the daemon's default is on).
  MB_MILTER_PORT=$CONTROL_MILTER_PORT mb_socketmap_config "$b.toml" 'log.level="info"' || die "config"
  daemon_start "$a.toml" "$a.log" "$MB_MILTER_PORT"; pid_a=$DAEMON_PID
  daemon_start "$b.toml" "$b.log" "$CONTROL_MILTER_PORT" "$MB_SOCKETMAP_PORT"
  offset=$(wc -l <"$TB_DIR/nginx/access.log")
  summary=$(drive "$RUN/control.tsv" | tail -n 1)
  daemon_stop "$pid_a"; daemon_stop "$DAEMON_PID"
  echo "control (two engines): $summary"
  why=$(check_clients "$RUN/control.tsv" "$summary")
  if [ -z "$why" ]; then
    [ -n "$(fetch_problems "$offset" 1)" ] || why="fetched-once passed with two separate engines"
    [ -z "$(fetch_problems "$offset" 2)" ] ||
      why+="${why:+; }two engines did not fetch every policy exactly twice: $(fetch_problems "$offset" 2)"
  fi
  report control "$why"
}

main() {
  local start=$SECONDS
  [ -x "$MTASTS_BIN" ] || die "MTASTS_BIN '$MTASTS_BIN' is not an executable"
  bed_up
  echo "bed: $DOMAINS policy domains *.$ZONE_SUFFIX, $CONNS connections per caller, seed $SEED"
  shared_run
  control_run
  echo "$PASSED passed, $FAILED failed in $((SECONDS - start))s"
  [ "$FAILED" = 0 ]
}

main "$@"
