# shellcheck shell=bash
# A real Sendmail for the mail test bed (lib/mailbed.sh), run from Debian 12's
# packages without installing them (they conflict with Postfix):
# `apt-get download` + `dpkg -x` into a cache tree reused across runs.
#
#   $SM_CACHE/tree     the unpacked packages (sendmail-bin, sendmail-base,
#                      sendmail-cf, m4, libwrap0, liblockfile1); the sendmail
#                      binary has its setgid bit removed so that the loader
#                      honours LD_LIBRARY_PATH (libwrap0 lives in the tree)
#   $MB_DIR/sendmail/NAME/   one instance: NAME.mc, NAME.cf, queue, pid,
#                      traffic log (-X), syslog.log (SM_SYSLOG=1); it listens
#                      on 127.0.0.1:PORT inside the bed's namespace and by
#                      default only queues (queueonly), so nothing is delivered
#
# Settings read by sm_instance / sm_start (set them before the call):
#   SM_CONTRIB_MC     .mc lines included in every instance (the milter's
#                     contrib file); empty: no milter
#   SM_DELIVERY_MODE  confDELIVERY_MODE (default queueonly; background
#                     delivers to the bed's MX peers)
#   SM_MC_EXTRA       a file of further .mc lines (FEATURE(`sts'), TLS
#                     client settings ...), placed before the MAILER lines
#   SM_SYSLOG=1       sm_start captures the instance's syslog(3) lines in
#                     $MB_DIR/sendmail/NAME/syslog.log: Sendmail logs nothing
#                     else (stat=, STARTTLS=client, ruleset=...), and this
#                     machine has no /dev/log. See sm_start.
#
# Sendmail looks up its own host name at start and sleeps 60 s when no
# dotted form is found, so the namespace gets a private /etc/hosts
# (/etc/netns/NS/hosts, removed with the rest of /etc/netns/NS by
# mailbed_down) naming this machine mta.sender.test.
#
# Usage (after mailbed_up): sm_fetch; sm_instance NAME PORT [SMART_HOST]
# (writes and compiles NAME.mc); sm_start NAME; sm_stop NAME. sendmail_down
# (stops every instance) must run before mailbed_down: the test's EXIT trap
# calls both.

SM_CACHE=${SM_CACHE:-/var/cache/mtasts-test/sendmail}
SM_PACKAGES=(sendmail-bin sendmail-base sendmail-cf m4 libwrap0 liblockfile1)
SM_TREE=""
SM_BIN_REL=usr/libexec/sendmail/sendmail
SM_HOSTNAME=mta.sender.test
SM_DELIVERY_MODE=${SM_DELIVERY_MODE:-queueonly}
SM_MC_EXTRA=${SM_MC_EXTRA:-}
SM_SYSLOG=${SM_SYSLOG:-0}
declare -A SM_PID=()
declare -A SM_SYSLOG_PID=()

sm_log() { echo "sendmail: $*" >&2; }
sm_die() { echo "sendmail: error: $*" >&2; return 1; }

# Runs a program of the tree with the tree's libraries.
sm_env() { env LD_LIBRARY_PATH="$SM_TREE/usr/lib/x86_64-linux-gnu:$SM_TREE/lib/x86_64-linux-gnu" "$@"; }

# sm_tree_ok TREE: the unpacked tree is complete and its sendmail links.
sm_tree_ok() {
  local tree=$1 bin="$1/$SM_BIN_REL"
  [ -x "$bin" ] && ! [ -g "$bin" ] && [ -x "$tree/usr/bin/m4" ] &&
    [ -f "$tree/usr/share/sendmail/cf/m4/cf.m4" ] || return 1
  ! SM_TREE=$tree sm_env ldd "$bin" 2>&1 | grep -q 'not found'
}

