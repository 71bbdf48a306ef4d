# shellcheck shell=bash
# Report side of the real-server test bed (lib/mailbed.sh, lib/testbed.sh):
# where `mta-sts-milter report send` delivers RFC 8460 reports (§5.3 mail,
# §5.4 https), all inside the bed's network namespace.
#
#   127.3.0.N:443   host reports.LABEL.ZONE.test: lib/https_sink.py with a
#                   test-CA certificate naming it (rb_sink_add); every POST
#                   saved in $RB_DIR/sinks/NAME/posts/
#   127.0.0.1:25    a private Postfix (config $MB_PF) whose virtual(8) delivers
#                   the listed addresses of one domain to Maildirs
#                   $RB_DIR/vmail/LOCALPART/ (rb_postfix_mailbox_start); its
#                   smtp and relay transports discard, so nothing leaves
#   DNS             _smtp._tls TXT records (rb_tlsrpt_set) and DKIM keys
#                   (rb_dkim_key) in the bed's zones; secure.test is signed
#
# Usage: source this file, report_bed_up, rb_sink_add ..., rb_tlsrpt_set ...,
# rb_dkim_key ..., tb_dns_reload ZONE, rb_postfix_mailbox_start ...; then
# rb_config, rb_seed_domain, rb_cli. report_bed_down runs from the EXIT trap.
#   rb_config FILE [SECTION.KEY=VALUE...]   tb_config plus a [report] section
#   rb_store FILE                           the store path of config FILE
#   rb_seed_domain DB DAY DOMAIN OK FAILED  TLSRPT counts of one policy domain
#   rb_cli [OFFSET] CONF ARGS...            "$MTASTS_BIN" -c CONF ARGS in the
#                                           namespace, under `faketime -f OFFSET`
#                                           when OFFSET ("+6m") is given;
#                                           stderr appended to $RB_LOG
#   rb_delivery CONF DESTINATION FIELD      one field of `report status --json`
#   rb_sink_posts NAME / rb_maildir_count LOCALPART / rb_wait_maildir LOCALPART N SECONDS

RB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=mailbed.sh
source "$RB_LIB_DIR/mailbed.sh"

RB_DIR=""
RB_LOG=""
RB_NEXT_SINK=1
RB_SINK_PIDS=()
RB_SENDMAIL=""        # TOML array: the private Postfix's sendmail command
RB_SUBMITTER=reporter.secure.test

rb_die() { echo "report_bed: error: $*" >&2; return 1; }

report_bed_up() {
  mailbed_up || return 1
  trap report_bed_down EXIT
  RB_DIR="$TB_DIR/report"
  RB_LOG="$RB_DIR/cli.log"
  mkdir -p "$RB_DIR"/{sinks,keys,vmail,bin} && : >"$RB_LOG"
}

# Stops the sinks (by pid), then the mail bed (Postfix, namespace, files).
report_bed_down() {
  local pid
  for pid in "${RB_SINK_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  RB_SINK_PIDS=()
  mailbed_down
}

# ---------------------------------------------------------------- DNS
# rb_tlsrpt_set ZONE LABEL [RECORD...]: the _smtp._tls TXT records of
# LABEL.ZONE.test (none: no record). Run tb_dns_reload ZONE after.
rb_tlsrpt_set() {
  local zone=$1 label=$2 rec records=(); shift 2
  for rec in "$@"; do records+=("_smtp._tls.$label IN TXT \"$rec\""); done
  tb_dns_set "$zone" "tlsrpt.$label" "${records[@]}"
}

