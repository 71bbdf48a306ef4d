#!/usr/bin/env bash
# The one command that sets up and runs mta-sts-milter on a fresh Debian 12
# machine on its embedded default configuration (no config file needed):
# the milter listens on inet:8891@127.0.0.1 in the foreground, resolves
# through the servers in /etc/resolv.conf and caches policies in
# /var/lib/mta-sts-milter/cache.db. Point Postfix at it with
# `smtpd_milters = inet:127.0.0.1:8891` (see README). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mta-sts-milter
exec ./build/milter/mta-sts-milter "$@"
