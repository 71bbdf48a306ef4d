#!/usr/bin/env bash
# `mta-sts-milter report send` (RFC 8460 §3, §5) against real servers in the
# bed's network namespace (lib/report_bed.sh): the validating Unbound and NSD
# serving _smtp._tls records and a DKIM key in the signed zone secure.test,
# HTTPS sinks (lib/https_sink.py) with test-CA certificates, and a private
# Postfix delivering report mail to Maildirs. Each scenario has its own store,
# seeded with sqlite3 with the TLSRPT counts of one day two days back (a day
# is built only once it is over), and runs `report send --now --day DAY`.
#   bed              _smtp._tls answers are DNSSEC-secure, the DKIM key and
#                    the sinks' names resolve, the sink's certificate verifies
#   https-*          rua=https: one POST, Content-Type application/tlsrpt+gzip,
#                    the gunzipped JSON holds the seeded counts, the bytes are
#                    those `report build --out` writes; status delivered; a
#                    second send posts nothing
#   retry-*          the sink answers 503 then 200: pending with last_error
#                    "https 503", not_before 300 s later; runs now and 4
#                    minutes later (faketime) send nothing, 6 minutes later
#                    one more POST (delivered), 30 minutes later nothing
#   mailto-*         rua=mailto: one message in the Maildir: multipart/report
#                    (report-type="tlsrpt"), text/plain, application/tlsrpt+gzip
#                    with the report, the §5.3 headers and Subject, TLS-Required:
#                    No; its DKIM signature verifies with opendkim-testmsg
#                    against the key in the bed's DNS (and fails once a signed
#                    header is altered); no DKIM key configured: pending
#                    (retried: a key fixed within the day still sends it),
#                    last_error names DKIM, sendmail never started
#   mailto-credential the key as a systemd credential: dkim_key_file "dkim.pem"
#                    read from $CREDENTIALS_DIRECTORY; the mail is signed
#   no-record-*      no _smtp._tls record, rua=ftp: only, a syntax error, two
#                    records: each lookup row failed, counted no_destination,
#                    one "report event=no-destination" line each, nothing
#                    posted or mailed
#   private-refused  report.allow_private_destinations=false (the default):
#                    a rua=https: host at 127.3.0.N gets no POST; the delivery
#                    is failed at once, its error names the address
#   crash-*          the CLI killed (SIGKILL) while its sendmail hangs: the
#                    delivery stays "sending"; a send before 15 minutes sends
#                    nothing, one 16 minutes later (faketime) delivers it once
# Times are moved with libfaketime on the CLI only (faketime -f +Nm).
#
# Usage: report_send.sh   (as root)
#   MTASTS_BIN  the executable (default: <repo>/build/milter/mta-sts-milter)
#   TB_KEEP=1   keep the bed's temporary directory (logs, posts, Maildirs)
# Prints "ok NAME" or "FAIL NAME: why" per check and last "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/report_bed.sh
source "$HERE/lib/report_bed.sh"
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
source "$HERE/lib/report.sh"
MTASTS_BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
DAY=$(date -u -d '-2 days' +%F)
RCV=rcv.secure.test     # the Postfix instance's mailbox domain
SELECTOR=sel1
DKIM_KEY=""

# want_kv OUT KEY VALUE: "" when the send summary OUT has KEY=VALUE.
want_kv() {
  grep -qw -- "$2=$3" <<<"$1" || echo "summary '$1' lacks $2=$3; "
}

# recorder NAME: a sendmail_command that only records its calls in
# $RB_DIR/bin/NAME.calls (for configurations that must never mail).
recorder() {
  local script="$RB_DIR/bin/$1"
  printf '#!/bin/bash\necho "$*" >>"%s.calls"\ncat >/dev/null\n' "$script" >"$script"
  chmod 755 "$script"
  echo "[\"$script\"]"
}

