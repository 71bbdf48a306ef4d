#!/usr/bin/env bash
# Socket activation (milter/socket_activation.h) under a real systemd
# (lib/systemd_ns.sh), in a network namespace of its own. The socket units
# are contrib's, with test addresses; the service is a test unit running
# MTASTS_BIN as nobody (so libmilter's unlink of its unix socket at exit,
# which it skips for root, would happen):
#   sockets-first       both sockets listen, the service has not started
#   milter-unix         a milter OPTNEG on the unix socket systemd made starts
#                       the service and is answered
#   activated-log       the journal says socket-activated for both names, the
#                       config's own milter address is not listened on, and
#                       the socketmap, which the config leaves off, runs on
#                       the passed socket with its lookup threads
#   socketmap           a socketmap request on the passed socket is answered
#   stop-keeps-socket   after the service stops the unix socket's path is
#                       still there, and a new connection starts it again
#   milter-inet         the same with the milter socket on 127.0.0.1 (the
#                       inet family through libmilter)
#   bad-name            a socket named otherwise: the start fails with a line
#                       naming it (exit 78, EX_CONFIG)
#
# Usage: socket_activation.sh   (as root; MTASTS_BIN: the executable)
# Prints "ok NAME" / "FAIL NAME: why", then "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
# shellcheck source-path=SCRIPTDIR source=lib/offline_config.sh
source "$HERE/lib/offline_config.sh"
ROOT=$(cd "$HERE/../.." && pwd)
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
# shellcheck source-path=SCRIPTDIR source=lib/systemd_ns.sh
source "$HERE/lib/systemd_ns.sh"
NS=mtasts-sa-$$
SERVICE=mta-sts-milter.service
MILTER_SOCKET_UNIT=mta-sts-milter.socket
SOCKETMAP_SOCKET_UNIT=mta-sts-milter-socketmap.socket
# Inside the namespace: /run/sd-test holds the copies of $WORK/sd-files.
SOCKET_PATH=/run/sd-test/sock/milter.sock
SOCKETMAP_PORT=18462
MILTER_PORT=18901
WORK=$(mktemp -d) || exit 1

cleanup() {
  sd_shutdown
  ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# contrib's socket unit with ListenStream= replaced.
socket_unit() {  # socket_unit NAME LISTEN
  sed "s|^ListenStream=.*|ListenStream=$2|" "$ROOT/contrib/systemd/$1"
}

write_files() {
  local units="$WORK/sd-units" files="$WORK/sd-files"
  mkdir -p "$units" "$files/state" "$files/sock"
  chown nobody "$files/state" "$files/sock"
  offline_config "$files/milter.toml" 'inet:18898@127.0.0.1' "/run/sd-test/state/cache.db"
  chmod 0644 "$files/milter.toml"
  cat >"$units/$SERVICE" <<EOF
[Service]
Type=notify
NotifyAccess=main
ExecStart=$MTASTS_BIN -c /run/sd-test/milter.toml
User=nobody
Group=nogroup
EOF
  # A sanitizer build's options (scripts/sanitize.sh: reports to a folder it
  # checks), which systemd would not pass on by itself.
  local name
  for name in ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS; do
    [ -z "${!name:-}" ] || echo "Environment=\"$name=${!name}\"" >>"$units/$SERVICE"
  done
  socket_unit "$MILTER_SOCKET_UNIT" "$SOCKET_PATH" >"$units/$MILTER_SOCKET_UNIT"
  socket_unit "$SOCKETMAP_SOCKET_UNIT" "127.0.0.1:$SOCKETMAP_PORT" >"$units/$SOCKETMAP_SOCKET_UNIT"
}

# milter_optneg unix:PATH | inet:PORT -> "O" when the milter answered the
# option negotiation with its own (libmilter, protocol version 6).
milter_optneg() {
  sd_nsexec python3 - "$1" <<'EOF'
import socket, struct, sys
kind, _, where = sys.argv[1].partition(":")
if kind == "unix":
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(where)
else:
    s = socket.create_connection(("127.0.0.1", int(where)), timeout=20)
body = b"O" + struct.pack(">III", 6, 0x1FF, 0x1FFFFF)
s.sendall(struct.pack(">I", len(body)) + body)
head = s.recv(5)
print(head[4:5].decode() if len(head) == 5 else "none")
EOF
}

# A socketmap request; prints the reply's status word.
socketmap_ask() {
  sd_nsexec python3 - "$SOCKETMAP_PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
q = b"postfix example.invalid"
s.sendall(str(len(q)).encode() + b":" + q + b",")
reply = b""
while not reply.endswith(b","):
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
length, _, rest = reply.partition(b":")
print(rest[:-1].split(b" ")[0].decode() if length.isdigit() else "malformed:" + repr(reply))
EOF
}

unit_property() { sd_ctl show -P "$2" "$1" 2>&1; }
journal() { sd_journal -u "$SERVICE" -o cat 2>&1; }
listening() { ip netns exec "$NS" ss -Hltn "sport = :$1" | grep -q .; }

check_sockets_first() {
  local why="" unit
  for unit in "$MILTER_SOCKET_UNIT" "$SOCKETMAP_SOCKET_UNIT"; do
    [ "$(unit_property "$unit" ActiveState)" = active ] || why+="$unit is $(unit_property "$unit" ActiveState); "
  done
  [ "$(unit_property "$SERVICE" ActiveState)" = inactive ] ||
    why+="$SERVICE is $(unit_property "$SERVICE" ActiveState) before any connection; "
  listening "$SOCKETMAP_PORT" || why+="nothing listens on $SOCKETMAP_PORT; "
  sd_nsexec test -S "$SOCKET_PATH" || why+="no socket at $SOCKET_PATH; "
  echo -n "$why"
}

check_milter() {  # check_milter unix:PATH | inet:PORT
  local got why=""
  got=$(milter_optneg "$1" 2>&1)
  [ "$got" = O ] || why+="OPTNEG on $1 answered '$got' (want O); "
  [ "$(unit_property "$SERVICE" ActiveState)" = active ] ||
    why+="$SERVICE is $(unit_property "$SERVICE" ActiveState): $(journal | tail -n 2); "
  echo -n "$why"
}

check_activated_log() {
  local log why=""
  log=$(journal)
  grep -q "startup event=socket-activated name=milter address=unix:$SOCKET_PATH instead_of=inet:18898@127.0.0.1" \
    <<<"$log" || why+="no socket-activated line for the milter; "
  grep -q "startup event=socket-activated name=socketmap address=inet:$SOCKETMAP_PORT@127.0.0.1 instead_of=none" \
    <<<"$log" || why+="no socket-activated line for the socketmap; "
  # The config has no socketmap: the passed socket alone turns it on, with
  # its lookup threads fitted as for a configured one (not a single thread).
  grep -q "socketmap event=started socket=inet:$SOCKETMAP_PORT@127.0.0.1 " <<<"$log" ||
    why+="no 'socketmap event=started' line with the passed address; "
  grep -Eq "milter event=limits .*socketmap_lookup_threads=([2-9]|[1-9][0-9]+)( |$)" <<<"$log" ||
    why+="socketmap lookup threads: $(grep -o 'socketmap_lookup_threads=[0-9]*' <<<"$log" | head -n 1); "
  ! listening 18898 || why+="the config's milter address 18898 is listened on; "
  echo -n "$why"
}

check_socketmap() {
  local got
  got=$(socketmap_ask 2>&1)
  case $got in OK | NOTFOUND | TEMP) ;; *) echo "reply '$got' (want a socketmap status)" ;; esac
}

