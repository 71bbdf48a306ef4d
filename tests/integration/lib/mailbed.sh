# shellcheck shell=bash
# Mail side of the real-server test bed (lib/testbed.sh): SMTP peers playing
# MX hosts, MTA-STS policy domains pointing at them, a private Postfix and the
# milter under test, all inside the bed's network namespace.
#
#   127.25.0.N:25   MX host mx.LABEL.ZONE.test (python3 lib/smtp_peer.py, one
#                   process for all), behaviour per host: see mb_domain_add
#   127.0.0.1:25    private Postfix smtpd (587: submission from the contrib
#   127.0.0.1:587   master.cf snippet); config dir, queue and log in
#                   $TB_DIR/mail; its `smtp` and `relay` transports run the
#                   discard daemon, so nothing is delivered while the milter
#                   still sees {rcpt_mailer}=smtp
#   127.0.0.1:8891  the milter (contrib main.cf snippet: smtpd_milters)
#
# The namespace's /etc/resolv.conf (/etc/netns/NS/resolv.conf) points at the
# bed's validating Unbound (127.0.1.2), which Postfix's resolver uses.
# Nothing in /etc/postfix is changed: `postfix -c DIR` as root needs no
# alternate_config_directories entry.
#
# Usage: source this file, mailbed_up, mb_domain_add (mb_relay_add) ..., mb_commit,
# mb_postfix_start SNIPPET_DIR, mb_milter_config CONF, mb_milter_start CONF LOG
# (mb_milter_stop: SIGTERM, status in MB_MILTER_RC); mailbed_down runs from
# the EXIT trap. Postfix's log: $MB_DIR/maillog; the peers': $MB_DIR/peers/peers.log.
# Delivery tests (see "delivery" below): mb_mx_backup_add, mb_postfix_deliver_start,
# a socketmap server (mb_sts_resolver_start, or mb_socketmap_config and
# mb_socketmap_start), mb_socketmap_stop.

MB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=testbed.sh
source "$MB_LIB_DIR/testbed.sh"

MB_DIR=""
MB_PF=""              # Postfix config directory
MB_NEXT_MX=1
MB_PEERS=()           # JSON objects, one per listening peer
MB_MILTER_PID=""
MB_MILTER_RC=""
MB_MILTER_PORT=8891

mb_log() { echo "mailbed: $*" >&2; }
mb_die() { echo "mailbed: error: $*" >&2; return 1; }

mailbed_up() {
  testbed_up || return 1
  trap mailbed_down EXIT
  MB_DIR="$TB_DIR/mail"
  MB_PF="$MB_DIR/postfix"
  mkdir -p "$MB_DIR"/{certs,policies,peers,postfix,spool,data} || return 1
  if ! { mkdir -p "/etc/netns/$TB_NS" &&
          echo "nameserver $TB_RESOLVER_ADDR" >"/etc/netns/$TB_NS/resolv.conf"; }; then
    mb_die "/etc/netns/$TB_NS/resolv.conf"; return 1
  fi
  tb_exec dig +short +time=2 +tries=1 SOA plain.test | grep -q . ||
    { mb_die "namespace resolver does not answer for plain.test"; return 1; }
}

# Stops the milter, Postfix and the peers, removes /etc/netns/NS, then the
# rest of the bed. Safe to call twice.
mailbed_down() {
  [ -n "$TB_NS" ] || return 0
  mb_milter_stop
  [ -f "$MB_PF/main.cf" ] && tb_exec postfix -c "$MB_PF" stop >/dev/null 2>&1
  [ -s "$MB_DIR/peers/peers.pid" ] && kill "$(cat "$MB_DIR/peers/peers.pid")" 2>/dev/null
  rm -rf "/etc/netns/$TB_NS"
  testbed_down
}

# ---------------------------------------------------------------- MX hosts
# mb_cert_selfsigned HOST -> path of a self-signed certificate naming HOST.
mb_cert_selfsigned() {
  local out="$MB_DIR/certs/$1.self.crt"
  openssl req -x509 -new -key "$TB_DIR/ca/leaf.key" -subj "/CN=$1" -days 30 \
    -addext "subjectAltName=DNS:$1" -out "$out" 2>/dev/null || { mb_die "self-signed $1"; return 1; }
  echo "$out"
}