setup() {
  report_bed_up || return 1
  DKIM_KEY=$(rb_dkim_key secure reporter "$SELECTOR") || return 1
  rb_sink_add https secure https 200 || return 1
  rb_sink_add retry secure retry 503,200 || return 1
  rb_sink_add trap secure trap 200 || return 1
  rb_tlsrpt_set secure https "v=TLSRPTv1; rua=https://reports.https.secure.test/tlsrpt"
  rb_tlsrpt_set secure retry "v=TLSRPTv1;rua=https://reports.retry.secure.test/v1/reports"
  rb_tlsrpt_set secure mail "v=TLSRPTv1; rua=mailto:tlsrpt@$RCV"
  rb_tlsrpt_set secure nodkim "v=TLSRPTv1; rua=mailto:nodkim@$RCV"
  rb_tlsrpt_set secure crash "v=TLSRPTv1; rua=mailto:crash@$RCV"
  rb_tlsrpt_set secure cred "v=TLSRPTv1; rua=mailto:cred@$RCV"
  # norec.secure.test has no record at all.
  rb_tlsrpt_set secure ftp "v=TLSRPTv1; rua=ftp://reports.trap.secure.test/x"
  rb_tlsrpt_set secure syntax "v=TLSRPTv1; rua=https://reports.trap.secure.test/x,,"
  rb_tlsrpt_set secure private "v=TLSRPTv1; rua=https://reports.trap.secure.test/private"
  rb_tlsrpt_set secure two "v=TLSRPTv1; rua=https://reports.trap.secure.test/a" \
    "v=TLSRPTv1; rua=https://reports.trap.secure.test/b"
  tb_dns_reload secure || return 1
  rb_postfix_mailbox_start "$RCV" tlsrpt nodkim crash cred
}

