#!/usr/bin/env bash
# Byte-exact socketmap answers and hostile clients against the real daemon
# (Postfix socketmap_table(5); policy/socketmap.h "Which answer"; RFC 8461
# §3.4, §4.1, §5; RFC 7672 for dane-only). The bed of check_scenarios.sh
# (scenarios/hosts.table, lib/testbed.sh) plus a few domains of our own with
# MX, TLSA and relay records; the daemon under test answers on
# 127.0.0.1:$MB_SOCKETMAP_PORT in the bed's namespace (lib/mailbed.sh).
#
#   A. postmap -q KEY socketmap:inet:127.0.0.1:PORT:MAP for every scenario of
#      hosts.table and the next-hop key forms, for MAP postfix and sts, with
#      postmap's exit status and output asserted per reply status; once more
#      with tlsrpt_attributes = true; raw netstrings for the framing.
#   B. Hostile clients (lib/socketmap_client.py): malformed frames, a half
#      frame, 1,000 idle connections, a client that never reads, SIGTERM;
#      a second daemon with idle_timeout = 5.
#
# Usage: socketmap_answers.sh   (as root)
#   MTASTS_BIN  the executable (default: <repo>/build/milter/mta-sts-milter)
#   TB_KEEP=1   keep the bed's temporary directory (logs) for inspection
# Prints "ok NAME" or "FAIL NAME: why" per check ("info ..." lines are
# measurements) and last "N passed, M failed"; exits non-zero when anything failed.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/mailbed.sh
source "$HERE/lib/mailbed.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
CLIENT="$HERE/lib/socketmap_client.py"
HOSTS_TABLE="$HERE/scenarios/hosts.table"
POLICY_DIR="$HERE/scenarios/policies"
PASSED=0 FAILED=0
RUN_START=$SECONDS

