#!/usr/bin/env bash
# Smoke test of UnboundDns (policy/net/unbound_dns.cpp) against a real
# authoritative server. As root it creates a private network namespace, serves
#   secure.test  signed (ECDSA P-256 key as KSK/CSK, NSEC), DS as trust anchor
#   bogus.test   signed, then one signed TXT and one TLSA altered so their
#                RRSIGs fail
#   plain.test   unsigned (no anchor covers it: insecure)
# each with TXT, A/AAAA, MX (two preferences; a null MX at nullmx.ZONE) and
# TLSA (_25._tcp.mx.ZONE) records.
# from NSD on 127.0.1.1:53 inside the namespace, and runs the live suites
# (*Live*) of the gtest driver (tests/unit/net_unbound_dns_test.cpp) there
# with MTASTS_DNS_STUB and MTASTS_DNS_TA set. Nothing leaves the namespace.
# ctest never runs these suites; this script is their only runner.
#
# Usage: unbound_dns_smoke.sh [path/to/net_unbound_dns_test]
#   default binary: $BUILD_DIR/tests/net_unbound_dns_test (BUILD_DIR=build)
# Exit status: 0 when live tests ran and all passed; non-zero when the driver
# failed, skipped any live test (the variables did not reach it) or ran none.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
test_bin=${1:-${BUILD_DIR:-$root/build}/tests/net_unbound_dns_test}
ns_ip=127.0.1.1