# sm_download DIR: the packages' .deb files into DIR. apt-get download needs
# the package lists: when it fails, they are refreshed once (apt-get update).
sm_download() {
  local dir=$1
  # apt drops to the _apt user for downloads; let it write DIR.
  chown _apt "$dir" 2>/dev/null
  (cd "$dir" && apt-get download -qq "${SM_PACKAGES[@]}") >"$dir/apt.log" 2>&1 && return 0
  sm_log "apt-get download failed; running apt-get update"
  if ! { apt-get update -qq && (cd "$dir" && apt-get download -qq "${SM_PACKAGES[@]}"); } >>"$dir/apt.log" 2>&1; then
    sm_die "apt-get download ${SM_PACKAGES[*]}: $(tail -n 3 "$dir/apt.log" | tr '\n' ' ')"; return 1
  fi
}

# Makes $SM_CACHE/tree (downloading and unpacking when missing or broken)
# and sets SM_TREE. Concurrent runs each unpack privately, then rename.
sm_fetch() {
  local tree="$SM_CACHE/tree" work deb
  if sm_tree_ok "$tree"; then SM_TREE=$tree; return 0; fi
  if ! { mkdir -p "$SM_CACHE" && work=$(mktemp -d "$SM_CACHE/fetch.XXXXXX"); }; then
    sm_die "cache $SM_CACHE"; return 1
  fi
  sm_log "downloading ${SM_PACKAGES[*]} into $SM_CACHE"
  if ! sm_download "$work"; then rm -rf "$work"; return 1; fi
  mkdir "$work/tree"
  for deb in "$work"/*.deb; do
    dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$work/tree/.packages"
    if ! dpkg -x "$deb" "$work/tree"; then sm_die "dpkg -x $deb"; rm -rf "$work"; return 1; fi
  done
  chmod g-s "$work/tree/$SM_BIN_REL"
  if ! sm_tree_ok "$work/tree"; then
    sm_die "unpacked tree incomplete or sendmail does not link: $(SM_TREE=$work/tree sm_env ldd \
      "$work/tree/$SM_BIN_REL" 2>&1 | grep 'not found' | tr '\n' ' ')"
    rm -rf "$work"; return 1
  fi
  rm -rf "$tree.old"
  [ -e "$tree" ] && mv -T "$tree" "$tree.old"
  mv -T "$work/tree" "$tree" 2>/dev/null || sm_tree_ok "$tree" ||
    { sm_die "could not move the tree into $tree"; rm -rf "$work"; return 1; }
  rm -rf "$work" "$tree.old"
  SM_TREE=$tree
}

# The namespace's /etc/hosts: this machine's name has a dotted form.
sm_hosts() {
  printf '127.0.0.1\t%s %s localhost\n' "$SM_HOSTNAME" "$(hostname)" >"/etc/netns/$TB_NS/hosts"
}

# sm_mc DIR PORT [SMART_HOST]: the .mc of one instance on stdout. Listen=128:
# the default backlog of 10 drops the SYNs of 20 parallel clients (a second
# each to retry).
sm_mc() {
  local dir=$1 port=$2 smart=${3:-}
  cat <<EOF
divert(-1)dnl
Test instance written by tests/integration/lib/sendmail.sh.
divert(0)dnl
VERSIONID(\`mta-sts-milter test bed')dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`$SM_HOSTNAME')dnl
define(\`confDELIVERY_MODE', \`$SM_DELIVERY_MODE')dnl
define(\`QUEUE_DIR', \`$dir/queue')dnl
define(\`confPID_FILE', \`$dir/sendmail.pid')dnl
define(\`STATUS_FILE', \`$dir/statistics')dnl
define(\`ALIAS_FILE', \`$dir/aliases')dnl
define(\`HELP_FILE', \`$dir/helpfile')dnl
define(\`confHOST_STATUS_DIRECTORY', \`')dnl
define(\`confTO_IDENT', \`0s')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`confCHECK_ALIASES', \`False')dnl
define(\`confLOG_LEVEL', \`14')dnl
define(\`confMILTER_LOG_LEVEL', \`14')dnl
FEATURE(\`no_default_msa')dnl
FEATURE(\`promiscuous_relay')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`accept_unqualified_senders')dnl
DAEMON_OPTIONS(\`Port=$port, Addr=127.0.0.1, Name=MTA, Listen=128')dnl
EOF
  [ -z "$smart" ] || echo "define(\`SMART_HOST', \`$smart')dnl"
  if [ -n "${SM_CONTRIB_MC:-}" ]; then
    echo "dnl contrib/sendmail/mta-sts-milter.mc, unchanged:"
    cat "$SM_CONTRIB_MC"
  fi
  if [ -n "$SM_MC_EXTRA" ]; then
    echo "dnl $SM_MC_EXTRA:"
    cat "$SM_MC_EXTRA"
  fi
  cat <<'EOF'
MAILER(`local')dnl
MAILER(`smtp')dnl
EOF
}

# sm_instance NAME PORT [SMART_HOST]: writes NAME.mc and compiles NAME.cf
# with the tree's m4 and cf files (SM_CONTRIB_MC, SM_MC_EXTRA: see the top).
sm_instance() {
  local name=$1 port=$2 smart=${3:-} dir="$MB_DIR/sendmail/$1"
  [ -n "$SM_TREE" ] || { sm_die "sm_fetch first"; return 1; }
  [ -z "${SM_CONTRIB_MC:-}" ] || [ -f "$SM_CONTRIB_MC" ] ||
    { sm_die "SM_CONTRIB_MC '$SM_CONTRIB_MC' is not a file"; return 1; }
  [ -z "$SM_MC_EXTRA" ] || [ -f "$SM_MC_EXTRA" ] ||
    { sm_die "SM_MC_EXTRA '$SM_MC_EXTRA' is not a file"; return 1; }
  if ! { mkdir -p "$dir/queue" && chmod 700 "$dir/queue" && : >"$dir/aliases" && : >"$dir/statistics"; }; then
    sm_die "instance directory $dir"; return 1
  fi
  sm_mc "$dir" "$port" "$smart" >"$dir/$name.mc" || return 1
  sm_env "$SM_TREE/usr/bin/m4" -D_CF_DIR_="$SM_TREE/usr/share/sendmail/cf/" \
    "$SM_TREE/usr/share/sendmail/cf/m4/cf.m4" "$dir/$name.mc" >"$dir/$name.cf" 2>"$dir/m4.log" ||
    { sm_die "m4 $name.mc: $(tail -n 3 "$dir/m4.log" | tr '\n' ' ')"; return 1; }
  # The one expected warning: promiscuous_relay makes an open relay (on 127.0.0.1 here).
  ! grep -v -e 'promiscuous_relay' -e 'relay.  Do NOT use it' "$dir/m4.log" | grep -qi -e error -e warning ||
    { sm_die "m4 $name.mc: $(tail -n 3 "$dir/m4.log" | tr '\n' ' ')"; return 1; }
}

# sm_cf_option NAME OPTION: the value of "O OPTION=" in NAME.cf.
sm_cf_option() {
  sed -n "s/^O $2=//p" "$MB_DIR/sendmail/$1/$1.cf"
}

# sm_route NAME ADDRESS: "MAILER HOST" for ADDRESS as NAME.cf routes it
# (sendmail -bt, /parse): the {rcpt_mailer} and {rcpt_host} a milter gets.
sm_route() {
  local dir="$MB_DIR/sendmail/$1"
  [ -f "/etc/netns/$TB_NS/hosts" ] || sm_hosts || return 1
  printf '/parse %s\n' "$2" |
    tb_exec env LD_LIBRARY_PATH="$SM_TREE/usr/lib/x86_64-linux-gnu:$SM_TREE/lib/x86_64-linux-gnu" \
      "$SM_TREE/$SM_BIN_REL" -C "$dir/$1.cf" -bt 2>&1 |
    sed -n 's/^mailer \([^,]*\), host \([^,]*\),.*/\1 \2/p'
}