# ---------------------------------------------------------------- answers
# Every answer below is derived from the policy files and the rules of
# policy/socketmap.h, never copied from the daemon:
# - enforce: `secure match=NAMES servername=hostname`, NAMES in the policy's
#   pattern order; a pattern `*.x.y` is replaced by the MX hosts (one label
#   below x.y, RFC 8461 §4.1) that match it, in MX preference order; other
#   patterns stay as written. The domains of hosts.table have no MX record
#   (the name is an empty non-terminal: NODATA), so the MTA's only host is the
#   domain itself (RFC 5321 §5.1): `*.backup.mail.test` of enforce.txt matches
#   nothing and only `mx1.mail.test` is left.
# - every host the MTA may use has DNSSEC-secure usable TLSA: `dane-only`.
# - testing, none, no TXT, bad TXT, 404, redirect, wrong type, too large,
#   invalid policy, bad certificate, no address, DNS bogus with nothing
#   cached: NOTFOUND. IP literals and parent-domain keys (".d"): NOTFOUND.
# - late (policy after 3 s) is answered within the 4 s socketmap deadline.
# Columns: key | answer (OK DATA | NOTFOUND).
ANSWERS=$(cat <<'TABLE'
# hosts.table, one row per scenario
enforce.plain.test        | OK secure match=mx1.mail.test servername=hostname
testing.plain.test        | NOTFOUND
none.plain.test           | NOTFOUND
notfound.plain.test       | NOTFOUND
redirect.plain.test       | NOTFOUND
ctype.plain.test          | NOTFOUND
big.plain.test            | NOTFOUND
chunked.plain.test        | NOTFOUND
late.plain.test           | OK secure match=mx.slow.plain.test servername=hostname
expired.plain.test        | NOTFOUND
wrongname.plain.test      | NOTFOUND
cnonly.plain.test         | NOTFOUND
invalid.plain.test        | NOTFOUND
twotxt.plain.test         | NOTFOUND
othertxt.plain.test       | OK secure match=mx1.mail.test servername=hostname
notxt.plain.test          | NOTFOUND
txtsyntax.plain.test      | NOTFOUND
noaddr.plain.test         | NOTFOUND
idchange.plain.test       | OK secure match=mx1.mail.test servername=hostname
idfail.plain.test         | OK secure match=mx1.mail.test servername=hostname
txtgone.plain.test        | OK secure match=mx1.mail.test servername=hostname
refresh.plain.test        | OK secure match=mx1.mail.test servername=hostname
warm.plain.test           | OK secure match=mx1.mail.test servername=hostname
dnssec.secure.test        | OK secure match=mx1.mail.test servername=hostname
nosts.secure.test         | NOTFOUND
bogus.bogus.test          | NOTFOUND
cached.bogus.test         | NOTFOUND
# slow.plain.test: see slow_check
# Our domains (setup_extra): wildcards replaced by matching MX hosts, in
# pattern order, then MX preference; deep.b.backup.mail.test (two labels)
# and other.example (no pattern) left out; mx9.mail.test (no MX) kept.
wild.plain.test           | OK secure match=x.wild.plain.test:mx1.mail.test:a.backup.mail.test:b.backup.mail.test:mx9.mail.test servername=hostname
wild.plain.test.          | OK secure match=x.wild.plain.test:mx1.mail.test:a.backup.mail.test:b.backup.mail.test:mx9.mail.test servername=hostname
wild.plain.test:2525      | OK secure match=x.wild.plain.test:mx1.mail.test:a.backup.mail.test:b.backup.mail.test:mx9.mail.test servername=hostname
enforce.plain.test:2525   | OK secure match=mx1.mail.test servername=hostname
# DANE: both MX with secure usable TLSA for port 25; none for 2525; one of two;
# only unusable ones (PKIX-TA usage 0, RFC 7672 §3.1.3).
dane.secure.test          | OK dane-only
dane.secure.test:2525     | OK secure match=mx1.dane.secure.test:mx2.dane.secure.test servername=hostname
danesome.secure.test      | OK secure match=mx1.danesome.secure.test:mx2.danesome.secure.test servername=hostname
daneunusable.secure.test  | OK secure match=mx1.daneunusable.secure.test servername=hostname
# Relays (RFC 8461 §3.4): the bracketed host's own policy, its own TLSA
# (TLSA only for port 587); without brackets the MX lookup finds no MX.
[relayhost.plain.test]:587 | OK secure match=relayhost.plain.test servername=hostname
[relayhost.plain.test]    | OK secure match=relayhost.plain.test servername=hostname
relayhost.plain.test:587  | OK secure match=relayhost.plain.test servername=hostname
[danerelay.secure.test]:587 | OK dane-only
[danerelay.secure.test]:25  | OK secure match=danerelay.secure.test servername=hostname
[testing.plain.test]:587  | NOTFOUND
# Out of scope
.enforce.plain.test       | NOTFOUND
[127.0.0.1]:25            | NOTFOUND
[127.0.0.1]               | NOTFOUND
TABLE
)

# With tlsrpt_attributes = true (second daemon): the `postfix` map gets the
# Postfix 3.10 TLSRPT attributes after the data, the `sts` map (a Sendmail
# map name) the data alone. Columns: map | key | answer.
TLSRPT_ANSWERS=$(cat <<'TABLE'
postfix | enforce.plain.test | OK secure match=mx1.mail.test servername=hostname policy_type=sts policy_domain=enforce.plain.test { policy_string = version: STSv1 } { policy_string = mode: enforce } { policy_string = mx: mx1.mail.test } { policy_string = mx: *.backup.mail.test } { policy_string = max_age: 604800 } mx_host_pattern=mx1.mail.test mx_host_pattern=*.backup.mail.test
sts     | enforce.plain.test | OK secure match=mx1.mail.test servername=hostname
postfix | wild.plain.test    | OK secure match=x.wild.plain.test:mx1.mail.test:a.backup.mail.test:b.backup.mail.test:mx9.mail.test servername=hostname policy_type=sts policy_domain=wild.plain.test { policy_string = version: STSv1 } { policy_string = mode: enforce } { policy_string = mx: *.wild.plain.test } { policy_string = mx: mx1.mail.test } { policy_string = mx: *.backup.mail.test } { policy_string = mx: mx9.mail.test } { policy_string = max_age: 86400 } mx_host_pattern=*.wild.plain.test mx_host_pattern=mx1.mail.test mx_host_pattern=*.backup.mail.test mx_host_pattern=mx9.mail.test
sts     | wild.plain.test    | OK secure match=x.wild.plain.test:mx1.mail.test:a.backup.mail.test:b.backup.mail.test:mx9.mail.test servername=hostname
postfix | [relayhost.plain.test]:587 | OK secure match=relayhost.plain.test servername=hostname policy_type=sts policy_domain=relayhost.plain.test { policy_string = version: STSv1 } { policy_string = mode: enforce } { policy_string = mx: relayhost.plain.test } { policy_string = max_age: 86400 } mx_host_pattern=relayhost.plain.test
postfix | dane.secure.test   | OK dane-only
sts     | dane.secure.test   | OK dane-only
postfix | testing.plain.test | NOTFOUND
sts     | testing.plain.test | NOTFOUND
TABLE
)

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }
split_row() {
  local raw f
  IFS='|' read -r -a raw <<<"$1"
  FIELDS=()
  for f in "${raw[@]}"; do FIELDS+=("$(trim "$f")"); done
}
table_rows() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$'; }

