#!/usr/bin/env bash
# End-to-end policy resolution scenarios (RFC 8461 §3 discovery and fetch,
# §5 application, §8.1 refresh; RFC 8460 result types) for
# `mta-sts-milter check --json`, against real NSD, nginx and a test CA in a
# private network namespace (lib/testbed.sh). Data: scenarios/hosts.table and
# scenarios/steps.table; this script only interprets them.
#
# Usage: check_scenarios.sh [--bed-only] [SCENARIO...]   (as root)
#   MTASTS_BIN  the executable (default: <repo>/build/milter/mta-sts-milter)
#   TB_KEEP=1   keep the bed's temporary directory for inspection
# Prints "ok NAME" or "FAIL NAME: why" per scenario (details on stderr) and
# last "N passed, M failed"; exits non-zero when anything failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
ROOT=$(cd "$HERE/../.." && pwd)
source "$HERE/lib/testbed.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
HOSTS_TABLE="$HERE/scenarios/hosts.table"
STEPS_TABLE=${TB_STEPS_TABLE:-$HERE/scenarios/steps.table}
POLICY_DIR="$HERE/scenarios/policies"

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }

# split_row LINE -> FIELDS array ('|'-separated, trimmed).
split_row() {
  local raw f
  IFS='|' read -r -a raw <<<"$1"
  FIELDS=()
  for f in "${raw[@]}"; do FIELDS+=("$(trim "$f")"); done
}

# table_rows FILE: rows without comments and blank lines.
table_rows() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1"; }

policy_file() {  # policy_file NAME -> path of the body to serve
  if [ "$1" = big ]; then
    local f="$TB_DIR/big-policy.txt"
    [ -f "$f" ] || { cat "$POLICY_DIR/enforce.txt"
                     head -c 70000 /dev/zero | tr '\0' 'x' | fold -w 70; } >"$f"
    echo "$f"
  else
    echo "$POLICY_DIR/$1.txt"
  fi
}

setup_hosts() {
  local line zone label
  while IFS= read -r line; do
    split_row "$line"
    zone=${FIELDS[0]}; label=${FIELDS[1]}
    tb_host_add "$zone" "$label" "${FIELDS[2]}" "${FIELDS[3]}" "${FIELDS[@]:5}" || return 1
    if [ "${FIELDS[3]}" != none ] && [ "${FIELDS[4]}" != - ]; then
      tb_policy_set "mta-sts.$label.$zone.test" "$(policy_file "${FIELDS[4]}")" || return 1
    fi
  done < <(table_rows "$HOSTS_TABLE")
  tb_commit
}

