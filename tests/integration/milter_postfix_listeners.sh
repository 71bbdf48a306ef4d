#!/usr/bin/env bash
# Postfix deployment shapes, end to end with a real Postfix in the bed's
# network namespace (lib/mailbed.sh):
#   - Debian's layout: smtpd on port 25 chrooted in the queue directory,
#     the milter on a unix socket inside the chroot, Postfix naming it from
#     inside (the commented alternative in contrib/postfix/main.cf.snippet);
#     the milter started as root opens the socket, sets its owner, group and
#     mode, then runs as an unprivileged user (nobody) and creates its store
#     as that user; and, as the contrib systemd unit starts it, already that
#     user (nothing to drop); the CLI run as root becomes that user too;
#   - telling listeners apart by {daemon_name}: the contrib master.cf
#     submission entry sets milter_macro_daemon_name=mtasts-submission and
#     the milter lists it in decision.non_smtp_daemon_names, so that mail is
#     decided at end of message (non_smtp_action quarantine: the hold queue)
#     while port 25 answers 451 at RCPT; milter_connect_macros leaves
#     {daemon_name} out, so the milter must ask for it at MAIL;
#   - mail from the sendmail(1) command (pickup, non_smtpd_milters): no next
#     hop macros, decided at end of message;
#   - RFC 8460 failure records reach the store on the flush timer while the
#     milter runs.
# RFC 8461 §5 (enforce), README "Hooking it into Postfix".
#
# Usage: milter_postfix_listeners.sh   (as root)
#   MTASTS_BIN  the executable (default: <repo>/build/milter/mta-sts-milter)
#   TB_KEEP=1   keep the bed's temporary directory (logs)
# Prints "ok NAME" or "FAIL NAME: why" per check, then "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/mailbed.sh
source "$HERE/lib/mailbed.sh"
# shellcheck source=lib/decision_checks.sh
source "$HERE/lib/decision_checks.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
SMTP_CLIENT="$HERE/lib/smtp_client.py"
DECISION_KEYS="queue_id domain next_hop mode policy_id source mx tls dane dane_reason action reason result_type elapsed_ms"
RUN_AS=nobody
SUBMISSION_NAME=mtasts-submission
TLSRPT_FLUSH_SECONDS=2
MILTER_CONF="" MILTER_LOG="" SOCKET_DIR="" SOCKET="" STORE=""