report() {  # report NAME WHY ("" = ok)
  if [ -z "$2" ]; then echo "ok $1"; PASSED=$((PASSED + 1))
  else echo "FAIL $1: $(tr '\n' ' ' <<<"$2")"; FAILED=$((FAILED + 1)); fi
}

# Passes the python client's "ok"/"FAIL" lines to report, echoes "info"
# lines; any other line fails.
report_lines() {
  local line
  while IFS= read -r line; do
    case $line in
      "ok "*) report "${line#ok }" "" ;;
      "FAIL "*) line=${line#FAIL }; report "${line%%: *}" "${line#*: }" ;;
      "info "*) echo "$line" ;;
      *) report B/client-output "$line" ;;  # a traceback: the client broke
    esac
  done
}

# ---------------------------------------------------------------- the bed
policy_file() {  # as check_scenarios.sh: "big" is generated
  if [ "$1" = big ]; then
    local f="$TB_DIR/big-policy.txt"
    [ -f "$f" ] || { cat "$POLICY_DIR/enforce.txt"
                     head -c 70000 /dev/zero | tr '\0' 'x' | fold -w 70; } >"$f"
    echo "$f"
  else
    echo "$POLICY_DIR/$1.txt"
  fi
}

setup_hosts() {
  local line zone label
  while IFS= read -r line; do
    split_row "$line"
    zone=${FIELDS[0]}; label=${FIELDS[1]}
    tb_host_add "$zone" "$label" "${FIELDS[2]}" "${FIELDS[3]}" "${FIELDS[@]:5}" || return 1
    if [ "${FIELDS[3]}" != none ] && [ "${FIELDS[4]}" != - ]; then
      tb_policy_set "mta-sts.$label.$zone.test" "$(policy_file "${FIELDS[4]}")" || return 1
    fi
  done < <(table_rows <"$HOSTS_TABLE")
}

# extra_domain ZONE LABEL MODE PATTERN...: an enforce/testing policy domain
# of our own (policy body in $TB_DIR/extra).
extra_domain() {
  local zone=$1 label=$2 mode=$3 file="$TB_DIR/extra/$2.$1.txt" p; shift 3
  mkdir -p "$TB_DIR/extra"
  { printf 'version: STSv1\nmode: %s\n' "$mode"
    for p in "$@"; do printf 'mx: %s\n' "$p"; done
    printf 'max_age: 86400\n'; } >"$file"
  tb_host_add "$zone" "$label" good file "v=STSv1; id=1" &&
    tb_policy_set "mta-sts.$label.$zone.test" "$file"
}

# A usable TLSA 3 1 1 (the data is never checked: nothing connects).
TLSA_OK="3 1 1 $(printf '%064d' 1)"
TLSA_PKIX_TA="0 0 1 $(printf '%064d' 2)"

