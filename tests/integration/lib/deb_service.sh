#!/usr/bin/env bash
# The installed package as a service: its own unit, started by a real
# systemd (lib/systemd_ns.sh: PID 1 of namespaces of its own, since this
# machine's is not systemd) inside the mail test bed (lib/mailbed.sh: NSD,
# Unbound, nginx, STARTTLS peers, a private Postfix). Run by deb_package.sh
# while the package is installed; not by run_all.sh (it lives in lib/).
#
# The daemon gets the package's unit, binary and state folder unchanged; only
# /etc/mta-sts-milter.toml is the bed's for the run (put back after): the
# milter on unix:/var/spool/postfix/mta-sts-milter/milter.sock, which the
# unit's ExecStartPre makes, the socketmap on 127.0.0.1:8461, metrics on
# 127.0.0.1:9489. The bed's CA and trust anchor are copied to
# /etc/mta-sts-milter-test-bed (the unit's PrivateTmp= hides /tmp).
#   started        systemd reached "running": the unit is active (Type=notify,
#                  so after READY=1) with a STATUS= text, no restart
#   identity       the process runs as mta-sts-milter:mta-sts-milter and is
#                  not in the group postfix
#   socket-group   the folder is mta-sts-milter:postfix 2750 (ExecStartPre),
#                  the socket mta-sts-milter:postfix 660 (the folder's
#                  set-group-ID), the cache mta-sts-milter:mta-sts-milter
#   mail           Postfix, as its user postfix, reaches the socket: one
#                  message to an enforce domain with a good MX and one with
#                  an MX without STARTTLS: RCPT 250 and 451, decision lines
#                  in the unit's journal
#   check          the installed binary's `check --json` (as mta-sts-milter,
#                  on the same config and cache) resolves the enforce policy
#   socketmap      postmap -q through socketmap:inet:127.0.0.1:8461 answers
#                  the enforce policy
#   metrics        the scrape counts the two decisions (action continue and
#                  tempfail)
#   reload         systemctl reload: "reload event=ok" in the journal, same
#                  main PID, still active
#   stop           systemctl stop: inactive, Result=success, exit status 0
#   cache-kept     the policies are in the package's state folder afterwards
#                  (cache list, run as mta-sts-milter)
#
# Usage: deb_service.sh   (as root, with the package installed)
# Prints "ok NAME" / "FAIL NAME: why", then "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=report.sh
source "$HERE/report.sh"
# shellcheck source-path=SCRIPTDIR source=mailbed.sh
source "$HERE/mailbed.sh"
# shellcheck source-path=SCRIPTDIR source=systemd_ns.sh
source "$HERE/systemd_ns.sh"
# shellcheck source-path=SCRIPTDIR source=decision_checks.sh
source "$HERE/decision_checks.sh"

PKG=mta-sts-milter
UNIT=mta-sts-milter.service
CONF=/etc/mta-sts-milter.toml
BED_FILES=/etc/mta-sts-milter-test-bed
SOCKET_DIR=/var/spool/postfix/mta-sts-milter
SOCKET=$SOCKET_DIR/milter.sock
STORE=/var/lib/mta-sts-milter/cache.db
METRICS_PORT=9489
# shellcheck disable=SC2034  # read by decision_checks.sh
DECISION_KEYS="queue_id domain next_hop mode policy_id source mx tls dane dane_reason action reason result_type elapsed_ms"
SAVED_CONF=""
MILTER_LOG=""  # the unit's journal, copied by journal_to_log (decision_checks.sh)

finish() {
  report_summary
  exit
}

teardown() {
  sd_shutdown
  [ -z "$SAVED_CONF" ] || cp -p "$SAVED_CONF" "$CONF"
  rm -rf "$BED_FILES"
  mailbed_down
}

# The bed's config for the daemon, with the files it needs outside /tmp.
install_config() {
  local conf="$MB_DIR/milter.toml"
  install -d -m 0755 "$BED_FILES" && install -m 0644 "$TB_ANCHOR_FILE" "$BED_FILES/anchor" &&
    install -m 0644 "$TB_CA_FILE" "$BED_FILES/ca.pem" || return 1
  # As README's unix socket example: the group postfix, which the folder's
  # set-group-ID already gave the socket (so no membership is needed).
  mb_milter_config "$conf" "milter.socket=\"unix:$SOCKET\"" milter.socket_mode='"0660"' \
    milter.socket_group='"postfix"' \
    "store.path=\"$STORE\"" "dns.trust_anchor_files=[\"$BED_FILES/anchor\"]" \
    "https.ca_file=\"$BED_FILES/ca.pem\"" "probe.ca_file=\"$BED_FILES/ca.pem\"" \
    'socketmap.socket="inet:8461@127.0.0.1"' "metrics.listen=\"inet:$METRICS_PORT@127.0.0.1\"" || return 1
  SAVED_CONF="$MB_DIR/package.toml"
  cp -p "$CONF" "$SAVED_CONF" && install -m 0644 "$conf" "$CONF"
}

