#!/usr/bin/env bash
# Milter protocol tests: what an MTA cannot easily produce. Drives the daemon
# with Debian's miltertest (Lua scripts in milter_protocol/) and a small
# python3 milter client (lib/milter_client.py), without an MTA:
#   no-macros        enforce domain, no {rcpt_mailer}/{rcpt_host}: RCPT continues,
#                    EOM adds "MTA-STS: unknown|fail" (non_smtp_action=tag)
#   rcpt-macros      smtp next hop: 451 4.7.5 "MTA-STS: DOMAIN: ..." at RCPT for
#                    the enforce domain, continue for a domain without policy
#   abort-new-txn    abort after RCPT, new transaction on the same connection;
#                    decision line with queue_id=NOQUEUE
#   broken-peer      garbage bytes, truncated/oversized/unknown packets
#   concurrent       50 simultaneous connections, one transaction each
#   big-message      1,200 then 5,000 RCPTs in one message (a direct milter
#                    client; Postfix stops at 1,000): 452 4.5.3 past
#                    decision.max_recipients (default 1000), end of message
#                    within its budget, one count line, bounded RSS growth
#   reload-ok        SIGUSR1 with enforce_action="tag": new connections use it,
#                    an open connection survives
#   reload-refused   SIGUSR1 with a broken file: refused, old config stays
#   sigterm          a callback in progress is finished, a RCPT sent once the
#                    daemon is stopping is deferred ("shutting down"), an idle
#                    connection does not hold the daemon past its drain bound;
#                    exit 0, "stopped"
# The enforce policy is seeded with `cache import` (txt_recheck_interval
# large: no TXT lookup); a stand-in DNS forwarder answers SERVFAIL, so the
# MX lookup fails and the verdict is unknown, which RFC 8461 §5 under
# enforce turns into a tempfail. Runs as root in a private network namespace
# (unshare -n): nothing can leave the machine. KEEP=1 keeps the work folder.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
# Prints "ok NAME" or "FAIL NAME: why" per scenario and last "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
LUA_DIR=$HERE/milter_protocol

# shellcheck source=lib/netns_bed.sh
. "$HERE/lib/netns_bed.sh"
bed_enter_netns miltertest -- "$@"
bed_workdir mtasts-proto

ENFORCE=enforce.example
NOPOLICY=nopolicy.example

PORT=$(bed_free_port)
SOCK="inet:$PORT@127.0.0.1"

# write_config ENFORCE_ACTION [RCPT_DEADLINE_MS DNS_TIMEOUT_S]: the private configuration.
write_config() {
  cat >"$WORK/conf.toml" <<EOF
[milter]
socket = "$SOCK"
[decision]
rcpt_deadline_ms = ${2:-1500}
message_budget_ms = 20000
enforce_action = "$1"
non_smtp_action = "tag"
[store]
path = "$WORK/store/cache.db"
[dns]
use_resolv_conf = false
forwarders = ["$DNS_ADDR"]
trust_anchor_files = ["$WORK/anchor.txt"]
timeout = ${3:-1}
# libunbound's own default: a "slower" name keeps its decision in flight (sigterm).
max_server_rtt_ms = 120000
[probe]
step_timeout_ms = 500
[policy]
txt_recheck_interval = 86400
EOF
}

# The forwarder (lib/servfail_dns.py) answers SERVFAIL to every query at once
# (so the enforce domain's MX lookup fails and every other domain has no
# policy, quickly), and after 3 s to names containing "slow" (a decision
# still in flight).
DNS_ADDR=127.0.0.9
bed_servfail_dns "$DNS_ADDR"
bed_anchor "$ENFORCE"
write_config tempfail
bed_seed_enforce "$ENFORCE" "$WORK/conf.toml"

# ---- the python3 milter client (lib/milter_client.py: raw protocol, no libmilter)
client() { timeout 60 python3 "$HERE/lib/milter_client.py" "$PORT" "$@"; }

# mt SCRIPT -D ...: one miltertest run with common parameters.
mt() { local s=$1; shift; timeout 60 miltertest -D DIR="$LUA_DIR" -D SOCK="$SOCK" "$@" -s "$LUA_DIR/$s" 2>&1; }

wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
start_milter() { bed_start_milter; }
start_milter

# ---- 1. no next-hop macros: continue at RCPT, tag at EOM
m=$(mark)
out=$(mt no_macros.lua -D QID=S1QID -D DOMAIN=$ENFORCE)
if [ $? != 0 ]; then fail no-macros "$out"
elif ! wait_log "$m" "decision queue_id=S1QID domain=$ENFORCE next_hop=unknown mode=enforce .* action=tag " 3; then
  fail no-macros "no tag decision line: $(log_since "$m" | tail -3)"
