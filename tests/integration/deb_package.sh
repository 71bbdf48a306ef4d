#!/usr/bin/env bash
# The Debian package (debian/): built with dpkg-buildpackage from a copy of
# the tree, checked with lintian, installed on this machine (systemd is not
# PID 1 here), run, and purged:
#   tools, machine     what it needs is there; the package is not installed
#   version-agrees     debian/changelog carries the version of project()
#   build              dpkg-buildpackage -us -uc -b succeeds (its wall time)
#   lintian            no E: line on the .deb
#   install            apt-get install ./PACKAGE.deb succeeds, as README says;
#                      the generated systemd calls of the maintainer scripts
#                      cannot fail it (|| true)
#   files              binary, units and docs; /etc/mta-sts-milter.toml is a
#                      conffile equal to contrib's
#   units              the daemon unit is enabled, the report timer and the
#                      socket units are not; all five verify (systemd-analyze)
#   man-pages          both pages render with man -l and man finds them
#   user               mta-sts-milter: a system account, nologin, home
#                      /var/lib/mta-sts-milter, which it owns, mode 0750
#   version            --version of the installed binary is project()'s
#   print-config       --print-config is contrib/mta-sts-milter.toml minus
#                      its 3-line header
#   lint-txt           lint-txt 'v=STSv1; id=1' passes
#   daemon             the installed daemon, as mta-sts-milter, in a network
#                      namespace of its own (so its port is free): it starts,
#                      accepts on its milter socket, keeps its store in the
#                      package's state folder and exits 0 on SIGTERM
#   service-*          the package's unit under a real systemd in the mail
#                      test bed: started, its identity and socket group, mail
#                      through Postfix, socketmap, metrics, reload, stop, the
#                      cache kept (lib/deb_service.sh lists each)
#   purge              dpkg --purge leaves no file, folder, unit link or dpkg
#                      entry; the user stays (postrm keeps it, as unbound and
#                      opendkim do) and is removed here if the test made it
#
# The copy holds the tracked and the untracked, not ignored files of the
# working tree (what a commit would hold), so uncommitted debian/ changes are
# tested; nothing is written into the repository or beside it. Paths the
# package owns that exist before the test (e.g. the cache scripts/run.sh
# keeps in /var/lib/mta-sts-milter) are moved aside and put back; with the
# package already installed the test touches nothing and fails.
#
# Usage: deb_package.sh   (as root; needs dpkg-dev, debhelper, lintian)
#   MTASTS_DEB_PREBUILT=DIR  package an already built CMake tree (debian/rules;
#                      scripts/test.sh passes its RelWithDebInfo tree) instead
#                      of compiling: the build then takes seconds
# Without it most of its time is the build: about 3.5 min on two idle cores
# (6 CPU-min).
# Prints "ok NAME" / "FAIL NAME: why" (and "# lintian: TAG" lines), then
# "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
# shellcheck source-path=SCRIPTDIR source=lib/offline_config.sh
source "$HERE/lib/offline_config.sh"
ROOT=$(cd "$HERE/../.." && pwd)
PKG=mta-sts-milter
VERSION=$(sed -n 's/^project(mta-sts-milter VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
OWNED_PATHS=(/etc/mta-sts-milter.toml /var/lib/mta-sts-milter /var/spool/postfix/mta-sts-milter)
WORK=$(mktemp -d) || exit 1
PREPARED=0
INSTALLED=0
MADE_USER=0
MOVED=()
DEB=$WORK/build/${PKG}_${VERSION}_$(dpkg --print-architecture).deb

finish() {
  report_summary
  exit
}

# dpkg ARGS, retried while another apt or dpkg holds the lock (the machine is
# shared), for up to 5 minutes. Its stderr is in $WORK/dpkg.err.
dpkg_locked() {
  local rc
  for _ in $(seq 150); do
    DEBIAN_FRONTEND=noninteractive dpkg "$@" >"$WORK/dpkg.out" 2>"$WORK/dpkg.err"
    rc=$?
    if [ "$rc" = 0 ] || ! grep -q 'lock' "$WORK/dpkg.err"; then return "$rc"; fi
    sleep 2
  done
  return "$rc"
}

cleanup() {
  local pid path
  pid=$(cat "$WORK/run/daemon.pid" 2>/dev/null) && kill -KILL "$pid" 2>/dev/null
  # Also a package half installed by a failed dpkg -i (prepare_machine
  # refused to start with the package known to dpkg).
  if [ "$PREPARED" = 1 ] && ! package_unknown; then dpkg_locked --purge "$PKG" || cat "$WORK/dpkg.err" >&2; fi
  if [ "$MADE_USER" = 1 ]; then
    getent passwd "$PKG" >/dev/null && userdel "$PKG"
    getent group "$PKG" >/dev/null && groupdel "$PKG"
  fi
  for path in "${MOVED[@]}"; do
    rm -rf "$path" && mv "$path.deb-package-test.$$" "$path"
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

check_tools() {
  local tool missing=""
  for tool in git dpkg-buildpackage dh lintian man systemd-analyze unshare setpriv ip; do
    command -v "$tool" >/dev/null || missing+="$tool "
  done
  [ "$(id -u)" = 0 ] || missing+="(root) "
  [ -z "$missing" ] || echo "missing: $missing(apt-get install dpkg-dev debhelper lintian)"
}

# True when dpkg knows nothing of the package (never installed, or purged).
package_unknown() {
  case "$(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null)" in "" | un*) return 0 ;; *) return 1 ;; esac
}

