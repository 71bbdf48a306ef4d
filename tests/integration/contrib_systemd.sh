#!/usr/bin/env bash
# The systemd units in contrib/, read (they run under a real systemd in
# socket_activation.sh and, packaged, in deb_package.sh): systemd-analyze
# verify accepts them with the binary under test as ExecStart, and the
# socket folder the daemon's unit prepares and may write is the one the
# contrib Postfix snippet names from inside the chroot.
#
# Usage: contrib_systemd.sh   (MTASTS_BIN: the executable, default <repo>/build/...)
# Prints "ok NAME" / "FAIL NAME: why", then "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
ROOT=$(cd "$HERE/../.." && pwd)
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
UNIT="$ROOT/contrib/systemd/mta-sts-milter.service"
SNIPPET="$ROOT/contrib/postfix/main.cf.snippet"
CHROOT=/var/spool/postfix
WORK=$(mktemp -d) || exit 1
trap 'rm -rf "$WORK"' EXIT

unit_value() { sed -n "s/^$1=//p" "$UNIT"; }

verify_unit() {
  local out
  sed "s|/usr/sbin/mta-sts-milter|$MTASTS_BIN|" "$UNIT" >"$WORK/mta-sts-milter.service"
  out=$(systemd-analyze verify "$WORK/mta-sts-milter.service" 2>&1) || { echo "$out"; return; }
  [ -z "$out" ] || echo "systemd-analyze verify: $out"
}

# The folder of "#mtasts_milter = unix:/NAME/milter.sock" (Postfix's view).
snippet_socket_folder() {
  local path
  path=$(sed -n 's/^#mtasts_milter = unix://p' "$SNIPPET")
  [ -n "$path" ] && echo "$CHROOT$(dirname "$path")"
}

socket_folder_matches() {
  local folder why=""
  folder=$(snippet_socket_folder) || { echo "no '#mtasts_milter = unix:' line in $SNIPPET"; return; }
  [ "$(unit_value ReadWritePaths)" = "-$folder" ] || why+="ReadWritePaths '$(unit_value ReadWritePaths)' (want -$folder); "
  # Set-group-ID: the socket made in it gets the group postfix; "-": without
  # that group the start goes on.
  [[ "$(unit_value ExecStartPre)" == "+-"*" -g postfix -m 2750 $folder" ]] ||
    why+="ExecStartPre '$(unit_value ExecStartPre)' does not make $folder (+-, group postfix, 2750); "
  [ "$(unit_value Group)" = mta-sts-milter ] ||
    why+="Group '$(unit_value Group)' (want mta-sts-milter: the daemon is not in the group postfix); "
  grep -q "socket = \"unix:$folder/milter.sock\"" "$UNIT" || why+="the unit's comment names another socket; "
  echo -n "$why"
}

reload_is_sigusr1() {
  [ "$(unit_value ExecReload)" = '/bin/kill -USR1 $MAINPID' ] ||
    echo "ExecReload '$(unit_value ExecReload)' (the daemon reloads on SIGUSR1 and on SIGHUP; the unit keeps the signal every version understood)"
}

# The report service and its timer (#12): verified together, with the binary
# under test; the service must be a oneshot running `report send`.
verify_report_units() {
  local out dir="$WORK/report"
  mkdir -p "$dir"
  sed "s|/usr/sbin/mta-sts-milter|$MTASTS_BIN|" "$ROOT/contrib/systemd/mta-sts-milter-report.service" \
    >"$dir/mta-sts-milter-report.service"
  cp "$ROOT/contrib/systemd/mta-sts-milter-report.timer" "$dir/"
  out=$(systemd-analyze verify "$dir/mta-sts-milter-report.service" "$dir/mta-sts-milter-report.timer" 2>&1) ||
    { echo "$out"; return; }
  [ -z "$out" ] || { echo "systemd-analyze verify: $out"; return; }
  grep -q '^Type=oneshot$' "$dir/mta-sts-milter-report.service" || echo "the report service is not a oneshot"
  grep -q "^ExecStart=$MTASTS_BIN -c /etc/mta-sts-milter.toml report send$" "$dir/mta-sts-milter-report.service" ||
    echo "the report service does not run 'report send'"
}

# The socket units (socket activation): verified with the service they
# start; each names its socket as the daemon expects and starts the daemon.
verify_socket_units() {
  local out unit name
  out=$(systemd-analyze verify "$WORK/mta-sts-milter.service" "$ROOT/contrib/systemd/mta-sts-milter.socket" \
    "$ROOT/contrib/systemd/mta-sts-milter-socketmap.socket" 2>&1)
  [ -z "$out" ] || echo -n "systemd-analyze verify: $out; "
  for unit in mta-sts-milter mta-sts-milter-socketmap; do
    name=${unit#mta-sts-milter}; name=${name#-}
    grep -qx "FileDescriptorName=${name:-milter}" "$ROOT/contrib/systemd/$unit.socket" ||
      echo -n "$unit.socket does not name its socket ${name:-milter}; "
    grep -qx "Service=mta-sts-milter.service" "$ROOT/contrib/systemd/$unit.socket" ||
      echo -n "$unit.socket does not start mta-sts-milter.service; "
  done
}

report unit-verifies "$(verify_unit)"
report socket-units-verify "$(verify_socket_units)"
report report-units-verify "$(verify_report_units)"
report socket-folder-matches-postfix-snippet "$(socket_folder_matches)"
report reload-is-sigusr1 "$(reload_is_sigusr1)"
report_summary