else ok no-macros; fi

# ---- 2. macros: 451 4.7.5 for the enforce domain, continue without policy
m=$(mark)
out=$(mt rcpt_macros.lua -D QID=S2QID -D ENFORCE=$ENFORCE -D NOPOLICY=$NOPOLICY)
text=$(client rcpt-text 2>&1)
if ! grep -q "enforce=tempfail nopolicy=continue header=none" <<<"$out"; then fail rcpt-macros "$out"
elif ! grep -Eq "^$ENFORCE y 451 4\.7\.5 MTA-STS: $ENFORCE: [a-z0-9-]+\$" <<<"$text"; then
  fail rcpt-macros "reply text of the enforce recipient: $text"
elif ! grep -Eq "^$NOPOLICY c \$" <<<"$text"; then fail rcpt-macros "no-policy recipient: $text"
elif ! wait_log "$m" "decision queue_id=S2QID domain=$ENFORCE next_hop=domain mode=enforce policy_id=20240101 source=cache .* action=tempfail " 3; then
  fail rcpt-macros "no tempfail decision line: $(log_since "$m" | tail -3)"
elif ! log_has "$m" "decision queue_id=S2QID domain=$NOPOLICY next_hop=domain mode=- .* action=continue "; then
  fail rcpt-macros "no continue decision line: $(log_since "$m" | tail -3)"
elif [ "$(log_since "$m" | grep -c "decision queue_id=S2QID domain=$ENFORCE ")" != 1 ]; then
  fail rcpt-macros "not one decision line per (message, domain): $(log_since "$m" | grep S2QID)"
else ok rcpt-macros; fi

# ---- 3. abort after RCPT, then new transactions on the same connection
m=$(mark)
out=$(mt abort_then_new.lua -D QID_A=S3A -D QID_B=S3B -D ENFORCE=$ENFORCE -D NOPOLICY=$NOPOLICY)
if [ $? != 0 ]; then fail abort-new-txn "$out"
elif ! wait_log "$m" "decision queue_id=S3B domain=$NOPOLICY .* action=continue " 3; then
  fail abort-new-txn "no decision line for the second transaction: $(log_since "$m")"
elif [ "$(log_since "$m" | grep -c "decision queue_id=NOQUEUE domain=$ENFORCE .*action=tempfail ")" != 2 ]; then
  fail abort-new-txn "want two NOQUEUE tempfail lines: $(log_since "$m" | grep decision)"
elif log_has "$m" "queue_id=S3A "; then fail abort-new-txn "aborted transaction logged with its queue id"
else ok abort-new-txn; fi

# ---- 4. broken peers: garbage, truncated and invalid packets
m=$(mark)
why=""
for c in $(client garbage list) mid-rcpt-drop; do
  client garbage "$c" >>"$WORK/garbage.out" 2>&1 || why="$why client($c) failed;"
  alive || { why="$why daemon died after $c;"; break; }
done
sleep 0.3
if alive; then
  out=$(mt one_txn.lua -D QID=S4QID -D RCPT=user@$ENFORCE -D MAILER=smtp -D HOST=$ENFORCE -D WANT_RCPT=tempfail -D WANT_HDR=none)
  [ $? = 0 ] || why="$why session after garbage: $out;"
fi
alive || why="$why daemon not running: $(tail -5 "$LOG");"
if [ -n "$why" ]; then fail broken-peer "$why"; else ok broken-peer; fi

# ---- 5. 50 simultaneous connections, one transaction each
m=$(mark)
start=$(date +%s%N)
out=$(client concurrent 50 2>&1)
rc=$?
took=$((($(date +%s%N) - start) / 1000000))
lines=$(log_since "$m" | grep -c 'decision queue_id=CONC')
if [ $rc != 0 ]; then fail concurrent "$(tail -5 <<<"$out" | tr "\n" ";")"
elif ! alive; then fail concurrent "daemon died: $(tail -5 "$LOG")"
elif [ "$lines" != 50 ]; then fail concurrent "$lines decision lines, want 50"
else ok concurrent; echo "  50 connections in ${took} ms"; fi

