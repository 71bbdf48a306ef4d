#!/usr/bin/env bash
# Per-recipient decision latency benchmark (not a CI test): how long the
# milter takes to decide one recipient (milter::Session::on_rcpt: routing,
# policy, MX match, STARTTLS probe, action) with warm caches and for a domain
# it has never seen, against the policy lookup alone. Brings up the mail bed
# (tests/integration/lib/mailbed.sh) with
#   WARM + 3 x COLD enforce domains dNNNN.dec.plain.test (unsigned zone), each
#     with its own _mta-sts TXT record and policy host (tb_bulk_hosts, nginx,
#     certificates from the test CA) and its OWN MX host dNNNN.mx.dec.plain.test,
#     so no probe cache entry (host, address, port) serves two domains;
#     policy "mx: *.mx.dec.plain.test";
#   one SMTP peer (smtp_peer.py) on 127.25.1.1:25 behind every MX host,
#     offering STARTTLS with one test-CA certificate for *.mx.dec.plain.test
#     (RFC 8461 §4.2: a wildcard as the whole leftmost label);
# then runs inside the bed's namespace
#   decision_bench warm: WARM domains warmed once, DECISIONS timed decisions
#     per run round-robin, RUNS runs; baseline the Resolver's memory cache;
#   decision_bench cold: COLD decisions one at a time from empty caches,
#     interleaved with COLD cold policy resolutions of other domains
#     (baseline), then COLD more decisions by CALLERS concurrent Sessions.
# The bench fails (and so does this script) unless every decision was
# action=continue tls=verified, the warm runs did no DNS lookup, probe or peer
# connection, and the cold probes match the peer's connections one for one.
#
# Usage: bash tests/bench/run_decision_bench.sh        (as root)
#   BUILD_DIR        build tree with decision_bench (default: <repo>/build;
#                    built there when missing), or DECISION_BENCH_BIN
#   BENCH_WARM       warm domains (default 20)
#   BENCH_DECISIONS  timed warm decisions per run (default 100000)
#   BENCH_RUNS       warm runs (default 5)
#   BENCH_COLD       cold decisions, and baseline / concurrent domains each (default 300)
#   BENCH_CALLERS    callers of the concurrent cold run, 0: skip it (default 16)
#   BENCH_WARM_CALLERS  threads of the concurrent warm run after the single-caller runs (default 16; 1: none)
#   TB_KEEP=1        keep the bed's temporary directory
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../integration/lib/mailbed.sh
source "$ROOT/tests/integration/lib/mailbed.sh"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
BENCH_SRC=${DECISION_BENCH_BIN:-$BUILD_DIR/tests/decision_bench}
WARM=${BENCH_WARM:-20}
DECISIONS=${BENCH_DECISIONS:-100000}
RUNS=${BENCH_RUNS:-5}
COLD=${BENCH_COLD:-300}
CALLERS=${BENCH_CALLERS:-16}
WARM_CALLERS=${BENCH_WARM_CALLERS:-16}
CERTS=20                 # policy-host certificates / nginx addresses
PEER_ADDR=127.25.1.1     # outside mailbed's 127.25.0.N
MX_SUFFIX=mx.dec.plain.test
REAL_TTL=3600            # MX, A and negative TTL a warm sender sees
export TB_NEGATIVE_TTL=$REAL_TTL  # testbed.sh: the SOA's negative-answer TTL
RUN_TIMEOUT=300
BENCH_BIN="" CONF="" LISTS="" PEER_LOG=""

die() { echo "run_decision_bench: error: $*" >&2; exit 1; }
say() { echo "$*"; }

binary() {
  if [ ! -x "$BENCH_SRC" ]; then
    [ -z "${DECISION_BENCH_BIN:-}" ] || die "no decision_bench at $BENCH_SRC"
    say "building decision_bench in $BUILD_DIR"
    cmake --build "$BUILD_DIR" --target decision_bench -j2 >&2 || die "build of decision_bench failed"
    [ -x "$BENCH_SRC" ] || die "no $BENCH_SRC after the build"
  fi
}

# MX records (own host per domain, all on the one peer address) with a real
# TTL: the bed's default TTL of 1 s would send every warm decision to DNS.
mx_records() {
  local domain label records=()
  while IFS= read -r domain; do
    label=${domain%.plain.test}
    records+=("$label $REAL_TTL IN MX 10 ${label%%.*}.mx.dec"
              "${label%%.*}.mx.dec $REAL_TTL IN A $PEER_ADDR")
  done <"$LISTS/all"
  tb_dns_set plain _decmx "${records[@]}"
}

# The peer behind every MX host: STARTTLS with the wildcard certificate
# (mailbed's spec format, see mb_mx_add; mb_commit starts it).
mx_peer() {
  local cert="$MB_DIR/certs/mx-wildcard.crt"
  tb_cert_multi "$cert" "*.$MX_SUFFIX" || return 1
  MB_PEERS+=("$(jq -n -c --arg a "$PEER_ADDR" --arg n "mx.dec.plain.test" --arg c "$cert" \
    --arg k "$TB_DIR/ca/leaf.key" '{addr: $a, port: 25, name: $n, behaviour: "starttls", cert: $c, key: $k}')")
}

