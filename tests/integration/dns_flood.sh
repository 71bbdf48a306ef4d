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

# shellcheck source=lib/netns_bed.sh
. "$HERE/lib/netns_bed.sh"
bed_enter_netns -- "$@"
bed_workdir mtasts-flood

PORT=$(bed_free_port)
bed_servfail_dns 127.0.0.9
bed_anchor enforce.example
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
bed_seed_enforce enforce.example "$WORK/conf.toml"
bed_start_milter

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

bed_summary