bed_check() {
  local why="" out
  out=$(tb_exec dig +dnssec +time=2 +tries=1 TXT _smtp._tls.https.secure.test)
  grep -q 'flags:.* ad[ ;]' <<<"$out" && grep -q 'v=TLSRPTv1' <<<"$out" ||
    why+="_smtp._tls.https.secure.test not a secure TLSRPT answer; "
  out=$(tb_exec dig +short +time=2 +tries=1 TXT "$SELECTOR._domainkey.$RB_SUBMITTER" | tr -d '" \n')
  [ "${out:0:18}" = "v=DKIM1;k=rsa;p=MI" ] || why+="DKIM key TXT: '${out:0:40}'; "
  # GET uses up no status code of the sink and saves nothing.
  out=$(tb_exec curl -sS --max-time 5 --cacert "$TB_CA_FILE" -o /dev/null -w '%{http_code}' \
    https://reports.https.secure.test/tlsrpt 2>&1)
  [ "$out" = 405 ] || why+="sink GET through DNS and the test CA: '$out'; "
  [ "$(rb_sink_posts https)" = 0 ] || why+="the sink counted the GET; "
  report bed "${why%; }"
}

# ------------------------------------------------------------ 1. https
scenario_https() {
  local conf="$RB_DIR/https.toml" dest=https://reports.https.secure.test/tlsrpt why out id json
  rb_config "$conf" && rb_seed_domain "$conf" "$DAY" https.secure.test 42 3 ||
    { report https-setup "config or seed failed"; return; }
  out=$(rb_cli "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" delivered 1)
  [ "$(rb_sink_posts https)" = 1 ] || why+="sink got $(rb_sink_posts https) POSTs, want 1; "
  report https-send "${why%; }"

  why=""
  grep -qix 'content-type: application/tlsrpt+gzip.' "$RB_DIR/sinks/https/posts/1.headers" ||
    why+="headers: $(grep -i content-type "$RB_DIR/sinks/https/posts/1.headers"); "
  id=$(rb_delivery "$conf" "$dest" report_id)
  json=$(gzip -dc <"$RB_DIR/sinks/https/posts/1.body" 2>&1)
  jq -e --arg id "$id" --arg day "$DAY" '
      ."report-id" == $id and $id == ($day + ".https.secure.test@reporter.secure.test")
      and ."contact-info" == "tlsrpt@reporter.secure.test" and ."organization-name" == "Report Bed"
      and ."date-range"."start-datetime" == ($day + "T00:00:00Z")
      and (.policies | length) == 1
      and .policies[0].policy."policy-domain" == "https.secure.test"
      and .policies[0].policy."policy-type" == "sts"
      and .policies[0].policy."mx-host" == ["mx.https.secure.test"]
      and .policies[0].summary == {"total-successful-session-count": 42, "total-failure-session-count": 3}
      and .policies[0]."failure-details"[0]."result-type" == "certificate-expired"
      and .policies[0]."failure-details"[0]."failed-session-count" == 3
      and .policies[0]."failure-details"[0]."receiving-mx-hostname" == "mx.https.secure.test"
      and .policies[0]."failure-details"[0]."receiving-ip" == "127.25.0.9"' <<<"$json" >/dev/null ||
    why+="report JSON (id '$id'): ${json:0:300}; "
  # The stored report is what went out, byte for byte.
  mkdir -p "$RB_DIR/built" && rb_cli "$conf" report build --day "$DAY" --out "$RB_DIR/built" >/dev/null
  cmp -s "$RB_DIR/sinks/https/posts/1.body" "$RB_DIR/built/reporter.secure.test!https.secure.test!"*.json.gz ||
    why+="POST body differs from report build --out; "
  report https-report "${why%; }"

  why=""
  [ "$(rb_delivery "$conf" "$dest" state)" = delivered ] ||
    why+="status: $(rb_cli "$conf" report status | tr '\n' ' '); "
  [ "$(rb_delivery "$conf" dns:_smtp._tls.https.secure.test state)" = delivered ] || why+="lookup row not delivered; "
  report https-status "${why%; }"

  out=$(rb_cli "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" attempted 0)
  [ "$(rb_sink_posts https)" = 1 ] || why+="sink got $(rb_sink_posts https) POSTs after the second send; "
  report https-once "${why%; }"
}

# A receiver's https: host at one of our own addresses (SSRF): refused.
scenario_private() {
  local conf="$RB_DIR/private.toml" dest=https://reports.trap.secure.test/private why out before
  rb_config "$conf" report.allow_private_destinations=false &&
    rb_seed_domain "$conf" "$DAY" private.secure.test 1 0 || { report private-refused "config or seed failed"; return; }
  before=$(rb_sink_posts trap)
  out=$(rb_cli "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" delivered 0)
  [ "$(rb_sink_posts trap)" = "$before" ] || why+="the trap sink got a POST; "
  [ "$(rb_delivery "$conf" "$dest" state)" = failed ] || why+="state $(rb_delivery "$conf" "$dest" state), want failed; "
  rb_delivery "$conf" "$dest" last_error | grep -q 'resolves to 127\.3\.0\.[0-9]*, not a public address' ||
    why+="last_error '$(rb_delivery "$conf" "$dest" last_error)'; "
  report private-refused "${why%; }"
}

# ------------------------------------------------------------ 2. retry
scenario_retry() {
  local conf="$RB_DIR/retry.toml" dest=https://reports.retry.secure.test/v1/reports why out t0 t1 nb
  rb_config "$conf" && rb_seed_domain "$conf" "$DAY" retry.secure.test 5 0 ||
    { report retry-setup "config or seed failed"; return; }
  t0=$(date +%s)
  out=$(rb_cli "$conf" report send --now --day "$DAY")
  t1=$(date +%s)
  why=$(want_kv "$out" waiting 1)
  [ "$(rb_delivery "$conf" "$dest" state)" = pending ] || why+="state $(rb_delivery "$conf" "$dest" state); "
  [[ $(rb_delivery "$conf" "$dest" last_error) == *503* ]] ||
    why+="last_error '$(rb_delivery "$conf" "$dest" last_error)'; "
  nb=$(rb_delivery "$conf" "$dest" not_before)
  [ "$nb" -ge $((t0 + 300)) ] && [ "$nb" -le $((t1 + 300)) ] ||
    why+="not_before $nb, want first attempt + 300 ($((t0 + 300))..$((t1 + 300))); "
  [ "$(rb_sink_posts retry)" = 1 ] || why+="sink got $(rb_sink_posts retry) POSTs, want 1; "
  report retry-pending "${why%; }"

  why=""
  out=$(rb_cli "$conf" report send --now --day "$DAY")
  why+=$(want_kv "$out" attempted 0)
  out=$(rb_cli +4m "$conf" report send --now --day "$DAY")
  why+=$(want_kv "$out" attempted 0)
  [ "$(rb_sink_posts retry)" = 1 ] || why+="sink got $(rb_sink_posts retry) POSTs before the back-off; "
  report retry-backoff "${why%; }"

  out=$(rb_cli +6m "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" delivered 1)
  [ "$(rb_sink_posts retry)" = 2 ] || why+="sink got $(rb_sink_posts retry) POSTs, want 2; "
  [ "$(rb_delivery "$conf" "$dest" state)" = delivered ] && [ "$(rb_delivery "$conf" "$dest" attempts)" = 2 ] ||
    why+="status: $(rb_cli "$conf" report status | tr '\n' ' '); "
  cmp -s "$RB_DIR/sinks/retry/posts/1.body" "$RB_DIR/sinks/retry/posts/2.body" || why+="the retry sent other bytes; "
  report retry-delivered "${why%; }"

  out=$(rb_cli +30m "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" attempted 0)
  [ "$(rb_sink_posts retry)" = 2 ] || why+="sink got $(rb_sink_posts retry) POSTs after delivery; "
  report retry-once "${why%; }"
}

# ------------------------------------------------------------ 3. mailto
# mime_check FILE REPORT_ID DOMAIN: "" when the message has the §5.3 form.
mime_check() {
  python3 - "$@" <<'PY'
import email, gzip, json, re, sys
path, report_id, domain = sys.argv[1:4]
submitter = "reporter.secure.test"
msg = email.message_from_binary_file(open(path, "rb"))
why = []
def header(name):
    return re.sub(r"\s+", " ", msg.get(name, "")).strip()
if msg.get_content_type() != "multipart/report" or msg.get_param("report-type") != "tlsrpt":
    why.append("Content-Type " + header("Content-Type"))
for name, want in (("TLS-Report-Domain", domain), ("TLS-Report-Submitter", submitter), ("TLS-Required", "No"),
                   ("Subject", f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>"),
                   ("From", "noreply-tlsrpt@" + submitter), ("To", "tlsrpt@rcv.secure.test")):
    if header(name) != want:
        why.append(f"{name}: '{header(name)}' (want '{want}')")
sig = header("DKIM-Signature")
tags = {k.strip(): v.strip() for k, _, v in (t.partition("=") for t in sig.split(";")) if k.strip()}
signed = [h.strip().lower() for h in tags.get("h", "").split(":")]
if tags.get("d") != submitter or tags.get("s") != "sel1" or not {"tls-report-domain", "tls-report-submitter", "subject"} <= set(signed):
    why.append("DKIM-Signature " + sig[:200])
parts = msg.get_payload() if msg.is_multipart() else []
types = [p.get_content_type() for p in parts]
if types != ["text/plain", "application/tlsrpt+gzip"]:
    why.append(f"parts {types}")
else:
    if domain not in parts[0].get_payload(decode=True).decode("ascii", "replace"):
        why.append("the text part does not name the policy domain")
    gz = parts[1]
    if gz.get("Content-Transfer-Encoding", "").lower() != "base64":
        why.append("attachment not base64")
    name = gz.get_filename() or ""
    if not re.fullmatch(re.escape(submitter + "!" + domain + "!") + r"\d+!\d+\.json\.gz", name):
        why.append("attachment file name " + name)
    try:
        doc = json.loads(gzip.decompress(gz.get_payload(decode=True)))
        if doc.get("report-id") != report_id or doc["policies"][0]["policy"]["policy-domain"] != domain \
                or doc["policies"][0]["summary"]["total-successful-session-count"] != 7:
            why.append("report JSON " + json.dumps(doc)[:200])
    except Exception as e:
        why.append(f"attachment: {e}")
print("; ".join(why))
PY
}

scenario_mailto() {
  local conf="$RB_DIR/mail.toml" dest="mailto:tlsrpt@$RCV" why out msg id
  rb_config "$conf" "report.dkim_selector=\"$SELECTOR\"" "report.dkim_key_file=\"$DKIM_KEY\"" &&
    rb_seed_domain "$conf" "$DAY" mail.secure.test 7 1 || { report mailto-setup "config or seed failed"; return; }
  out=$(rb_cli "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" delivered 1)
  [ "$(rb_delivery "$conf" "$dest" state)" = delivered ] ||
    why+="status: $(rb_cli "$conf" report status | tr '\n' ' '); "
  rb_wait_maildir tlsrpt 1 10 || why+="no message in the Maildir after 10 s: $(tail -n 2 "$MB_DIR/maillog"); "
  report mailto-send "${why%; }"

  msg=$(find "$RB_DIR/vmail/tlsrpt/new" -type f | head -n 1)
  [ -n "$msg" ] || { report mailto-message "no message"; return; }
  id=$(rb_delivery "$conf" "$dest" report_id)
  report mailto-mime "$(mime_check "$msg" "$id" mail.secure.test)"

  why=""
  out=$(tb_exec opendkim-testmsg <"$msg" 2>&1) || why+="opendkim-testmsg: exit $?: $out; "
  [ -z "$out" ] || why+="opendkim-testmsg says: $out; "
  sed 's/^TLS-Report-Domain: .*/TLS-Report-Domain: other.secure.test/' "$msg" >"$RB_DIR/tampered.eml"
  cmp -s "$msg" "$RB_DIR/tampered.eml" && why+="could not alter the message; "
  tb_exec opendkim-testmsg <"$RB_DIR/tampered.eml" >/dev/null 2>&1 && why+="a tampered message verifies; "
  report mailto-dkim "${why%; }"

  out=$(rb_cli "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" attempted 0)
  sleep 0.5
  [ "$(rb_maildir_count tlsrpt)" = 1 ] || why+="$(rb_maildir_count tlsrpt) messages after a second send; "
  report mailto-once "${why%; }"
}

# The key as a systemd credential (LoadCredential=dkim.pem:...): a bare
# dkim_key_file name is read from $CREDENTIALS_DIRECTORY.
scenario_mailto_credential() {
  local conf="$RB_DIR/cred.toml" creds="$RB_DIR/credentials" why out msg
  mkdir -p "$creds" && cp "$DKIM_KEY" "$creds/dkim.pem"
  rb_config "$conf" "report.dkim_selector=\"$SELECTOR\"" 'report.dkim_key_file="dkim.pem"' &&
    rb_seed_domain "$conf" "$DAY" cred.secure.test 2 0 || { report mailto-credential "config or seed failed"; return; }
  out=$(CREDENTIALS_DIRECTORY=$creds rb_cli "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" delivered 1)
  rb_wait_maildir cred 1 10 || why+="no message in the Maildir after 10 s; "
  msg=$(find "$RB_DIR/vmail/cred/new" -type f 2>/dev/null | head -n 1)
  [ -n "$msg" ] && out=$(tb_exec opendkim-testmsg <"$msg" 2>&1) && [ -z "$out" ] || why+="DKIM: $out; "
  report mailto-credential "${why%; }"
}

scenario_mailto_nodkim() {
  local conf="$RB_DIR/nodkim.toml" dest="mailto:nodkim@$RCV" why out err
  rb_config "$conf" "report.sendmail_command=$(recorder nodkim)" &&
    rb_seed_domain "$conf" "$DAY" nodkim.secure.test 1 0 || { report mailto-nodkim-setup "config or seed failed"; return; }
  out=$(rb_cli "$conf" report send --now --day "$DAY")
  # Retried, not failed: a key fixed within the day still sends the report.
  why=$(want_kv "$out" waiting 1)
  [ "$(rb_delivery "$conf" "$dest" state)" = pending ] || why+="state $(rb_delivery "$conf" "$dest" state); "
  err=$(rb_delivery "$conf" "$dest" last_error)
  [[ $err == *DKIM* ]] || why+="last_error '$err' does not name DKIM; "
  [ ! -e "$RB_DIR/bin/nodkim.calls" ] || why+="sendmail started: $(cat "$RB_DIR/bin/nodkim.calls"); "
  [ "$(rb_maildir_count nodkim)" = 0 ] || why+="mail delivered; "
  report mailto-nodkim "${why%; }"
}

# ------------------------------------------------------------ 4. no record
scenario_no_record() {
  local conf="$RB_DIR/norec.toml" why="" out d rows log_before
  rb_config "$conf" "report.sendmail_command=$(recorder norec)" || { report no-record-setup "config"; return; }
  for d in norec ftp syntax two; do
    rb_seed_domain "$conf" "$DAY" "$d.secure.test" 2 1 || { report no-record-setup "seed $d"; return; }
  done
  log_before=$(wc -l <"$RB_LOG")
  out=$(rb_cli "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" no_destination 4)
  for d in norec ftp syntax two; do
    [ "$(rb_delivery "$conf" "dns:_smtp._tls.$d.secure.test" state)" = failed ] ||
      why+="$d: lookup $(rb_delivery "$conf" "dns:_smtp._tls.$d.secure.test" state); "
    tail -n +"$((log_before + 1))" "$RB_LOG" |
      grep -q "report event=no-destination .*policy_domain=$d\.secure\.test" || why+="$d: no no-destination line; "
  done
  rows=$(rb_cli "$conf" report status --json | jq -s 'length')
  [ "$rows" = 4 ] || why+="$rows delivery rows, want the 4 lookups only; "
  [ "$(rb_sink_posts trap)" = 0 ] || why+="the trap sink got $(rb_sink_posts trap) POSTs; "
  [ ! -e "$RB_DIR/bin/norec.calls" ] || why+="sendmail started; "
  report no-record "${why%; }"
  # The reasons, one per kind of record.
  why=""
  for d in norec:nxdomain ftp:tlsrpt-no-usable-uri syntax:tlsrpt-syntax two:tlsrpt-multiple; do
    [[ $(rb_delivery "$conf" "dns:_smtp._tls.${d%%:*}.secure.test" last_error) == *"${d#*:}"* ]] ||
      why+="${d%%:*}: last_error '$(rb_delivery "$conf" "dns:_smtp._tls.${d%%:*}.secure.test" last_error)'; "
  done
  report no-record-reasons "${why%; }"
}

# ------------------------------------------------------------ 5. crash
scenario_crash() {
  local conf="$RB_DIR/crash.toml" dest="mailto:crash@$RCV" why="" out script="$RB_DIR/bin/crash" state="$RB_DIR/crash"
  local cli pid i
  mkdir -p "$state"
  # First call: hangs without reading (the CLI is killed meanwhile); later
  # calls: the real sendmail.
  cat >"$script" <<EOF
#!/bin/bash
if mkdir "$state/first" 2>/dev/null; then echo \$\$ >"$state/first/pid.tmp"; mv "$state/first/pid.tmp" "$state/first/pid"; exec sleep 30; fi
echo "\$*" >>"$state/calls"
exec /usr/sbin/sendmail -C "$MB_PF" -oi "\$@"
EOF
  chmod 755 "$script"
  rb_config "$conf" "report.dkim_selector=\"$SELECTOR\"" "report.dkim_key_file=\"$DKIM_KEY\"" \
    "report.sendmail_command=[\"$script\"]" && rb_seed_domain "$conf" "$DAY" crash.secure.test 3 0 ||
    { report crash-setup "config or seed failed"; return; }
  ip netns exec "$TB_NS" "$MTASTS_BIN" -c "$conf" report send --now --day "$DAY" >/dev/null 2>>"$RB_LOG" &
  cli=$!
  for ((i = 0; i < 100; i++)); do [ -s "$state/first/pid" ] && break; sleep 0.1; done
  pid=$(cat "$state/first/pid" 2>/dev/null)
  kill -9 "$cli" 2>/dev/null
  wait "$cli" 2>/dev/null
  # The hanging sendmail leads its own process group.
  [ -n "$pid" ] && kill -9 -- "-$pid" 2>/dev/null
  [ -n "$pid" ] || why+="sendmail never started; "
  [ "$(rb_delivery "$conf" "$dest" state)" = sending ] ||
    why+="after the kill: $(rb_cli "$conf" report status | tr '\n' ' '); "
  report crash-sending "${why%; }"

  why=""
  out=$(rb_cli "$conf" report send --now --day "$DAY")
  why+=$(want_kv "$out" attempted 0)
  out=$(rb_cli +14m "$conf" report send --now --day "$DAY")
  why+=$(want_kv "$out" attempted 0)
  [ ! -e "$state/calls" ] || why+="sent before the claim went stale; "
  report crash-claim-held "${why%; }"

  out=$(rb_cli +16m "$conf" report send --now --day "$DAY")
  why=$(want_kv "$out" delivered 1)
  [ "$(rb_delivery "$conf" "$dest" state)" = delivered ] && [ "$(rb_delivery "$conf" "$dest" attempts)" = 2 ] ||
    why+="status: $(rb_cli "$conf" report status | tr '\n' ' '); "
  rb_wait_maildir crash 1 10 || why+="no message in the Maildir; "
  out=$(rb_cli +20m "$conf" report send --now --day "$DAY")
  why+=$(want_kv "$out" attempted 0)
  sleep 0.5
  [ "$(wc -l <"$state/calls" 2>/dev/null)" = 1 ] || why+="sendmail calls: $(cat "$state/calls" 2>/dev/null); "
  [ "$(rb_maildir_count crash)" = 1 ] || why+="$(rb_maildir_count crash) messages; "
  report crash-delivered-once "${why%; }"
}

main() {
  [ -x "$MTASTS_BIN" ] || { echo "FAIL setup: MTASTS_BIN '$MTASTS_BIN' is not an executable"; return 1; }
  local tool
  for tool in faketime opendkim-testmsg sqlite3 jq postfix; do
    command -v "$tool" >/dev/null || { echo "FAIL setup: $tool not installed"; return 1; }
  done
  if ! setup; then
    report setup "report bed did not start"
    echo "$PASSED passed, $FAILED failed"; return 1
  fi
  bed_check
  scenario_https
  scenario_private
  scenario_retry
  scenario_mailto
  scenario_mailto_credential
  scenario_mailto_nodkim
  scenario_no_record
  scenario_crash
  report_summary
}

main "$@"
