#!/usr/bin/env bash
# One validation for start, reload and --print-config (issue #10 item 4):
#   config-dir           -c naming a directory: exit 78, says so
#   config-empty         -c naming an empty or cut-short file: exit 78, not
#                        the embedded defaults
#   start-https-ca       a missing https.ca_file refuses the start (exit 78)
#   start-ehlo           a probe.ehlo_name that is no host name refuses the start
#   print-config-anchor  --print-config refuses a missing trust anchor file,
#                        as the start does
#   reload-refused       SIGHUP with a missing probe.ca_file: the reload is
#                        refused and logged, the daemon keeps serving on the
#                        old settings; a good file then reloads
# Runs as root in a private network namespace (unshare -n). KEEP=1 keeps the work folder.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}

# shellcheck source=lib/netns_bed.sh
. "$HERE/lib/netns_bed.sh"
bed_enter_netns -- "$@"
bed_workdir mtasts-config

PORT=$(bed_free_port)
bed_anchor example

# write_config FILE EXTRA_TOML: a working configuration plus EXTRA_TOML.
write_config() {
  cat >"$1" <<EOF
[milter]
socket = "inet:$PORT@127.0.0.1"
[store]
path = "$WORK/store/cache.db"
[dns]
use_resolv_conf = false
forwarders = ["127.0.0.9"]
trust_anchor_files = ["$WORK/anchor.txt"]
$2
EOF
}

# expect_refused NAME WANT_TEXT -- COMMAND...: exit 78 and WANT_TEXT in the output.
expect_refused() {
  local name=$1 want=$2 out status
  shift 3
  out=$(timeout 30 "$@" 2>&1)
  status=$?
  if [ "$status" != 78 ]; then fail "$name" "exit $status, want 78: $(tail -3 <<<"$out")"
  elif ! grep -qF -- "$want" <<<"$out"; then fail "$name" "no '$want' in: $(tail -3 <<<"$out")"
  else ok "$name"; fi
}

mkdir -p "$WORK/a-directory"
expect_refused config-dir "is a directory" -- "$BIN" -c "$WORK/a-directory" --print-config
: >"$WORK/empty.toml"
expect_refused config-empty "sets nothing" -- "$BIN" -c "$WORK/empty.toml"
printf '[decision]\n' >"$WORK/cut.toml"
expect_refused config-cut-short "sets nothing" -- "$BIN" -c "$WORK/cut.toml" --print-config

# The sections below are appended to the file, so they come after [dns].
write_config "$WORK/https-ca.toml" "[https]
ca_file = \"$WORK/no-such-ca.pem\""
expect_refused start-https-ca "HTTPS CA file $WORK/no-such-ca.pem cannot be read" -- "$BIN" -c "$WORK/https-ca.toml"
write_config "$WORK/ehlo.toml" "[probe]
ehlo_name = \"not a host\""
expect_refused start-ehlo "is not a host name" -- "$BIN" -c "$WORK/ehlo.toml"
write_config "$WORK/anchor.toml" ""
sed -i "s|$WORK/anchor.txt|$WORK/no-such-anchor.txt|" "$WORK/anchor.toml"
expect_refused print-config-anchor "no-such-anchor.txt" -- "$BIN" -c "$WORK/anchor.toml" --print-config

# ---- reload with a file the start would refuse
write_config "$WORK/conf.toml" ""
bed_start_milter
why=""
write_config "$WORK/conf.toml" "[probe]
ca_file = \"$WORK/no-such-probe-ca.pem\""
kill -HUP "$MILTER_PID"
for ((i = 0; i < 50; i++)); do grep -q 'reload event=' "$LOG" && break; sleep 0.1; done
grep -q 'reload event=refused .*no-such-probe-ca.pem' "$LOG" || why="$why no refused reload: $(grep reload "$LOG");"
grep -q 'reload event=ok' "$LOG" && why="$why a bad file was loaded;"
kill -0 "$MILTER_PID" 2>/dev/null || why="$why daemon died: $(tail -3 "$LOG");"
write_config "$WORK/conf.toml" "[decision]
enforce_action = \"tag\""
kill -HUP "$MILTER_PID"
for ((i = 0; i < 50; i++)); do grep -q 'reload event=ok' "$LOG" && break; sleep 0.1; done
grep -q 'reload event=ok' "$LOG" || why="$why a good file was not loaded after the refused one;"
if [ -n "$why" ]; then fail reload-refused "$why"; else ok reload-refused; fi

bed_summary
