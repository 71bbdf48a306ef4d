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
# A store that refuses writes (issue #10 item 6). The seeded enforce policy
# still decides (tempfail: its MX does not resolve); then 50 messages to
# broken.example, whose _mta-sts TXT announces a policy and whose policy
# host (lib/accept_counter.py on 127.0.0.10:443) accepts and closes, and one
# each to 10 new domains dN.broken.example (their hosts too); TLSRPT counts
# are flushed every second. Each scenario checks: every message answered
# "continue", the daemon alive, broken.example's host contacted at most 3
# times (the back-off held in memory; 50 times without it) and each new
# domain's once, at most 4 "store event=write-failed" lines for the 11 or
# more failed writes (2 lines per message without the rate limit), TLSRPT
# flushes refused, exit status 0 after SIGTERM.
#   disk-full         the store on a 1 MiB tmpfs, filled to ENOSPC by a file
#                     while the daemon runs, the file removed before the
#                     stop: every TLSRPT failure session counted during the
#                     full disk is in tlsrpt_failures (none lost or dropped),
#                     and the enforce policy's last_used is written
#   read-only         the daemon runs as nobody; the store file is root's,
#                     mode 0644 ("store event=read-only" at start), its
#                     folder nobody's (SQLite creates the -wal and -shm files
#                     there; in a read-only folder the start is refused): the
#                     stop counts every unwritten session in one
#                     "tlsrpt event=lost" line
#   read-only-folder  the same store file in a folder nobody cannot write
#                     (no -wal or -shm can be made): before, the start was
#                     refused (a restart loop over a cache); now the daemon
#                     logs "store event=unavailable ... action=memory", runs
#                     on an in-memory copy of the file's rows (the seeded
#                     enforce policy still decides), and stops with exit 0
# Uses milter_protocol.sh's stand-ins: a DNS forwarder that answers SERVFAIL
# (lib/servfail_dns.py; broken.example and the names under it resolve) and
# miltertest. Runs as root in a private network namespace (unshare -n) and
# a private mount namespace (unshare -m: the tmpfs is seen by nothing
# outside and is unmounted at exit). KEEP=1 keeps the work folder.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
# Arguments: the scenarios to run (default: all).
# Prints "ok NAME" or "FAIL NAME: why" per scenario and last "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
LUA_DIR=$HERE/milter_protocol

# shellcheck source=lib/netns_bed.sh
. "$HERE/lib/netns_bed.sh"
bed_enter_netns miltertest sqlite3 mountpoint -- "$@"
# A mount namespace of its own too: disk-full's tmpfs.
if [ -z "${MTASTS_STORE_MOUNTNS:-}" ]; then
  exec unshare -m --propagation private env MTASTS_STORE_MOUNTNS=1 bash "$0" "$@"
fi
bed_workdir mtasts-store
SCENARIOS="$*"
wanted() { [ -z "$SCENARIOS" ] || [[ " $SCENARIOS " == *" $1 "* ]]; }

ENFORCE=enforce.example
NOPOLICY=nopolicy.example
BROKEN=broken.example
BROKEN_RE='broken\.example'
STORE=$WORK/store/cache.db
FULL=$WORK/full  # disk-full's tmpfs
PORT=$(bed_free_port)
SOCK="inet:$PORT@127.0.0.1"
DNS_ADDR=127.0.0.9
bed_servfail_dns "$DNS_ADDR" "$BROKEN" 1
bed_anchor "$ENFORCE"
mkdir -p "$WORK/store"
LISTENER_PID=""
store_cleanup() {
  bed_stop "$LISTENER_PID"
  bed_stop "$MILTER_PID"
  MILTER_PID=""
  if mountpoint -q "$FULL"; then umount "$FULL"; fi
  bed_cleanup
}
trap store_cleanup EXIT
# The broken policy hosts: every mta-sts.*broken.example is 127.0.0.10.
: >"$WORK/fetches"
python3 "$HERE/lib/accept_counter.py" 127.0.0.10 443 "$WORK/fetches" 2>"$WORK/listener.err" &
LISTENER_PID=$!

# write_conf STORE_PATH [MILTER_LINE [TAIL]]: $WORK/conf.toml.
write_conf() {
  cat >"$WORK/conf.toml" <<EOF
[milter]
socket = "$SOCK"
${2:-}
[decision]
rcpt_deadline_ms = 1500
enforce_action = "tempfail"
[store]
path = "$1"
[dns]
use_resolv_conf = false
forwarders = ["$DNS_ADDR"]
trust_anchor_files = ["$WORK/anchor.txt"]
timeout = 1
[probe]
step_timeout_ms = 500
[policy]
txt_recheck_interval = 86400
${3:-}
EOF
}
# TLSRPT flushes during a burst, not only at stop.
FAST_TLSRPT=$'[tlsrpt]\nflush_interval = 1'
write_conf "$STORE"

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

