#!/usr/bin/env bash
# systemd's notify protocol (sd_notify(3)) from the real daemon, without
# systemd: the test plays the service manager, as systemd does, with a unix
# datagram socket in $NOTIFY_SOCKET and $WATCHDOG_USEC=2 s, and reads what
# the daemon sends (in a network namespace of its own):
#   ready          READY=1 with a STATUS= naming the policies in memory, once
#                  the milter socket accepts connections
#   watchdog       WATCHDOG=1 about every second (WatchdogSec/2) while healthy
#   reload         SIGUSR1: RELOADING=1, then READY=1 again
#   stopping       SIGTERM: STOPPING=1, exit 0
#   no-socket      without $NOTIFY_SOCKET the daemon starts and stops as before
#   unit           contrib's unit is Type=notify with WatchdogSec and
#                  NotifyAccess=main (systemd-analyze verify: contrib_systemd.sh)
#
# Usage: systemd_notify.sh   (as root; MTASTS_BIN: the executable)
# Prints "ok NAME" / "FAIL NAME: why", then "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
# shellcheck source-path=SCRIPTDIR source=lib/offline_config.sh
source "$HERE/lib/offline_config.sh"
ROOT=$(cd "$HERE/../.." && pwd)
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
UNIT="$ROOT/contrib/systemd/mta-sts-milter.service"
WORK=$(mktemp -d) || exit 1
trap 'rm -rf "$WORK"' EXIT

write_files() {
  offline_config "$WORK/milter.toml" 'inet:18896@127.0.0.1' "$WORK/state/cache.db"
  # The service manager's end: each datagram as one line, its fields joined by "|".
  cat >"$WORK/manager.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        data = s.recv(65536).decode("utf-8", "replace").strip("\n")
        out.write("%.3f %s\n" % (time.monotonic(), data.replace("\n", "|")))
EOF
}

# In a network namespace of its own: the manager, then the daemon with the
# notify variables; SIGUSR1 once it is ready, SIGTERM 3 s later.
run_in_namespace() {
  cat >"$WORK/inner.sh" <<'EOF'
set -u
WORK=$1 BIN=$2
ip link set lo up
python3 "$WORK/manager.py" "$WORK/notify.sock" "$WORK/notify.log" &
manager=$!
for _ in $(seq 50); do [ -S "$WORK/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET="$WORK/notify.sock" WATCHDOG_USEC=2000000 "$BIN" -c "$WORK/milter.toml" 2>"$WORK/milter.log" &
pid=$!
for _ in $(seq 100); do grep -q 'READY=1' "$WORK/notify.log" 2>/dev/null && break; sleep 0.1; done
# Is the socket open when READY=1 came? (bash's /dev/tcp, no other tool)
if (exec 3<>/dev/tcp/127.0.0.1/18896) 2>/dev/null; then echo open >"$WORK/socket-at-ready"; fi
sleep 2.5
kill -USR1 "$pid"
sleep 1
kill -TERM "$pid"
wait "$pid"
echo $? >"$WORK/milter.rc"
sleep 0.3
kill "$manager"
# The same daemon without NOTIFY_SOCKET.
"$BIN" -c "$WORK/milter.toml" 2>"$WORK/plain.log" &
pid=$!
for _ in $(seq 100); do grep -q 'milter event=started' "$WORK/plain.log" && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
echo $? >"$WORK/plain.rc"
EOF
  timeout 60 unshare -n bash "$WORK/inner.sh" "$WORK" "$MTASTS_BIN" >"$WORK/inner.log" 2>&1
}

check_ready() {
  local line
  line=$(grep -m1 'READY=1' "$WORK/notify.log")
  [ -n "$line" ] || { echo "no READY=1: $(head -c 300 "$WORK/notify.log") $(tail -n 3 "$WORK/milter.log")"; return; }
  [[ $line == *"STATUS=policies in memory: 0, milter sessions: 0, recipients waiting: 0"* ]] ||
    echo "READY line: $line"
  [ -f "$WORK/socket-at-ready" ] || echo "the milter socket did not accept a connection at READY=1"
}

# WATCHDOG=1 every ~1 s between READY and the reload (about 2.5 s).
check_watchdog() {
  local pings
  pings=$(grep -c '^[0-9.]* WATCHDOG=1$' "$WORK/notify.log")
  [ "$pings" -ge 3 ] || echo "$pings WATCHDOG=1 in about 3.5 s, want at least 3: $(cat "$WORK/notify.log")"
}

check_reload() {
  local order
  order=$(grep -oE 'RELOADING=1|READY=1|STOPPING=1' "$WORK/notify.log" | tr '\n' ' ')
  [ "$order" = "READY=1 RELOADING=1 READY=1 STOPPING=1 " ] || echo "states in order: '$order'"
}

check_stopping() {
  [ "$(cat "$WORK/milter.rc" 2>/dev/null)" = 0 ] || echo "exit status $(cat "$WORK/milter.rc" 2>/dev/null)"
  grep -q 'STOPPING=1' "$WORK/notify.log" || echo "no STOPPING=1"
}

check_no_socket() {
  [ "$(cat "$WORK/plain.rc" 2>/dev/null)" = 0 ] ||
    echo "exit status $(cat "$WORK/plain.rc" 2>/dev/null): $(tail -n 3 "$WORK/plain.log")"
  ! grep -q 'systemd event=' "$WORK/plain.log" || echo "systemd lines without a manager: $(grep systemd "$WORK/plain.log")"
}

check_unit() {
  local why=""
  grep -qx 'Type=notify' "$UNIT" || why+="not Type=notify; "
  grep -qx 'NotifyAccess=main' "$UNIT" || why+="no NotifyAccess=main; "
  grep -qE '^WatchdogSec=[0-9]+' "$UNIT" || why+="no WatchdogSec; "
  echo -n "${why%; }"
}

main() {
  [ -x "$MTASTS_BIN" ] || { report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"; return 1; }
  write_files
  run_in_namespace || { report setup "namespace run failed: $(tail -n 5 "$WORK/inner.log")"; }
  report ready "$(check_ready)"
  report watchdog "$(check_watchdog)"
  report reload "$(check_reload)"
  report stopping "$(check_stopping)"
  report no-socket "$(check_no_socket)"
  report unit "$(check_unit)"
  report_summary
}

main "$@"
