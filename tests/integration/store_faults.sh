#!/usr/bin/env bash
# Store faults (issue #10): the cache database is only a cache, so a damaged
# or vanished file must never stop the daemon from starting or deciding.
#   corrupt-garbage   cache.db is garbage bytes: the daemon starts, moves it
#                     to cache.db.corrupt-<time> (one "store event=corrupt"
#                     line), builds a new one and decides
#   corrupt-page      a valid cache.db whose page 2 is overwritten: the same
#   deleted-live      cache.db* removed while the daemon runs: the next write
#                     (the last_used flush at stop) notices, logs
#                     "store event=file-deleted ... action=reopened", copies
#                     the deleted file's rows into a new file at the path
#                     and writes there (the seeded policy, its last_used)
# Uses milter_protocol.sh's stand-ins: a DNS forwarder that answers SERVFAIL
# (lib/servfail_dns.py) and miltertest; runs as root in a private network
# namespace (unshare -n). KEEP=1 keeps the work folder.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
# Prints "ok NAME" or "FAIL NAME: why" per scenario and last "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
LUA_DIR=$HERE/milter_protocol

# shellcheck source=lib/netns_bed.sh
. "$HERE/lib/netns_bed.sh"
bed_enter_netns miltertest sqlite3 -- "$@"
bed_workdir mtasts-store

ENFORCE=enforce.example
NOPOLICY=nopolicy.example
STORE=$WORK/store/cache.db
PORT=$(bed_free_port)
SOCK="inet:$PORT@127.0.0.1"
DNS_ADDR=127.0.0.9
bed_servfail_dns "$DNS_ADDR"
bed_anchor "$ENFORCE"
mkdir -p "$WORK/store"
cat >"$WORK/conf.toml" <<EOF
[milter]
socket = "$SOCK"
[decision]
rcpt_deadline_ms = 1500
enforce_action = "tempfail"
[store]
path = "$STORE"
[dns]
use_resolv_conf = false
forwarders = ["$DNS_ADDR"]
trust_anchor_files = ["$WORK/anchor.txt"]
timeout = 1
[probe]
step_timeout_ms = 500
[policy]
txt_recheck_interval = 86400
EOF

# seed: a fresh store holding the enforce policy (cache import).
seed() {
  rm -f "$STORE" "$STORE"-* "$STORE".corrupt-*
  bed_seed_enforce "$ENFORCE" "$WORK/conf.toml"
}

log_count() { log_since "$1" | grep -Ec -- "$2"; }

# start_milter MARK: false (with the log's tail in WHY) when it does not start.
start_milter() {
  "$BIN" -c "$WORK/conf.toml" 2>>"$LOG" &
  MILTER_PID=$!
  wait_log "$1" 'milter event=started' 10 || { WHY="did not start: $(log_since "$1" | tail -3)"; return 1; }
}
stop_milter() {
  kill -TERM "$MILTER_PID" 2>/dev/null
  wait "$MILTER_PID" 2>/dev/null
  local rc=$?
  MILTER_PID=""
  return $rc
}

# decide QID DOMAIN WANT: one message to user@DOMAIN, RCPT answer WANT, and
# its decision line in the log.
decide() {
  local m out
  m=$(mark)
  out=$(timeout 60 miltertest -D DIR="$LUA_DIR" -D SOCK="$SOCK" -D QID="$1" -D RCPT="user@$2" -D MAILER=smtp \
    -D HOST="$2" -D WANT_RCPT="$3" -D WANT_HDR=none -s "$LUA_DIR/one_txn.lua" 2>&1) ||
    { WHY="miltertest: $out"; return 1; }
  wait_log "$m" "decision queue_id=$1 domain=$2 " 3 || { WHY="no decision line for $1"; return 1; }
}

# corrupt_start NAME DAMAGE...: damage the store, start, check.
corrupt_start() {
  local name=$1 m moved
  shift
  seed
  "$@"
  m=$(mark)
  WHY=""
  if ! start_milter "$m"; then fail "$name" "$WHY"; return; fi
  moved=$(ls "$STORE".corrupt-* 2>/dev/null | grep -cv -- '-wal$\|-shm$')
  if [ "$(log_count "$m" 'store event=corrupt path=')" != 1 ]; then
    fail "$name" "want one corrupt line: $(log_since "$m" | grep store)"
  elif [ "$moved" != 1 ]; then fail "$name" "damaged file not moved aside: $(ls "$WORK/store")"
  elif [ "$(sqlite3 "$STORE" 'PRAGMA quick_check')" != ok ]; then fail "$name" "new store not sound"
  elif ! decide "C$name" "$NOPOLICY" continue; then fail "$name" "$WHY"
  elif ! alive; then fail "$name" "daemon died"
  elif ! stop_milter; then fail "$name" "exit status not 0"
  else ok "$name"; fi
  [ -n "$MILTER_PID" ] && stop_milter
}

garbage() { head -c 65536 /dev/urandom >"$STORE"; rm -f "$STORE"-wal "$STORE"-shm; }
damage_page2() {
  local size
  size=$(sqlite3 "$STORE" 'PRAGMA page_size')
  head -c "$size" /dev/urandom | dd of="$STORE" bs="$size" seek=1 conv=notrunc status=none
}

corrupt_start corrupt-garbage garbage
corrupt_start corrupt-page damage_page2

# ---- deleted-live: the file removed under a running daemon
seed
m=$(mark)
WHY=""
if ! start_milter "$m"; then fail deleted-live "$WHY"
elif ! decide DLIVE1 "$ENFORCE" tempfail; then fail deleted-live "before: $WHY"
else
  rm -f "$STORE" "$STORE"-wal "$STORE"-shm
  sleep 11  # the writer looks at the path at most every 10 s
  if ! decide DLIVE2 "$ENFORCE" tempfail; then fail deleted-live "after: $WHY"
  elif ! stop_milter; then fail deleted-live "exit status not 0"
  elif [ "$(log_count "$m" 'store event=file-deleted .*action=reopened')" != 1 ]; then
    fail deleted-live "want one file-deleted line: $(log_since "$m" | grep 'store ')"
  elif [ "$(sqlite3 "$STORE" 'SELECT domain FROM policies WHERE last_used > 0' 2>&1)" != "$ENFORCE" ]; then
    fail deleted-live "the policy and its last_used are not in the file at the path: $(ls "$WORK/store")"
  else ok deleted-live; fi
fi
[ -n "$MILTER_PID" ] && stop_milter

bed_summary
