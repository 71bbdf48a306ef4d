#!/usr/bin/env bash
# log.syslog = true (issue #3 §1): the daemon logs through syslog(3) with
# facility mail, tagged mta-sts-milter[PID], levels mapped to syslog
# severities, and writes nothing to stderr.
#
# Runs in private mount and network namespaces (unshare -m -n): a private
# /dev carries a /dev/log datagram socket read by a small listener, so the
# host's logging is never touched and no packet leaves the namespace (the
# DNSSEC self-test fails there, which gives an error-level line to check).
#
# Usage: daemon_syslog.sh   (as root; MTASTS_BIN: the executable)
# Prints "ok NAME" / "FAIL NAME: why", then "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
ROOT=$(cd "$HERE/../.." && pwd)
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
WORK=$(mktemp -d) || exit 1
trap 'rm -rf "$WORK"' EXIT
# syslog(3) priorities: facility mail (2) * 8 + severity.
MAIL_ERR=19
MAIL_INFO=22

write_config() {
  cat >"$WORK/milter.toml" <<EOF
[milter]
socket = 'inet:18895@127.0.0.1'
[store]
path = '$WORK/state/cache.db'
[dns]
use_resolv_conf = false
timeout = 1
[log]
syslog = true
EOF
}

# Receives syslog datagrams on the socket $1 and appends each as a line to $2.
write_listener() {
  cat >"$WORK/listener.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
EOF
}

# Inside the namespaces: the private /dev, the listener, the daemon started
# and stopped with SIGTERM. Leaves milter.rc, milter.stderr and syslog.out.
run_in_namespace() {
  cat >"$WORK/inner.sh" <<'EOF'
set -u
WORK=$1 BIN=$2
ip link set lo up
mount --make-rprivate /
mkdir -p "$WORK/dev" && mount -t tmpfs tmpfs "$WORK/dev"
for node in null zero random urandom; do
  touch "$WORK/dev/$node" && mount --bind "/dev/$node" "$WORK/dev/$node"
done
: >"$WORK/syslog.out"
python3 "$WORK/listener.py" "$WORK/dev/log" "$WORK/syslog.out" &
listener=$!
for _ in $(seq 50); do [ -S "$WORK/dev/log" ] && break; sleep 0.1; done
mount --bind "$WORK/dev" /dev
"$BIN" -c "$WORK/milter.toml" >"$WORK/milter.stdout" 2>"$WORK/milter.stderr" &
pid=$!
for _ in $(seq 100); do grep -q 'milter event=started' "$WORK/syslog.out" && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
echo $? >"$WORK/milter.rc"
sleep 0.2
kill "$listener"
EOF
  timeout 60 unshare -m -n bash "$WORK/inner.sh" "$WORK" "$MTASTS_BIN" >"$WORK/inner.log" 2>&1
}

check_line() {  # check_line PRIORITY PATTERN: a received line has both
  grep -qE "^<$1>.*mta-sts-milter\[[0-9]+\]: $2" "$WORK/syslog.out" ||
    echo "no <$1> line matching '$2' in: $(head -n 5 "$WORK/syslog.out")"
}

main() {
  [ -x "$MTASTS_BIN" ] || { report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"; return 1; }
  write_config
  write_listener
  run_in_namespace
  report info-as-mail-info "$(check_line $MAIL_INFO 'milter event=started version=[0-9.]* socket=inet:18895@127.0.0.1')"
  report error-as-mail-err "$(check_line $MAIL_ERR 'dns event=dnssec-self-test result=failed')"
  report stop-logged "$(check_line $MAIL_INFO 'milter event=stopped')"
  report nothing-on-stderr "$([ -s "$WORK/milter.stderr" ] && echo "stderr: $(head -n 3 "$WORK/milter.stderr")")"
  report sigterm-exit-0 "$(rc=$(cat "$WORK/milter.rc" 2>/dev/null); [ "$rc" = 0 ] ||
    echo "exit status '$rc' (want 0): $(tail -n 3 "$WORK/inner.log")")"
  report_summary
}

main "$@"