# Refuses a machine where the package is installed; moves owned paths aside.
prepare_machine() {
  local path
  package_unknown || { echo "$PKG is installed here; the test would purge it"; return; }
  PREPARED=1
  for path in "${OWNED_PATHS[@]}"; do
    [ -e "$path" ] || continue
    mv "$path" "$path.deb-package-test.$$" || { echo "cannot move $path aside"; return; }
    MOVED+=("$path")
  done
  getent passwd "$PKG" >/dev/null || MADE_USER=1
}

check_version_agrees() {
  local changelog
  changelog=$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -SVersion)
  [ -n "$VERSION" ] || { echo "no project(mta-sts-milter VERSION x.y.z) in CMakeLists.txt"; return; }
  [ "${changelog%%-*}" = "$VERSION" ] || echo "debian/changelog has $changelog, CMakeLists.txt project() has $VERSION"
}

# The tree as a commit would hold it, into $WORK/build/src: dpkg-buildpackage
# writes the .deb into the parent of the source folder.
build_package() {
  local start rc
  mkdir -p "$WORK/build/src"
  git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
    tar -C "$ROOT" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$WORK/build/src" -xf - ||
    { echo "cannot copy the tree"; return; }
  start=$(date +%s)
  # noddebs: no -dbgsym package (not tested here; about 15 s of compression).
  (cd "$WORK/build/src" && DEB_BUILD_OPTIONS="noddebs" \
    nice -n 10 dpkg-buildpackage -us -uc -b -j"$(nproc)" >"$WORK/build.log" 2>&1)
  rc=$?
  echo $(($(date +%s) - start)) >"$WORK/build.seconds"
  [ "$rc" = 0 ] || { echo "exit $rc: $(tail -n 15 "$WORK/build.log")"; return; }
  [ -f "$DEB" ] || echo "no $(basename "$DEB") in $(ls "$WORK/build")"
}

check_lintian() {
  lintian "$DEB" >"$WORK/lintian.out" 2>&1
  ! grep -q '^E:' "$WORK/lintian.out" || grep '^E:' "$WORK/lintian.out"
}

