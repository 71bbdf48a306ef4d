#!/usr/bin/env bash
# RFC 8460 §4.4 reports (policy/tlsrpt_report.h) against the JSON Schema
# tests/schema/tlsrpt-report.schema.json (draft 2020-12, formats checked):
#   schema            the schema itself is a valid draft 2020-12 schema
#   examples          policy_tlsrpt_report_test's WritesExampleReports writes
#                     every report it builds (fixture and edge cases) to
#                     $TLSRPT_REPORT_OUT; at least 15 files
#   valid FILE        each one validates, its name has the §5.1 form
#                     SENDER!POLICY-DOMAIN!BEGIN!END.json with END = BEGIN +
#                     86399, the document's policy-domain and
#                     start-datetime match the name, and SENDER is the
#                     domain of contact-info (§5.1)
#   rejects-NAME      the schema refuses the fixture's example.com report
#                     broken on purpose (so that "valid" can fail): a missing
#                     report-id, an unknown policy-type or result-type, a date
#                     without time, counts as strings or negative, policies
#                     or mx-host not arrays, a U-label domain, a bad IP, a
#                     misspelt key
# Needs Debian's python3-jsonschema (run by /usr/bin/python3; PYTHON to
# override). No root, no network. KEEP=1 keeps the work folder.
#   BUILD_DIR  the build folder holding tests/policy_tlsrpt_report_test
#              (default: <repo>/build)
# Prints "ok NAME" or "FAIL NAME: why" per check and last "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TEST_BIN=${BUILD_DIR:-$ROOT/build}/tests/policy_tlsrpt_report_test
SCHEMA=$ROOT/tests/schema/tlsrpt-report.schema.json
PYTHON=${PYTHON:-/usr/bin/python3}

WORK=$(mktemp -d /tmp/mtasts-tlsrpt-schema.XXXXXX)
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

passed=0
failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

if [ ! -x "$TEST_BIN" ]; then
  echo "FAIL setup: no $TEST_BIN (build the target policy_tlsrpt_report_test; BUILD_DIR)"
  exit 1
fi
if ! "$PYTHON" -c 'import jsonschema' 2>/dev/null; then
  echo "FAIL setup: $PYTHON cannot import jsonschema (apt-get install python3-jsonschema)"
  exit 1
fi

if TLSRPT_REPORT_OUT=$WORK/reports "$TEST_BIN" --gtest_filter=PolicyTlsrptReport.WritesExampleReports \
  >"$WORK/test.log" 2>&1; then
  ok examples
else
  fail examples "the test failed: $(grep -m1 -E 'Failure|FAILED' "$WORK/test.log")"
fi

# The Python part prints ok/FAIL lines of its own; they are counted here.
while IFS= read -r line; do
  case $line in
    ok\ *) ok "${line#ok }" ;;
    FAIL\ *) rest=${line#FAIL }; fail "${rest%%: *}" "${rest#*: }" ;;
    *) fail python "$line" ;;
  esac
done < <("$PYTHON" - "$SCHEMA" "$WORK/reports" 2>&1 <<'PY'
import copy, json, pathlib, re, sys, calendar, datetime
import jsonschema

schema = json.loads(pathlib.Path(sys.argv[1]).read_text())
root = pathlib.Path(sys.argv[2])
Validator = jsonschema.Draft202012Validator
try:
    Validator.check_schema(schema)
    print("ok schema")
except jsonschema.exceptions.SchemaError as e:
    print(f"FAIL schema: {e.message}")
    sys.exit(0)
validator = Validator(schema, format_checker=Validator.FORMAT_CHECKER)

def problem(doc):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    e = errors[0]
    return "/".join(map(str, e.absolute_path)) + ": " + e.message[:120]

name_form = re.compile(r"^([^!]+)!([^!]+)!([0-9]+)!([0-9]+)\.json$")
files = sorted(root.rglob("*.json")) if root.is_dir() else []
if len(files) < 15:
    print(f"FAIL examples-count: {len(files)} report files, expected at least 15")
for path in files:
    label = "valid " + str(path.relative_to(root))
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        print(f"FAIL {label}: not UTF-8 JSON: {e}")
        continue
    why = problem(doc)
    m = name_form.match(path.name)
    if why is None and not m:
        why = "file name is not SENDER!DOMAIN!BEGIN!END.json"
    if why is None:
        begin, end = int(m.group(3)), int(m.group(4))
        start = doc["date-range"]["start-datetime"]
        day = datetime.datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ")
        if end != begin + 86399 or calendar.timegm(day.timetuple()) != begin:
            why = f"timestamps {begin}!{end} do not cover {start}"
        elif any(p["policy"]["policy-domain"] != m.group(2) for p in doc["policies"]):
            why = f"a policy-domain is not {m.group(2)}"
        elif doc["contact-info"].rpartition("@")[2] != m.group(1):
            why = f"sender {m.group(1)} is not the contact-info's domain (section 5.1)"
    print(f"FAIL {label}: {why}" if why else f"ok {label}")

base_files = [p for p in files if p.parent.name == "fixture" and "!example.com!" in p.name]
if not base_files:
    print("FAIL rejects: no fixture report for example.com to break")
    sys.exit(0)
base = json.loads(base_files[0].read_text())

def pol(d): return d["policies"][1]["policy"]
def detail(d): return d["policies"][1]["failure-details"][0]

def breaks():
    yield "missing-report-id", lambda d: d.pop("report-id")
    yield "policy-type", lambda d: pol(d).__setitem__("policy-type", "dane")
    yield "result-type", lambda d: detail(d).__setitem__("result-type", "tls-failed")
    yield "date-only", lambda d: d["date-range"].__setitem__("end-datetime", "2026-12-05")
    yield "count-as-string", lambda d: detail(d).__setitem__("failed-session-count", "7")
    yield "negative-count", lambda d: d["policies"][1]["summary"].__setitem__("total-successful-session-count", -1)
    yield "policies-object", lambda d: d.__setitem__("policies", d["policies"][1])
    yield "mx-host-string", lambda d: pol(d).__setitem__("mx-host", "mx1.example.com")
    yield "policy-string-string", lambda d: pol(d).__setitem__("policy-string", "version: STSv1")
    yield "u-label-domain", lambda d: pol(d).__setitem__("policy-domain", "b\u00fccher.example")
    yield "bad-ip", lambda d: detail(d).__setitem__("sending-mta-ip", "999.0.2.1")
    yield "misspelt-key", lambda d: detail(d).__setitem__("failure-reason", "x")

for name, damage in breaks():
    doc = copy.deepcopy(base)
    damage(doc)
    if problem(doc) is None:
        print(f"FAIL rejects-{name}: the schema accepted it")
    else:
        print(f"ok rejects-{name}")
PY
)

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