# sm_syslog_listen DIR: a listener on the unix datagram socket DIR/syslog.sock
# (a pathname socket: reachable from any namespace that sees the file)
# appending each message as a line to DIR/syslog.log; its pid on stdout.
sm_syslog_listen() {
  local dir=$1 i
  rm -f "$dir/syslog.sock"; : >"$dir/syslog.log"
  /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
' "$dir/syslog.sock" "$dir/syslog.log" >/dev/null 2>"$dir/syslog.err" &
  echo $!
  for ((i = 0; i < 50; i++)); do [ -S "$dir/syslog.sock" ] && return 0; sleep 0.1; done
  return 1
}

# The command sm_start runs in the namespace when SM_SYSLOG=1: `ip netns
# exec` gives every command its own mount namespace (slave to the host's), so
# a tmpfs mounted over /dev there is the daemon's alone; it holds the device
# nodes Sendmail opens and /dev/log, a symbolic link to the listener's socket.
# Then it execs the daemon (argv after DIR): $! stays Sendmail's pid.
# shellcheck disable=SC2016  # expanded by the inner shell
SM_PRIVATE_DEV='dir=$1; shift
mkdir -p "$dir/dev" && mount -t tmpfs -o mode=755 sm-dev "$dir/dev" || exit 71
for n in null zero random urandom full tty; do
  [ -e "/dev/$n" ] || continue
  : >"$dir/dev/$n" && mount --bind "/dev/$n" "$dir/dev/$n" || exit 71