# SHA-256 of the shared leaf key's SubjectPublicKeyInfo: TLSA 3 1 1 data.
mb_spki_sha256() {
  openssl pkey -in "$TB_DIR/ca/leaf.key" -pubout -outform DER 2>/dev/null |
    sha256sum | cut -d' ' -f1
}

# mb_mx_add ZONE LABEL KIND: MX host mx.LABEL.ZONE.test on 127.25.0.N, the MX
# record of LABEL.ZONE.test pointing at it, and its peer. KIND:
#   good | expired | wrongname | cnonly   STARTTLS with that test-CA certificate
#   selfsigned                           STARTTLS, self-signed certificate
#   nostarttls | starttls454             no STARTTLS in EHLO / STARTTLS -> 454
#   tls10                                STARTTLS, good certificate, TLS 1.0 only
#   dane | danebad                       self-signed / good certificate and a
#                                        TLSA 3 1 1 record that matches / does not
#   down                                 A record, nothing listening
mb_mx_add() {
  local zone=$1 label=$2 kind=$3
  local host="mx.$label.$zone.test" addr="127.25.0.$MB_NEXT_MX" cert="" behaviour=starttls
  local records=("$label IN MX 10 mx.$label" "mx.$label IN A $addr")
  MB_NEXT_MX=$((MB_NEXT_MX + 1))
  case $kind in
    good|expired|wrongname|cnonly) cert=$(tb_cert "$host" "$kind") || return 1 ;;
    selfsigned) cert=$(mb_cert_selfsigned "$host") || return 1 ;;
    nostarttls|starttls454) behaviour=$kind ;;
    tls10) behaviour=tls10; cert=$(tb_cert "$host" good) || return 1 ;;
    dane|danebad)
      [ "$zone" = secure ] || { mb_die "DANE host $host must be in secure.test"; return 1; }
      if [ "$kind" = dane ]; then
        cert=$(mb_cert_selfsigned "$host") || return 1
        records+=("_25._tcp.mx.$label IN TLSA 3 1 1 $(mb_spki_sha256)")
      else
        cert=$(tb_cert "$host" good) || return 1
        records+=("_25._tcp.mx.$label IN TLSA 3 1 1 $(printf '%064d' 0)")
      fi ;;
    down) behaviour="" ;;
    *) mb_die "unknown MX kind $kind"; return 1 ;;
  esac
  tb_dns_set "$zone" "mx.$label" "${records[@]}"
  [ -n "$behaviour" ] || return 0
  MB_PEERS+=("$(jq -n -c --arg a "$addr" --arg n "$host" --arg b "$behaviour" \
    --arg c "$cert" --arg k "$TB_DIR/ca/leaf.key" \
    '{addr: $a, port: 25, name: $n, behaviour: $b, cert: $c, key: $k}')")
}

