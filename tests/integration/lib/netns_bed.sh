# shellcheck shell=bash
# What the loopback-only scripts (milter_protocol, milter_limits, dns_flood,
# config_checks, store_faults) share: a private network namespace, a work
# folder cleaned up at exit, "ok"/"FAIL" counting, the stand-in DNS
# forwarder, and the daemon's log. Source it after setting BIN; the script
# keeps its own scenarios and config.
#   bed_enter_netns [COMMAND...] -- "$@"
#                        re-runs the script as root in a private network
#                        namespace (unshare -n), after checking COMMANDs exist
#   bed_workdir PREFIX   WORK=/tmp/PREFIX.XXXXXX, removed at exit unless KEEP=1;
#                        the daemon (MILTER_PID) and the DNS stand-in (DNS_PID)
#                        are stopped at exit
#   ok NAME / fail NAME WHY / bed_summary
#   bed_free_port        a free TCP port on 127.0.0.1
#   bed_servfail_dns ADDR [ANSWERED]
#                        lib/servfail_dns.py on ADDR:53 (SERVFAIL at once;
#                        names with "slow" after 3 s, "slower" after 10 s,
#                        listed in $WORK/slow-queries; names under ANSWERED
#                        resolve, unsigned); sets DNS_PID
#   bed_anchor DOMAIN    $WORK/anchor.txt, a trust anchor that replaces the
#                        root's (no root zone here: the self-test is skipped)
#   bed_seed_enforce DOMAIN CONF
#                        `cache import` of an enforce policy, id 20240101
#   bed_start_milter [PREFIX...]
#                        the daemon on $WORK/conf.toml (under PREFIX, e.g.
#                        prlimit), stderr appended to $LOG; waits for this
#                        start's own "started" line
#   bed_task_cgroup MAX  a pids cgroup (v1 pids hierarchy, else v2) allowing
#                        MAX tasks, removed at exit; sets TASK_CGROUP, and
#                        TASK_PREFIX, a bed_start_milter prefix that moves the
#                        daemon into it before it starts any thread
#   mark / log_since MARK / log_has MARK REGEX / wait_log MARK REGEX SECONDS / alive
BED_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MILTER_PID=""
DNS_PID=""
passed=0
failed=0

bed_enter_netns() {
  local needed=() command
  while [ $# -gt 0 ] && [ "$1" != -- ]; do needed+=("$1"); shift; done
  shift
  if [ -z "${MTASTS_BED_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "FAIL setup: must run as root"; exit 1; }
    for command in "${needed[@]}"; do
      command -v "$command" >/dev/null || { echo "FAIL setup: $command not installed"; exit 1; }
    done
    exec unshare -n env MTASTS_BED_NETNS=1 MTASTS_BIN="$BIN" bash "$0" "$@"
  fi
  ip link set lo up || { echo "FAIL setup: cannot bring up lo"; exit 1; }
}

bed_stop() {  # bed_stop PID: stops it and waits, if it runs
  [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null
  return 0
}

bed_cleanup() {
  bed_stop "$MILTER_PID"
  bed_stop "$DNS_PID"
  [ -n "${TASK_CGROUP:-}" ] && rmdir "$TASK_CGROUP" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}

bed_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  LOG=$WORK/milter.log
  : >"$LOG"
  trap bed_cleanup EXIT
  trap 'exit 130' INT TERM
}

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
bed_summary() {
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}

bed_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bed_servfail_dns() {
  python3 "$BED_LIB/servfail_dns.py" "$1" "$WORK/slow-queries" "${@:2}" 2>"$WORK/dns.err" &
  DNS_PID=$!
}

bed_anchor() {
  echo "$1. IN DS 12345 13 2 $(printf '0%.0s' {1..64})" >"$WORK/anchor.txt"
}

bed_seed_enforce() {
  printf '{"domain":"%s","txt_id":"20240101","raw":"version: STSv1\\nmode: enforce\\nmx: mx.%s\\nmax_age: 604800\\n"}\n' \
    "$1" "$1" >"$WORK/seed.jsonl"
  "$BIN" -c "$2" cache import "$WORK/seed.jsonl" >"$WORK/import.out" 2>&1 ||
    { echo "FAIL setup: cache import: $(cat "$WORK/import.out")"; exit 1; }
}

mark() { wc -l <"$LOG"; }
log_since() { tail -n +"$(($1 + 1))" "$LOG"; }
log_has() { log_since "$1" | grep -Eq -- "$2"; }
wait_log() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do log_has "$1" "$2" && return 0; sleep 0.1; done
  return 1
}
alive() { [ -n "$MILTER_PID" ] && kill -0 "$MILTER_PID" 2>/dev/null; }

# A restart appends to the log, whose earlier "started" line must not count:
# under ASan the start-up checks take long enough for a client to find no
# socket yet.
bed_start_milter() {
  local m
  m=$(mark)
  "$@" "$BIN" -c "$WORK/conf.toml" 2>>"$LOG" &
  MILTER_PID=$!
  wait_log "$m" 'milter event=started' 20 || { echo "FAIL setup: milter did not start: $(tail -5 "$LOG")"; exit 1; }
}

bed_task_cgroup() {
  local name parent
  name="mtasts-it-$$"
  if [ -d /sys/fs/cgroup/pids ]; then parent=/sys/fs/cgroup/pids
  elif grep -qw pids /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    parent=/sys/fs/cgroup
    grep -qw pids "$parent/cgroup.subtree_control" || echo +pids >"$parent/cgroup.subtree_control"
  else
    echo "FAIL setup: no cgroup pids controller (v1 /sys/fs/cgroup/pids or v2)"
    exit 1
  fi
  TASK_CGROUP="$parent/$name"
  mkdir "$TASK_CGROUP" && echo "$1" >"$TASK_CGROUP/pids.max" ||
    { echo "FAIL setup: cannot create the pids cgroup $TASK_CGROUP"; exit 1; }
  # shellcheck disable=SC2016  # expanded by the inner shell
  TASK_PREFIX=(bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$TASK_CGROUP")
}
