#!/usr/bin/env bash
# The one command that sets up and runs mta-sts-milter on a fresh Debian 12
# machine on its embedded default configuration (no config file needed).
# Until the milter daemon lands, this runs the resolver once: `check DOMAIN`
# (default example.com) through the system's resolvers, caching in
# /var/lib/mta-sts-milter/cache.db.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mta-sts-milter
./build/milter/mta-sts-milter --print-config
exec ./build/milter/mta-sts-milter check "${1:-example.com}"
