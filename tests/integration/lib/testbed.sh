# shellcheck shell=bash
# Real-server test bed for MTA-STS policy resolution (RFC 8461 §3), sourced
# by integration test scripts. Runs as root; everything lives in a private
# network namespace and a temporary directory, nothing reaches the Internet.
#
#   127.0.1.1:53   NSD, authoritative for plain.test (unsigned), secure.test
#                  (signed, NSEC) and bogus.test (signed, _mta-sts TXT rdata
#                  altered after signing so validation fails)
#   127.0.1.2:53   Unbound, validating, stub "test." -> 127.0.1.1, trust anchors
#                  = DS of secure.test and bogus.test (used to check the bed)
#   127.1.0.N:443  nginx, one server block and certificate per policy host
#   127.2.0.1:8080 python3 upstream behind nginx: slow and chunked responses
#
# Usage: source this file, call testbed_up, add hosts with tb_host_add, then
# tb_commit; testbed_down runs from the EXIT trap set by testbed_up.
# Helpers fail loudly (return non-zero with a message on stderr).

TB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB_NS=""
TB_DIR=""
TB_ZONES=(plain secure bogus)
TB_DNS_ADDR=127.0.1.1
TB_RESOLVER_ADDR=127.0.1.2
TB_UPSTREAM_ADDR=127.2.0.1
TB_NEXT_HOST=1

tb_log() { echo "testbed: $*" >&2; }
tb_die() { echo "testbed: error: $*" >&2; return 1; }

# Runs a command inside the test namespace.
tb_exec() { ip netns exec "$TB_NS" "$@"; }

testbed_up() {
  [ "$(id -u)" = 0 ] || { tb_die "must run as root"; return 1; }
  TB_NS="mtasts-it-$$"
  TB_DIR=$(mktemp -d /tmp/mtasts-it.XXXXXX) || return 1
  chmod 755 "$TB_DIR"
  trap testbed_down EXIT
  trap 'exit 130' INT TERM
  ip netns add "$TB_NS" && ip -n "$TB_NS" link set lo up || { tb_die "netns"; return 1; }
  mkdir -p "$TB_DIR"/{ca,certs,zones,www,nginx/hosts,nginx/tmp,nsd,unbound,run} &&
    tb_ca_init && tb_zones_init && tb_upstream_start && tb_nginx_start || return 1
  tb_log "up: namespace $TB_NS, directory $TB_DIR"
}

# Stops every process started in the namespace (by pid), removes the
# namespace and the directory. Safe to call twice and after a partial start.
testbed_down() {
  local pidfile pid
  [ -n "$TB_NS" ] || return 0
  for pidfile in "$TB_DIR"/nginx/nginx.pid "$TB_DIR"/nsd/nsd.pid \
                 "$TB_DIR"/unbound/unbound.pid "$TB_DIR"/run/upstream.pid; do
    [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  sleep 0.2
  # Anything still alive in our namespace was started by this bed.
  for pid in $(ip netns pids "$TB_NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$TB_NS" 2>/dev/null
  if [ -n "${TB_KEEP:-}" ]; then tb_log "kept $TB_DIR"; else rm -rf "$TB_DIR"; fi
  TB_NS=""
}

# ---------------------------------------------------------------- test CA
tb_ca_init() {
  local ca="$TB_DIR/ca"
  mkdir -p "$ca/new" && : >"$ca/index.txt" && echo 1000 >"$ca/serial"
  cat >"$ca/ca.cnf" <<EOF
[ca]
default_ca = testca
[testca]
dir = $ca
database = $ca/index.txt
serial = $ca/serial
new_certs_dir = $ca/new
certificate = $ca/ca.crt
private_key = $ca/ca.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
[leaf_san]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = \${ENV::TB_SAN}
[leaf_nosan]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
EOF
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=mta-sts-milter test CA" -keyout "$ca/ca.key" -out "$ca/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    2>/dev/null || { tb_die "CA"; return 1; }
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ca/leaf.key" \
    2>/dev/null || { tb_die "leaf key"; return 1; }
  TB_CA_FILE="$ca/ca.crt"
}

# tb_cert HOST KIND -> prints the certificate path.
# KIND: good | expired | wrongname (SAN for another host) | cnonly (no SAN).
tb_cert() {
  local host=$1 kind=$2 ca="$TB_DIR/ca" out="$TB_DIR/certs/$1.crt"
  local ext=leaf_san san="DNS:$1" start end
  start=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ); end=$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)
  case $kind in
    good) ;;
    expired) start=$(date -u -d '-30 days' +%Y%m%d%H%M%SZ)
             end=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ) ;;
    wrongname) san="DNS:mta-sts.other.plain.test" ;;
    cnonly) ext=leaf_nosan ;;
    *) tb_die "unknown certificate kind $kind"; return 1 ;;
  esac
  openssl req -new -key "$ca/leaf.key" -subj "/CN=$host" -out "$ca/$host.csr" 2>/dev/null &&
    TB_SAN=$san openssl ca -batch -notext -config "$ca/ca.cnf" -extensions "$ext" \
      -startdate "$start" -enddate "$end" -in "$ca/$host.csr" -out "$out" 2>"$ca/$host.log" ||
    { tb_die "certificate for $host ($kind): $(tail -3 "$ca/$host.log")"; return 1; }
  echo "$out"
}