# mb_domain_add ZONE LABEL POLICY MXKIND: policy domain LABEL.ZONE.test with
# its MX host (mb_mx_add). POLICY:
#   enforce | testing | none         that mode, mx: the domain's MX host
#   enforce:PATTERN[,PATTERN...]     enforce with these mx patterns instead
#   nopolicy                         no _mta-sts TXT record, no policy host
mb_domain_add() {
  local zone=$1 label=$2 policy=$3 kind=$4 mode patterns pattern file
  mb_mx_add "$zone" "$label" "$kind" || return 1
  [ "$policy" = nopolicy ] && return 0
  mode=${policy%%:*}
  patterns="mx.$label.$zone.test"
  [ "$policy" = "${policy#*:}" ] || patterns=${policy#*:}
  file="$MB_DIR/policies/$label.$zone.txt"
  {
    printf 'version: STSv1\nmode: %s\n' "$mode"
    for pattern in ${patterns//,/ }; do printf 'mx: %s\n' "$pattern"; done
    printf 'max_age: 86400\n'
  } >"$file"
  tb_host_add "$zone" "$label" good file "v=STSv1; id=1" &&
    tb_policy_set "mta-sts.$label.$zone.test" "$file"
}

# mb_relay_add ZONE LABEL POLICY KIND: smart host LABEL.ZONE.test, an A
# record (127.25.0.N, no MX) with its own peer, as an MTA's bracketed relay
# "[LABEL.ZONE.test]" reaches it; its policy domain is LABEL.ZONE.test itself
# (RFC 8461 §3.4, next_hop=relay). POLICY: enforce | testing | none (mx: the
# relay's own name) | nopolicy. KIND: good | expired | wrongname | cnonly |
# selfsigned | nostarttls | starttls454 (see mb_mx_add).
mb_relay_add() {
  local zone=$1 label=$2 policy=$3 kind=$4
  local host="$label.$zone.test" addr="127.25.0.$MB_NEXT_MX" cert="" behaviour=starttls file
  MB_NEXT_MX=$((MB_NEXT_MX + 1))
  case $kind in
    good|expired|wrongname|cnonly) cert=$(tb_cert "$host" "$kind") || return 1 ;;
    selfsigned) cert=$(mb_cert_selfsigned "$host") || return 1 ;;
    nostarttls|starttls454) behaviour=$kind ;;
    *) mb_die "unknown relay kind $kind"; return 1 ;;
  esac
  tb_dns_set "$zone" "relay-host.$label" "$label IN A $addr"
  MB_PEERS+=("$(jq -n -c --arg a "$addr" --arg n "$host" --arg b "$behaviour" \
    --arg c "$cert" --arg k "$TB_DIR/ca/leaf.key" \
    '{addr: $a, port: 25, name: $n, behaviour: $b, cert: $c, key: $k}')")
  [ "$policy" = nopolicy ] && return 0
  file="$MB_DIR/policies/$label.$zone.txt"
  printf 'version: STSv1\nmode: %s\nmx: %s\nmax_age: 86400\n' "$policy" "$host" >"$file"
  tb_host_add "$zone" "$label" good file "v=STSv1; id=1" &&
    tb_policy_set "mta-sts.$label.$zone.test" "$file"
}

# Starts the peers (one process), then reloads DNS and nginx (tb_commit).
mb_commit() {
  local spec="$MB_DIR/peers/spec.json" log="$MB_DIR/peers/peers.log"
  printf '%s\n' "${MB_PEERS[@]}" | jq -s . >"$spec" || return 1
  # Not through tb_exec: $! must be the process itself, not a subshell.
  ip netns exec "$TB_NS" /usr/bin/python3 "$MB_LIB_DIR/smtp_peer.py" "$spec" >"$log" 2>&1 &
  echo $! >"$MB_DIR/peers/peers.pid"
  for _ in $(seq 50); do
    grep -q '^ready ' "$log" && break
    sleep 0.1
  done
  grep -q "^ready ${#MB_PEERS[@]}\$" "$log" || { mb_die "SMTP peers: $(tail -3 "$log")"; return 1; }
  tb_commit
}

# ---------------------------------------------------------------- Postfix
mb_postfix_main_cf() {
  cat <<EOF
# Private test instance (lib/mailbed.sh); the contrib snippet follows.
compatibility_level = 3.6
queue_directory = $MB_DIR/spool
data_directory = $MB_DIR/data
maillog_file = $MB_DIR/maillog
maillog_file_prefixes = $MB_DIR
myhostname = mta.sender.test
mydomain = sender.test
myorigin = \$myhostname
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = dnssec
dnssec_probe = ns:secure.test
biff = no
EOF
}

# Minimal services, nothing chrooted; with MB_CHROOT=y the services that talk
# to milters (smtpd, also on the snippet's listeners, cleanup and pickup) run
# chrooted in the queue directory as in Debian's master.cf. The smtp and relay delivery
# transports keep their names (Postfix reports them as {rcpt_mailer}) but run
# the discard daemon: the test never delivers mail.
mb_postfix_master_cf() {
  local chroot=${MB_CHROOT:-n}
  echo "smtp       inet  n  -  $chroot  -  -  smtpd"
  echo "pickup     unix  n  -  $chroot  60 1  pickup"
  echo "cleanup    unix  n  -  $chroot  -  0  cleanup"
  cat <<'EOF'
qmgr       unix  n  -  n  300 1 qmgr
rewrite    unix  -  -  n  -  -  trivial-rewrite
bounce     unix  -  -  n  -  0  bounce
defer      unix  -  -  n  -  0  bounce
trace      unix  -  -  n  -  0  bounce
verify     unix  -  -  n  -  1  verify
flush      unix  n  -  n  1000? 0 flush
proxymap   unix  -  -  n  -  -  proxymap
showq      unix  n  -  n  -  -  showq
error      unix  -  -  n  -  -  error
retry      unix  -  -  n  -  -  error
discard    unix  -  -  n  -  -  discard
anvil      unix  -  -  n  -  1  anvil
scache     unix  -  -  n  -  1  scache
postlog    unix-dgram n - n - 1 postlogd
smtp       unix  -  -  n  -  -  discard
relay      unix  -  -  n  -  -  discard
EOF
}