install_package() {
  # apt-get waits for the dpkg lock itself (another apt run on the machine).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 "$DEB" \
    >"$WORK/apt.out" 2>"$WORK/apt.err" || { echo "apt-get install: $(tail -n 5 "$WORK/apt.err")"; return; }
  INSTALLED=1
  # Every start or restart the generated snippets make is allowed to fail.
  if grep 'deb-systemd-invoke' "/var/lib/dpkg/info/$PKG.postinst" | grep -v '|| true'; then
    echo "a deb-systemd-invoke call in postinst can fail the install"
  fi
}

check_files() {
  local why="" file unit
  [ "$(stat -c '%U:%G %a' /usr/sbin/mta-sts-milter 2>&1)" = "root:root 755" ] ||
    why+="/usr/sbin/mta-sts-milter: $(stat -c '%U:%G %a' /usr/sbin/mta-sts-milter 2>&1); "
  dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -q '^ /etc/mta-sts-milter.toml ' ||
    why+="/etc/mta-sts-milter.toml is not a conffile; "
  cmp -s /etc/mta-sts-milter.toml "$ROOT/contrib/mta-sts-milter.toml" ||
    why+="/etc/mta-sts-milter.toml differs from contrib/mta-sts-milter.toml; "
  for unit in mta-sts-milter.service mta-sts-milter-report.service mta-sts-milter-report.timer \
    mta-sts-milter.socket mta-sts-milter-socketmap.socket; do
    cmp -s "/lib/systemd/system/$unit" "$ROOT/contrib/systemd/$unit" ||
      why+="/lib/systemd/system/$unit missing or not contrib's; "
  done
  # README.md uncompressed: the units' Documentation= names it.
  [ -f "/usr/share/doc/$PKG/README.md" ] || why+="no /usr/share/doc/$PKG/README.md; "
  for file in README.Debian copyright examples/postfix/main.cf.snippet examples/postfix/master.cf.snippet \
    examples/sendmail/mta-sts-milter.mc; do
    file=/usr/share/doc/$PKG/$file
    [ -f "$file" ] || [ -f "$file.gz" ] || why+="no $file; "
  done
  echo -n "$why"
}

check_units() {
  local why="" out unit
  [ -L /etc/systemd/system/multi-user.target.wants/mta-sts-milter.service ] ||
    why+="mta-sts-milter.service is not enabled; "
  [ ! -e /etc/systemd/system/timers.target.wants/mta-sts-milter-report.timer ] ||
    why+="mta-sts-milter-report.timer is enabled (it needs report.contact_info first); "
  for unit in mta-sts-milter.socket mta-sts-milter-socketmap.socket; do
    [ ! -e "/etc/systemd/system/sockets.target.wants/$unit" ] || why+="$unit is enabled (socket activation is optional); "
  done
  out=$(systemd-analyze verify /lib/systemd/system/mta-sts-milter.service \
    /lib/systemd/system/mta-sts-milter-report.service /lib/systemd/system/mta-sts-milter-report.timer \
    /lib/systemd/system/mta-sts-milter.socket /lib/systemd/system/mta-sts-milter-socketmap.socket 2>&1)
  [ -z "$out" ] || why+="systemd-analyze verify: $out; "
  echo -n "$why"
}

check_man_pages() {
  local why="" page text
  for page in man8/mta-sts-milter.8 man5/mta-sts-milter.toml.5; do
    text=$(MANWIDTH=200 man -l "/usr/share/man/$page.gz" 2>"$WORK/man.err") || { why+="man -l $page failed; "; continue; }
    [ ! -s "$WORK/man.err" ] || why+="$page: $(head -c 200 "$WORK/man.err"); "
    grep -q '^NAME' <<<"$text" || why+="$page has no NAME; "
    grep -q "mta-sts-milter $VERSION" <<<"$text" || why+="$page does not carry $VERSION; "
  done
  [ "$(man -w 8 mta-sts-milter 2>&1)" = /usr/share/man/man8/mta-sts-milter.8.gz ] ||
    why+="man -w 8 mta-sts-milter: $(man -w 8 mta-sts-milter 2>&1); "
  [ "$(man -w 5 mta-sts-milter.toml 2>&1)" = /usr/share/man/man5/mta-sts-milter.toml.5.gz ] ||
    why+="man -w 5 mta-sts-milter.toml: $(man -w 5 mta-sts-milter.toml 2>&1); "
  echo -n "$why"
}