# ---------------------------------------------------------------- DNS
# Zone data: $TB_DIR/zones/<zone>.d/<label> holds the records of one label
# (relative owner names); tb_zone_build concatenates them under an SOA.
tb_zones_init() {
  local zone
  for zone in "${TB_ZONES[@]}"; do
    mkdir -p "$TB_DIR/zones/$zone.d" && echo 1 >"$TB_DIR/zones/$zone.serial"
    if [ "$zone" != plain ]; then
      (cd "$TB_DIR/zones" &&
        ldns-keygen -a ECDSAP256SHA256 -k "$zone.test" >"$zone.keyname") ||
        { tb_die "ldns-keygen $zone"; return 1; }
      cat "$TB_DIR/zones/$(cat "$TB_DIR/zones/$zone.keyname").ds" >>"$TB_DIR/zones/anchors.ds"
    fi
    tb_zone_build "$zone" || return 1
  done
  TB_ANCHOR_FILE="$TB_DIR/zones/anchors.ds"
  tb_nsd_start && tb_unbound_start
}

tb_zone_build() {
  local zone=$1 z="$TB_DIR/zones" serial
  serial=$(cat "$z/$zone.serial")
  {
    echo "\$ORIGIN $zone.test."
    echo "\$TTL 1"
    # TB_NEGATIVE_TTL: how long resolvers keep "no such name/data" (1 s for
    # tests that change records; benchmarks measuring warm caches raise it).
    echo "@ ${TB_NEGATIVE_TTL:-1} IN SOA ns.$zone.test. hostmaster.$zone.test. $serial 3600 600 86400 ${TB_NEGATIVE_TTL:-1}"
    echo "@ IN NS ns.$zone.test."
    echo "ns IN A $TB_DNS_ADDR"
    cat "$z/$zone.d"/* 2>/dev/null
  } >"$z/$zone.test.src"
  if [ "$zone" = plain ]; then
    cp "$z/$zone.test.src" "$z/$zone.test.zone"
    return 0
  fi
  (cd "$z" && ldns-signzone -i "$(date -u -d '-1 hour' +%Y%m%d%H%M%S)" \
      -f "$zone.test.zone" "$zone.test.src" "$(cat "$zone.keyname")") ||
    { tb_die "ldns-signzone $zone"; return 1; }
  if [ "$zone" = bogus ]; then
    # Alter the signed rdata of every _mta-sts TXT record: the RRSIG no longer
    # matches, so a validating resolver answers SERVFAIL (bogus).
    sed -i -E '/^_mta-sts\.[^[:space:]]*[[:space:]].*TXT[[:space:]]/s/id=/id=x/' \
      "$z/$zone.test.zone"
  fi
}

tb_nsd_start() {
  local d="$TB_DIR/nsd" zone
  {
    cat <<EOF
server:
  ip-address: $TB_DNS_ADDR
  port: 53
  username: ""
  chroot: ""
  zonesdir: "$TB_DIR/zones"
  database: ""
  pidfile: "$d/nsd.pid"
  xfrdfile: "$d/xfrd.state"
  xfrdir: "$d"
  zonelistfile: "$d/zone.list"
  logfile: "$d/nsd.log"
  server-count: 1
  rrl-ratelimit: 0
  verbosity: 1
remote-control:
  control-enable: yes
  control-interface: "$d/nsd.ctl"
EOF
    for zone in "${TB_ZONES[@]}"; do
      printf 'zone:\n  name: %s.test\n  zonefile: %s.test.zone\n' "$zone" "$zone"
    done
  } >"$d/nsd.conf"
  tb_exec nsd -c "$d/nsd.conf" || { tb_die "nsd: $(tail -3 "$d/nsd.log")"; return 1; }
  tb_wait_serial plain 1
}

tb_unbound_start() {
  local d="$TB_DIR/unbound"
  cat >"$d/unbound.conf" <<EOF
server:
  interface: $TB_RESOLVER_ADDR
  port: 53
  username: ""
  chroot: ""
  directory: "$d"
  pidfile: "$d/unbound.pid"
  use-syslog: no
  logfile: "$d/unbound.log"
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  module-config: "validator iterator"
  trust-anchor-file: "$TB_ANCHOR_FILE"
  local-zone: "test." nodefault
  cache-max-ttl: 0
  cache-max-negative-ttl: 0
  val-log-level: 2
  verbosity: 1
stub-zone:
  name: "test."
  stub-addr: $TB_DNS_ADDR
remote-control:
  control-enable: no
EOF
  tb_exec unbound -c "$d/unbound.conf" || { tb_die "unbound: $(tail -3 "$d/unbound.log")"; return 1; }
}

# Waits until NSD serves SERIAL for ZONE.
tb_wait_serial() {
  local zone=$1 serial=$2 got
  for _ in $(seq 50); do
    got=$(tb_exec dig +short +time=1 +tries=1 @"$TB_DNS_ADDR" SOA "$zone.test" | awk '{print $3}')
    [ "$got" = "$serial" ] && return 0
    sleep 0.1
  done
  tb_die "NSD does not serve serial $serial of $zone.test (got '$got')"
}

# tb_dns_set ZONE LABEL [RECORD...]: replaces the records of LABEL (relative
# owner names, e.g. '_mta-sts.x IN TXT "v=STSv1; id=1"'). Call tb_dns_reload after.
tb_dns_set() {
  local zone=$1 label=$2; shift 2
  printf '%s\n' "$@" >"$TB_DIR/zones/$zone.d/$label"
}

# Re-signs ZONE with a new serial and makes NSD serve it.
tb_dns_reload() {
  local zone=$1 serial
  serial=$(( $(cat "$TB_DIR/zones/$zone.serial") + 1 ))
  echo "$serial" >"$TB_DIR/zones/$zone.serial"
  tb_zone_build "$zone" &&
    tb_exec nsd-control -c "$TB_DIR/nsd/nsd.conf" reload "$zone.test" >/dev/null &&
    tb_wait_serial "$zone" "$serial"
}

# tb_txt_set ZONE LABEL TXT...: the _mta-sts TXT records of LABEL.ZONE.test
# (none: remove them) plus the policy host's A record, then reload.
tb_txt_set() {
  local zone=$1 label=$2 rec records=() ; shift 2
  for rec in "$@"; do records+=("_mta-sts.$label IN TXT \"$rec\""); done
  records+=("$(grep -h "^mta-sts\.$label " "$TB_DIR/zones/$zone.d/$label" 2>/dev/null)")
  tb_dns_set "$zone" "$label" "${records[@]}" && tb_dns_reload "$zone"
}

# ---------------------------------------------------------------- HTTP
tb_upstream_start() {
  tb_exec /usr/bin/python3 "$TB_LIB_DIR/upstream.py" "$TB_UPSTREAM_ADDR" 8080 \
    >"$TB_DIR/run/upstream.log" 2>&1 &
  echo $! >"$TB_DIR/run/upstream.pid"
  for _ in $(seq 50); do
    tb_exec curl -s -o /dev/null "http://$TB_UPSTREAM_ADDR:8080/ping" && return 0
    sleep 0.1
  done
  tb_die "python upstream did not start: $(cat "$TB_DIR/run/upstream.log")"
}

tb_nginx_start() {
  local n="$TB_DIR/nginx"
  cat >"$n/nginx.conf" <<EOF
user root root;
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log info;
events { worker_connections 256; }
http {
  client_body_temp_path $n/tmp/body;
  proxy_temp_path $n/tmp/proxy;
  fastcgi_temp_path $n/tmp/fastcgi;
  uwsgi_temp_path $n/tmp/uwsgi;
  scgi_temp_path $n/tmp/scgi;
  log_format bed '\$host \$server_addr "\$request_method \$uri" \$status \$bytes_sent';
  access_log $n/access.log bed;
  default_type text/plain;
  server_tokens off;
  include $n/hosts/*.conf;
}
EOF
  touch "$n/access.log"
  tb_exec nginx -e "$n/error.log" -p "$n" -c "$n/nginx.conf" ||
    { tb_die "nginx: $(tail -3 "$n/error.log")"; return 1; }
}

# Makes nginx read its host blocks again and waits for the new workers.
tb_nginx_reload() {
  local n="$TB_DIR/nginx" before
  before=$(grep -c 'reconfiguring' "$n/error.log")
  tb_exec nginx -e "$n/error.log" -p "$n" -c "$n/nginx.conf" -s reload || return 1
  for _ in $(seq 50); do
    [ "$(grep -c 'reconfiguring' "$n/error.log")" -gt "$before" ] && { sleep 0.2; return 0; }
    sleep 0.1
  done
  tb_die "nginx did not reload"
}

# tb_host_add ZONE LABEL CERT SERVE TXT...: policy domain LABEL.ZONE.test with
# its _mta-sts TXT records and host mta-sts.LABEL.ZONE.test on its own address.
# CERT: see tb_cert. SERVE: file (the policy file, see tb_policy_set) | 404 |
# redirect (301 to /moved/mta-sts.txt, which would serve a valid policy) |
# html (Content-Type text/html) | chunked (>64 KiB, no Content-Length) |
# slow:N (a valid policy after N seconds) | none (no A record, no server block).
tb_host_add() {
  local zone=$1 label=$2 cert=$3 serve=$4; shift 4
  local host="mta-sts.$label.$zone.test" addr="127.1.0.$TB_NEXT_HOST" rec records=()
  TB_NEXT_HOST=$((TB_NEXT_HOST + 1))
  for rec in "$@"; do records+=("_mta-sts.$label IN TXT \"$rec\""); done
  [ "$serve" = none ] || records+=("mta-sts.$label IN A $addr")
  tb_dns_set "$zone" "$label" "${records[@]}"
  [ "$serve" = none ] && return 0
  mkdir -p "$TB_DIR/www/$host/.well-known" "$TB_DIR/www/$host/moved"
  local crt loc
  crt=$(tb_cert "$host" "$cert") || return 1
  case $serve in
    file)     loc="root $TB_DIR/www/$host;" ;;
    404)      loc="return 404;" ;;
    html)     loc="root $TB_DIR/www/$host; default_type text/html;" ;;
    redirect) loc="return 301 https://$host/moved/mta-sts.txt;" ;;
    chunked) loc="proxy_pass http://$TB_UPSTREAM_ADDR:8080/chunked; proxy_buffering off;" ;;
    slow:*) loc="proxy_pass http://$TB_UPSTREAM_ADDR:8080/slow/${serve#slow:};" ;;
    *) tb_die "unknown serve kind $serve"; return 1 ;;
  esac
  cat >"$TB_DIR/nginx/hosts/$host.conf" <<EOF
server {
  listen $addr:443 ssl;
  server_name $host;
  ssl_certificate $crt;
  ssl_certificate_key $TB_DIR/ca/leaf.key;
  location = /.well-known/mta-sts.txt { $loc }
  location /moved/ { root $TB_DIR/www/$host; }
}
EOF
}

# tb_policy_set HOST FILE|-: the body served at /.well-known/mta-sts.txt
# (and /moved/mta-sts.txt); "-" removes it (nginx answers 404).
tb_policy_set() {
  local dir="$TB_DIR/www/$1"
  if [ "$2" = - ]; then
    rm -f "$dir/.well-known/mta-sts.txt" "$dir/moved/mta-sts.txt"
  else
    cp "$2" "$dir/.well-known/mta-sts.txt" && cp "$2" "$dir/moved/mta-sts.txt"
  fi
}

# After adding hosts: rebuild and reload every zone and nginx.
tb_commit() {
  local zone
  for zone in "${TB_ZONES[@]}"; do tb_dns_reload "$zone" || return 1; done
  tb_nginx_reload
}

# tb_hits HOST [PATH]: requests nginx logged for HOST (and PATH, when given).
tb_hits() {
  awk -v h="$1" -v p="${2:-}" '$1 == h && (p == "" || $4 == p "\"") { n++ } END { print n + 0 }' \
    "$TB_DIR/nginx/access.log"
}

# tb_config FILE [SECTION.KEY=VALUE...]: a CLI config for the bed; overrides
# replace the default value of a key (VALUE is TOML, e.g. 2 or "debug").
tb_config() {
  local file=$1 store=${1%.toml}.db; shift
  local -A v=(
    [store.path]="\"$store\""
    [dns.use_resolv_conf]=false
    [dns.forwarders]='[]'
    [dns.trust_anchor_files]="[\"$TB_ANCHOR_FILE\"]"
    [dns.stub_zones]="[\"test=$TB_DNS_ADDR\"]"
    [dns.timeout]=5
    [https.ca_file]="\"$TB_CA_FILE\""
    [https.timeout]=10
    [https.connect_timeout]=5
    [https.port]=443
    [policy.txt_recheck_interval]=60
    [policy.fetch_backoff]=300
    [policy.refresh_interval]=86400
    [policy.decision_deadline_ms]=0
    [log.level]='"info"'
    # The daemon's socketmap listens on 8461 by default: off unless a test
    # asks (socketmap.socket=...), so two daemons in one bed never collide.
    [socketmap.socket]='""'
  )
  local kv section key
  for kv in "$@"; do v[${kv%%=*}]=${kv#*=}; done
  : >"$file"
  for section in store dns https policy log socketmap tlsrpt metrics report; do
    echo "[$section]" >>"$file"
    for key in "${!v[@]}"; do
      [ "${key%%.*}" = "$section" ] && echo "${key#*.} = ${v[$key]}" >>"$file"
    done
  done
}

# ---------------------------------------------------------------- bulk hosts
# For benchmarks: thousands of policy domains without one address, certificate
# and server block each (tb_host_add numbers hosts 127.1.0.N, N <= 254).

# tb_cert_multi FILE HOST...: one certificate from the test CA (shared leaf
# key) valid for every HOST (CN = the first); FILE is where it is written.
tb_cert_multi() {
  local out=$1 ca="$TB_DIR/ca" san; shift
  san=$(printf 'DNS:%s,' "$@"); san=${san%,}
  openssl req -new -key "$ca/leaf.key" -subj "/CN=$1" -out "$out.csr" 2>/dev/null &&
    TB_SAN=$san openssl ca -batch -notext -config "$ca/ca.cnf" -extensions leaf_san \
      -days 30 -in "$out.csr" -out "$out" 2>"$out.log" ||
    { tb_die "multi-name certificate $out: $(tail -3 "$out.log")"; return 1; }
}

# tb_nginx_tune WORKERS CONNECTIONS: nginx worker processes and connections
# per worker (the bed starts with 1 and 256); applied by the next reload.
tb_nginx_tune() {
  sed -i -E -e "s/^worker_processes .*;/worker_processes $1;/" \
    -e "s/worker_connections [0-9]+;/worker_connections $2;/" "$TB_DIR/nginx/nginx.conf"
}

# tb_bulk_hosts ZONE FORMAT COUNT GROUPS POLICY: COUNT policy domains
# $(printf FORMAT i).ZONE.test, i = 1..COUNT, each with one _mta-sts TXT record
# (id=1) and host mta-sts.<domain>. The hosts are dealt round-robin to GROUPS
# nginx servers (address 127.1.100.g, one certificate naming all its hosts),
# which all serve the file POLICY. Prints the domains, one a line; run
# tb_commit afterwards. Call once per bed.
tb_bulk_hosts() {
  local zone=$1 format=$2 count=$3 groups=$4 policy=$5 i g label
  local www="$TB_DIR/www/_bulk" records=() hosts=()
  [ "$groups" -ge 1 ] && [ "$groups" -le 254 ] || { tb_die "GROUPS must be 1..254"; return 1; }
  mkdir -p "$www/.well-known" && cp "$policy" "$www/.well-known/mta-sts.txt" || return 1
  for ((i = 1; i <= count; i++)); do
    # shellcheck disable=SC2059  # FORMAT is the caller's printf format
    printf -v label "$format" "$i"
    g=$(( (i - 1) % groups + 1 ))
    records+=("_mta-sts.$label IN TXT \"v=STSv1; id=1\"" "mta-sts.$label IN A 127.1.100.$g")
    hosts[g]+=" mta-sts.$label.$zone.test"
    echo "$label.$zone.test"
  done
  tb_dns_set "$zone" _bulk "${records[@]}"
  for ((g = 1; g <= groups && g <= count; g++)); do
    # shellcheck disable=SC2086  # a list of host names
    tb_cert_multi "$TB_DIR/certs/_bulk$g.crt" ${hosts[g]} || return 1
    cat >"$TB_DIR/nginx/hosts/_bulk$g.conf" <<CONF
server {
  listen 127.1.100.$g:443 ssl;
  server_name _;
  access_log off;
  ssl_certificate $TB_DIR/certs/_bulk$g.crt;
  ssl_certificate_key $TB_DIR/ca/leaf.key;
  location = /.well-known/mta-sts.txt { root $www; }
  location / { return 404; }
}
CONF
  done
}