# mb_postfix_start SNIPPET_DIR: writes the private config with
# SNIPPET_DIR/main.cf.snippet and master.cf.snippet appended, checks it and
# starts Postfix in the namespace; waits for 127.0.0.1:25.
mb_postfix_start() {
  local snippets=$1
  { mb_postfix_main_cf; cat "$snippets/main.cf.snippet"; } >"$MB_PF/main.cf" &&
    { mb_postfix_master_cf; cat "$snippets/master.cf.snippet"; } >"$MB_PF/master.cf" || return 1
  mb_postfix_check_start
}

# Checks the private config written in $MB_PF and starts Postfix in the
# namespace; waits for 127.0.0.1:25.
mb_postfix_check_start() {
  chown postfix: "$MB_DIR/data" || return 1
  # Postfix reports configuration errors in its log, not on stderr.
  if ! tb_exec postfix -c "$MB_PF" check >"$MB_DIR/postfix-check.log" 2>&1 ||
     grep -q -e 'warning:' -e 'fatal:' "$MB_DIR/maillog" 2>/dev/null; then
    mb_die "postfix check: $(tail -3 "$MB_DIR/maillog" 2>/dev/null)"; return 1
  fi
  tb_exec postfix -c "$MB_PF" start >>"$MB_DIR/postfix-check.log" 2>&1 ||
    { mb_die "postfix start: $(tail -3 "$MB_DIR/maillog" 2>/dev/null)"; return 1; }
  mb_wait_port 127.0.0.1 25 || { mb_die "Postfix does not listen on 127.0.0.1:25"; return 1; }
}

# mb_wait_port ADDR PORT [TENTHS]: waits until something accepts on ADDR:PORT.
mb_wait_port() {
  local i
  for ((i = 0; i < ${3:-50}; i++)); do
    tb_exec bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# mb_smtp_source PORT RCPT MESSAGES SESSIONS ERRFILE [-d]: smtp-source to the
# MTA on 127.0.0.1:PORT in the namespace, MESSAGES messages to RCPT over
# SESSIONS parallel sessions, one message each (with -d: every message of a
# session over the same connection); prints the wall time in seconds. Fails
# when smtp-source does (it aborts on any reply other than the expected
# positive one) or writes anything to ERRFILE.
mb_smtp_source() {
  local port=$1 rcpt=$2 messages=$3 sessions=$4 err=$5 start end
  start=$(date +%s.%N)
  if ! tb_exec smtp-source -4 ${6:+"$6"} -s "$sessions" -m "$messages" -M client.sender.test \
         -f bench@sender.test -t "$rcpt" "127.0.0.1:$port" >/dev/null 2>"$err" || [ -s "$err" ]; then
    mb_die "smtp-source: $(tail -n 2 "$err" | tr '\n' ' ')"; return 1
  fi
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}

# mb_postconf NAME: a parameter of the private instance, $names expanded.
mb_postconf() { tb_exec postconf -c "$MB_PF" -x -h "$1"; }

# ---------------------------------------------------------------- milter
# mb_milter_config FILE [SECTION.KEY=VALUE...]: the bed's CLI config
# (tb_config) plus the [milter], [decision] and [probe] sections; overrides
# of those three sections replace their defaults.
mb_milter_config() {
  local file=$1 kv section key; shift
  local base=()
  local -A v=(
    [milter.socket]="\"inet:$MB_MILTER_PORT@127.0.0.1\""
    [decision.rcpt_deadline_ms]=8000
    [decision.message_budget_ms]=20000
    [decision.enforce_action]='"tempfail"'
    [decision.testing_action]='"off"'
    [probe.enabled]=true
    [probe.ehlo_name]='"mta.sender.test"'
    [probe.ca_file]="\"$TB_CA_FILE\""
    [probe.step_timeout_ms]=3000
  )
  for kv in "$@"; do
    case ${kv%%.*} in
      milter|decision|probe) v[${kv%%=*}]=${kv#*=} ;;
      *) base+=("$kv") ;;
    esac
  done
  # tb_config's status is that of its last test, not of its writes.
  tb_config "$file" "${base[@]}"
  [ -s "$file" ] || { mb_die "config $file not written"; return 1; }
  for section in milter decision probe; do
    echo "[$section]"
    for key in "${!v[@]}"; do
      [ "${key%%.*}" != "$section" ] || echo "${key#*.} = ${v[$key]}"
    done
  done >>"$file"
}