# Postfix connects to the unit's socket by its absolute path (not chrooted).
postfix_snippets() {
  local dir="$MB_DIR/snippets"
  mkdir -p "$dir" && cp "$MB_LIB_DIR/../../../contrib/postfix/master.cf.snippet" "$dir/" &&
    sed "s|^mtasts_milter = .*|mtasts_milter = unix:$SOCKET|" \
      "$MB_LIB_DIR/../../../contrib/postfix/main.cf.snippet" >"$dir/main.cf.snippet" && echo "$dir"
}

setup() {
  local snippets
  mailbed_up || return 1
  trap teardown EXIT
  mb_domain_add plain good enforce good && mb_domain_add plain nostls enforce nostarttls &&
    mb_commit && install_config || return 1
  MILTER_LOG="$MB_DIR/journal.log"
  sd_boot "$TB_NS" "$MB_DIR" "$UNIT" || return 1
  snippets=$(postfix_snippets) && mb_postfix_start "$snippets"
}

unit_property() { sd_ctl show -P "$1" "$UNIT" 2>&1; }

journal_to_log() { sd_journal -u "$UNIT" -o cat >"$MILTER_LOG" 2>&1; }

check_started() {
  local why="" state
  state=$(sd_ctl is-system-running 2>&1)
  [ "$state" = running ] || why+="system $state: $(sd_ctl list-units --failed --plain --no-legend 2>&1); "
  [ "$(unit_property ActiveState)/$(unit_property SubState)" = active/running ] ||
    why+="$UNIT is $(unit_property ActiveState)/$(unit_property SubState): $(sd_journal -u "$UNIT" -o cat | tail -n 3); "
  [ "$(unit_property Type)" = notify ] || why+="Type=$(unit_property Type); "
  [[ "$(unit_property StatusText)" == *polic* ]] || why+="STATUS '$(unit_property StatusText)'; "
  [ "$(unit_property NRestarts)" = 0 ] || why+="NRestarts=$(unit_property NRestarts); "
  echo -n "$why"
}

check_identity() {
  local pid status why="" postfix_gid
  pid=$(unit_property MainPID)
  status=$(sd_nsexec cat "/proc/$pid/status" 2>&1) || { echo "no /proc/$pid/status: $status"; return; }
  postfix_gid=$(getent group postfix | cut -d: -f3)
  [ "$(awk '/^Uid:/ { print $2 }' <<<"$status")" = "$(id -u "$PKG")" ] || why+="$(grep '^Uid:' <<<"$status"); "
  [ "$(awk '/^Gid:/ { print $2 }' <<<"$status")" = "$(id -g "$PKG")" ] || why+="$(grep '^Gid:' <<<"$status"); "
  ! awk '/^Groups:/ { for (i = 2; i <= NF; i++) print $i }' <<<"$status" | grep -qx "$postfix_gid" ||
    why+="in the group postfix ($(grep '^Groups:' <<<"$status")); "
  echo -n "$why"
}

check_owner() {  # check_owner PATH WANT: stat -c '%U:%G %a'
  local got
  got=$(stat -c '%U:%G %a' "$1" 2>&1)
  [ "$got" = "$2" ] || echo -n "$1: '$got' (want '$2'); "
}

check_socket_group() {
  check_owner "$SOCKET_DIR" "$PKG:postfix 2750"
  check_owner "$SOCKET" "$PKG:postfix 660"
  [ "$(stat -c '%U:%G' "$STORE" 2>&1)" = "$PKG:$PKG" ] || echo -n "$STORE: $(stat -c '%U:%G' "$STORE" 2>&1); "
}

