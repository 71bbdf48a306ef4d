#!/usr/bin/env bash
# The operator commands that need no servers: lint-policy, lint-txt, the
# cache subcommands and configuration errors, asserted through their JSON
# output and exit codes (README "The operator CLI"). Data first, one runner.
set -u
BIN=${MTASTS_BIN:?set MTASTS_BIN to the mta-sts-milter binary}
WORK=$(mktemp -d /tmp/mtasts-cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0

# expect NAME WANT_EXIT PYTHON_ASSERTION -- COMMAND...   (stdin from $STDIN if set)
# The assertion is a python expression over `j` (stdout parsed as JSON) or
# `out` (stdout text).
expect() {
  local name=$1 want=$2 assertion=$3; shift 4
  local out rc
  if [ -n "${STDIN:-}" ]; then out=$(printf '%b' "$STDIN" | "$@" 2>"$WORK/err"); rc=$?
  else out=$("$@" 2>"$WORK/err" </dev/null); rc=$?; fi
  if [ "$rc" != "$want" ]; then
    echo "FAIL $name: exit $rc, want $want; out=$out err=$(head -c 300 "$WORK/err")"; failed=$((failed + 1)); return
  fi
  if OUT="$out" ERR="$(cat "$WORK/err")" python3 -c '
import json, os, sys
out = os.environ["OUT"]
err = os.environ["ERR"]
try: j = json.loads(out)
except Exception: j = None
sys.exit(0 if eval(sys.argv[1]) else 1)' "$assertion"; then
    echo "ok $name"; passed=$((passed + 1))
  else
    echo "FAIL $name: assertion ($assertion) false; out=$out"; failed=$((failed + 1))
  fi
}

good='version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.Example.NET\nmx: MX1.example.com\nmax_age: 99999999\n'
printf "$good" >"$WORK/good.txt"

# ---- lint-policy (RFC 8461 §3.2, §4.1)
STDIN=$good expect lint-valid 0 'j["valid"] and j["mode"]=="enforce" and j["max_age"]==31557600 and j["mx"]==["mx1.example.com","*.example.net"] and j["errors"]==[]' -- "$BIN" lint-policy --json -
expect lint-file 0 'j["valid"]' -- "$BIN" lint-policy --json "$WORK/good.txt"
STDIN=$good expect lint-hosts 0 'j["hosts"]=={"mx1.example.com":True,"a.example.net":True,"a.b.example.net":False,"example.net":False,"mx2.example.com":False}' -- \
  "$BIN" lint-policy --json --mx mx1.example.com --mx a.example.net --mx a.b.example.net --mx example.net --mx mx2.example.com -
STDIN='version: STSv1\nmode: testing\nmax_age: 86400\n' expect lint-missing-mx 1 'not j["valid"] and j["mode"] is None and j["mx"] is None and any(e["rule"]=="missing-mx" for e in j["errors"])' -- "$BIN" lint-policy --json -
STDIN='version: STSv1\nmode: enforce\nmx: mx*.example.com\nmax_age: 1\n' expect lint-partial-wildcard 1 'any(e["rule"]=="bad-mx-pattern" and e["line"]==3 for e in j["errors"])' -- "$BIN" lint-policy --json -
STDIN='version: STSv2\nmode: Enforce\nmx: a.example\nmax_age: x\n' expect lint-many-errors 1 '{e["rule"] for e in j["errors"]} >= {"bad-version","bad-mode","bad-max-age"}' -- "$BIN" lint-policy --json -
STDIN='version: STSv1\r\nmode: none\r\nmax_age: 0\r\n' expect lint-crlf-none 0 'j["valid"] and j["mode"]=="none" and j["max_age"]==0 and j["mx"]==[]' -- "$BIN" lint-policy --json -
python3 -c 'import sys; sys.stdout.write("version: STSv1\nmode: none\nmax_age: 1\nx: " + "a" * 70000 + "\n")' >"$WORK/big.txt"
expect lint-too-large 1 'any(e["rule"]=="too-large" for e in j["errors"])' -- "$BIN" lint-policy --json "$WORK/big.txt"
STDIN='version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 5\n' expect lint-human 0 '"valid: mode=enforce" in out and "mx.example.com: allowed" in out' -- "$BIN" lint-policy --mx mx.example.com -
STDIN='version: STSv1\nmode: bogus\n' expect lint-human-line 1 '"-:2: bad-mode:" in out' -- "$BIN" lint-policy -
expect lint-unreadable 1 'True' -- "$BIN" lint-policy "$WORK/does-not-exist"

# ---- lint-txt (RFC 8461 §3.1)
expect txt-valid 0 'j=={"valid":True,"id":"20240101T1","errors":[]}' -- "$BIN" lint-txt --json 'v=STSv1; id=20240101T1;'
expect txt-with-spf 0 'j["valid"] and j["id"]=="abc"' -- "$BIN" lint-txt --json 'v=spf1 -all' 'v=STSv1;id=abc'
expect txt-two 1 'not j["valid"] and j["id"] is None and j["errors"][0].startswith("multiple-records")' -- "$BIN" lint-txt --json 'v=STSv1; id=1' 'v=STSv1; id=2'
expect txt-long-id 1 'not j["valid"] and j["errors"][0].startswith("syntax")' -- "$BIN" lint-txt --json "v=STSv1; id=$(printf 'a%.0s' {1..33})"
expect txt-none 1 'j["errors"][0].startswith("no-record")' -- "$BIN" lint-txt --json 'v=STSv10; id=1'
expect txt-ext 0 'j["valid"] and j["id"]=="1"' -- "$BIN" lint-txt --json 'v=STSv1; id=1; ext_1=value;'

# ---- cache subcommands against a private store
conf="$WORK/conf.toml"
printf '[store]\npath = "%s"\n[log]\nlevel = "warn"\n' "$WORK/cache.db" >"$conf"
now=$(date +%s)
cat >"$WORK/import.jsonl" <<JSON
{"domain":"Example.COM","txt_id":"7","raw":"version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n","fetched_at":$now}
{"domain":"b.example","txt_id":"1","raw":"version: STSv1\nmode: testing\nmx: *.b.example\nmax_age: 600\n"}
JSON
expect cache-import 0 'True' -- "$BIN" -c "$conf" cache import "$WORK/import.jsonl"
expect cache-list 0 'out.splitlines()[0].startswith("b.example mode=testing") and out.splitlines()[1].startswith("example.com mode=enforce txt_id=7")' -- "$BIN" -c "$conf" cache list
expect cache-show 0 'j["domain"]=="example.com" and j["policy"]["mx"]==["mx.example.com"] and j["expires_at"]==j["fetched_at"]+86400' -- "$BIN" -c "$conf" cache show example.com
expect cache-export 0 'len(out.splitlines())==2 and json.loads(out.splitlines()[1])["txt_id"]=="7"' -- "$BIN" -c "$conf" cache export
expect cache-show-normalised 0 'j["domain"]=="example.com"' -- "$BIN" -c "$conf" cache show Example.COM.
expect cache-forget 0 'True' -- "$BIN" -c "$conf" cache forget EXAMPLE.com.
expect cache-show-gone 1 'True' -- "$BIN" -c "$conf" cache show example.com
expect cache-forget-absent 1 '"nothing cached for example.com" in err' -- "$BIN" -c "$conf" cache forget example.com
printf '{"domain":"c.example","txt_id":"1","raw":"version: STSv1\\nmode: enforce\\n"}\nnot json\n' >"$WORK/bad.jsonl"
expect cache-import-bad 1 'True' -- "$BIN" -c "$conf" cache import "$WORK/bad.jsonl"
expect cache-after-bad 0 'len(out.splitlines())==1' -- "$BIN" -c "$conf" cache list
if sqlite3 "$WORK/cache.db" "SELECT mode, mx FROM policies WHERE domain='b.example';" | grep -qx 'testing|\*.b.example'; then
  echo "ok cache-sqlite-readable"; passed=$((passed + 1))
else
  echo "FAIL cache-sqlite-readable"; failed=$((failed + 1))
fi

# ---- configuration
printf '[dns]\ntimeout = 0\n' >"$WORK/bad-range.toml"
printf '[dns]\ntimeuot = 5\n' >"$WORK/bad-key.toml"
printf '[dns\n' >"$WORK/bad-syntax.toml"
expect config-range 78 'True' -- "$BIN" -c "$WORK/bad-range.toml" --print-config
expect config-key 78 'True' -- "$BIN" -c "$WORK/bad-key.toml" --print-config
expect config-syntax 78 'True' -- "$BIN" -c "$WORK/bad-syntax.toml" --print-config
expect config-missing 78 'True' -- "$BIN" -c "$WORK/nope.toml" --print-config
# --version: the version of project() in CMakeLists.txt, its one source.
VERSION=$(sed -n 's/^project(mta-sts-milter VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")
expect version 0 "out == 'mta-sts-milter $VERSION' and '$VERSION' != ''" -- "$BIN" --version
expect config-defaults 0 '"txt_recheck_interval = 60" in out and "path = \x27/var/lib/mta-sts-milter/cache.db\x27" in out' -- "$BIN" --print-config
contrib="$(cd "$(dirname "$0")/../.." && pwd)/contrib/mta-sts-milter.toml"
DEFAULTS=$("$BIN" --print-config) && export DEFAULTS
expect contrib-config-is-defaults 0 'out == os.environ["DEFAULTS"]' -- "$BIN" -c "$contrib" --print-config
# The example lists every key: after its comment lines it is --print-config.
export CONTRIB=$contrib
expect contrib-config-lists-every-key 0 \
  'out.strip() == "\n".join(l for l in open(os.environ["CONTRIB"]).read().splitlines() if not l.startswith("#")).strip()' \
  -- "$BIN" --print-config
expect check-bad-domain 1 'True' -- "$BIN" -c "$conf" check 'exa mple.com'
expect usage-error 1 'True' -- "$BIN" check

# ---- operator input echoed back (issue #10 item 9): control bytes (an
# escape sequence, a newline that would forge a line) become '?', and a
# 100,000-byte argument is cut (marked "..."), in every message that quotes it.
CTRL=$'exa\x1b[31mmple.com\nforged: line'
HUGE=$(printf 'a%.0s' {1..100000})
# Printable ASCII and newlines only, short; `want` must appear in it.
clean() { echo 'all(c == "\n" or " " <= c < "\x7f" for c in out + err) and len(out + err) < 1000 and '"$1"; }
expect echo-check-ctrl 1 "$(clean '"exa?[31mmple.com?forged: line" in err')" -- "$BIN" -c "$conf" check "$CTRL"
expect echo-check-huge 1 "$(clean '"aaa..." in err')" -- "$BIN" -c "$conf" check "$HUGE"
expect echo-check-json-huge 1 "$(clean '"aaa..." in err')" -- "$BIN" -c "$conf" check --json "$HUGE"
expect echo-cache-show-ctrl 1 "$(clean '"exa?[31mmple.com?forged" in err')" -- "$BIN" -c "$conf" cache show "$CTRL"
expect echo-cache-forget-huge 1 "$(clean '"aaa..." in err')" -- "$BIN" -c "$conf" cache forget "$HUGE"
expect echo-cache-import-ctrl 1 "$(clean '"cannot read /nonexistent/exa?[31m" in err')" -- "$BIN" -c "$conf" cache import "/nonexistent/$CTRL"
expect echo-lint-file-huge 1 "$(clean '"cannot read /aaa" in err and "..." in err')" -- "$BIN" lint-policy "/$HUGE"
STDIN=$good expect echo-lint-mx 0 "$(clean '"exa?[31mmple.com?forged: line: NOT allowed" in out and "aaa...: NOT allowed" in out')" -- \
  "$BIN" lint-policy --mx "$CTRL" --mx "$HUGE" -
STDIN=$good expect echo-lint-mx-json 0 "$(clean 'len(j["hosts"]) == 4 and j["hosts"]["??"] == False and j["hosts"]["mx1.example.com"]')" -- \
  "$BIN" lint-policy --json --mx "$CTRL" --mx "$HUGE" --mx $'\xff\xfe' --mx mx1.example.com -
expect echo-lint-txt 1 "$(clean 'out.startswith("invalid: ")')" -- "$BIN" lint-txt "v=STSv1; id=$CTRL" "$HUGE"
expect echo-usage-extra 1 "$(clean '"exa?[31mmple.com?forged" in err')" -- "$BIN" check a.example "$CTRL"
expect echo-usage-huge 1 "$(clean '"aaa..." in err')" -- "$BIN" check a.example "$HUGE"
expect echo-config-path 78 "$(clean '"/nonexistent/exa?[31mmple.com?forged" in err')" -- "$BIN" -c "/nonexistent/$CTRL" --print-config

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
