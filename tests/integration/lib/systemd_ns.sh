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
#   tmpfs     over /run, /tmp, /var/tmp, /var/log and /var/lib/systemd: the
#             journal, runtime state and PrivateTmp= folders go with it.
#             Everything else (/etc, /usr, /var/lib/NAME, /var/spool) is the
#             host's, as a unit on a real machine sees it.
#   boot      only the target sd-test.target, which Wants= the units given:
#             nothing else the host has enabled is started.
#   files     DIR/sd-units/* (if any) become units in /run/systemd/system,
#             DIR/sd-files/* (if any) are copied to /run/sd-test: under the
#             tmpfs over /tmp the units could not see DIR.
#
# Usage: sd_boot NETNS DIR UNIT...; sd_ctl ARGS (systemctl), sd_journal ARGS
# (journalctl), sd_nsexec CMD... (in its PID, mount and network namespaces);
# sd_shutdown (systemctl exit, waits, removes the cgroup subtree). The
# caller's EXIT trap must call sd_shutdown.

SD_PID=""      # systemd's PID as this (the host's) PID namespace sees it
SD_LAUNCHER="" # the process that became unshare (its parent)
SD_CGROUP=""   # the cgroup2 folder the namespace's systemd lives under

sd_die() { echo "systemd_ns: error: $*" >&2; return 1; }

# The cgroup2 hierarchy's mount point here (pure or hybrid layout).
sd_cgroup2_root() {
  local dir
  for dir in /sys/fs/cgroup /sys/fs/cgroup/unified; do
    [ "$(stat -f -c %T "$dir" 2>/dev/null)" = cgroup2fs ] && { echo "$dir"; return 0; }
  done
  return 1
}

sd_nsexec() { nsenter -t "$SD_PID" -m -p -n "$@"; }
sd_ctl() { sd_nsexec systemctl "$@"; }
sd_journal() { sd_nsexec journalctl --no-pager "$@"; }

# sd_boot NETNS DIR UNIT...: boots and waits (20 s at most) until systemd
# says the system is running or degraded; its console log is DIR/systemd.log.
sd_boot() {
  local ns=$1 dir=$2 root state; shift 2
  root=$(sd_cgroup2_root) || { sd_die "no cgroup2 hierarchy under /sys/fs/cgroup"; return 1; }
  SD_CGROUP="$root$(sed -n 's/^0:://p' /proc/self/cgroup)/mtasts-sd-$$"
  SD_CGROUP=${SD_CGROUP//\/\//\/}
  mkdir "$SD_CGROUP" || { sd_die "cannot make $SD_CGROUP"; return 1; }
  cat >"$dir/sd-inner.sh" <<'EOF'
set -eu
dir=$1 units=$2
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system /run/lock /run/sd-test
# Before /tmp is covered: DIR may be under it.
if [ -d "$dir/sd-units" ]; then cp -a "$dir/sd-units/." /run/systemd/system/; fi
if [ -d "$dir/sd-files" ]; then cp -a "$dir/sd-files/." /run/sd-test/; fi
for d in /tmp /var/tmp /var/log /var/lib/systemd; do mount -t tmpfs -o mode=0755 tmpfs "$d"; done
chmod 1777 /tmp /var/tmp
printf '[Unit]\nDescription=units under test\nWants=%s\nAfter=%s\n' "$units" "$units" \
  >/run/systemd/system/sd-test.target
hostname sd-test
export container=mtasts-test
exec /lib/systemd/systemd --system --unit=sd-test.target --log-target=console --log-color=no
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
    case $state in running | degraded) return 0 ;; esac
    sleep 0.1
  done
  sd_die "systemd is '$state' after 20 s: $(tail -n 3 "$dir/systemd.log")"
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
}