check_stop_keeps_socket() {
  local why="" out
  out=$(sd_ctl stop "$SERVICE" 2>&1) || { echo "systemctl stop: $out"; return; }
  [ "$(unit_property "$SERVICE" Result)/$(unit_property "$SERVICE" ExecMainStatus)" = success/0 ] ||
    why+="stopped with $(unit_property "$SERVICE" Result)/$(unit_property "$SERVICE" ExecMainStatus); "
  sd_nsexec test -S "$SOCKET_PATH" || why+="$SOCKET_PATH is gone after the service stopped; "
  why+=$(check_milter "unix:$SOCKET_PATH")
  echo -n "$why"
}

# The milter socket unit moved to 127.0.0.1:$MILTER_PORT.
check_milter_inet() {
  local out
  out=$(sd_ctl stop "$SERVICE" "$MILTER_SOCKET_UNIT" 2>&1) || { echo "systemctl stop: $out"; return; }
  socket_unit "$MILTER_SOCKET_UNIT" "127.0.0.1:$MILTER_PORT" |
    sd_nsexec tee "/run/systemd/system/$MILTER_SOCKET_UNIT" >/dev/null
  out=$({ sd_ctl daemon-reload && sd_ctl start "$MILTER_SOCKET_UNIT"; } 2>&1) || { echo "restart socket: $out"; return; }
  check_milter "inet:$MILTER_PORT"
  journal | grep -q "name=milter address=inet:$MILTER_PORT@127.0.0.1 " || echo "no socket-activated line for inet:$MILTER_PORT"
}

# A third socket unit with a name the daemon does not know.
check_bad_name() {
  local out why=""
  out=$(sd_ctl stop "$SERVICE" 2>&1) || { echo "systemctl stop: $out"; return; }
  printf '[Socket]\nListenStream=127.0.0.1:18903\nFileDescriptorName=metrics\nService=%s\n' "$SERVICE" |
    sd_nsexec tee /run/systemd/system/mta-sts-milter-extra.socket >/dev/null
  sd_ctl daemon-reload && sd_ctl start mta-sts-milter-extra.socket || { echo "cannot start the extra socket"; return; }
  sd_ctl start "$SERVICE" >/dev/null 2>&1
  [ "$(unit_property "$SERVICE" ExecMainStatus)" = 78 ] ||
    why+="exit status $(unit_property "$SERVICE" ExecMainStatus) (want 78); "
  journal | grep -q "systemd passed a socket named 'metrics'" || why+="no line naming the socket: $(journal | tail -n 2); "
  echo -n "$why"
}

if ! [ -x "$MTASTS_BIN" ]; then report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"; exit 1; fi
write_files
if ! { ip netns add "$NS" && ip -n "$NS" link set lo up && chmod 0755 "$WORK" &&
  sd_boot "$NS" "$WORK" "$MILTER_SOCKET_UNIT" "$SOCKETMAP_SOCKET_UNIT"; }; then
  report setup "systemd did not boot: $(tail -n 3 "$WORK/systemd.log")"
  exit 1
fi
report sockets-first "$(check_sockets_first)"
report milter-unix "$(check_milter "unix:$SOCKET_PATH")"
report activated-log "$(check_activated_log)"
report socketmap "$(check_socketmap)"
report stop-keeps-socket "$(check_stop_keeps_socket)"
report milter-inet "$(check_milter_inet)"
report bad-name "$(check_bad_name)"
report_summary
