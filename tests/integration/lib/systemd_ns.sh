# shellcheck shell=bash
# A real systemd as PID 1 of namespaces of its own, to run the packaged units
# under a service manager on a machine whose PID 1 is not systemd (CI, this
# test bed). Sourced by integration tests; runs as root.
#
#   network   an existing namespace (the test bed's), given by name
#   PID, mount, UTS, IPC, cgroup   new: systemd is PID 1 and exits alone
#   cgroups   a child of this process's cgroup2 group (on a hybrid host the
#             cgroup2 hierarchy at /sys/fs/cgroup/unified), mounted as the
#             namespace's /sys/fs/cgroup: systemd runs in unified mode in its
#             own subtree and never touches the host's hierarchies. That
#             group has no controllers, so TasksMax= and the like are not
#             enforced here.
#   /dev      its own tmpfs: the plain device nodes bound in, its own devpts
#             and /dev/shm (journald's /dev/log symlink and systemd's
#             console and kernel-log writes stay out of the host's);
#             /proc/sys read-only (systemd as PID 1 would raise the host's
#             fs.file-max and fs.nr_open). systemd logs to its journal.
#   tmpfs     over /run, /var/log and /var/lib/systemd: the journal and
#             runtime state go with it. Everything else (/etc, /usr, /tmp,
#             /var/lib/NAME, /var/spool) is the host's, as a unit on a real
#             machine sees it: a binary under test in a clone below /tmp
#             stays visible. PrivateTmp= folders systemd made in /tmp and
#             left behind are removed by sd_shutdown.
#   boot      only the target sd-test.target, which Wants= journald and the
#             units given; nothing else the host has enabled is started.
#             Every service, socket and timer gets DefaultDependencies=no (a
#             drop-in in the namespace's /run) and network-online.target is
#             masked: nothing pulls in sysinit.target or the network set-up,
#             whose units act on what the host shares with the namespace
#             (systemd-tmpfiles-setup empties /tmp, systemd-sysctl sets the
#             kernel's sysctls, ...). sd_boot fails if a service other than
#             journald and those given is loaded in a running or failed state.
#   files     DIR/sd-units/* (if any) become units in /run/systemd/system,
#             DIR/sd-files/* (if any) are copied to /run/sd-test.
#
# Usage: sd_boot NETNS DIR UNIT...; sd_ctl ARGS (systemctl), sd_journal ARGS
# (journalctl), sd_nsexec CMD... (in its PID, mount and network namespaces);
# sd_shutdown (systemctl exit, waits, removes the cgroup subtree). The
# caller's EXIT trap must call sd_shutdown.

SD_PID=""      # systemd's PID as this (the host's) PID namespace sees it
SD_LAUNCHER="" # the process that became unshare (its parent)
SD_CGROUP=""   # the cgroup2 folder the namespace's systemd lives under
SD_TMP_BEFORE="" # the PrivateTmp= folders in /tmp before the boot
SD_BOOTED=""   # 1 once sd_boot began: sd_shutdown has something to undo

sd_die() { echo "systemd_ns: error: $*" >&2; return 1; }

# The cgroup2 hierarchy's mount point here (pure or hybrid layout).
sd_cgroup2_root() {
  local dir
  for dir in /sys/fs/cgroup /sys/fs/cgroup/unified; do
    [ "$(stat -f -c %T "$dir" 2>/dev/null)" = cgroup2fs ] && { echo "$dir"; return 0; }
  done
  return 1
}

sd_private_tmp() { find /tmp /var/tmp -maxdepth 1 -name 'systemd-private-*' 2>/dev/null | sort; }

sd_nsexec() { nsenter -t "$SD_PID" -m -p -n "$@"; }
sd_ctl() { sd_nsexec systemctl "$@"; }
sd_journal() { sd_nsexec journalctl --no-pager "$@"; }