# The contrib snippets, with the unix-socket alternative of main.cf.snippet
# switched on (the commented "#mtasts_milter = unix:..." line).
chroot_snippets() {
  local dir="$MB_DIR/snippets" line
  mkdir -p "$dir" && cp "$ROOT"/contrib/postfix/*.snippet "$dir/" || return 1
  line=$(grep -E '^#mtasts_milter = unix:' "$dir/main.cf.snippet") ||
    { mb_die "main.cf.snippet has no '#mtasts_milter = unix:' line"; return 1; }
  sed -i -e '/^mtasts_milter = /d' -e "s|^$line\$|${line#\#}|" "$dir/main.cf.snippet"
  # Postfix sends {daemon_name} with its connect macros by default; without
  # it there, the named-listener checks pass only if the milter asks for it
  # at MAIL itself (smfi_setsymlist), as it must for an MTA set up that way.
  echo 'milter_connect_macros = j {daemon_addr} v _' >>"$dir/main.cf.snippet"
  echo "$dir"
}

setup() {
  local snippets
  mailbed_up &&
    mb_domain_add plain good enforce good &&
    mb_domain_add plain nostls enforce nostarttls &&
    mb_commit || return 1
  snippets=$(chroot_snippets) || return 1
  MB_CHROOT=y mb_postfix_start "$snippets" || return 1
  # Postfix names the socket from inside its chroot, the queue directory.
  SOCKET_DIR="$MB_DIR/spool/mta-sts-milter"
  SOCKET="$SOCKET_DIR/milter.sock"
  STORE="$MB_DIR/milter-state/cache.db"
  # The bed's folders are root's 0700 temporary folders: the unprivileged
  # milter must reach its store, the bed CA and the trust anchor.
  chmod 711 "$TB_DIR" "$MB_DIR"
  MILTER_CONF="$MB_DIR/milter.toml"
  MILTER_LOG="$MB_DIR/milter.log"
  mb_milter_config "$MILTER_CONF" \
    "milter.socket=\"unix:$SOCKET\"" milter.socket_group='"postfix"' milter.socket_mode='"0660"' \
    "milter.user=\"$RUN_AS\"" decision.non_smtp_action='"quarantine"' \
    "decision.non_smtp_daemon_names=[\"$SUBMISSION_NAME\"]" "store.path=\"$STORE\"" \
    "tlsrpt.flush_interval=$TLSRPT_FLUSH_SECONDS" || return 1
  mb_milter_start "$MILTER_CONF" "$MILTER_LOG" "$SOCKET"
}

# ---------------------------------------------------------------- checks
check_owner() {  # check_owner PATH WANT [FORMAT]: stat -c FORMAT ('%U:%G %a')
  local got
  got=$(stat -c "${3:-%U:%G %a}" "$1" 2>&1)
  [ "$got" = "$2" ] || echo "$1: '$got' (want '$2')"
}

check_privileges() {
  local uid gid status why=""
  uid=$(id -u "$RUN_AS") gid=$(id -g "$RUN_AS")
  status=$(cat "/proc/$MB_MILTER_PID/status" 2>&1)
  [ "$(awk '/^Uid:/ { print $2, $3, $4, $5 }' <<<"$status")" = "$uid $uid $uid $uid" ] ||
    why+="Uid line '$(grep '^Uid:' <<<"$status")' (want $uid everywhere); "
  [ "$(awk '/^Gid:/ { print $2, $3, $4, $5 }' <<<"$status")" = "$gid $gid $gid $gid" ] ||
    why+="Gid line '$(grep '^Gid:' <<<"$status")' (want $gid everywhere); "
  # initgroups(): the user's own groups only, none of root's (0) left over.
  [ "$(awk '/^Groups:/ { $1 = ""; print }' <<<"$status" | xargs -n1 | sort -n | xargs)" = \
    "$(id -G "$RUN_AS" | xargs -n1 | sort -n | xargs)" ] ||
    why+="Groups line '$(grep '^Groups:' <<<"$status")' (want $(id -G "$RUN_AS")); "
  grep -q "milter event=privileges-dropped user=$RUN_AS uid=$uid gid=$gid" "$MILTER_LOG" ||
    why+="no privileges-dropped line in the milter log; "
  echo -n "$why"
}

# Some smtpd of this instance runs with the queue directory as its root.
check_smtpd_chrooted() {
  local pid spool chrooted=0
  spool=$(readlink -f "$MB_DIR/spool")
  [ "$(tb_exec postconf -c "$MB_PF" -F smtp/inet/chroot | awk '{ print $NF }')" = y ] ||
    echo -n "master.cf smtp/inet chroot is not y; "
  for pid in $(pgrep -x smtpd); do
    [ "$(readlink "/proc/$pid/root")" = "$spool" ] && chrooted=$((chrooted + 1))
  done
  [ "$chrooted" -ge 1 ] || echo -n "no smtpd process has root $spool"
}

# send PORT DOMAINS CODES EXPECT...: one message to user@ each domain
# (LABEL.ZONE), each RCPT answered CODE, the decision lines as EXPECT says
# (decision_checks.sh); prints mismatches; QID holds the queue id.
QID=""
send() {
  local port=$1 domains=() codes=() from json why; shift
  read -r -a domains <<<"$1"; read -r -a codes <<<"$2"; shift 2
  domains=("${domains[@]/%/.test}")
  from=$(stat -c %s "$MILTER_LOG")
  json=$(tb_exec python3 "$SMTP_CLIENT" "$port" "${domains[@]/#/user@}") || { echo "SMTP client failed"; return; }
  why=$(check_codes "$json" "${#domains[@]}" "${domains[@]}" "${codes[@]}")
  QID=$(jq -r '.queue_id // "NOQUEUE"' <<<"$json")
  echo "$QID" >"$MB_DIR/last.qid"
  why+=$(check_decisions "$from" "$QID" "${#domains[@]}" "${domains[@]}" "$@")
  echo -n "$why"
}

# The TLSRPT failure of a probe reaches the store on the flush timer, while
# the milter runs (the other Postfix tests read what SIGTERM flushes).
check_tlsrpt_flushed() {
  local domain=$1 count="" limit=$((TLSRPT_FLUSH_SECONDS + 3))
  local give_up=$((SECONDS + limit))
  while [ "$SECONDS" -lt "$give_up" ]; do
    count=$(sqlite3 -cmd ".timeout 2000" "$STORE" "SELECT count(*) FROM tlsrpt_failures WHERE \
      policy_domain = '$domain' AND result_type = 'starttls-not-supported'" 2>&1)
    [ "$count" = 1 ] && break
    sleep 0.1
  done
  [ "$count" = 1 ] || echo -n "tlsrpt_failures rows for $domain: '$count' (want 1) after $limit s; "
  kill -0 "$MB_MILTER_PID" 2>/dev/null || echo -n "the milter is not running"
}

check_held() {  # check_held QID: the message is in Postfix's hold queue
  local qid=$1 queue
  [ -n "$qid" ] && [ "$qid" != NOQUEUE ] || { echo -n "no queue id"; return; }
  for _ in $(seq 30); do
    queue=$(tb_exec postqueue -c "$MB_PF" -j | jq -r --arg id "$qid" 'select(.queue_id == $id) | .queue_name')
    [ "$queue" = hold ] && return
    sleep 0.1
  done
  echo -n "message $qid in queue '$queue' (want hold)"
}

# sendmail(1) through pickup: non_smtpd_milters, no next-hop macros.
sendmail_command() {
  local rcpt=$1 from qid="" why=""
  from=$(stat -c %s "$MB_DIR/maillog")
  local milter_from
  milter_from=$(stat -c %s "$MILTER_LOG")
  printf 'Subject: sendmail(1)\n\nbody\n' |
    tb_exec sendmail -C "$MB_PF" -f sender@sender.test "$rcpt" || { echo -n "sendmail(1) failed"; return; }
  for _ in $(seq 50); do
    qid=$(tail -c +"$((from + 1))" "$MB_DIR/maillog" | sed -n 's/.*postfix\/pickup\[[0-9]*\]: \([0-9A-F]*\): uid=.*/\1/p' | head -n 1)
    [ -n "$qid" ] && break
    sleep 0.1
  done
  [ -n "$qid" ] || { echo -n "pickup logged no queue id"; return; }
  why=$(check_decisions "$milter_from" "$qid" 1 "${rcpt#*@}" "${@:2}")
  why+=$(check_held "$qid")
  echo -n "$why"
}