setup_extra() {
  extra_domain plain wild enforce '*.wild.plain.test' mx1.mail.test '*.backup.mail.test' mx9.mail.test &&
    tb_dns_set plain wild-mx \
      'wild IN MX 10 a.backup.mail.test.' 'wild IN MX 20 mx1.mail.test.' 'wild IN MX 30 x.wild' \
      'wild IN MX 40 deep.b.backup.mail.test.' 'wild IN MX 50 b.backup.mail.test.' \
      'wild IN MX 60 other.example.' 'x.wild IN A 127.25.1.1' || return 1
  # Only a wildcard, and the only MX is two labels below it (see check_deepmx).
  extra_domain plain deepmx enforce '*.backup.mail.test' &&
    tb_dns_set plain deepmx-mx 'deepmx IN MX 10 deep.b.backup.mail.test.' || return 1
  extra_domain plain relayhost enforce relayhost.plain.test &&
    tb_dns_set plain relayhost-a 'relayhost IN A 127.25.1.2' || return 1
  local d
  for d in dane danesome daneunusable; do
    extra_domain secure "$d" enforce "mx1.$d.secure.test" "*.$d.secure.test" &&
      tb_dns_set secure "$d-mx" "$d IN MX 10 mx1.$d" "mx1.$d IN A 127.25.2.1" || return 1
  done
  tb_dns_set secure dane-mx 'dane IN MX 10 mx1.dane' 'dane IN MX 20 mx2.dane' \
    'mx1.dane IN A 127.25.2.1' 'mx2.dane IN A 127.25.2.2' \
    "_25._tcp.mx1.dane IN TLSA $TLSA_OK" "_25._tcp.mx2.dane IN TLSA $TLSA_OK"
  tb_dns_set secure danesome-mx 'danesome IN MX 10 mx1.danesome' 'danesome IN MX 20 mx2.danesome' \
    'mx1.danesome IN A 127.25.2.3' 'mx2.danesome IN A 127.25.2.4' \
    "_25._tcp.mx1.danesome IN TLSA $TLSA_OK"
  tb_dns_set secure daneunusable-mx 'daneunusable IN MX 10 mx1.daneunusable' \
    'mx1.daneunusable IN A 127.25.2.5' "_25._tcp.mx1.daneunusable IN TLSA $TLSA_PKIX_TA"
  extra_domain secure danerelay enforce danerelay.secure.test &&
    tb_dns_set secure danerelay-a 'danerelay IN A 127.25.2.6' \
      "_587._tcp.danerelay IN TLSA $TLSA_OK"
}

# The bed seen from the namespace: the MX and TLSA answers the rules assume.
bed_check() {
  local why="" out
  out=$(tb_exec dig +short @"$TB_RESOLVER_ADDR" MX wild.plain.test | sort -n | awk '{print $2}' | tr '\n' ' ')
  [ "$out" = "a.backup.mail.test. mx1.mail.test. x.wild.plain.test. deep.b.backup.mail.test. b.backup.mail.test. other.example. " ] ||
    why+="MX of wild.plain.test: '$out'; "
  out=$(tb_exec dig @"$TB_RESOLVER_ADDR" MX enforce.plain.test)
  grep -q 'status: NOERROR' <<<"$out" && grep -q 'ANSWER: 0,' <<<"$out" ||
    why+="enforce.plain.test MX is not NODATA; "
  for out in _25._tcp.mx1.dane _25._tcp.mx2.dane _25._tcp.mx1.danesome _587._tcp.danerelay; do
    tb_exec dig +dnssec @"$TB_RESOLVER_ADDR" TLSA "$out.secure.test" | grep -q 'flags:.* ad[ ;]' ||
      why+="TLSA $out.secure.test not secure; "
  done
  tb_exec dig +dnssec @"$TB_RESOLVER_ADDR" MX dane.secure.test | grep -q 'flags:.* ad[ ;]' ||
    why+="MX dane.secure.test not secure; "
  tb_exec dig @"$TB_RESOLVER_ADDR" TXT _mta-sts.bogus.bogus.test | grep -q 'status: SERVFAIL' ||
    why+="bogus.test not bogus; "
  report bed "${why%; }"
}

