#!/usr/bin/env bash
# The Prometheus endpoint of the real daemon (README "Metrics"), in a network
# namespace of its own (the counters moving with real mail are checked by the
# `metric` rows of milter_postfix.sh):
#   scrape          GET /metrics: 200, text/plain version 0.0.4
#   format          every line a comment or "name{labels} value"; every
#                   metric has HELP and TYPE; histogram buckets cumulative
#                   and ending at le="+Inf" = _count
#   other-paths     GET / is 404, POST /metrics 405
#   dashboard       every metric the Grafana dashboard (contrib/grafana) asks
#                   for is in the scrape
#   readme          every metric the README's table lists is in the scrape,
#                   and every metric in the scrape is in the README's table
#   off-by-default  without metrics.listen nothing listens on the port
#   unix-socket     metrics.listen = unix:PATH serves the same over a unix
#                   socket (curl --unix-socket)
#   address-grammar metrics.listen takes milter.socket's grammar: the form
#                   ADDRESS:PORT is refused (exit 78) with the reason
#
# Usage: metrics_endpoint.sh   (as root; MTASTS_BIN: the executable)
# Prints "ok NAME" / "FAIL NAME: why", then "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
# shellcheck source-path=SCRIPTDIR source=lib/offline_config.sh
source "$HERE/lib/offline_config.sh"
ROOT=$(cd "$HERE/../.." && pwd)
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
DASHBOARD="$ROOT/contrib/grafana/mta-sts-milter.json"
WORK=$(mktemp -d) || exit 1
trap 'rm -rf "$WORK"' EXIT

write_config() {  # write_config FILE [METRICS_LISTEN]
  offline_config "$1" 'inet:18898@127.0.0.1' "$WORK/state/cache.db"
  [ -z "${2:-}" ] || printf "[metrics]\nlisten = '%s'\n" "$2" >>"$1"
}

run_in_namespace() {
  cat >"$WORK/inner.sh" <<'EOF'
set -u
WORK=$1 BIN=$2
ip link set lo up
scrape_while_running() {  # CONF OUT_PREFIX
  "$BIN" -c "$1" 2>"$2.log" &
  local pid=$!
  for _ in $(seq 100); do grep -q 'milter event=started' "$2.log" && break; sleep 0.1; done
  sleep 0.2
  curl -sS -D "$2.headers" -o "$2.body" http://127.0.0.1:19490/metrics 2>"$2.curl"
  curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:19490/ >"$2.root" 2>>"$2.curl"
  curl -sS -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:19490/metrics >"$2.post" 2>>"$2.curl"
  kill -TERM "$pid"
  wait "$pid"
  echo $? >"$2.rc"
}
scrape_while_running "$WORK/on.toml" "$WORK/on"
scrape_while_running "$WORK/off.toml" "$WORK/off"
"$BIN" -c "$WORK/unix.toml" 2>"$WORK/unix.log" &
pid=$!
for _ in $(seq 100); do grep -q 'milter event=started' "$WORK/unix.log" && break; sleep 0.1; done
curl -sS --unix-socket "$WORK/metrics.sock" -D "$WORK/unix.headers" -o "$WORK/unix.body" \
  http://localhost/metrics 2>"$WORK/unix.curl"
kill -TERM "$pid"
wait "$pid"
EOF
  timeout 60 unshare -n bash "$WORK/inner.sh" "$WORK" "$MTASTS_BIN" >"$WORK/inner.log" 2>&1
}

check_scrape() {
  grep -q '^HTTP/1.1 200' "$WORK/on.headers" 2>/dev/null || { echo "status: $(head -n 1 "$WORK/on.headers" 2>/dev/null) $(cat "$WORK/on.curl" "$WORK/on.log" 2>/dev/null | tail -n 3)"; return; }
  grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/on.headers" || echo "content type: $(grep -i content-type "$WORK/on.headers")"
  [ "$(cat "$WORK/on.rc")" = 0 ] || echo "exit status $(cat "$WORK/on.rc")"
}

check_format() {
  python3 - "$WORK/on.body" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? (-?[0-9.e+]+|\+Inf)$')
helps, types, names, buckets, counts = set(), {}, set(), {}, {}
problems = []
for line in lines:
    if line.startswith("# HELP "):
        helps.add(line.split()[2]); continue
    if line.startswith("# TYPE "):
        types[line.split()[2]] = line.split()[3]; continue
    m = sample.match(line)
    if not m:
        problems.append("bad line: " + line); continue
    name = m.group(1)
    base = re.sub(r'_(bucket|sum|count)$', '', name) if re.sub(r'_(bucket|sum|count)$', '', name) in types and types[re.sub(r'_(bucket|sum|count)$', '', name)] == "histogram" else name
    names.add(base)
    if name.endswith("_bucket"):
        buckets.setdefault(base, []).append((m.group(2), float(m.group(3))))
    if name.endswith("_count") and base in types and types[base] == "histogram":
        counts[base] = float(m.group(3))
for n in names:
    if n not in helps or n not in types:
        problems.append("no HELP/TYPE for " + n)
for base, bs in buckets.items():
    values = [v for _, v in bs]
    if values != sorted(values): problems.append(base + " buckets not cumulative")
    if 'le="+Inf"' not in bs[-1][0] or values[-1] != counts.get(base): problems.append(base + " does not end at +Inf = _count")
if len(types) < 24: problems.append("only %d metrics" % len(types))
print("; ".join(problems))
PY
}

