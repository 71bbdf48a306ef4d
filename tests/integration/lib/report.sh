# shellcheck shell=bash
# The result lines every integration script prints: "ok NAME", or
# "FAIL NAME: why" with the reason on one line, counted in PASSED and FAILED;
# the scripts end with "N passed, M failed" (report_summary: status 0 when
# nothing failed). Sourced; run_all.sh and scripts/test.sh read these lines.
PASSED=0
FAILED=0

report() {  # report NAME WHY ("" = ok)
  if [ -z "$2" ]; then echo "ok $1"; PASSED=$((PASSED + 1))
  else echo "FAIL $1: $(tr '\n' ' ' <<<"$2")"; FAILED=$((FAILED + 1)); fi
}

report_summary() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
}