# mb_milter_start CONF LOG [UNIX_SOCKET]: runs "$MTASTS_BIN" -c CONF in the
# namespace (stderr and stdout appended to LOG) and waits for its socket:
# 127.0.0.1:$MB_MILTER_PORT, or the unix socket file UNIX_SOCKET.
mb_milter_start() {
  local conf=$1 log=$2 unix_socket=${3:-}
  # Not through tb_exec: $! must be the milter itself (ip execs it), not a
  # subshell, so that SIGTERM reaches it and wait sees its exit status.
  ip netns exec "$TB_NS" "$MTASTS_BIN" -c "$conf" >>"$log" 2>&1 &
  MB_MILTER_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$MB_MILTER_PID" 2>/dev/null; then
      wait "$MB_MILTER_PID"
      mb_die "milter exited with status $? before opening its socket: $(tail -n 3 "$log" | tr '\n' ' ')"
      MB_MILTER_PID=""
      return 1
    fi
    if [ -n "$unix_socket" ]; then
      [ -S "$unix_socket" ] && return 0
    else
      mb_wait_port 127.0.0.1 "$MB_MILTER_PORT" 1 && return 0
    fi
    sleep 0.1
  done
  mb_die "milter did not open its socket ${unix_socket:-127.0.0.1:$MB_MILTER_PORT} within 10 s"
}

# Stops the milter with SIGTERM (the contract: drain and exit 0); its exit
# status goes to MB_MILTER_RC (137 when it had to be killed). Call it from the
# shell that started the milter (not in $(...)): only a parent can wait.
mb_milter_stop() {
  local rc
  MB_MILTER_RC=""
  [ -n "$MB_MILTER_PID" ] || return 0
  kill -TERM "$MB_MILTER_PID" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$MB_MILTER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$MB_MILTER_PID" 2>/dev/null && kill -KILL "$MB_MILTER_PID" 2>/dev/null
  wait "$MB_MILTER_PID" 2>/dev/null; rc=$?
  MB_MILTER_PID=""
  # shellcheck disable=SC2034  # read by callers
  MB_MILTER_RC=$rc
}

# ---------------------------------------------------------------- delivery
# For the socketmap tests (Postfix applies the MTA-STS policy itself, RFC 8461
# §5): a second MX host per domain, a Postfix whose smtp transport really
# delivers to the peers, and the TLS policy servers it asks
# (smtp_tls_policy_maps = socketmap:inet:127.0.0.1:$MB_SOCKETMAP_PORT:postfix).
MB_SOCKETMAP_PORT=8461
MB_SOCKETMAP_PID=""

# mb_mx_backup_add ZONE LABEL PREF KIND: one more MX host of LABEL.ZONE.test,
# mx.bPREF.LABEL.ZONE.test on its own 127.25.0.N, with preference PREF (the
# host from mb_domain_add has 10). KIND: see mb_mx_add. Run mb_commit after.
mb_mx_backup_add() {
  local zone=$1 label=$2 pref=$3 kind=$4 file
  mb_mx_add "$zone" "b$pref.$label" "$kind" || return 1
  # mb_mx_add made bPREF.LABEL a mail domain of its own; its host becomes
  # LABEL's MX instead.
  file="$TB_DIR/zones/$zone.d/mx.b$pref.$label"
  { echo "$label IN MX $pref mx.b$pref.$label"
    grep -v -x -F "b$pref.$label IN MX 10 mx.b$pref.$label" "$file"
  } >"$file.tmp" && mv "$file.tmp" "$file"
}