die() { echo "unbound_dns_smoke: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (network namespace)"
[ -x "$test_bin" ] || die "test binary not found: $test_bin"
for tool in ip nsd nsd-checkconf ldns-keygen ldns-signzone dig; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done
test_bin=$(cd "$(dirname "$test_bin")" && pwd)/$(basename "$test_bin")

netns=mtasts-dns-$$
work=$(mktemp -d /tmp/mtasts-dns.XXXXXX)
nsd_pid=""

cleanup() {
  local rc=$?
  if [ -n "$nsd_pid" ] && kill -0 "$nsd_pid" 2>/dev/null; then
    kill "$nsd_pid" 2>/dev/null || true
    wait "$nsd_pid" 2>/dev/null || true
  fi
  ip netns del "$netns" 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ -f "$work/nsd.log" ]; then
    echo "--- nsd.log" >&2
    cat "$work/nsd.log" >&2
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# --- zones ------------------------------------------------------------------
# hex_octets COUNT BYTE: COUNT octets of BYTE as hex ("a1a1...").
hex_octets() { printf "$2%.0s" $(seq 1 "$1"); }

# write_zone ZONE TXT_ID ADDRESS_SUFFIX TLSA_BYTE: a zone with the records
# the driver's tables expect. The upper-case MX target checks lower-casing.
write_zone() {
  local zone=$1 id=$2 n=$3 tlsa=$4
  cat >"$work/$zone.zone" <<EOF
\$ORIGIN $zone.
\$TTL 300
@         SOA  ns.$zone. hostmaster.$zone. 1 3600 600 86400 300
@         NS   ns
ns        A    $ns_ip
_mta-sts  TXT  "v=STSv1; id=$id;"
multi     TXT  "v=STSv1; " "id=split;"
www       A    127.1.0.$n
www       AAAA 2001:db8::$n
v4only    A    127.1.0.2
v6only    AAAA 2001:db8::2
@         MX   20 mx2
@         MX   10 MX
mx        A    127.25.0.$n
nullmx    MX   0 .
_25._tcp.mx TLSA 3 1 1 $(hex_octets 32 "$tlsa")
EOF
}

# sign_zone ZONE: one ECDSA key with the SEP flag (it signs everything, as a
# combined signing key), signatures valid from yesterday for 30 days; appends
# the DS to the trust anchor file. Leaves $work/ZONE.zone.signed.
sign_zone() {
  local zone=$1 key
  key=$(cd "$work" && ldns-keygen -a ECDSAP256SHA256 -k "$zone")
  (cd "$work" && ldns-signzone -o "$zone" \
     -i "$(date -u -d '-1 day' +%Y%m%d%H%M%S)" -e "$(date -u -d '+30 days' +%Y%m%d%H%M%S)" \
     "$zone.zone" "$key")
  cat "$work/$key.ds" >>"$work/trust-anchors.ds"
}

: >"$work/trust-anchors.ds"
write_zone secure.test 20240101T000000 1 a1
write_zone bogus.test bogus1 4 b2
write_zone plain.test plain1 3 c3
echo "_25._tcp.mx TLSA 2 0 2 $(hex_octets 64 a1)" >>"$work/secure.test.zone"
echo "@ MX 10 backup.example.net." >>"$work/plain.test.zone"
sign_zone secure.test
sign_zone bogus.test
# Tamper: change the signed TXT text and the last TLSA octet; their RRSIGs
# (base64, untouched) no longer match, so a validating resolver answers
# SERVFAIL / bogus.
sed -i -e 's/"v=STSv1; id=bogus1;"/"v=STSv1; id=forged;"/' \
  -e '/IN[[:space:]]*TLSA/s/b2\([[:space:]]*\)$/b3\1/I' "$work/bogus.test.zone.signed"
grep -q 'id=forged' "$work/bogus.test.zone.signed" || die "tampering bogus.test TXT failed"
grep -qi 'IN[[:space:]]*TLSA.*b3[[:space:]]*$' "$work/bogus.test.zone.signed" ||
  die "tampering bogus.test TLSA failed"
cp "$work/plain.test.zone" "$work/plain.test.zone.signed"

# --- NSD --------------------------------------------------------------------
cat >"$work/nsd.conf" <<EOF
server:
  ip-address: $ns_ip@53
  do-ip6: no
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$work"
  database: ""
  zonelistfile: "$work/zone.list"
  xfrdfile: "$work/xfrd.state"
  xfrdir: "$work"
  pidfile: "$work/nsd.pid"
  logfile: "$work/nsd.log"
  verbosity: 1
  rrl-ratelimit: 0
remote-control:
  control-enable: no
EOF
for zone in secure.test bogus.test plain.test; do
  printf 'zone:\n  name: %s\n  zonefile: %s.zone.signed\n' "$zone" "$zone" >>"$work/nsd.conf"
done
nsd-checkconf "$work/nsd.conf"

ip netns add "$netns"
ip -n "$netns" link set lo up
ip netns exec "$netns" nsd -d -c "$work/nsd.conf" &
nsd_pid=$!

ready=0
for _ in $(seq 1 50); do
  if ip netns exec "$netns" dig +short +time=1 +tries=1 @"$ns_ip" secure.test SOA |
       grep -q hostmaster; then
    ready=1
    break
  fi
  kill -0 "$nsd_pid" 2>/dev/null || die "nsd exited"
  sleep 0.1
done
[ "$ready" -eq 1 ] || die "nsd did not answer on $ns_ip:53"

# --- driver -----------------------------------------------------------------
ip netns exec "$netns" env MTASTS_DNS_STUB="test=$ns_ip" MTASTS_DNS_TA="$work/trust-anchors.ds" \
  "$test_bin" --gtest_color=no --gtest_filter='*Live*' | tee "$work/driver.log"
# A skipped live test checked nothing: count it as a failure, as running none.
ran=$(sed -n 's/^\[==========\] \([0-9][0-9]*\) tests\{0,1\} from .* ran\..*/\1/p' "$work/driver.log")
[ "${ran:-0}" -gt 0 ] || die "no live test ran"
if grep -q '^\[  SKIPPED \]' "$work/driver.log"; then
  skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) tests\{0,1\}, listed below:$/\1/p' "$work/driver.log")
  die "${skipped:-some} of $ran live tests skipped (the reason is above)"
fi
echo "unbound_dns_smoke: passed ($ran live tests)"