# ---- 5b. too many recipients in one message (issue #10 item 8): with the
# default decision.max_recipients (1000) the recipients past it get 452 4.5.3
# at once, the ones within are decided (at RCPT with next-hop macros, at end
# of message without), end of message keeps to message_budget_ms (20 s),
# the daemon logs one count line per message and keeps answering, and its
# RSS grows by what 1,000 recipients cost, not by what was sent.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$MILTER_PID/status"; }
why=""
rss_before=$(rss_kib)
for run in "1200 smtp BIGQ1" "5000 nonsmtp BIGQ2"; do
  read -r n kind qid <<<"$run"
  m=$(mark)
  out=$(client many-rcpts $n $kind $qid 2>&1)
  echo "  $kind: $n RCPTs: $(tail -1 <<<"$out")"
  grep -qx "accepted=1000 deferred=$((n - 1000)) other=0 first_deferred=1001 rcpt_ms=[0-9]* eom=c eom_ms=[0-9]*" <<<"$out" ||
    why="$why $qid: $(tail -3 <<<"$out" | tr '\n' ' ');"
  # The budget bounds waiting: once spent, each recipient left is answered
  # from the cache with no time (measured ~0.05 ms each), so 1,000 fit in 1 s.
  eom_ms=$(grep -o 'eom_ms=[0-9]*' <<<"$out" | cut -d= -f2)
  [ "${eom_ms:-99999}" -lt 21000 ] || why="$why $qid: end of message took ${eom_ms:-?} ms, budget 20000;"
  wait_log "$m" "milter event=too-many-recipients queue_id=$qid limit=1000 refused=$((n - 1000))\$" 5 ||
    why="$why $qid: no count line: $(log_since "$m" | grep -v '^.*decision ' | tail -2 | tr '\n' ' ');"
  [ "$(log_since "$m" | grep -c "decision queue_id=$qid ")" = 1000 ] ||
    why="$why $qid: $(log_since "$m" | grep -c "decision queue_id=$qid ") decision lines, want 1000;"
  [ "$(log_since "$m" | grep -c "too-many-recipients")" = 1 ] || why="$why $qid: not one count line;"
done
rss_after=$(rss_kib)
text=$(client rcpt-text 2>&1)
grep -Eq "^$ENFORCE y 451 4\.7\.5 MTA-STS: $ENFORCE: " <<<"$text" || why="$why not answering after: $text;"
alive || why="$why daemon died: $(tail -5 "$LOG");"
# Measured: the 2,000 decided here add ~3.5 MiB (engine caches included);
# without the limit the 6,200 sent added 12.2 MiB.
growth=$((${rss_after:-0} - ${rss_before:-0}))
# Under ASan (scripts/sanitize.sh) freed memory sits in its quarantine and
# RSS says nothing about what the daemon keeps: the bound holds for the
# normal build; the counts above hold for both.
if [ -z "${ASAN_OPTIONS:-}" ]; then
  [ "$growth" -lt 10240 ] || why="$why RSS grew by $growth KiB (from $rss_before), bound 10240;"
fi
if [ -n "$why" ]; then fail big-message "$why"; else ok big-message; echo "  RSS ${rss_before} -> ${rss_after} KiB"; fi

# ---- 6a. SIGUSR1 with a valid changed config: new connections use it
m=$(mark)
rm -f "$WORK/ready" "$WORK/go"
mt hold_across_reload.lua -D ENFORCE=$ENFORCE -D READY="$WORK/ready" -D GO="$WORK/go" >"$WORK/hold.out" &
hold_pid=$!
why=""
wait_file "$WORK/ready" 10
[ -e "$WORK/ready" ] || why="held connection never got ready: $(cat "$WORK/hold.out");"
write_config tag
kill -USR1 "$MILTER_PID"
wait_log "$m" 'reload event=ok' 5 || why="$why no reload event=ok;"
out=$(mt one_txn.lua -D QID=S6QID -D RCPT=user@$ENFORCE -D MAILER=smtp -D HOST=$ENFORCE -D WANT_RCPT=continue -D WANT_HDR='unknown')
[ $? = 0 ] || why="$why new connection after reload: $out;"
touch "$WORK/go"
wait "$hold_pid" || why="$why held connection: $(cat "$WORK/hold.out");"
log_has "$m" "decision queue_id=S6QID domain=$ENFORCE .* action=tag " || why="$why no tag decision line;"
alive || why="$why daemon died;"
if [ -n "$why" ]; then fail reload-ok "$why"; else ok reload-ok; echo "  $(grep held- "$WORK/hold.out")"; fi