# ---------------------------------------------------------------- daemon
# start_daemon NAME [SOCKETMAP_LINE...]: config $TB_DIR/NAME.toml (the bed's
# settings, https.timeout = 5 for slow_check, and the lines given, such as
# "idle_timeout = 5", in its [socketmap] section), log $TB_DIR/NAME.log.
start_daemon() {
  local name=$1 line; shift
  CONF="$TB_DIR/$name.toml" LOG="$TB_DIR/$name.log"
  mb_socketmap_config "$CONF" https.timeout=5 || return 1
  grep -q '^\[socketmap\]$' "$CONF" || echo '[socketmap]' >>"$CONF"
  for line in "$@"; do sed -i "/^\[socketmap\]\$/a $line" "$CONF" || return 1; done
  mb_socketmap_start "$CONF" "$LOG"
}

# stop_daemon NAME: SIGTERM; the daemon must exit 0 within 10 s and have
# logged nothing at error level.
stop_daemon() {
  local name=$1 pid=$MB_SOCKETMAP_PID rc errors
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    rc="killed after 10 s"
  else
    wait "$pid"; rc=$?
  fi
  MB_SOCKETMAP_PID=""
  report "$name/sigterm-exit-0" "$([ "$rc" = 0 ] || echo "exit status $rc")"
  errors=$(grep -E '^[^ ]+ (error|critical) ' "$LOG" | head -n 3)
  report "$name/no-error-log" "$errors"
}

SM_ADDR=127.0.0.1
map_of() { echo "socketmap:inet:$SM_ADDR:$MB_SOCKETMAP_PORT:$1"; }

# query MAP KEY -> "RC<US>STDOUT<US>STDERR" (US: \x1f; newlines as '|')
query() {
  local out err rc errfile="$TB_DIR/postmap.$BASHPID.err"
  out=$(tb_exec postmap -q "$2" "$(map_of "$1")" 2>"$errfile"); rc=$?
  err=$(tr '\n' '|' <"$errfile"); rm -f "$errfile"
  printf '%s\x1f%s\x1f%s\n' "$rc" "$out" "${err%|}"
}

# postmap's contract per status (Postfix 3.7, found by running it): OK prints
# the data alone and exits 0; NOTFOUND prints nothing and exits 1; TEMP and
# PERM print nothing on stdout, warn "socketmap server temporary error: TEXT"
# or "... permanent error: TEXT" and end with "fatal: table MAP: query error"
# (exit 1, as for NOTFOUND: only stderr tells them apart; msg_fatal also
# sleeps 1 s before it exits).
# judge WANT RESULT -> why ("" = as wanted). WANT: OK DATA | NOTFOUND |
# TEMP ERE | PERM ERE (ERE: the reply's text).
judge() {
  local want=$1 rc out err word re
  IFS=$'\x1f' read -r rc out err <<<"$2"
  case $want in
    "OK "*)
      [ "$rc" = 0 ] && [ "$out" = "${want#OK }" ] && [ -z "$err" ] ||
        echo "status $rc, stdout '$out', stderr '$err' (want exit 0 and '${want#OK }')" ;;
    NOTFOUND)
      [ "$rc" = 1 ] && [ -z "$out" ] && [ -z "$err" ] ||
        echo "status $rc, stdout '$out', stderr '$err' (want NOTFOUND: exit 1, no output)" ;;
    TEMP\ *|PERM\ *)
      word=temporary; [ "${want%% *}" = PERM ] && word=permanent
      re="^postmap: warning: socketmap:[^ ]+ socketmap server $word error: ${want#* }\|postmap: fatal: table socketmap:[^ ]+: query error"
      [ "$rc" = 1 ] && [ -z "$out" ] && grep -qE "$re" <<<"$err" ||
        echo "status $rc, stdout '$out', stderr '$err' (want exit 1 and stderr /$re/)" ;;
    *) echo "table: unknown answer '$want'" ;;
  esac
}

check_table() {  # check_table MAP: every row of ANSWERS through postmap
  local line
  while IFS= read -r line; do
    split_row "$line"
    report "A/$1/${FIELDS[0]}" "$(judge "${FIELDS[1]}" "$(query "$1" "${FIELDS[0]}")")"
  done < <(table_rows <<<"$ANSWERS")
}

