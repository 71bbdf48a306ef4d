#!/usr/bin/env bash
# The socketmap on a unix socket, with the milter socket's rules
# (milter/listen_socket.h): a missing folder created 0750 for the socket's
# owner and group, the socket given milter.socket_mode, owner and group
# before privileges go, a stale socket from an earlier run replaced, and
# anything else at the path refused.
#   unix-layout     folder 0750 and socket 0660, group postfix (socket_group)
#   unix-answers    postmap over the unix socket: a parent-domain key is
#                   NOTFOUND, an unknown map name PERM (no DNS needed)
#   stale-replaced  a restart over the socket the first run left behind
#   not-a-socket    a regular file at the path: exit 73 (EX_CANTCREAT), the file kept
# Runs as root in a private network namespace (unshare -n). KEEP=1 keeps the work folder.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}

# shellcheck source=lib/netns_bed.sh
. "$HERE/lib/netns_bed.sh"
bed_enter_netns -- "$@"
bed_workdir mtasts-socketmap-unix

PORT=$(bed_free_port)
bed_anchor example
LOG="$WORK/daemon.log"
: >"$LOG"
FOLDER="$WORK/spool/mta-sts"
SOCK="$FOLDER/socketmap.sock"
mkdir -p "$WORK/spool"

cat >"$WORK/conf.toml" <<EOF
[milter]
socket = "inet:$PORT@127.0.0.1"
socket_group = "postfix"
socket_mode = "0660"
[store]
path = "$WORK/store/cache.db"
[dns]
use_resolv_conf = false
forwarders = ["127.0.0.9"]
trust_anchor_files = ["$WORK/anchor.txt"]
[socketmap]
socket = "unix:$SOCK"
EOF

# query KEY MAP: postmap's stdout, stderr and status on one line.
query() {
  local out err status
  out=$(timeout 20 postmap -q "$1" "socketmap:unix:$SOCK:$2" 2>"$WORK/postmap.err")
  status=$?
  err=$(tr '\n' ' ' <"$WORK/postmap.err")
  echo "status=$status out=$out err=$err"
}

bed_start_milter
why=""
[ "$(stat -c '%a %G' "$FOLDER" 2>&1)" = "750 postfix" ] || why="folder: $(stat -c '%a %U:%G' "$FOLDER" 2>&1);"
[ "$(stat -c '%F %a %G' "$SOCK" 2>&1)" = "socket 660 postfix" ] || why="$why socket: $(stat -c '%F %a %U:%G' "$SOCK" 2>&1);"
if [ -n "$why" ]; then fail unix-layout "$why"; else ok unix-layout; fi

why=""
got=$(query .example.com postfix)
[[ $got == "status=1 out= err=" ]] || why="parent-domain key: $got;"
got=$(query example.com nosuchmap)
[[ $got == *"status=1 out= "*"permanent error: unknown map name nosuchmap"* ]] || why="$why unknown map: $got;"
if [ -n "$why" ]; then fail unix-answers "$why"; else ok unix-answers; fi

# Stopped with SIGKILL: the socket stays behind, as after a crash.
kill -KILL "$MILTER_PID"; wait "$MILTER_PID" 2>/dev/null
[ -S "$SOCK" ] || echo "note: no socket left behind to replace"
bed_start_milter
got=$(query .example.com postfix)
if [[ $got == "status=1 out= err=" ]]; then ok stale-replaced; else fail stale-replaced "after a restart: $got"; fi
bed_stop "$MILTER_PID"

rm -f "$SOCK"
echo "operator's file" >"$SOCK"
timeout 30 "$BIN" -c "$WORK/conf.toml" >>"$LOG" 2>&1
status=$?
why=""
[ "$status" = 73 ] || why="exit $status, want 73 (EX_CANTCREAT);"
grep -q 'socketmap socket path .* exists and is not a socket' "$LOG" || why="$why no clear error: $(tail -2 "$LOG");"
[ "$(cat "$SOCK" 2>&1)" = "operator's file" ] || why="$why the file was changed;"
if [ -n "$why" ]; then fail not-a-socket "$why"; else ok not-a-socket; fi

bed_summary