# ---- 6b. SIGUSR1 with a broken file: refused, the running config stays
m=$(mark)
why=""
cp "$WORK/conf.toml" "$WORK/conf.good"
printf '[decision\nenforce_action = "tempfail"\n' >"$WORK/conf.toml"
kill -USR1 "$MILTER_PID"
wait_log "$m" 'reload event=refused' 5 || why="no reload event=refused: $(log_since "$m" | tail -2);"
out=$(mt one_txn.lua -D QID=S6BQID -D RCPT=user@$ENFORCE -D MAILER=smtp -D HOST=$ENFORCE -D WANT_RCPT=continue -D WANT_HDR='unknown')
[ $? = 0 ] || why="$why not the old (tag) config after refusal: $out;"
printf '[decision]\nenforce_action = "bogus"\n' >"$WORK/conf.toml"
m2=$(mark)
kill -USR1 "$MILTER_PID"
wait_log "$m2" 'reload event=refused' 5 || why="$why out-of-range value not refused: $(log_since "$m2" | tail -2);"
alive || why="$why daemon died;"
cp "$WORK/conf.good" "$WORK/conf.toml"
if [ -n "$why" ]; then fail reload-refused "$why"; else ok reload-refused; fi

# ---- 6c. SIGTERM while one RCPT decision is in flight (restarted with an
# 8 s RCPT deadline; its TXT lookup is answered after 10 s, so the callback
# still runs when libmilter notices the signal, up to 5 s later), a second
# connection sends its RCPT once the daemon is stopping, a third sits idle
# after MAIL. What must hold: the daemon shuts callbacks out first and
# then waits for the running one (event=stopping callbacks_in_flight=1,
# then stopped with 0); the in-flight RCPT gets its reply; the late RCPT is
# never let through (libmilter takes no new command once smfi_main has
# returned, so it gets no reply and the MTA applies milter_default_action;
# were it dispatched, the shut gate would defer it); the idle connection
# does not keep the daemon past its bounded drain; the exit status is 0.
kill -TERM "$MILTER_PID"; wait "$MILTER_PID"
write_config tempfail 8000 12
start_milter
m=$(mark)
why=""
rm -f "$WORK"/ready-* "$WORK"/go-* "$WORK/slow-queries"
client hold "$WORK/ready-a" now slower.example >"$WORK/hold-a.out" 2>&1 &
hold_a=$!
client hold "$WORK/ready-b" - $ENFORCE >"$WORK/hold-b.out" 2>&1 &
hold_b=$!
client hold "$WORK/ready-c" "$WORK/go-c" $ENFORCE >"$WORK/hold-c.out" 2>&1 &
hold_c=$!
wait_file "$WORK/ready-a" 10 && wait_file "$WORK/ready-b" 10 && wait_file "$WORK/ready-c" 10 ||
  why="held clients not ready;"
# The RCPT callback is running once its TXT lookup reaches the slow DNS.
wait_file "$WORK/slow-queries" 10 || why="$why the in-flight RCPT never asked DNS;"
start=$(date +%s%N)
kill -TERM "$MILTER_PID"
wait_log "$m" 'milter event=stopping callbacks_in_flight=1' 10 ||
  why="$why no milter event=stopping with the RCPT in flight: $(log_since "$m" | grep event=stop);"
touch "$WORK/go-c"
for ((i = 0; i < 170; i++)); do alive || break; sleep 0.1; done
if alive; then why="$why still running 17 s after SIGTERM;"; kill -KILL "$MILTER_PID"; fi
wait "$MILTER_PID"; rc=$?
took=$((($(date +%s%N) - start) / 1000000))
MILTER_PID=""
wait "$hold_c" 2>/dev/null
kill "$hold_b" 2>/dev/null; wait "$hold_a" "$hold_b" 2>/dev/null
[ "$rc" = 0 ] || why="$why exit status $rc;"
grep -qx 'rcpt=c' "$WORK/hold-a.out" ||
  why="$why in-flight RCPT not answered after SIGTERM: $(cat "$WORK/hold-a.out" | tail -2 | tr '\n' ' ');"
grep -Eqx 'rcpt=(closed|y 451 4\.7\.5 MTA-STS: shutting down, try again later)' "$WORK/hold-c.out" ||
  why="$why RCPT sent while stopping was let through: $(cat "$WORK/hold-c.out" | tail -2 | tr '\n' ' ');"
log_has "$m" 'milter event=stopped callbacks_in_flight=0' ||
  why="$why no milter event=stopped with none in flight: $(log_since "$m" | tail -3);"
if [ -n "$why" ]; then fail sigterm "$why"
else
  ok sigterm
  echo "  stopped in ${took} ms: $(grep -o 'milter event=stopped.*' "$LOG" | tail -1);" \
    "in-flight $(head -1 "$WORK/hold-a.out"), late $(head -1 "$WORK/hold-c.out")"
fi

if [ "$failed" != 0 ]; then echo "--- milter log (last 20 lines)"; tail -20 "$LOG"; fi
bed_summary