wanted corrupt-garbage && corrupt_start corrupt-garbage garbage
wanted corrupt-page && corrupt_start corrupt-page damage_page2

# ---- deleted-live: the file removed under a running daemon
deleted_live() {
  local m
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
}
wanted deleted-live && deleted_live

# ---- a store that refuses writes: disk-full, read-only

# burst P: the seeded policy decides, then 50 messages to $BROKEN and one to
# each of d1..d10.$BROKEN, queue ids prefixed P; false (WHY) at the first
# message not answered as it should be.
burst() {
  local i
  decide "${1}E" "$ENFORCE" tempfail || { WHY="seeded policy: $WHY"; return 1; }
  for ((i = 1; i <= 50; i++)); do
    decide "${1}B$i" "$BROKEN" continue || { WHY="message $i to $BROKEN: $WHY"; return 1; }
  done
  for ((i = 1; i <= 10; i++)); do
    decide "${1}N$i" "d$i.$BROKEN" continue || { WHY="d$i.$BROKEN: $WHY"; return 1; }
  done
}

# burst_verdict MARK FETCHES_BEFORE CODE: false (WHY) unless, since MARK,
# the daemon lives, the policy hosts were contacted (as the listener counts
# and as the log says) 1-3 times for $BROKEN and once per new domain, the
# writes failed with CODE and were logged at most 4 times, and a TLSRPT
# flush was refused. Sets FAILED_FETCHES (each one also a failed write and
# a TLSRPT failure session).
burst_verdict() {
  local hits own logged flushes
  # The TLSRPT buffer flushes every second (FAST_TLSRPT): its first refused
  # flush may come just after the burst.
  wait_log "$1" "tlsrpt event=flush-failed .*code=$3 " 5 || true
  hits=$(($(wc -l <"$WORK/fetches") - $2))
  own=$(log_count "$1" "resolve event=fetch-failed domain=$BROKEN_RE ")
  FAILED_FETCHES=$(log_count "$1" "resolve event=fetch-failed domain=([a-z0-9-]+\.)?$BROKEN_RE ")
  logged=$(log_count "$1" "store event=write-failed .*code=$3 ")
  flushes=$(log_count "$1" "tlsrpt event=flush-failed .*code=$3 ")
  if ! alive; then WHY="daemon died"
  elif [ "$own" -lt 1 ] || [ "$own" -gt 3 ]; then
    WHY="$BROKEN's policy host fetched $own times for 50 messages (want 1-3: the back-off)"
  elif [ "$hits" != "$FAILED_FETCHES" ] || [ "$hits" -lt 11 ] || [ "$hits" -gt 13 ]; then
    WHY="policy hosts contacted $hits times, $FAILED_FETCHES fetch-failed lines (want 11-13, equal)"
  elif [ "$logged" -lt 1 ]; then
    WHY="no write failed with $3: $(log_since "$1" | grep -E 'store |tlsrpt ' | head -3)"
  elif [ "$logged" -gt 4 ]; then
    WHY="$logged write-failed lines for $FAILED_FETCHES failed fetches (want at most 4)"
  elif [ "$flushes" -lt 1 ]; then
    WHY="no TLSRPT flush refused with $3"
  else return 0; fi
  return 1
}

# fill DIR: a file fills DIR's file system (ENOSPC, as meant).
fill() {
  head -c 4M /dev/zero >"$1/filler" 2>/dev/null
  [ "$(df --output=avail "$1" | tail -1 | tr -d ' ')" = 0 ]
}