# raw NAME WAIT EXPR -> the client's line (see socketmap_client.py raw)
raw() { tb_exec /usr/bin/python3 "$CLIENT" raw "$SM_ADDR" "$MB_SOCKETMAP_PORT" "$2" "$3"; }
# want_reply PAYLOAD... -> repr of the framed payloads, as Python prints it
want_reply() {
  local p out=""
  for p in "$@"; do out+="${#p}:$p,"; done
  echo "b'$out'"
}

# ---------------------------------------------------------------- slow
# slow.plain.test: its policy host answers after 10 s; the daemon runs with
# https.timeout = 5 (so that the fetch's end is not a race with the 10 s).
# t=0: a first query (postmap, and a raw client beside it) starts the
#   discovery; at the 4 s deadline_ms it is answered TEMP. The server's own
#   request deadline and the lookup's resolve deadline are both 4 s, so the
#   text is either the server's ("lookup still running") or the engine's
#   ("policy discovery ... still running"): both are TEMP.
# t=4.5 s: a second query finds the discovery still running, waits for it:
#   the fetch times out at 5 s (https.timeout), a failed fetch with nothing
#   cached is no policy: NOTFOUND, within about 0.5-1 s.
# t>=6 s: NOTFOUND again at once (the failure is remembered).
SLOW_TEMP_RE="MTA-STS (lookup still running, try again|policy discovery for slow\.plain\.test still running)"

slow_start() {
  SLOW_T0=$SECONDS
  query postfix slow.plain.test >"$TB_DIR/slow.postmap" &
  SLOW_PIDS=($!)
  raw slow-1 5 'b"23:postfix slow.plain.test,"' >"$TB_DIR/slow.raw1" &
  SLOW_PIDS+=($!)
  { sleep 4.5; raw slow-2 3 'b"23:postfix slow.plain.test,"'; } >"$TB_DIR/slow.raw2" &
  SLOW_PIDS+=($!)
}

slow_check() {
  local out first why
  wait "${SLOW_PIDS[@]}"
  report "A/postfix/slow.plain.test/first" "$(judge "TEMP $SLOW_TEMP_RE" "$(cat "$TB_DIR/slow.postmap")")"
  out=$(cat "$TB_DIR/slow.raw1")
  first=$(sed -nE 's/.* first_ms=(-?[0-9]+) .*/\1/p' <<<"$out")
  why=""
  grep -qE "^reply=b'[0-9]+:TEMP $SLOW_TEMP_RE,' state=open " <<<"$out" || why="$out (want TEMP); "
  [ "${first:-0}" -ge 3900 ] && [ "${first:-0}" -le 4600 ] || why+="TEMP after ${first} ms (want 4000)"
  report "A/raw/slow.plain.test/first-temp-at-deadline" "$why"
  out=$(cat "$TB_DIR/slow.raw2")
  first=$(sed -nE 's/.* first_ms=(-?[0-9]+) .*/\1/p' <<<"$out")
  why=""
  [[ $out == "reply=$(want_reply 'NOTFOUND ') state=open "* ]] || why="$out (want NOTFOUND); "
  [ "${first:--1}" -ge 0 ] && [ "${first}" -le 2000 ] || why+="answered after ${first} ms (want the fetch's timeout, under 2 s)"
  report "A/raw/slow.plain.test/second-waits-for-fetch-timeout" "$why"
  while [ $((SECONDS - SLOW_T0)) -lt 7 ]; do sleep 0.5; done
  report "A/postfix/slow.plain.test/later" "$(judge NOTFOUND "$(query postfix slow.plain.test)")"
  report "A/sts/slow.plain.test/later" "$(judge NOTFOUND "$(query sts slow.plain.test)")"
}