# rb_dkim_key ZONE LABEL SELECTOR: an RSA 2048 key; its public half as the
# TXT record SELECTOR._domainkey.LABEL.ZONE.test (character-strings of 200
# bytes). Prints the private key's path. Run tb_dns_reload ZONE after.
rb_dkim_key() {
  local zone=$1 label=$2 selector=$3 key p rdata="" i
  key="$RB_DIR/keys/$selector.$label.$zone.pem"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null ||
    { rb_die "DKIM key"; return 1; }
  p=$(openssl pkey -in "$key" -pubout -outform DER 2>/dev/null | base64 -w0) && [ -n "$p" ] ||
    { rb_die "DKIM public key"; return 1; }
  for ((i = 0; i < ${#p}; i += 200)); do rdata+=" \"${p:i:200}\""; done
  tb_dns_set "$zone" "dkim.$selector.$label" "$selector._domainkey.$label IN TXT \"v=DKIM1; k=rsa; p=\"$rdata"
  echo "$key"
}

# ---------------------------------------------------------------- HTTPS sinks
# rb_sink_add NAME ZONE LABEL STATUS: host reports.LABEL.ZONE.test (A record
# 127.3.0.N, certificate from the test CA) served by https_sink.py on port
# 443, answering POSTs with the codes STATUS ("503,200"). Run tb_dns_reload
# ZONE after.
rb_sink_add() {
  local name=$1 zone=$2 label=$3 status=$4
  local host="reports.$label.$zone.test" addr="127.3.0.$RB_NEXT_SINK" dir="$RB_DIR/sinks/$1" crt
  RB_NEXT_SINK=$((RB_NEXT_SINK + 1))
  crt=$(tb_cert "$host" good) || return 1
  mkdir -p "$dir/posts" || return 1
  tb_dns_set "$zone" "sink.$label" "reports.$label IN A $addr"
  # Not through tb_exec: $! must be the sink itself (ip execs it).
  ip netns exec "$TB_NS" /usr/bin/python3 "$TB_LIB_DIR/https_sink.py" --cert "$crt" \
    --key "$TB_DIR/ca/leaf.key" --host "$addr" --port 443 --status "$status" --out "$dir/posts" \
    --exit-with-parent >"$dir/port" 2>"$dir/log" &
  RB_SINK_PIDS+=($!)
  for _ in $(seq 50); do
    [ -s "$dir/port" ] && return 0
    sleep 0.1
  done
  rb_die "https sink $name on $addr:443 did not start: $(tail -3 "$dir/log")"
}

# rb_sink_posts NAME: the number of POSTs sink NAME received.
rb_sink_posts() {
  find "$RB_DIR/sinks/$1/posts" -name '*.body' | wc -l
}

# ---------------------------------------------------------------- Postfix
# rb_postfix_mailbox_start DOMAIN LOCALPART...: the private Postfix (config
# $MB_PF, as lib/mailbed.sh's) with DOMAIN a virtual mailbox domain whose
# LOCALPARTs get Maildirs $RB_DIR/vmail/LOCALPART/ (owned by nobody); other
# mail is discarded. Sets RB_SENDMAIL, its sendmail command as a TOML array.
rb_postfix_mailbox_start() {
  local domain=$1 part map=""; shift
  for part in "$@"; do map+="$part@$domain=$part/, "; done
  chown 65534:65534 "$RB_DIR/vmail" || return 1
  { cat <<EOF
# Private test instance (lib/report_bed.sh): local Maildirs only.
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
virtual_mailbox_domains = $domain
virtual_mailbox_base = $RB_DIR/vmail
virtual_mailbox_maps = inline:{ ${map%, } }
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
biff = no
EOF
  } >"$MB_PF/main.cf" || return 1
  { mb_postfix_master_cf
    echo "virtual    unix  -  n  n  -  -  virtual"
  } >"$MB_PF/master.cf" || return 1
  mb_postfix_check_start || return 1
  RB_SENDMAIL="[\"/usr/sbin/sendmail\", \"-C\", \"$MB_PF\", \"-oi\"]"
}

# rb_maildir_count LOCALPART: messages delivered to that Maildir.
rb_maildir_count() {
  find "$RB_DIR/vmail/$1/new" "$RB_DIR/vmail/$1/cur" -type f 2>/dev/null | wc -l
}

# rb_wait_maildir LOCALPART N SECONDS: waits until the Maildir holds N messages.
rb_wait_maildir() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [ "$(rb_maildir_count "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- the CLI
# rb_config FILE [SECTION.KEY=VALUE...]: tb_config (store FILE%.toml.db, the
# bed's DNS and CA; it writes the [report] section too) with these [report]
# defaults; report.* overrides replace them, and an override with an empty
# value leaves the key out.
rb_config() {
  local file=$1 kv key args=(); shift
  local -A r=(
    [report.contact_info]="\"tlsrpt@$RB_SUBMITTER\""
    [report.organization_name]='"Report Bed"'
    [report.ca_file]="\"$TB_CA_FILE\""
    [report.https_timeout]=10
    [report.sendmail_command]="${RB_SENDMAIL:-[\"/bin/false\"]}"
    # The sinks listen on 127.3.0.N: refused by default (a receiver's URI
    # must not reach the reporter's own network).
    [report.allow_private_destinations]=true
  )
  for kv in "$@"; do
    case $kv in
      report.*) r[${kv%%=*}]=${kv#*=} ;;
      *) args+=("$kv") ;;
    esac
  done
  for key in "${!r[@]}"; do
    [ -z "${r[$key]}" ] || args+=("$key=${r[$key]}")
  done
  tb_config "$file" "${args[@]}"
  grep -q '^contact_info = ' "$file" || { rb_die "config $file not written"; return 1; }
}

rb_store() { echo "${1%.toml}.db"; }

# rb_cli [OFFSET] CONF ARGS...: OFFSET is a libfaketime offset ("+6m": the
# CLI's clock runs 6 minutes ahead); the sendmail it starts gets a clean
# environment, so only the CLI sees the offset.
rb_cli() {
  local prefix=()
  case $1 in
    +*|-*) prefix=(env FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$1"); shift ;;
  esac
  ip netns exec "$TB_NS" "${prefix[@]}" "$MTASTS_BIN" -c "$@" 2>>"$RB_LOG"
}

# rb_seed_domain CONF DAY DOMAIN OK FAILED: OK successful sessions of an sts
# policy of DOMAIN (mx.DOMAIN) on DAY, and FAILED certificate-expired
# sessions at mx.DOMAIN (127.25.0.9) when FAILED > 0. The store is created
# first (`report status` opens and migrates it).
rb_seed_domain() {
  local conf=$1 day=$2 domain=$3 okc=$4 failc=$5 policy sql
  rb_cli "$conf" report status >/dev/null || { rb_die "report status on $conf"; return 1; }
  policy="version: STSv1"$'\n'"mode: enforce"$'\n'"mx: mx.$domain"$'\n'"max_age: 86400"
  sql="INSERT INTO tlsrpt_successes (day, policy_type, policy_domain, policy_string, mx_patterns,
         successful_session_count) VALUES ('$day', 'sts', '$domain', '$policy', 'mx.$domain', $okc);"
  [ "$failc" -gt 0 ] && sql+="INSERT INTO tlsrpt_failures (day, policy_type, policy_domain, policy_string,
         mx_patterns, result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip, failed_session_count)
         VALUES ('$day', 'sts', '$domain', '$policy', 'mx.$domain', 'certificate-expired', '127.0.0.1',
         'mx.$domain', '127.25.0.9', $failc);"
  sqlite3 "$(rb_store "$conf")" "$sql" || { rb_die "seeding $domain"; return 1; }
}

# rb_delivery CONF DESTINATION FIELD: FIELD of DESTINATION's delivery row
# (`report status --json`: state, attempts, not_before, last_error, ...).
rb_delivery() {
  rb_cli "$1" report status --json | jq -r --arg d "$2" "select(.destination == \$d) | .$3"
}