# The bed itself, through the validating Unbound and curl: a failure here
# means scenario failures say nothing about the CLI.
bed_check() {
  local why="" out
  out=$(tb_exec dig +time=2 +tries=1 @"$TB_RESOLVER_ADDR" TXT _mta-sts.enforce.plain.test)
  grep -q 'status: NOERROR' <<<"$out" && ! grep -q 'flags:.* ad' <<<"$out" ||
    why+="plain.test not insecure; "
  out=$(tb_exec dig +time=2 +tries=1 @"$TB_RESOLVER_ADDR" TXT _mta-sts.dnssec.secure.test)
  grep -q 'flags:.* ad' <<<"$out" || why+="secure.test not secure; "
  out=$(tb_exec dig +time=2 +tries=1 @"$TB_RESOLVER_ADDR" TXT _mta-sts.nosts.secure.test)
  grep -q 'status: NXDOMAIN' <<<"$out" && grep -q 'flags:.* ad' <<<"$out" ||
    why+="secure NXDOMAIN not proven; "
  out=$(tb_exec dig +time=2 +tries=1 @"$TB_RESOLVER_ADDR" TXT _mta-sts.bogus.bogus.test)
  grep -q 'status: SERVFAIL' <<<"$out" || why+="bogus.test not bogus; "
  out=$(tb_exec curl -sS --max-time 5 --cacert "$TB_CA_FILE" -o /dev/null -w '%{http_code}' \
        --resolve mta-sts.enforce.plain.test:443:127.1.0.1 \
        https://mta-sts.enforce.plain.test/.well-known/mta-sts.txt 2>&1)
  [ "$out" = 200 ] || why+="nginx: $out; "
  sleep 0.2
  : >"$TB_DIR/nginx/access.log"  # the bed's own requests do not count
  report bed "${why%; }"
}

# ------------------------------------------------------------ one scenario
# State of the running scenario.
S_DIR="" S_CONF="" S_NOW=0 S_OVERRIDES=()

cli() {  # cli ARGS... -> stdout in $S_DIR/out, stderr in $S_DIR/err, rc
  [ -f "$S_CONF" ] || tb_config "$S_CONF" "${S_OVERRIDES[@]}"
  # The scenario's clock, frozen at S_NOW for the wall clock only
  # (faketime(1); timeouts keep the real monotonic clock). -f freezes it:
  # without -f it starts at S_NOW plus the real clock's fraction of a second
  # and runs on, so a slow start (an ASan build) read S_NOW+1.
  timeout 60 ip netns exec "$TB_NS" env TZ=UTC FAKETIME_DONT_FAKE_MONOTONIC=1 \
    faketime -f "$(TZ=UTC date -d "@$S_NOW" '+%Y-%m-%d %H:%M:%S')" \
    "$MTASTS_BIN" -c "$S_CONF" "$@" >"$S_DIR/out" 2>"$S_DIR/err"
}

expand_value() {  # now / now+N -> unix seconds at the fake clock
  case $1 in
    now) echo "$S_NOW" ;;
    now+*) echo $((S_NOW + ${1#now+})) ;;
    *) echo "$1" ;;
  esac
}

json_field() {  # json_field FILE KEY -> value as text (arrays joined by ",")
  jq -r --arg k "$2" 'getpath($k | split(".")) |
    if type == "array" then join(",") elif type == "null" then "null" else tostring end' "$1"
}

# expect_json FILE RC EXPECT... -> mismatches on stdout ("" when all match)
expect_json() {
  local file=$1 rc=$2 kv key want got; shift 2
  if ! jq -e -s 'length == 1 and (.[0] | type == "object")' "$file" >/dev/null 2>&1; then
    echo "not exactly one JSON object on stdout (exit $rc): $(head -c 300 "$file") stderr: $(tail -n 3 "$S_DIR/err" | tr '\n' ' ' | head -c 400)"
    return
  fi
  for kv in "$@"; do
    key=${kv%%=*}; want=$(expand_value "${kv#*=}")
    case $key in
      exit) got=$rc ;;
      within) [ "$ELAPSED_MS" -le $((want * 1000)) ] || echo -n "took ${ELAPSED_MS} ms (want <= ${want} s); "
              continue ;;
      *) got=$(json_field "$file" "$key") ;;
    esac
    [ "$got" = "$want" ] || echo -n "$key=$got (want $want); "
  done
}

step_check() {
  local rc why start
  start=$(date +%s%N)
  cli check --json "$1"; rc=$?
  ELAPSED_MS=$(( ($(date +%s%N) - start) / 1000000 ))
  shift
  why=$(expect_json "$S_DIR/out" "$rc" "$@")
  [ -z "$why" ] || echo "${why%; } json=$(jq -c . "$S_DIR/out" 2>/dev/null)"
}

step_hits() {  # step_hits LABEL.ZONE [PATH] N
  local host path="" want got
  read -r host path <<<"$1"
  want=$2
  for _ in $(seq 20); do  # nginx logs after the client has its answer
    got=$(tb_hits "mta-sts.$host.test" "$path")
    [ "$got" -ge "$want" ] && break
    sleep 0.1
  done
  sleep 0.1
  got=$(tb_hits "mta-sts.$host.test" "$path")
  [ "$got" = "$want" ] || echo "requests to mta-sts.$host.test$path: $got (want $want)"
}

step_stored() {  # step_stored DOMAIN KEY=VALUE...
  local domain=$1 rc line kv key want got; shift
  cli cache export; rc=$?
  line=$(jq -c --arg d "$domain" 'select(.domain == $d)' "$S_DIR/out" 2>/dev/null)
  [ "$rc" = 0 ] && [ -n "$line" ] ||
    { echo "cache export (exit $rc) has no line for $domain: $(head -c 300 "$S_DIR/out")"; return; }
  echo "$line" >"$S_DIR/stored.json"
  for kv in "$@"; do
    key=${kv%%=*}; want=$(expand_value "${kv#*=}")
    got=$(json_field "$S_DIR/stored.json" "$key")
    [ "$got" = "$want" ] || echo -n "stored $key=$got (want $want); "
  done
}