# ---------------------------------------------------------------- raw frames
OK_ENFORCE="OK secure match=mx1.mail.test servername=hostname"
OK_WILD="OK secure match=x.wild.plain.test:mx1.mail.test:a.backup.mail.test:b.backup.mail.test:mx9.mail.test servername=hostname"
MAL="PERM malformed netstring:"
# name | bytes sent (Python) | replies (payloads, " ++ " between) | state after
RAW_CASES=$(cat <<TABLE
# framing of each reply status, warm keys (answered by check_table)
ok             | b"26:postfix enforce.plain.test,"  | $OK_ENFORCE | open
notfound       | b"26:postfix testing.plain.test,"  | NOTFOUND  | open
perm-map       | b"28:nosuchmap enforce.plain.test," | PERM unknown map name nosuchmap | open
upper-case-key | b"23:postfix WILD.PLAIN.TEST,"     | $OK_WILD | open
pipelined      | b"26:postfix enforce.plain.test,26:postfix testing.plain.test,20:sts WILD.plain.test.," | $OK_ENFORCE ++ NOTFOUND ++ $OK_WILD | open
# well framed, bad request: PERM, the connection stays
bad-no-space   | b"3:foo,26:postfix enforce.plain.test," | PERM bad request: no-space ++ $OK_ENFORCE | open
empty-payload  | b"0:,"                              | PERM bad request: no-space | open
empty-key      | b"8:postfix ,"                      | PERM bad request: empty-key | open
control-key    | b"10:postfix a\x01,"                 | PERM bad request: bad-key-byte | open
max-frame      | b"10000:postfix " + b"k" * 9992 + b"," | PERM bad request: key-too-long | open
# malformed: PERM, then the server closes
garbage        | b"GET / HTTP/1.0\r\n\r\n"           | $MAL bad-length-digit | eof
negative       | b"-1:"                              | $MAL bad-length-digit | eof
oversized      | b"10001:"                           | $MAL too-long | eof
oversized-huge | b"99999999999:"                     | $MAL too-long | eof
leading-zero   | b"026:postfix enforce.plain.test,"  | $MAL leading-zero | eof
double-zero    | b"00:,"                             | $MAL leading-zero | eof
no-comma       | b"26:postfix enforce.plain.testX"   | $MAL missing-comma | eof
newline-comma  | b"26:postfix enforce.plain.test\n"  | $MAL missing-comma | eof
empty-length   | b":,"                               | $MAL empty-length | eof
missing-colon  | b"26;postfix enforce.plain.test,"   | $MAL missing-colon | eof
good-then-bad  | b"26:postfix enforce.plain.test,x"  | $OK_ENFORCE ++ $MAL bad-length-digit | eof
TABLE
)

# All cases at once (each waits 1 s when the server keeps the connection).
check_raw() {
  local line n=0 i name p payloads=() pids=() names=() wants=() got why
  while IFS= read -r line; do
    split_row "$line"
    name=${FIELDS[0]}
    payloads=()
    while IFS= read -r p; do payloads+=("$(trim "$p")"); done < <(sed 's/ ++ /\n/g' <<<"${FIELDS[2]}")
    for p in "${!payloads[@]}"; do [ "${payloads[p]}" != NOTFOUND ] || payloads[p]="NOTFOUND "; done
    names+=("$name"); wants+=("reply=$(want_reply "${payloads[@]}") state=${FIELDS[3]} ")
    raw "$name" 1 "${FIELDS[1]}" >"$TB_DIR/raw.$n" 2>&1 &
    pids+=($!); n=$((n + 1))
  done < <(table_rows <<<"$RAW_CASES")
  wait "${pids[@]}"
  for ((i = 0; i < n; i++)); do
    got=$(cat "$TB_DIR/raw.$i")
    [[ $got == "${wants[i]}"* ]] && why="" || why="got: $got want: ${wants[i]}"
    report "B/raw/${names[i]}" "$why"
  done
}

# ---------------------------------------------------------------- runs
# Warm keys and their reply payloads for the python scenarios.
write_expect() {
  printf '%s\t%s\n' "postfix enforce.plain.test" "$OK_ENFORCE" "sts enforce.plain.test" "$OK_ENFORCE" \
    "postfix testing.plain.test" "NOTFOUND " "postfix wild.plain.test" "$OK_WILD" \
    "postfix dane.secure.test" "OK dane-only" "sts [relayhost.plain.test]:587" \
    "OK secure match=relayhost.plain.test servername=hostname" "postfix [127.0.0.1]:25" "NOTFOUND " \
    >"$TB_DIR/expect.txt"
  # For the second daemon (TLSRPT attributes on): a Sendmail map name.
  printf '%s\t%s\n' "sts enforce.plain.test" "$OK_ENFORCE" >"$TB_DIR/expect-plain.txt"
}