check_reload() {
  local from line
  from=$(stat -c %s "$MILTER_LOG")
  kill -USR1 "$MB_MILTER_PID"
  for _ in $(seq 50); do
    line=$(tail -c +"$((from + 1))" "$MILTER_LOG" | grep -E 'reload event=(ok|refused)') && break
    sleep 0.1
  done
  [[ "$line" == *"reload event=ok "* ]] || echo -n "reload line '$line' (want event=ok) as user $RUN_AS"
}

# A socket group that does not exist stops the start with EX_NOUSER (67)
# and a sentence naming the setting.
check_unknown_group() {
  local conf="$MB_DIR/bad-group.toml" out rc
  sed -e 's/^socket_group = .*/socket_group = "no-such-group"/' \
      -e "s|^socket = .*|socket = \"unix:$MB_DIR/bad-group/milter.sock\"|" "$MILTER_CONF" >"$conf"
  out=$(timeout 20 ip netns exec "$TB_NS" "$MTASTS_BIN" -c "$conf" 2>&1); rc=$?
  [ "$rc" = 67 ] || echo -n "exit status $rc (want 67); "
  grep -q "unknown milter.socket_group 'no-such-group'" <<<"$out" || echo -n "output: $(tail -n 2 <<<"$out")"
}

# The contrib systemd unit's shape: started as the unprivileged user itself,
# in its own group and not in the group postfix (User=, Group=, UMask=0007),
# into a folder ExecStartPre made with the group postfix and set-group-ID
# (2750), with milter.user naming that same user. The socket gets the group
# postfix from the folder; nothing to drop, so no initgroups() (which would
# fail without root): it starts, says so, and stops cleanly.
check_started_as_user() {
  local conf="$MB_DIR/as-user.toml" log="$MB_DIR/as-user.log" folder="$MB_DIR/as-user-spool/mta-sts-milter"
  local state="$MB_DIR/as-user-state" pid rc why=""
  install -d -o "$RUN_AS" -g postfix -m 2750 "$folder" && install -d -o "$RUN_AS" -m 0700 "$state" ||
    { echo -n "cannot prepare the folders"; return; }
  sed -e "s|^socket = .*|socket = \"unix:$folder/milter.sock\"|" \
      -e "s|^path = \"$STORE\"|path = \"$state/cache.db\"|" "$MILTER_CONF" >"$conf"
  grep -q "^path = \"$state/cache.db\"" "$conf" || { echo -n "no store path to replace in $MILTER_CONF"; return; }
  ip netns exec "$TB_NS" setpriv --reuid="$RUN_AS" --regid="$(id -g "$RUN_AS")" --clear-groups \
    bash -c 'umask 0007; exec "$0" -c "$1"' "$MTASTS_BIN" "$conf" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -S "$folder/milter.sock" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  [ -S "$folder/milter.sock" ] || why+="no socket: $(tail -n 2 "$log"); "
  why+=$(check_owner "$folder/milter.sock" "$RUN_AS:postfix 660")
  grep -q "milter event=privileges-kept user=$RUN_AS .*reason=already-that-user" "$log" ||
    why+="no privileges-kept line; "
  kill -TERM "$pid" 2>/dev/null; wait "$pid"; rc=$?
  [ "$rc" = 0 ] || why+="exit status $rc (want 0): $(tail -n 2 "$log")"
  echo -n "$why"
}