done
ln -s /proc/self/fd "$dir/dev/fd" && ln -s "$dir/syslog.sock" "$dir/dev/log" &&
  mount --bind "$dir/dev" /dev || exit 71
exec "$@"'

# sm_start NAME: runs NAME.cf's daemon (-bD, foreground) in the namespace,
# SMTP traffic logged to traffic.log (-X), its syslog lines to syslog.log
# when SM_SYSLOG=1, and waits for its port.
sm_start() {
  local name=$1 dir="$MB_DIR/sendmail/$1" port wrap=()
  port=$(sed -n 's/^O DaemonPortOptions=.*Port=\([0-9]*\).*/\1/p' "$dir/$name.cf")
  [ -n "$port" ] || { sm_die "no daemon port in $name.cf"; return 1; }
  [ -f "/etc/netns/$TB_NS/hosts" ] || sm_hosts || { sm_die "/etc/netns/$TB_NS/hosts"; return 1; }
  if [ "$SM_SYSLOG" = 1 ]; then
    SM_SYSLOG_PID[$name]=$(sm_syslog_listen "$dir") ||
      { sm_die "syslog listener for $name: $(tail -n 2 "$dir/syslog.err")"; return 1; }
    wrap=(bash -c "$SM_PRIVATE_DEV" sm-dev "$dir")
  fi
  # Not through tb_exec: $! must be sendmail itself (ip, bash and env exec it).
  ip netns exec "$TB_NS" "${wrap[@]}" env LD_LIBRARY_PATH="$SM_TREE/usr/lib/x86_64-linux-gnu:$SM_TREE/lib/x86_64-linux-gnu" \
    "$SM_TREE/$SM_BIN_REL" -C "$dir/$name.cf" -bD -X "$dir/traffic.log" >"$dir/stderr.log" 2>&1 &
  SM_PID[$name]=$!
  local i
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "${SM_PID[$name]}" 2>/dev/null; then
      wait "${SM_PID[$name]}"
      sm_die "sendmail $name exited with status $? at start: $(tail -n 3 "$dir/stderr.log" | tr '\n' ' ')"
      unset "SM_PID[$name]"
      return 1
    fi
    mb_wait_port 127.0.0.1 "$port" 1 && return 0
    sleep 0.1
  done
  sm_die "sendmail $name does not listen on 127.0.0.1:$port within 10 s: $(tail -n 3 "$dir/stderr.log" | tr '\n' ' ')"
}

# sm_stop NAME: SIGTERM to the daemon (its connection children end with it),
# then the end of its syslog listener.
sm_stop() {
  local pid=${SM_PID[$1]:-}
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "SM_PID[$1]"
  fi
  pid=${SM_SYSLOG_PID[$1]:-}
  if [ -n "$pid" ]; then
    sleep 0.2  # the daemon's last lines
    kill "$pid" 2>/dev/null
    unset "SM_SYSLOG_PID[$1]"
  fi
}

sendmail_down() {
  local name
  for name in "${!SM_PID[@]}" "${!SM_SYSLOG_PID[@]}"; do sm_stop "$name"; done
}
