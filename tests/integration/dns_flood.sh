#!/usr/bin/env bash
# A burst of slow-DNS recipients must not stop DNS for everyone (issue #10
# item 1). The daemon's only resolver is a stand-in forwarder
# (lib/servfail_dns.py) that answers SERVFAIL at once, and names containing
# "slow" after 3 s. While 600 recipients at distinct dN.slow.example domains
# arrive over 30 connections, and for 15 s after:
#   known-domain   a recipient at enforce.example (policy cached, its MX lookup
#                  answered SERVFAIL at once) is decided from a real DNS answer
#                  every time (reason mx-lookup-servfail, under 1 s), never
#                  mx-lookup-timeout
#   new-domain     after the burst, a domain never seen before is looked up
#                  (its decision has no deadline or timeout reason)
# Before the fix, from about 4 s into the burst every lookup timed out, for
# as long as the test watched. Runs as root in a private network namespace.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}

if [ -z "${MTASTS_FLOOD_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "FAIL setup: must run as root"; exit 1; }
  exec unshare -n env MTASTS_FLOOD_NETNS=1 MTASTS_BIN="$BIN" bash "$0" "$@"
fi
ip link set lo up || { echo "FAIL setup: cannot bring up lo"; exit 1; }

WORK=$(mktemp -d /tmp/mtasts-flood.XXXXXX)
MILTER_PID="" DNS_PID=""
cleanup() {
  [ -n "$MILTER_PID" ] && kill "$MILTER_PID" 2>/dev/null && wait "$MILTER_PID" 2>/dev/null
  [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null && wait "$DNS_PID" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$HERE/lib/servfail_dns.py" 127.0.0.9 "$WORK/slow-queries" 2>"$WORK/dns.err" &
DNS_PID=$!
echo "enforce.example. IN DS 12345 13 2 $(printf '0%.0s' {1..64})" >"$WORK/anchor.txt"
cat >"$WORK/conf.toml" <<EOF
[milter]
socket = "inet:$PORT@127.0.0.1"
[decision]
rcpt_deadline_ms = 1000
[store]
path = "$WORK/store/cache.db"
[dns]
use_resolv_conf = false
forwarders = ["127.0.0.9"]
trust_anchor_files = ["$WORK/anchor.txt"]
timeout = 5
[policy]
txt_recheck_interval = 86400
EOF
printf '{"domain":"enforce.example","txt_id":"1","raw":"version: STSv1\\nmode: enforce\\nmx: mx.enforce.example\\nmax_age: 604800\\n"}\n' \
  >"$WORK/seed.jsonl"
"$BIN" -c "$WORK/conf.toml" cache import "$WORK/seed.jsonl" >"$WORK/import.out" 2>&1 ||
  { echo "FAIL setup: cache import: $(cat "$WORK/import.out")"; exit 1; }
LOG=$WORK/milter.log
: >"$LOG"
"$BIN" -c "$WORK/conf.toml" 2>>"$LOG" &
MILTER_PID=$!
for ((i = 0; i < 100; i++)); do grep -q 'milter event=started' "$LOG" && break; sleep 0.1; done
grep -q 'milter event=started' "$LOG" || { echo "FAIL setup: milter did not start: $(tail -3 "$LOG")"; exit 1; }

client() { timeout 120 python3 "$HERE/lib/limits_client.py" "$PORT" "$@"; }
client spray 600 30 slow.example >"$WORK/spray.out" 2>&1 &
spray_pid=$!
# One recipient every 0.5 s for 20 s: through the burst and after it.
client watch enforce.example 40 0.5 >"$WORK/watch.out" 2>&1
wait "$spray_pid"
fresh=$(client rcpts 0 fresh.example 2>&1)

why=""
[ "$(wc -l <"$WORK/watch.out")" = 40 ] || why="watch: $(tail -3 "$WORK/watch.out");"
slow_ones=$(awk '$3 >= 1000' "$WORK/watch.out" | wc -l)
timeouts=$(grep -c 'mx-lookup-timeout' "$WORK/watch.out")
[ "$timeouts" = 0 ] || why="$why $timeouts of 40 lookups timed out;"
[ "$slow_ones" = 0 ] || why="$why $slow_ones of 40 took 1 s or more;"
grep -q 'sprayed=600 answered=600' "$WORK/spray.out" || why="$why spray: $(cat "$WORK/spray.out");"
[ "$(wc -l <"$WORK/slow-queries")" -ge 30 ] || why="$why only $(wc -l <"$WORK/slow-queries") slow queries reached the server;"
if [ -n "$why" ]; then fail known-domain "$why $(awk '{ printf "%s:%s ", $1, $3 }' "$WORK/watch.out")"
else ok known-domain; echo "  $(cat "$WORK/spray.out"); watch ms: $(awk '{ printf "%s ", $3 }' "$WORK/watch.out")"; fi

if ! grep -q '^fresh.example c ' <<<"$fresh"; then fail new-domain "reply: $fresh"
elif grep -Eq 'decision queue_id=LIM00 domain=fresh.example .*reason=(deadline|txt-timeout|overloaded) ' "$LOG"; then
  fail new-domain "$(grep 'domain=fresh.example' "$LOG")"
else ok new-domain; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
