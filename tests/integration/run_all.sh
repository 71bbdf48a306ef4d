#!/usr/bin/env bash
# Runs every integration test script tests/integration/*.sh (except this
# one and deb_package.sh, which scripts/test.sh runs on its own), one after
# the other, as root. Each script sets up and tears down its
# own servers and exits non-zero on failure.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
# Prints "ok SCRIPT (Ns)" or "FAIL SCRIPT (exit N, Ns)" per script and last
# "N passed, M failed"; exits non-zero when any script failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
# Scripts that test other binaries of the same build look in BUILD_DIR.
export BUILD_DIR=${BUILD_DIR:-$(dirname "$(dirname "$MTASTS_BIN")")}
passed=0
failed=0
for script in "$HERE"/*.sh; do
  name=$(basename "$script")
  [ "$name" = run_all.sh ] && continue
  # The package test installs a release build on the machine: scripts/test.sh
  # runs it in a phase of its own, on the RelWithDebInfo tree.
  [ "$name" = deb_package.sh ] && continue
  start=$(date +%s)
  bash "$script"
  rc=$?
  took=$(( $(date +%s) - start ))
  if [ "$rc" = 0 ]; then
    echo "ok $name (${took}s)"; passed=$((passed + 1))
  else
    echo "FAIL $name (exit $rc, ${took}s)"; failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
