#!/usr/bin/env bash
# Limits under a flood (issue #10), with the real daemon and a raw milter
# client (lib/limits_client.py), without an MTA:
#   fd-limit      the daemon starts with 160 descriptors (hard limit): it fits
#                 its connection cap into them (80), refuses connections
#                 beyond it at negotiation with one log line, answers every
#                 one of 200 connections (accepted or refused), still
#                 resolves DNS and answers a recipient while they are open,
#                 and does not spin (CPU while holding them)
#   waiting-cap   engine.max_waiting_rcpts = 2: two recipients wait for slow
#                 discoveries; the next ones are answered at once, as
#                 "overloaded", while a domain whose policy is cached is
#                 still decided from the caches
#   sighup        SIGHUP reloads the configuration (as SIGUSR1) and the daemon
#                 keeps serving; SIGTERM then stops it with exit 0
# A stand-in DNS forwarder (lib/servfail_dns.py) answers SERVFAIL at once,
# and names containing "slower" after 10 s. Runs as root in a private network
# namespace (unshare -n). KEEP=1 keeps the work folder.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
# Prints "ok NAME" or "FAIL NAME: why" per scenario and last "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}

if [ -z "${MTASTS_LIMITS_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "FAIL setup: must run as root"; exit 1; }
  exec unshare -n env MTASTS_LIMITS_NETNS=1 MTASTS_BIN="$BIN" bash "$0" "$@"
fi
ip link set lo up || { echo "FAIL setup: cannot bring up lo"; exit 1; }

WORK=$(mktemp -d /tmp/mtasts-limits.XXXXXX)
MILTER_PID=""
DNS_PID=""
stop_milter() {
  [ -n "$MILTER_PID" ] && kill "$MILTER_PID" 2>/dev/null && wait "$MILTER_PID" 2>/dev/null
  MILTER_PID=""
}
cleanup() {
  stop_milter
  [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null && wait "$DNS_PID" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ENFORCE=enforce.example
NOPOLICY=nopolicy.example
LOG=$WORK/milter.log
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DNS_ADDR=127.0.0.9
python3 "$HERE/lib/servfail_dns.py" "$DNS_ADDR" "$WORK/slow-queries" 2>"$WORK/dns.err" &
DNS_PID=$!
# A replaced trust anchor skips the root-zone self-test (no root here).
echo "$ENFORCE. IN DS 12345 13 2 $(printf '0%.0s' {1..64})" >"$WORK/anchor.txt"

# write_config EXTRA_ENGINE_LINES: the private configuration.
write_config() {
  cat >"$WORK/conf.toml" <<EOF
[milter]
socket = "inet:$PORT@127.0.0.1"
[decision]
rcpt_deadline_ms = 4000
message_budget_ms = 20000
[store]
path = "$WORK/store/cache.db"
[dns]
use_resolv_conf = false
forwarders = ["$DNS_ADDR"]
trust_anchor_files = ["$WORK/anchor.txt"]
timeout = 12
# libunbound's own default: the "slower" names must keep their recipients waiting.
max_server_rtt_ms = 120000
[probe]
step_timeout_ms = 500
[policy]
txt_recheck_interval = 86400
[engine]
$1
EOF
}
write_config ""
printf '{"domain":"%s","txt_id":"20240101","raw":"version: STSv1\\nmode: enforce\\nmx: mx.%s\\nmax_age: 604800\\n"}\n' \
  "$ENFORCE" "$ENFORCE" >"$WORK/seed.jsonl"
if ! "$BIN" -c "$WORK/conf.toml" cache import "$WORK/seed.jsonl" >"$WORK/import.out" 2>&1; then
  echo "FAIL setup: cache import: $(cat "$WORK/import.out")"; exit 1
fi

client() { timeout 90 python3 "$HERE/lib/limits_client.py" "$PORT" "$@"; }
mark() { wc -l <"$LOG"; }
log_since() { tail -n +"$(($1 + 1))" "$LOG"; }
log_has() { log_since "$1" | grep -Eq -- "$2"; }
wait_log() {  # wait_log MARK REGEX SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do log_has "$1" "$2" && return 0; sleep 0.1; done
  return 1
}
alive() { [ -n "$MILTER_PID" ] && kill -0 "$MILTER_PID" 2>/dev/null; }
# cpu_ticks PID: user + system clock ticks so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# start_milter [PRLIMIT_ARGS...]: the daemon, optionally under prlimit(1).
start_milter() {
  : >"$LOG"
  if [ $# -gt 0 ]; then
    prlimit "$@" -- "$BIN" -c "$WORK/conf.toml" 2>>"$LOG" &
  else
    "$BIN" -c "$WORK/conf.toml" 2>>"$LOG" &
  fi
  MILTER_PID=$!
  wait_log 0 'milter event=started' 10 || { echo "FAIL setup: milter did not start: $(tail -5 "$LOG")"; exit 1; }
}

# ---- 1. 160 descriptors, 200 connections
start_milter --nofile=160:160
why=""
log_has 0 'milter event=limits descriptors=160 .*max_connections=80 ' ||
  why="no limits line with 160 descriptors and 80 connections: $(grep 'event=limits' "$LOG");"
client flood 200 3 "$NOPOLICY" >"$WORK/flood.out" 2>&1 &
flood_pid=$!
for ((i = 0; i < 900; i++)); do grep -q '^rcpt=' "$WORK/flood.out" 2>/dev/null && break; sleep 0.1; done
before=$(cpu_ticks "$MILTER_PID" 2>/dev/null || echo 0)
sleep 2
after=$(cpu_ticks "$MILTER_PID" 2>/dev/null || echo 0)
wait "$flood_pid"
read -r accepted refused unanswered < <(sed -n 's/^accepted=\([0-9]*\) refused=\([0-9]*\) unanswered=\([0-9]*\)$/\1 \2 \3/p' "$WORK/flood.out")
rcpt=$(grep '^rcpt=' "$WORK/flood.out")
if [ -z "${accepted:-}" ]; then why="$why client: $(tr '\n' ';' <"$WORK/flood.out");"
else
  # A few concurrent negotiations may overshoot the cap; sequential ones do not.
  [ "$accepted" -ge 75 ] && [ "$accepted" -le 80 ] || why="$why $accepted accepted, want 75-80;"
  [ "$refused" -ge 120 ] || why="$why only $refused refused;"
  [ "$unanswered" = 0 ] || why="$why $unanswered connections never answered (descriptors exhausted?);"
fi
grep -q '^rcpt=c ' <<<"$rcpt" || why="$why recipient on an accepted connection not answered 'continue': $rcpt;"
log_has 0 'milter event=overloaded what=connections .*limit=80 ' || why="$why no overloaded line;"
log_has 0 'decision queue_id=FLOOD domain=nopolicy.example ' || why="$why no decision line for the recipient;"
# Ticks are 1/100 s: 2 s of a spinning core would be about 200.
[ $((after - before)) -lt 40 ] || why="$why $((after - before)) CPU ticks in 2 s holding the connections (spinning);"
alive || why="$why daemon died: $(tail -3 "$LOG");"
if [ -n "$why" ]; then fail fd-limit "$why"; else ok fd-limit; echo "  $(head -1 "$WORK/flood.out"); $rcpt; cpu $((after - before)) ticks in 2 s"; fi
stop_milter

# ---- 2. two recipients may wait; the rest are answered at once
write_config "max_waiting_rcpts = 2"
start_milter
m=$(mark)
out=$(client rcpts 0.4 a.slower.example b.slower.example c.slower.example d.slower.example "$ENFORCE" 2>&1)
why=""
# answered DOMAIN MAX_MS: the recipient got a reply within MAX_MS.
answered_within() { awk -v d="$1" -v max="$2" '$1 == d && $2 != "error" && $3 >= 0 && $3 <= max { f = 1 } END { exit !f }' <<<"$out"; }
waited_at_least() { awk -v d="$1" -v min="$2" '$1 == d && $3 >= min { f = 1 } END { exit !f }' <<<"$out"; }
for d in a.slower.example b.slower.example; do
  waited_at_least "$d" 3500 || why="$why $d did not wait for its deadline;"
  log_has "$m" "decision queue_id=LIM0[01] domain=$d .* reason=deadline " || why="$why no deadline line for $d;"
done
for d in c.slower.example d.slower.example; do
  answered_within "$d" 1500 || why="$why $d not answered at once;"
  log_has "$m" "decision queue_id=LIM0[23] domain=$d .* reason=overloaded " || why="$why no overloaded line for $d;"
done
answered_within "$ENFORCE" 1500 || why="$why the cached enforce domain was not answered at once;"
log_has "$m" "decision queue_id=(LIM04|NOQUEUE) domain=$ENFORCE .* source=cache " || why="$why $ENFORCE not decided from the cache;"
log_has "$m" "decision queue_id=(LIM04|NOQUEUE) domain=$ENFORCE .* reason=overloaded " && why="$why $ENFORCE called overloaded;"
log_has "$m" 'milter event=overloaded what=waiting-rcpts .*limit=2 ' || why="$why no waiting-rcpts overloaded line;"
if [ -n "$why" ]; then fail waiting-cap "$why $(tr '\n' ';' <<<"$out")"; else ok waiting-cap; echo "  $(tr '\n' ';' <<<"$out")"; fi

# ---- 3. SIGHUP reloads; SIGTERM stops with exit 0
m=$(mark)
write_config "max_waiting_rcpts = 3"
kill -HUP "$MILTER_PID"
why=""
wait_log "$m" 'reload event=ok' 5 || why="no reload event=ok after SIGHUP: $(log_since "$m" | tail -3);"
sleep 0.5
alive || why="$why daemon stopped on SIGHUP;"
out=$(client rcpts 0 "$NOPOLICY" 2>&1)
grep -q "^$NOPOLICY c " <<<"$out" || why="$why not serving after SIGHUP: $out;"
kill -TERM "$MILTER_PID"
wait "$MILTER_PID"
status=$?
MILTER_PID=""
[ "$status" = 0 ] || why="$why SIGTERM exit status $status;"
if [ -n "$why" ]; then fail sighup "$why"; else ok sighup; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
