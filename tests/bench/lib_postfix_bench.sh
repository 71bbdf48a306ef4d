# shellcheck shell=bash
# Helpers of run_postfix_bench.sh on top of the mail bed
# (tests/integration/lib/mailbed.sh, sourced first): load through the private
# Postfix with smtp-source, switching smtpd_milters between runs, and the
# do-nothing baseline milter (null_milter). Prefix pfb_.

PFB_NULL_PIDS=()      # every null_milter started (pfb_null_stop ends them)
PFB_NULL_PIDS_LAST="" # the one pfb_null_start started last

pfb_die() { echo "postfix bench: error: $*" >&2; return 1; }

# pfb_null_start BIN SOCKET LOG: the do-nothing milter on SOCKET
# (inet:PORT@127.0.0.1 or unix:/path) in the namespace; waits for its socket.
# A unix socket is made with umask 0, so that smtpd (user postfix) may connect.
pfb_null_start() {
  local bin=$1 socket=$2 log=$3 pid port
  # Not through tb_exec: $! must be the milter itself, so stop can wait for it.
  (umask 0 && exec ip netns exec "$TB_NS" "$bin" "$socket") >>"$log" 2>&1 &
  pid=$!
  PFB_NULL_PIDS+=("$pid")
  PFB_NULL_PIDS_LAST=$pid
  case $socket in
    unix:*)
      for _ in $(seq 50); do [ -S "${socket#unix:}" ] && return 0; sleep 0.1; done ;;
    inet:*)
      port=${socket#inet:}; port=${port%@*}
      mb_wait_port 127.0.0.1 "$port" 50 && return 0 ;;
  esac
  pfb_die "null milter did not open $socket: $(tail -n 2 "$log" | tr '\n' ' ')"
}

# pfb_stop_pids PID...: SIGTERM to each (children of this shell), SIGKILL
# after 5 s, and wait for it.
pfb_stop_pids() {
  local pid
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
}

pfb_null_stop() {
  pfb_stop_pids "${PFB_NULL_PIDS[@]}"
  PFB_NULL_PIDS=()
}

# Settings for load: no in_flow_delay (accepting must not be paced by the
# delivery side, which the three cases share), no reverse lookup of the client.
pfb_postfix_tune() {
  tb_exec postconf -c "$MB_PF" -e in_flow_delay=0s smtpd_peername_lookup=no &&
    tb_exec postfix -c "$MB_PF" reload >/dev/null 2>&1
}

# Pids of the smtpd processes of the private instance (children of its master).
pfb_smtpd_pids() {
  local master
  master=$(head -n 1 "$MB_DIR/spool/pid/master.pid" 2>/dev/null | tr -d ' ')
  [ -n "$master" ] || { pfb_die "no Postfix master pid in $MB_DIR/spool/pid/master.pid"; return 1; }
  pgrep -P "$master" -x smtpd || true  # none running is fine
}

# pfb_set_milters VALUE: smtpd_milters = VALUE, then `postfix reload`; effective
# once no smtpd started under the old configuration is left (idle ones exit
# on reload; this runs between loads, when all are idle) and port 25 answers.
pfb_set_milters() {
  local old pid left
  tb_exec postconf -c "$MB_PF" -e "smtpd_milters=$1" || { pfb_die "postconf smtpd_milters"; return 1; }
  [ "$(mb_postconf smtpd_milters)" = "$1" ] || { pfb_die "smtpd_milters not set to '$1'"; return 1; }
  old=$(pfb_smtpd_pids) || return 1
  tb_exec postfix -c "$MB_PF" reload >/dev/null 2>&1 || { pfb_die "postfix reload"; return 1; }
  for _ in $(seq 100); do
    left=""
    for pid in $old; do kill -0 "$pid" 2>/dev/null && left+=" $pid"; done
    [ -z "$left" ] && break
    sleep 0.1
  done
  [ -z "$left" ] || { pfb_die "smtpd processes$left survived the reload"; return 1; }
  mb_wait_port 127.0.0.1 25 50 || pfb_die "Postfix does not answer after reload"
}

# Messages still in the queue (any queue directory).
pfb_queued() {
  find "$MB_DIR/spool"/{maildrop,incoming,active,deferred,hold} -type f 2>/dev/null | wc -l
}

# pfb_drain [TENTHS]: waits until the queue is empty (default 60 s).
pfb_drain() {
  local i
  for ((i = 0; i < ${1:-600}; i++)); do
    [ "$(pfb_queued)" = 0 ] && return 0
    sleep 0.1
  done
  pfb_die "queue not empty after $(( ${1:-600} / 10 )) s: $(pfb_queued) messages"
}

# pfb_send MESSAGES SESSIONS RCPT ERRFILE [-d]: mb_smtp_source to Postfix
# on port 25; prints the wall time in seconds.
pfb_send() { mb_smtp_source 25 "$3" "$1" "$2" "$4" ${5:+"$5"}; }

# TCP connections accepted inside the namespace so far (PassiveOpens of the
# namespace's /proc/net/snmp): one per SMTP session, plus one per milter
# connection Postfix opens for it.
pfb_passive_opens() {
  tb_exec awk '$1 == "Tcp:" { if (!col) { for (i = 2; i <= NF; i++) if ($i == "PassiveOpens") col = i }
                              else print $col }' /proc/net/snmp
}

# pfb_passive_opens once it has stayed the same for 0.3 s: a session that
# just ended (mb_wait_port's probe of port 25) may still make smtpd open its
# milter connection.
pfb_settled_opens() {
  local before now
  now=$(pfb_passive_opens)
  for _ in $(seq 30); do
    before=$now
    sleep 0.3
    now=$(pfb_passive_opens)
    [ "$now" != "$before" ] || break
  done
  echo "$now"
}

# pfb_cpu_ms PID: user + system CPU time of PID (all its threads) in ms.
pfb_cpu_ms() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { pfb_die "no process $1"; return 1; }
  read -r -a fields <<<"${stat##*) }"  # fields from 3 (state) on; comm may hold spaces
  echo $(( (fields[11] + fields[12]) * 1000 / $(getconf CLK_TCK) ))
}

# pfb_count FILE FROM REGEX: lines of FILE after byte FROM matching REGEX.
pfb_count() {
  tail -c +"$(($2 + 1))" "$1" | grep -c -E -e "$3"
}
