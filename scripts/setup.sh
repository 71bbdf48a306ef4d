#!/usr/bin/env bash
# Installs every Debian 12 package the build, the daemon and the tests need.
# Idempotent: it asks apt only for what is missing. Services that packages
# would start (nginx, unbound, nsd, postfix) are kept from starting: the tests
# start their own private instances inside a network namespace.
set -euo pipefail

build_packages=(
  cmake g++ make ninja-build pkg-config
  libmilter-dev libunbound-dev libevent-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev
  libspdlog-dev libfmt-dev googletest libgtest-dev libgmock-dev libopendkim-dev zlib1g-dev
  nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libidn2-dev libsystemd-dev libmicrohttpd-dev scdoc
  dns-root-data ca-certificates sqlite3
)
test_packages=(
  nsd unbound ldnsutils bind9-dnsutils nginx openssl python3 iproute2
  clang-14 libclang-rt-14-dev postfix miltertest jq curl systemd tcpdump strace faketime
  # Libraries of the unpacked (never installed) Sendmail that
  # tests/integration/lib/sendmail.sh fetches with apt-get download.
  libdb5.3 libnsl2 libldap-2.5-0 libsasl2-2 libssl3
  # The peer the socketmap is measured against (tests/bench/run_socketmap_bench.sh),
  # and the server SOCKETMAP_SERVER=peer runs in the socketmap delivery tests;
  # uvloop is only Recommends, and Debian's own setup runs the peer on it.
  postfix-mta-sts-resolver python3-uvloop
  # tests/integration/tlsrpt_report_schema.sh validates reports against a JSON Schema.
  python3-jsonschema
  # opendkim-testmsg verifies the DKIM signature of report mail (TLSRPT, #12).
  opendkim-tools
  # tests/bench/run_report_bench.sh: CPU per process (wait4) and arithmetic.
  time bc
  # tests/integration/man_pages.sh renders the pages with man -l.
  man-db
  # tests/integration/deb_package.sh builds, checks and installs the package.
  build-essential debhelper dpkg-dev lintian
)

missing=()
for p in "${build_packages[@]}" "${test_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run as root" >&2
  exit 69
fi

export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
echo "postfix postfix/mailname string mta-sts-test.invalid" | debconf-set-selections

# Keep package scripts from starting system services during the install.
policy_rc=/usr/sbin/policy-rc.d
own_policy_rc=0
if [ ! -e "$policy_rc" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
  chmod 755 "$policy_rc"
  own_policy_rc=1
fi
trap '[ "$own_policy_rc" = 1 ] && rm -f "$policy_rc"' EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