# The operator CLI run as root against the daemon's config (milter.user set)
# becomes that user first: the store it creates is the daemon's, not root's.
check_cli_as_root() {
  local conf="$MB_DIR/cli.toml" state="$MB_DIR/cli-state" out why=""
  sed -e "s|^path = \"$STORE\"|path = \"$state/cache.db\"|" "$MILTER_CONF" >"$conf"
  printf '%s\n' '{"domain":"cli.example","txt_id":"1","raw":"version: STSv1\nmode: enforce\nmx: mx.cli.example\nmax_age: 86400\n"}' \
    >"$MB_DIR/cli-import.jsonl" && chmod 644 "$MB_DIR/cli-import.jsonl"
  out=$("$MTASTS_BIN" -c "$conf" cache import "$MB_DIR/cli-import.jsonl" 2>&1) || why+="cache import failed: $out; "
  why+=$(check_owner "$state" "$RUN_AS" %U)
  why+=$(check_owner "$state/cache.db" "$RUN_AS" %U)
  out=$("$MTASTS_BIN" -c "$conf" cache list 2>/dev/null)
  [[ "$out" == "cli.example mode=enforce"* ]] || why+="cache list: '$out'"
  echo -n "$why"
}

main() {
  if ! [ -x "$MTASTS_BIN" ]; then
    report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  if ! setup; then
    report setup "bed, Postfix or milter did not start: $(tail -n 3 "$MILTER_LOG" 2>/dev/null)"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  report socket-folder-created "$(check_owner "$SOCKET_DIR" "$RUN_AS:postfix 750")"
  report socket-owner-group-mode "$(check_owner "$SOCKET" "$RUN_AS:postfix 660")"
  report privileges-dropped "$(check_privileges)"
  report chroot-port-25-good-and-bad "$(send 25 'good.plain nostls.plain' '250 451' \
    next_hop=domain tls=verified action=continue @nostls.plain tls=failed action=tempfail \
    result_type=starttls-not-supported)"
  report smtpd-chrooted "$(check_smtpd_chrooted)"
  report tlsrpt-flushed-on-timer "$(check_tlsrpt_flushed nostls.plain.test)"
  report store-created-as-user "$(check_owner "$STORE" "$RUN_AS" %U)"
  report named-listener-decides-at-end "$(send 587 'good.plain nostls.plain' '250 250' \
    next_hop=unknown action=continue @nostls.plain next_hop=unknown action=quarantine \
    result_type=starttls-not-supported)"
  report named-listener-held "$(check_held "$(cat "$MB_DIR/last.qid")")"
  report sendmail-command-decides-at-end "$(sendmail_command user@nostls.plain.test \
    next_hop=unknown action=quarantine)"
  report reload-as-user "$(check_reload)"
  report chroot-after-reload "$(send 25 'nostls.plain' '451' action=tempfail)"
  report unknown-socket-group "$(check_unknown_group)"
  report started-as-user "$(check_started_as_user)"
  report cli-as-root-becomes-user "$(check_cli_as_root)"
  mb_milter_stop  # not in $(...): only the starting shell can wait for it
  report sigterm "$([ "$MB_MILTER_RC" = 0 ] || echo "exit status $MB_MILTER_RC (want 0)")"
  report_summary
}

main "$@"