step_import() {  # step_import DOMAIN "POLICY TXT_ID AGE"
  local domain=$1 policy id age at rc
  read -r policy id age <<<"$2"
  at=$((S_NOW - age))
  jq -n -c --arg d "$domain" --arg id "$id" --rawfile raw "$(policy_file "$policy")" \
    --argjson at "$at" \
    '{domain: $d, txt_id: $id, raw: $raw, fetched_at: $at,
      expires_at: ($at + ($raw | capture("max_age: *(?<n>[0-9]+)").n | tonumber)),
      last_checked: $at, last_used: $at, dnssec: "secure", last_error: ""}' \
    >"$S_DIR/import.jsonl"
  cli cache import "$S_DIR/import.jsonl"; rc=$?
  [ "$rc" = 0 ] || echo "cache import exit $rc: $(tail -n 2 "$S_DIR/err" | tr '\n' ' ')"
}

step_refresh() {  # step_refresh "ARGS" "exit=N [lines=N]"
  local rc args exp kv want got
  read -r -a args <<<"$1"
  read -r -a exp <<<"$2"
  cli cache refresh "${args[@]}"; rc=$?
  for kv in "${exp[@]}"; do
    want=${kv#*=}
    case ${kv%%=*} in
      exit) got=$rc ;;
      lines) got=$(jq -c . "$S_DIR/out" 2>/dev/null | wc -l) ;;
      *) echo -n "unknown expectation $kv; "; continue ;;
    esac
    [ "$got" = "$want" ] || echo -n "cache refresh ${args[*]}: ${kv%%=*}=$got (want $want); "
  done
  [ "$rc" = 0 ] || echo "stderr: $(tail -n 2 "$S_DIR/err" | tr '\n' ' ')"
}

# run_step ACTION FIELDS... -> why on stdout ("" = passed)
run_step() {
  local action=$1; shift
  local exp=()
  read -r -a exp <<<"${2:-}"
  case $action in
    config|advance) ;;  # scenario state: applied by run_scenario
    check)   step_check "$1" "${exp[@]}" ;;
    txt)     local label=${1%.*} zone=${1##*.}; shift
             tb_txt_set "$zone" "$label" "$@" >/dev/null 2>"$S_DIR/dns.err" ||
               echo "DNS update failed: $(tail -n 2 "$S_DIR/dns.err" | tr '\n' ' ')" ;;
    policy)  if [ "$2" = - ]; then tb_policy_set "mta-sts.$1.test" -
             else tb_policy_set "mta-sts.$1.test" "$(policy_file "$2")"; fi ;;
    hits)    step_hits "$1" "$2" ;;
    stored)  step_stored "$1" "${exp[@]}" ;;
    import)  step_import "$1" "$2" ;;
    refresh) step_refresh "$1" "$2" ;;
    *)       echo "unknown action '$action'" ;;
  esac
}

run_scenario() {  # run_scenario NAME: every step of NAME, stops at the first failure
  local name=$1 line n=0 why=""
  S_DIR="$TB_DIR/run/$name" S_CONF="$TB_DIR/run/$name/mtasts.toml"
  S_NOW=$(date +%s) S_OVERRIDES=()
  mkdir -p "$S_DIR"
  while IFS= read -r line; do
    split_row "$line"
    [ "${FIELDS[0]}" = "$name" ] || continue
    n=$((n + 1))
    case ${FIELDS[1]} in  # state of this shell, not of run_step's subshell
      advance) S_NOW=$((S_NOW + FIELDS[2])) ;;
      config) read -r -a S_OVERRIDES <<<"${FIELDS[2]}"; rm -f "$S_CONF" ;;
    esac
    why=$(run_step "${FIELDS[@]:1}")
    if [ -n "$why" ]; then
      why="step $n (${FIELDS[1]} ${FIELDS[2]}): $why"
      { echo "  $name stderr:"; sed 's/^/    /' "$S_DIR/err" 2>/dev/null | tail -n 5; } >&2
      break
    fi
  done < <(table_rows "$STEPS_TABLE")
  report "$name" "$why"
}

main() {
  local bed_only=0 names=() name
  [ "${1:-}" = --bed-only ] && { bed_only=1; shift; }
  names=("$@")
  if [ "$bed_only" = 0 ] && ! [ -x "$MTASTS_BIN" ]; then
    report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  if ! { testbed_up && setup_hosts; }; then
    report setup "test bed did not start"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  bed_check
  if [ "$bed_only" = 0 ]; then
    [ ${#names[@]} -gt 0 ] ||
      mapfile -t names < <(table_rows "$STEPS_TABLE" | cut -d'|' -f1 | tr -d ' \t' | awk '!seen[$0]++')
    for name in "${names[@]}"; do run_scenario "$name"; done
  fi
  report_summary
}

main "$@"
