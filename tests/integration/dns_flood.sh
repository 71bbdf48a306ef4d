#!/usr/bin/env bash
# A burst of slow-DNS recipients must not stop DNS for everyone (issue #10
# item 1). The daemon's only resolver is a stand-in forwarder
# (lib/servfail_dns.py) that answers enforce.example's names at once (MX
# mx.enforce.example, A 127.0.0.10, unsigned, TTL 1 s: looked up again
# every second), every other name SERVFAIL at
# once, and names containing "slow" after 3 s. While 600 recipients at
# distinct dN.slow.example domains arrive over 30 connections, and for 15 s
# after:
#   known-domain   a recipient at enforce.example (policy cached) is decided
#                  from real DNS answers every time, under 1 s: its MX and
#                  address resolve and the probe of 127.0.0.10 is refused
#                  (mx-unreachable), never mx-lookup-timeout or deadline
#   new-domain     after the burst, domains never seen before (one every
#                  2 s) are looked up for real again within 40 s (no-policy,
#                  not deadline, timeout, overloaded or dns-servfail: before
#                  the fix libunbound counted the forwarder as down for 900 s)
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
bed_servfail_dns 127.0.0.9 enforce.example
# An anchor for a zone nothing here uses: enforce.example is insecure (its
# answers are not signed), and there is no root zone to anchor.
bed_anchor anchor.invalid
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
# Domains never seen before whose DNS answers (under enforce.example: no
# _mta-sts record there), one every 2 s from the end of the watch: the first
# looked up for real says when libunbound stopped counting the forwarder as
# down (900 s before the fix; seconds after it, later under ASan, where the
# cancelled slow lookups keep timing out for longer).
recovered=""
for ((i = 1; i <= 20; i++)); do
  fresh=$(client rcpts 0 "fresh$i.enforce.example" 2>&1)
  if ! grep -q "^fresh$i.enforce.example c " <<<"$fresh"; then recovered="reply: $fresh"; break; fi
  if ! grep -Eq "domain=fresh$i.enforce.example .*reason=(deadline|txt-timeout|overloaded|dns-servfail) " "$LOG"; then
    recovered=$i
    break
  fi
  sleep 2
done

why=""
[ "$(wc -l <"$WORK/watch.out")" = 40 ] || why="watch: $(tail -3 "$WORK/watch.out");"
slow_ones=$(awk '$3 >= 1000' "$WORK/watch.out" | wc -l)
timeouts=$(grep -Ec 'timeout|deadline|overloaded' "$WORK/watch.out")
[ "$timeouts" = 0 ] || why="$why $timeouts of 40 lookups timed out;"
# What a refused probe of a resolved MX says (not a DNS failure).
resolved=$(grep -Ec ' y [0-9]+ 451_4.7.5_MTA-STS:_enforce.example:_mx-unreachable' "$WORK/watch.out")
[ "$resolved" = 40 ] || why="$why only $resolved of 40 decided after resolving the MX: $(sort "$WORK/watch.out" -k4 | awk '{print $4}' | uniq -c | tr '\n' ' ');"
[ "$slow_ones" = 0 ] || why="$why $slow_ones of 40 took 1 s or more;"
grep -q 'sprayed=600 answered=600' "$WORK/spray.out" || why="$why spray: $(cat "$WORK/spray.out");"
[ "$(wc -l <"$WORK/slow-queries")" -ge 30 ] || why="$why only $(wc -l <"$WORK/slow-queries") slow queries reached the server;"
if [ -n "$why" ]; then fail known-domain "$why $(awk '{ printf "%s:%s ", $1, $3 }' "$WORK/watch.out")"
else ok known-domain; echo "  $(cat "$WORK/spray.out"); watch ms: $(awk '{ printf "%s ", $3 }' "$WORK/watch.out")"; fi

if [ -z "$recovered" ]; then
  fail new-domain "no new domain looked up for real within 40 s of the watch: $(grep 'domain=fresh20.enforce.example' "$LOG")"
elif ! [[ "$recovered" =~ ^[0-9]+$ ]]; then fail new-domain "$recovered"
elif ! grep -q "domain=fresh$recovered.enforce.example .*reason=no-policy " "$LOG"; then
  fail new-domain "$(grep "domain=fresh$recovered.enforce.example" "$LOG")"
else ok new-domain; echo "  new domains looked up for real again after $(((recovered - 1) * 2)) s"; fi

bed_summary