# mb_postfix_deliver_start [MAIN_CF_LINE...]: like mb_postfix_start, but the
# smtp and relay transports run the real smtp client (with tlsmgr), failed
# deliveries are retried every 1-4 s, and the lines given are appended to
# main.cf (the TLS settings). No milter.
mb_postfix_deliver_start() {
  { mb_postfix_main_cf
    printf '%s\n' "minimal_backoff_time = 2s" "maximal_backoff_time = 4s" \
      "queue_run_delay = 1s" "smtp_connect_timeout = 5s" "$@"
  } >"$MB_PF/main.cf" || return 1
  { mb_postfix_master_cf | sed -E 's/^((smtp|relay) +unix .*) discard$/\1 smtp/'
    echo "tlsmgr     unix  -  -  n  1000? 1 tlsmgr"
  } >"$MB_PF/master.cf" || return 1
  mb_postfix_check_start
}

# mb_socketmap_wait PID LOG NAME: waits up to 10 s for 127.0.0.1:$MB_SOCKETMAP_PORT
# while PID runs; sets MB_SOCKETMAP_PID.
mb_socketmap_wait() {
  local pid=$1 log=$2 name=$3 i
  MB_SOCKETMAP_PID=$pid
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      mb_die "$name exited with status $? before listening: $(tail -n 3 "$log" | tr '\n' ' ')"
      MB_SOCKETMAP_PID=""
      return 1
    fi
    mb_wait_port 127.0.0.1 "$MB_SOCKETMAP_PORT" 1 && return 0
    sleep 0.1
  done
  mb_die "$name does not listen on 127.0.0.1:$MB_SOCKETMAP_PORT after 10 s"
}

# mb_sts_resolver_start LOG: Debian's postfix-mta-sts-resolver (mta-sts-daemon,
# in-memory cache) on 127.0.0.1:$MB_SOCKETMAP_PORT in the namespace, debug log
# to LOG. Its DNS (aiodns) reads the namespace's resolv.conf; its HTTPS
# (aiohttp, ssl.create_default_context) loads OpenSSL's default paths, so
# SSL_CERT_FILE makes it trust the bed's CA only.
mb_sts_resolver_start() {
  local log=$1 conf="$MB_DIR/mta-sts-daemon.yml"
  command -v mta-sts-daemon >/dev/null ||
    { mb_die "mta-sts-daemon not installed (apt-get install postfix-mta-sts-resolver)"; return 1; }
  cat >"$conf" <<YML
host: 127.0.0.1
port: $MB_SOCKETMAP_PORT
reuse_port: true
shutdown_timeout: 2
cache:
  type: internal
default_zone:
  strict_testing: false
  timeout: 4
YML
  # Not through tb_exec: $! must be the daemon itself.
  ip netns exec "$TB_NS" env SSL_CERT_FILE="$TB_CA_FILE" \
    mta-sts-daemon -c "$conf" -v debug -l "$log" >>"$log.stderr" 2>&1 &
  mb_socketmap_wait $! "$log.stderr" mta-sts-daemon
}

# mb_socketmap_config FILE [SECTION.KEY=VALUE...]: mb_milter_config plus a
# [socketmap] section listening on 127.0.0.1:$MB_SOCKETMAP_PORT.
mb_socketmap_config() {
  local file=$1; shift
  mb_milter_config "$file" "socketmap.socket=\"inet:$MB_SOCKETMAP_PORT@127.0.0.1\"" "$@"
}

# mb_socketmap_start CONF LOG: "$MTASTS_BIN" -c CONF in the
# namespace (stdout and stderr appended to LOG); waits for its socketmap port.
mb_socketmap_start() {
  local conf=$1 log=$2
  ip netns exec "$TB_NS" "$MTASTS_BIN" -c "$conf" >>"$log" 2>&1 &
  mb_socketmap_wait $! "$log" "$MTASTS_BIN"
}

# Stops the socketmap server (either kind) with SIGTERM, SIGKILL after 5 s.
mb_socketmap_stop() {
  [ -n "$MB_SOCKETMAP_PID" ] || return 0
  kill -TERM "$MB_SOCKETMAP_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$MB_SOCKETMAP_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$MB_SOCKETMAP_PID" 2>/dev/null
  wait "$MB_SOCKETMAP_PID" 2>/dev/null
  MB_SOCKETMAP_PID=""
}