# One message through Postfix to both domains; decision lines from the journal.
check_mail() {
  local json why qid d line
  json=$(tb_exec python3 "$HERE/smtp_client.py" 25 user@good.plain.test user@nostls.plain.test) ||
    { echo "SMTP client failed"; return; }
  why=$(check_codes "$json" 2 good.plain.test nostls.plain.test 250 451)
  qid=$(jq -r '.queue_id // "NOQUEUE"' <<<"$json")
  for d in good.plain.test nostls.plain.test; do
    line=""
    for _ in $(seq 50); do
      journal_to_log
      line=$(decision_lines 0 "$d" | tail -n 1)
      [ -n "$line" ] && break
      sleep 0.1
    done
    [ -n "$line" ] || { why+="no decision line for $d in the journal; "; continue; }
    if [ "$d" = good.plain.test ]; then
      why+=$(check_line "$line" "$d" "$qid" mode=enforce tls=verified action=continue)
    else
      why+=$(check_line "$line" "$d" "$qid" mode=enforce tls=failed action=tempfail result_type=starttls-not-supported)
    fi
  done
  echo -n "$why"
}

check_cli_check() {
  local out mode
  # stdout is the JSON; the log lines go to stderr.
  out=$(tb_exec setpriv --reuid "$PKG" --regid "$PKG" --clear-groups \
    /usr/sbin/mta-sts-milter -c "$CONF" check --json nostls.plain.test 2>"$MB_DIR/check.err") ||
    { echo "exit $?: $out $(tail -n 2 "$MB_DIR/check.err")"; return; }
  mode=$(jq -r '.policy.mode' <<<"$out" 2>&1)
  [ "$mode" = enforce ] || echo "policy.mode '$mode' (want enforce): $(head -c 300 <<<"$out")"
}

check_socketmap() {
  local out
  out=$(tb_exec postmap -q good.plain.test socketmap:inet:127.0.0.1:8461:postfix 2>&1)
  [[ "$out" == secure* ]] || echo "postmap -q good.plain.test: '$out' (want secure ...)"
}

check_metrics() {
  local body why="" action
  body=$(tb_exec curl -sS --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" 2>&1) || { echo "scrape: $body"; return; }
  for action in continue tempfail; do
    awk -v a="action=\"$action\"" '$1 ~ /^mtasts_decisions_total\{/ && index($1, a) { n += $2 } END { exit !(n >= 1) }' \
      <<<"$body" || why+="no mtasts_decisions_total with $action; "
  done
  echo -n "$why"
}

check_reload() {
  local pid why="" out
  pid=$(unit_property MainPID)
  out=$(sd_ctl reload "$UNIT" 2>&1) || { echo "systemctl reload: $out"; return; }
  for _ in $(seq 50); do
    journal_to_log
    grep -Eq '(^| )reload event=ok ' "$MILTER_LOG" && break
    sleep 0.1
  done
  grep -Eq '(^| )reload event=ok ' "$MILTER_LOG" ||
    why+="no 'reload event=ok' in the journal: $(tail -n 3 "$MILTER_LOG"); "
  [ "$(unit_property MainPID)" = "$pid" ] || why+="main PID $pid became $(unit_property MainPID); "
  [ "$(unit_property ActiveState)" = active ] || why+="$(unit_property ActiveState) after reload; "
  echo -n "$why"
}

check_stop() {
  local out
  out=$(sd_ctl stop "$UNIT" 2>&1) || { echo "systemctl stop: $out"; return; }
  out="$(unit_property ActiveState) $(unit_property Result) $(unit_property ExecMainStatus)"
  [ "$out" = "inactive success 0" ] || echo "ActiveState Result ExecMainStatus: $out (want inactive success 0)"
}

check_cache_kept() {
  local out
  out=$(setpriv --reuid "$PKG" --regid "$PKG" --clear-groups /usr/sbin/mta-sts-milter -c "$CONF" cache list 2>&1)
  grep -q '^good.plain.test mode=enforce' <<<"$out" || echo "cache list: $(head -c 300 <<<"$out")"
}

[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null)" = "ii " ] ||
  { report setup "the package $PKG is not installed"; finish; }
if ! setup; then
  report setup "the bed or the unit did not start: $(sd_journal -u "$UNIT" -o cat 2>&1 | tail -n 3)"
  finish
fi
report started "$(check_started)"
report identity "$(check_identity)"
report socket-group "$(check_socket_group)"
report mail "$(check_mail)"
report check "$(check_cli_check)"
report socketmap "$(check_socketmap)"
report metrics "$(check_metrics)"
report reload "$(check_reload)"
report stop "$(check_stop)"
report cache-kept "$(check_cache_kept)"
finish