check_other_paths() {
  [ "$(cat "$WORK/on.root" 2>/dev/null)" = 404 ] || echo "GET / gave $(cat "$WORK/on.root" 2>/dev/null)"
  [ "$(cat "$WORK/on.post" 2>/dev/null)" = 405 ] || echo "POST /metrics gave $(cat "$WORK/on.post" 2>/dev/null)"
}

exposed() { sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p' "$WORK/on.body" | sort -u; }

check_dashboard() {
  local missing="" name
  for name in $(jq -r '.panels[].targets[].expr' "$DASHBOARD" | grep -oE 'mtasts_[a-z_]+' |
      sed -E 's/_(bucket|sum|count)$//' | sort -u); do
    exposed | grep -qx "$name" || missing+="$name "
  done
  [ -n "$(jq -r '.panels[].targets[].expr' "$DASHBOARD")" ] || missing+="(no expressions at all) "
  [ -z "$missing" ] || echo "the dashboard uses metrics the daemon does not expose: $missing"
}

check_readme() {
  local documented missing="" extra="" name
  documented=$(sed -n '/^## Metrics/,/^## /p' "$ROOT/README.md" | grep -oE '^\| `mtasts_[a-z_]+`' | grep -oE 'mtasts_[a-z_]+' | sort -u)
  [ -n "$documented" ] || { echo "no metric table in README \"## Metrics\""; return; }
  for name in $documented; do exposed | grep -qx "$name" || missing+="$name "; done
  for name in $(exposed); do grep -qx "$name" <<<"$documented" || extra+="$name "; done
  [ -z "$missing" ] || echo "README lists metrics not exposed: $missing; "
  [ -z "$extra" ] || echo "exposed but not in README's table: $extra"
}

check_unix_socket() {
  grep -q '^HTTP/1.1 200' "$WORK/unix.headers" 2>/dev/null ||
    { echo "status: $(head -n 1 "$WORK/unix.headers" 2>/dev/null) $(cat "$WORK/unix.curl" "$WORK/unix.log" 2>/dev/null | tail -n 3)"; return; }
  grep -q '^# TYPE mtasts_decisions_total counter' "$WORK/unix.body" || echo "no mtasts_decisions_total in the body"
  grep -q "metrics event=listening address=unix:$WORK/metrics.sock " "$WORK/unix.log" || echo "no listening line"
}

check_address_grammar() {
  local out rc
  write_config "$WORK/old-form.toml" 127.0.0.1:19490
  out=$("$MTASTS_BIN" -c "$WORK/old-form.toml" --print-config 2>&1); rc=$?
  [ "$rc" = 78 ] || echo -n "exit status $rc (want 78); "
  grep -q 'metrics.listen' <<<"$out" || echo -n "the refusal does not name metrics.listen: $(tail -n 1 <<<"$out")"
}

check_off() {
  [ "$(cat "$WORK/off.rc" 2>/dev/null)" = 0 ] || echo "exit status $(cat "$WORK/off.rc" 2>/dev/null)"
  [ ! -s "$WORK/off.body" ] || echo "something answered on the metrics port without metrics.listen"
  ! grep -q 'metrics event=listening' "$WORK/off.log" || echo "a listening line without metrics.listen"
}

main() {
  [ -x "$MTASTS_BIN" ] || { report setup "MTASTS_BIN '$MTASTS_BIN' is not an executable"; return 1; }
  write_config "$WORK/on.toml" inet:19490@127.0.0.1
  write_config "$WORK/off.toml"
  write_config "$WORK/unix.toml" "unix:$WORK/metrics.sock"
  sed -i 's/18898/18899/' "$WORK/unix.toml"
  run_in_namespace || report setup "namespace run failed: $(tail -n 5 "$WORK/inner.log")"
  report scrape "$(check_scrape)"
  report format "$(check_format)"
  report other-paths "$(check_other_paths)"
  report dashboard "$(check_dashboard)"
  report readme "$(check_readme)"
  report off-by-default "$(check_off)"
  report unix-socket "$(check_unix_socket)"
  report address-grammar "$(check_address_grammar)"
  report_summary
}

main "$@"