disk_full() {
  local m before sessions used
  mkdir -p "$FULL"
  mount -t tmpfs -o size=1m,mode=0755 mtasts-full "$FULL" || { fail disk-full "cannot mount a tmpfs"; return; }
  write_conf "$FULL/cache.db" "" "$FAST_TLSRPT"
  bed_seed_enforce "$ENFORCE" "$WORK/conf.toml"
  m=$(mark)
  before=$(wc -l <"$WORK/fetches")
  WHY=""
  if ! start_milter "$m"; then fail disk-full "$WHY"
  elif ! fill "$FULL"; then fail disk-full "the filler did not fill the tmpfs: $(df -k "$FULL" | tail -1)"
  elif ! burst F; then fail disk-full "$WHY"
  elif ! burst_verdict "$m" "$before" store-full; then fail disk-full "$WHY"
  else
    rm -f "$FULL/filler"
    if ! stop_milter; then fail disk-full "exit status not 0"
    else
      sessions=$(sqlite3 "$FULL/cache.db" "SELECT ifnull(sum(failed_session_count), 0) FROM tlsrpt_failures
        WHERE policy_domain = '$BROKEN' OR policy_domain LIKE '%.$BROKEN'" 2>&1)
      used=$(sqlite3 "$FULL/cache.db" 'SELECT domain FROM policies WHERE last_used > 0' 2>&1)
      if [ "$sessions" != "$FAILED_FETCHES" ]; then
        fail disk-full "tlsrpt_failures counts $sessions sessions, $FAILED_FETCHES fetches failed"
      elif log_has "$m" 'tlsrpt event=(lost|dropped)'; then
        fail disk-full "$(log_since "$m" | grep -E 'tlsrpt event=(lost|dropped)')"
      elif [ "$used" != "$ENFORCE" ]; then fail disk-full "last_used of $ENFORCE not written: '$used'"
      else ok disk-full; fi
    fi
  fi
  [ -n "$MILTER_PID" ] && stop_milter
  umount "$FULL"
}
wanted disk-full && disk_full

read_only() {
  local ro=$WORK/ro m before
  mkdir -p "$ro"
  write_conf "$ro/cache.db" "" "$FAST_TLSRPT"
  bed_seed_enforce "$ENFORCE" "$WORK/conf.toml"  # as root: the file is root's
  chmod 0644 "$ro/cache.db"
  chown nobody "$ro"
  chmod 0711 "$WORK"  # nobody reaches the store and the trust anchor
  write_conf "$ro/cache.db" 'user = "nobody"' "$FAST_TLSRPT"
  m=$(mark)
  before=$(wc -l <"$WORK/fetches")
  WHY=""
  if ! start_milter "$m"; then fail read-only "$WHY"
  elif ! log_has "$m" 'store event=read-only '; then
    fail read-only "no read-only line: $(log_since "$m" | grep 'store ')"
  elif ! burst R; then fail read-only "$WHY"
  elif ! burst_verdict "$m" "$before" store-readonly; then fail read-only "$WHY"
  elif ! stop_milter; then fail read-only "exit status not 0"
  elif ! log_has "$m" "tlsrpt event=lost sessions=$FAILED_FETCHES "; then
    fail read-only "want $FAILED_FETCHES sessions counted lost: $(log_since "$m" | grep 'tlsrpt event=' | tail -3)"
  else ok read-only; fi
  [ -n "$MILTER_PID" ] && stop_milter
}
wanted read-only && read_only

read_only_folder() {
  local ro=$WORK/rofolder m
  mkdir -p "$ro"
  write_conf "$ro/cache.db"
  bed_seed_enforce "$ENFORCE" "$WORK/conf.toml"  # as root: file and folder are root's
  rm -f "$ro/cache.db-wal" "$ro/cache.db-shm"
  chmod 0755 "$ro"
  chmod 0644 "$ro/cache.db"
  chmod 0711 "$WORK"
  write_conf "$ro/cache.db" 'user = "nobody"'
  m=$(mark)
  WHY=""
  if ! start_milter "$m"; then fail read-only-folder "$WHY"
  elif ! log_has "$m" "store event=unavailable path=\"?$ro/cache.db\"? .*action=memory"; then
    fail read-only-folder "no unavailable line: $(log_since "$m" | grep 'store ')"
  elif ! log_has "$m" 'store event=copied-to-memory '; then fail read-only-folder "rows not copied"
  elif ! decide ROF1 "$ENFORCE" tempfail; then fail read-only-folder "enforce: $WHY"
  elif ! log_has "$m" "decision queue_id=ROF1 domain=$ENFORCE .*mode=enforce policy_id=20240101 "; then
    fail read-only-folder "the file's enforce policy did not decide: $(log_since "$m" | grep ROF1)"
  elif ! decide ROF2 "$NOPOLICY" continue; then fail read-only-folder "no policy: $WHY"
  elif ! stop_milter; then fail read-only-folder "exit status not 0"
  else ok read-only-folder; fi
  [ -n "$MILTER_PID" ] && stop_milter
}
wanted read-only-folder && read_only_folder

bed_summary