# sd_boot NETNS DIR UNIT...: boots and waits (20 s at most) until systemd
# says the system is running or degraded. systemd's own messages go to its
# journal (sd_journal; SD_LOG_LEVEL=debug for more); DIR/systemd.log holds
# what the set-up before it printed.
sd_boot() {
  local ns=$1 dir=$2 root state; shift 2
  # On a host whose PID 1 is systemd, its services share /tmp's
  # systemd-private-* folders and more with the namespace: test there with
  # the host's own systemd instead.
  [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] ||
    { sd_die "PID 1 is systemd here; this harness is for machines without it"; return 1; }
  root=$(sd_cgroup2_root) || { sd_die "no cgroup2 hierarchy under /sys/fs/cgroup"; return 1; }
  SD_CGROUP="$root$(sed -n 's/^0:://p' /proc/self/cgroup)/mtasts-sd-$$"
  SD_CGROUP=${SD_CGROUP//\/\//\/}
  SD_TMP_BEFORE=$(sd_private_tmp)
  SD_BOOTED=1
  mkdir "$SD_CGROUP" || { sd_die "cannot make $SD_CGROUP"; return 1; }
  cat >"$dir/sd-inner.sh" <<'EOF'
set -eu
dir=$1 units=$2
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system /run/lock /run/sd-test
# A /dev of its own (journald's socket would leave /dev/log on the host's,
# and its messages in the host's kernel log): the plain device nodes bound
# in, nothing else.
mkdir -p /run/sd-dev-nodes
for n in null zero full random urandom tty; do
  [ -e "/dev/$n" ] || continue
  : >"/run/sd-dev-nodes/$n" && mount --bind "/dev/$n" "/run/sd-dev-nodes/$n"
done
mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
for n in /run/sd-dev-nodes/*; do
  : >"/dev/${n##*/}" && mount --move "$n" "/dev/${n##*/}"
done
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd
# The kernel's settings are the host's (systemd as PID 1 raises fs.file-max
# and fs.nr_open): read-only here, systemd goes on without.
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
if [ -d "$dir/sd-units" ]; then cp -a "$dir/sd-units/." /run/systemd/system/; fi
if [ -d "$dir/sd-files" ]; then cp -a "$dir/sd-files/." /run/sd-test/; fi
for d in /var/log /var/lib/systemd; do mount -t tmpfs -o mode=0755 tmpfs "$d"; done
for type in service socket timer; do
  mkdir -p "/run/systemd/system/$type.d"
  printf '[Unit]\nDefaultDependencies=no\n' >"/run/systemd/system/$type.d/sd-test.conf"
done
ln -s /dev/null /run/systemd/system/network-online.target
printf '[Unit]\nDescription=units under test\nWants=systemd-journald.service %s\nAfter=systemd-journald.service %s\n' \
  "$units" "$units" >/run/systemd/system/sd-test.target
hostname sd-test
export container=mtasts-test
exec /lib/systemd/systemd --system --unit=sd-test.target --log-target=journal --log-color=no ${SD_LOG_LEVEL:+--log-level=$SD_LOG_LEVEL}
EOF
  # The launcher joins the new group first: unshare --cgroup then roots the
  # namespace there, and everything below it stays in that subtree.
  # shellcheck disable=SC2016  # expanded by the launcher
  bash -c 'echo $$ >"$1/cgroup.procs" && exec ip netns exec "$2" unshare --cgroup --pid --fork \
    --mount --uts --ipc --mount-proc bash "$3/sd-inner.sh" "$3" "$4"' \
    sd-launcher "$SD_CGROUP" "$ns" "$dir" "$*" >"$dir/systemd.log" 2>&1 </dev/null &
  SD_LAUNCHER=$!
  for _ in $(seq 50); do
    SD_PID=$(pgrep -P "$SD_LAUNCHER" | head -n 1)
    [ -n "$SD_PID" ] && [ "$(cat "/proc/$SD_PID/comm" 2>/dev/null)" = systemd ] && break
    SD_PID=""
    sleep 0.1
  done
  [ -n "$SD_PID" ] || { sd_die "systemd did not start: $(tail -n 3 "$dir/systemd.log")"; return 1; }
  for _ in $(seq 200); do
    state=$(sd_ctl is-system-running 2>/dev/null)
    case $state in running | degraded) sd_only_these_ran "$@"; return ;; esac
    sleep 0.1
  done
  sd_die "systemd is '$state' after 20 s: $(tail -n 3 "$dir/systemd.log") $(sd_journal -o cat 2>&1 | tail -n 3)"
}

# sd_only_these_ran UNIT...: no service but journald and those given has run.
sd_only_these_ran() {
  local unit others=""
  for unit in $(sd_ctl list-units --type=service --all --no-legend --plain \
      --state=active,activating,deactivating,failed 2>/dev/null | awk '{ print $1 }'); do
    case " systemd-journald.service $* " in *" $unit "*) ;; *) others+="$unit " ;; esac
  done
  [ -z "$others" ] || { sd_die "services of the host's boot ran in the namespace: $others"; return 1; }
}

# Asks systemd to stop every unit and exit (a container's manager exits on
# `systemctl exit`), kills what is left after 20 s, then removes the cgroup
# subtree (empty groups are removed with rmdir, deepest first).
sd_shutdown() {
  if [ -n "$SD_PID" ]; then
    sd_ctl exit >/dev/null 2>&1
    for _ in $(seq 200); do kill -0 "$SD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SD_PID" 2>/dev/null
    wait "$SD_LAUNCHER" 2>/dev/null
    SD_PID=""
  fi
  if [ -n "$SD_CGROUP" ] && [ -d "$SD_CGROUP" ]; then
    for _ in $(seq 50); do
      find "$SD_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null
      [ -d "$SD_CGROUP" ] || break
      sleep 0.1
    done
  fi
  SD_CGROUP=""
  # Normally removed by systemd as each unit stops; left when it was killed.
  [ -z "$SD_BOOTED" ] || comm -13 <(echo "$SD_TMP_BEFORE") <(sd_private_tmp) | xargs -r rm -rf
  SD_BOOTED=""
}