client() { tb_exec /usr/bin/python3 "$CLIENT" "$1" "$SM_ADDR" "$MB_SOCKETMAP_PORT" "${@:2}" 2>&1; }

run_main() {
  start_daemon run1 || { report run1/start "daemon did not start"; return; }
  slow_start
  check_table postfix
  report "A/postfix/unknown-map" "$(judge "PERM unknown map name nosuchmap" "$(query nosuchmap enforce.plain.test)")"
  report "A/postfix/bad-key" "$(judge "PERM bad request: bad-key-byte" "$(query postfix 'a b')")"
  check_table sts  # the same keys again: now answered from the answer table
  check_deepmx
  slow_check
  check_raw
  write_expect
  # Not `client | report_lines`: the counts must stay in this shell.
  report_lines < <(client halfopen "$TB_DIR/expect.txt")
  report_lines < <(client idle "$MB_SOCKETMAP_PID" 1000 "$TB_DIR/expect.txt")
  report_lines < <(client pipeline "$MB_SOCKETMAP_PID" 100000 "$TB_DIR/expect.txt")
  report "B/still-answers" "$(judge "$OK_ENFORCE" "$(query postfix enforce.plain.test)")"
  stop_daemon run1
}

# Second daemon: TLSRPT attributes on, idle_timeout 5 s.
run_tlsrpt_idle() {
  local line pid
  start_daemon run2 "tlsrpt_attributes = true" "idle_timeout = 5" ||
    { report run2/start "daemon did not start"; return; }
  client idletimeout 5 "$TB_DIR/expect-plain.txt" >"$TB_DIR/idletimeout.out" &
  pid=$!
  while IFS= read -r line; do
    split_row "$line"
    report "A/tlsrpt/${FIELDS[0]}/${FIELDS[1]}" "$(judge "${FIELDS[2]}" "$(query "${FIELDS[0]}" "${FIELDS[1]}")")"
  done < <(table_rows <<<"$TLSRPT_ANSWERS")
  wait "$pid"
  report_lines <"$TB_DIR/idletimeout.out"
  stop_daemon run2
}

# deepmx.plain.test: `mx: *.backup.mail.test`, its only MX
# deep.b.backup.mail.test is two labels below: RFC 8461 §4.1 lets no host
# pass. Whatever the answer, it must not hand Postfix (3.7 here) a pattern
# `.backup.mail.test`, which Postfix before 3.10.5 matches at any depth
# (policy/socketmap.h, match_list_for): that would deliver to a host the
# policy does not allow.
check_deepmx() {
  local result rc out err why=""
  result=$(query postfix deepmx.plain.test)
  IFS=$'\x1f' read -r rc out err <<<"$result"
  # No MX host is allowed: a name no certificate carries, so Postfix verifies
  # none and defers (policy/socketmap.h kNoHostAllowed). The bare
  # '.backup.mail.test' would let Postfix <3.10.5 accept deep.b.backup.mail.test.
  [ "$out" = "secure match=mx-not-in-policy.invalid servername=hostname" ] ||
    why="answer '$out', want 'secure match=mx-not-in-policy.invalid servername=hostname'"
  [ "$rc" = 0 ] || why+=" status $rc: $err"
  report "A/postfix/deepmx.plain.test/no-any-depth-pattern" "$why"
}

main() {
  if ! [ -x "$MTASTS_BIN" ]; then
    report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  if ! { mailbed_up && setup_hosts && setup_extra && tb_commit; }; then
    report setup "test bed did not start"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  bed_check
  run_main
  run_tlsrpt_idle
  echo "$PASSED passed, $FAILED failed ($((SECONDS - RUN_START)) s)"
  [ "$FAILED" = 0 ]
}

[ "${BASH_SOURCE[0]}" != "$0" ] || main "$@"