check_user() {
  local why="" entry uid
  entry=$(getent passwd "$PKG") || { echo "no user $PKG"; return; }
  IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
  [ "$uid" -lt 1000 ] || why+="uid $uid is not a system uid; "
  [ "$home" = /var/lib/mta-sts-milter ] || why+="home $home; "
  [ "$shell" = /usr/sbin/nologin ] || why+="shell $shell; "
  getent group "$PKG" >/dev/null || why+="no group $PKG; "
  [ "$(stat -c '%U:%G %a' /var/lib/mta-sts-milter 2>&1)" = "$PKG:$PKG 750" ] ||
    why+="/var/lib/mta-sts-milter: $(stat -c '%U:%G %a' /var/lib/mta-sts-milter 2>&1) (want $PKG:$PKG 750); "
  echo -n "$why"
}

check_version() {
  local out
  out=$(/usr/sbin/mta-sts-milter --version 2>&1)
  [ "$out" = "mta-sts-milter $VERSION" ] || echo "--version: '$out' (want 'mta-sts-milter $VERSION')"
}

check_print_config() {
  /usr/sbin/mta-sts-milter --print-config >"$WORK/print-config.toml" 2>&1
  tail -n +4 "$ROOT/contrib/mta-sts-milter.toml" | diff -u - "$WORK/print-config.toml" >"$WORK/diff" ||
    echo "differs from contrib/mta-sts-milter.toml: $(head -c 400 "$WORK/diff")"
}

check_lint_txt() {
  local out
  out=$(/usr/sbin/mta-sts-milter lint-txt 'v=STSv1; id=1' 2>&1) || echo "exit $?: $out"
}