# LISTS/all -> warm, cold, baseline, concurrent (disjoint, in that order).
split_lists() {
  local from=1 name count
  for name in warm cold baseline concurrent; do
    case $name in warm) count=$WARM ;; *) count=$COLD ;; esac
    [ "$name" = concurrent ] && [ "$CALLERS" = 0 ] && count=0
    sed -n "${from},$((from + count - 1))p" "$LISTS/all" >"$LISTS/$name"
    [ "$(wc -l <"$LISTS/$name")" = "$count" ] || die "domain list $name: want $count domains"
    from=$((from + count))
  done
}

bed_up() {
  local total=$((WARM + 2 * COLD + (CALLERS > 0 ? COLD : 0)))
  mailbed_up || die "mail bed did not start"
  BENCH_BIN="$MB_DIR/bin/decision_bench" LISTS="$MB_DIR/lists" CONF="$MB_DIR/bench.toml"
  mkdir -p "$MB_DIR/bin" "$LISTS" || die "mkdir"
  # A copy: a rebuild during the run does not change what is measured.
  cp "$BENCH_SRC" "$BENCH_BIN" || die "copy decision_bench"
  PEER_LOG="$MB_DIR/peers/peers.log"
  printf 'version: STSv1\nmode: enforce\nmx: *.%s\nmax_age: 604800\n' "$MX_SUFFIX" >"$MB_DIR/policy.txt"
  tb_nginx_tune auto 1024
  tb_bulk_hosts plain 'd%04d.dec' "$total" "$CERTS" "$MB_DIR/policy.txt" >"$LISTS/all" || die "bulk hosts"
  split_lists
  mx_records || die "MX records"
  mx_peer || die "MX peer certificate"
  mb_commit || die "mb_commit (peer, DNS, nginx)"
  # The TXT id is re-checked after a day and a verified probe kept as long
  # (the run stays well inside the 300 s cap of the MX/TLSA/address cache).
  mb_milter_config "$CONF" policy.txt_recheck_interval=86400 probe.success_ttl=86400 'log.level="warn"' ||
    die "config"
  bed_check "$(head -n 1 "$LISTS/all")"
  bed_check "$(tail -n 1 "$LISTS/all")"
}

# bed_check DOMAIN: TXT, MX with the real TTL, a negative answer with the
# real TTL, the policy over HTTPS and STARTTLS with a verified wildcard name.
bed_check() {
  local domain=$1 mx txt answer group code tls
  mx="${domain%%.*}.$MX_SUFFIX"
  txt=$(tb_exec dig +short +time=2 +tries=1 @"$TB_DNS_ADDR" TXT "_mta-sts.$domain")
  [ "$txt" = '"v=STSv1; id=1"' ] || die "bed: TXT of $domain is '$txt'"
  answer=$(tb_exec dig +noall +answer +time=2 +tries=1 @"$TB_DNS_ADDR" MX "$domain")
  [ "$(awk '{ print $2, $5, $6 }' <<<"$answer")" = "$REAL_TTL 10 $mx." ] || die "bed: MX of $domain: $answer"
  answer=$(tb_exec dig +noall +authority +time=2 +tries=1 @"$TB_DNS_ADDR" AAAA "$mx")
  [ "$(awk '$4 == "SOA" { print $2, $NF }' <<<"$answer")" = "$REAL_TTL $REAL_TTL" ] ||
    die "bed: negative answer for AAAA $mx: $answer"
  group=$(( (10#${domain:1:4} - 1) % CERTS + 1 ))
  code=$(tb_exec curl -sS --max-time 5 --cacert "$TB_CA_FILE" -o /dev/null -w '%{http_code}' \
    --resolve "mta-sts.$domain:443:127.1.100.$group" "https://mta-sts.$domain/.well-known/mta-sts.txt" 2>&1)
  [ "$code" = 200 ] || die "bed: policy of $domain: $code"
  tls=$(tb_exec timeout 10 openssl s_client -connect "$PEER_ADDR:25" -starttls smtp -brief \
    -verify_hostname "$mx" -CAfile "$TB_CA_FILE" -verify_return_error </dev/null 2>&1)
  grep -q '^Verification: OK' <<<"$tls" || die "bed: STARTTLS to $mx: $(head -n 3 <<<"$tls")"
}

# bench ARGS...: decision_bench in the namespace; its output is shown, a
# failure (a decision not as expected, network work in the warm runs) is fatal.
bench() {
  timeout --foreground "$RUN_TIMEOUT" ip netns exec "$TB_NS" "$BENCH_BIN" "$@" -c "$CONF" \
    --peer-log "$PEER_LOG" || die "decision_bench $1 failed (exit $?): see above"
}

main() {
  local start=$SECONDS concurrent=()
  [ "$(id -u)" = 0 ] || die "must run as root"
  binary
  bed_up
  say "bed: namespace $TB_NS; $WARM + 3 x $COLD domains dNNNN.dec.plain.test (unsigned), own MX host each," \
    "one STARTTLS peer $PEER_ADDR:25 (*.$MX_SUFFIX); TTLs ${REAL_TTL}s; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
  say "== warm (decision_bench warm)"
  bench warm --domain-file "$LISTS/warm" --decisions "$DECISIONS" --runs "$RUNS" --callers "$WARM_CALLERS"
  say "== cold (decision_bench cold)"
  [ "$CALLERS" = 0 ] || concurrent=(--concurrent-file "$LISTS/concurrent" --callers "$CALLERS")
  bench cold --domain-file "$LISTS/cold" --baseline-file "$LISTS/baseline" "${concurrent[@]}"
  say "== done: every decision action=continue tls=verified; load $(cut -d' ' -f1-3 /proc/loadavg);" \
    "total time $((SECONDS - start))s"
}

main "$@"