# The installed daemon as its user (setpriv execs, so the pid is the
# daemon's), with its store in the package's state folder, in a network
# namespace of its own: nothing else listens there, so port 8891 is free.
run_daemon() {
  local run="$WORK/run" why="" pid
  mkdir -p "$run"
  chmod 0711 "$WORK"
  offline_config "$run/milter.toml" 'inet:8891@127.0.0.1' "/var/lib/mta-sts-milter/cache.db"
  chmod 0644 "$run/milter.toml"
  cat >"$run/inner.sh" <<'EOF'
set -u
run=$1
ip link set lo up
setpriv --reuid mta-sts-milter --regid mta-sts-milter --init-groups \
  /usr/sbin/mta-sts-milter -c "$run/milter.toml" 2>"$run/milter.log" &
pid=$!
echo "$pid" >"$run/daemon.pid"
for _ in $(seq 100); do grep -q 'milter event=started' "$run/milter.log" && break; sleep 0.1; done
if (exec 3<>/dev/tcp/127.0.0.1/8891) 2>/dev/null; then echo open >"$run/socket"; fi
kill -TERM "$pid"
# libmilter notices a signal within about 5 s; the daemon then waits up to 15 s.
for _ in $(seq 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { echo "still running 25 s after SIGTERM" >"$run/stuck"; kill -KILL "$pid"; }
wait "$pid"
echo $? >"$run/rc"
EOF
  unshare -n bash "$run/inner.sh" "$run"
  rm -f "$run/daemon.pid"
  grep -q "milter event=started version=$VERSION " "$run/milter.log" ||
    why+="no 'milter event=started version=$VERSION' in its log: $(tail -n 3 "$run/milter.log"); "
  [ -f "$run/socket" ] || why+="127.0.0.1:8891 did not accept; "
  [ "$(stat -c %U /var/lib/mta-sts-milter/cache.db 2>&1)" = "$PKG" ] ||
    why+="store /var/lib/mta-sts-milter/cache.db: $(stat -c %U /var/lib/mta-sts-milter/cache.db 2>&1); "
  [ ! -f "$run/stuck" ] || why+="$(cat "$run/stuck"); "
  [ "$(cat "$run/rc" 2>/dev/null)" = 0 ] || why+="exit $(cat "$run/rc" 2>/dev/null) after SIGTERM: $(tail -n 3 "$run/milter.log"); "
  echo -n "$why"
}

# lib/deb_service.sh's rows, each as "service-NAME"; its own summary line
# and exit status must agree with them (a row it never printed, a crash).
run_service() {
  local line name rows=0 rc summary
  bash "$HERE/lib/deb_service.sh" >"$WORK/service.out" 2>"$WORK/service.err"
  rc=$?
  while IFS= read -r line; do
    case $line in
      "ok "*) report "service-${line#ok }" ""; rows=$((rows + 1)) ;;
      "FAIL "*) name=${line#FAIL }; report "service-${name%%:*}" "${name#*: }"; rows=$((rows + 1)) ;;
    esac
  done <"$WORK/service.out"
  summary=$(tail -n 1 "$WORK/service.out")
  [[ "$summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]] &&
    [ $((BASH_REMATCH[1] + BASH_REMATCH[2])) = "$rows" ] && { [ "$rc" = 0 ] || [ "${BASH_REMATCH[2]}" != 0 ]; } ||
    report service "exit status $rc, $rows rows, last line '$summary': $(tail -n 5 "$WORK/service.err")"
}

purge_package() {
  local why="" path left
  dpkg_locked --purge "$PKG" || { echo "dpkg --purge: $(tail -n 5 "$WORK/dpkg.err")"; return; }
  INSTALLED=0
  for path in /usr/sbin/mta-sts-milter /etc/mta-sts-milter.toml /var/lib/mta-sts-milter \
    /lib/systemd/system/mta-sts-milter.service /usr/share/doc/$PKG /usr/share/man/man8/mta-sts-milter.8.gz; do
    [ ! -e "$path" ] || why+="$path is left; "
  done
  left=$(find /etc/systemd /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
    -name 'mta-sts-milter*' 2>/dev/null)
  [ -z "$left" ] || why+="unit state left: $left; "
  left=$(dpkg -L "$PKG" 2>/dev/null)
  [ -z "$left" ] || why+="dpkg -L lists: $(head -n 3 <<<"$left"); "
  [ -z "$(ls /var/lib/dpkg/info/$PKG.* 2>/dev/null)" ] || why+="/var/lib/dpkg/info/$PKG.* left; "
  # The user stays on purge (debian/postrm says why); cleanup() removes it.
  getent passwd "$PKG" >/dev/null || why+="postrm removed the user (README.Debian says it stays); "
  echo -n "$why"
}

report tools "$(check_tools)"
[ "$FAILED" = 0 ] || finish
prepare_machine >"$WORK/machine.why"
report machine "$(cat "$WORK/machine.why")"
[ "$FAILED" = 0 ] || finish
report version-agrees "$(check_version_agrees)"
build_package >"$WORK/build.why"
report "build ($(cat "$WORK/build.seconds" 2>/dev/null || echo '?') s)" "$(cat "$WORK/build.why")"
[ -f "$DEB" ] || finish
report lintian "$(check_lintian)"
grep -E '^[EWIPX]:' "$WORK/lintian.out" | sed 's/^/# lintian: /'
install_package >"$WORK/install.why"
report install "$(cat "$WORK/install.why")"
[ "$INSTALLED" = 1 ] || finish
report files "$(check_files)"
report units "$(check_units)"
report man-pages "$(check_man_pages)"
report user "$(check_user)"
report version "$(check_version)"
report print-config "$(check_print_config)"
report lint-txt "$(check_lint_txt)"
report daemon "$(run_daemon)"
run_service
purge_package >"$WORK/purge.why"
report purge "$(cat "$WORK/purge.why")"
finish
