#!/usr/bin/env bash
# Milter protocol tests: what an MTA cannot easily produce. Drives the daemon
# with Debian's miltertest (Lua scripts in milter_protocol/) and a small
# python3 milter client (below), without an MTA:
#   no-macros        enforce domain, no {rcpt_mailer}/{rcpt_host}: RCPT continues,
#                    EOM adds "MTA-STS: unknown|fail" (non_smtp_action=tag)
#   rcpt-macros      smtp next hop: 451 4.7.5 "MTA-STS: DOMAIN: ..." at RCPT for
#                    the enforce domain, continue for a domain without policy
#   abort-new-txn    abort after RCPT, new transaction on the same connection;
#                    decision line with queue_id=NOQUEUE
#   broken-peer      garbage bytes, truncated/oversized/unknown packets
#   concurrent       50 simultaneous connections, one transaction each
#   reload-ok        SIGUSR1 with enforce_action="tag": new connections use it,
#                    an open connection survives
#   reload-refused   SIGUSR1 with a broken file: refused, old config stays
#   sigterm          a callback in progress is finished, an idle connection does
#                    not hold the daemon past its drain bound; exit 0, "stopped"
# The enforce policy is seeded with `cache import` (txt_recheck_interval
# large: no TXT lookup); a stand-in DNS forwarder answers SERVFAIL, so the
# MX lookup fails and the verdict is unknown, which RFC 8461 §5 under
# enforce turns into a tempfail. Runs as root in a private network namespace
# (unshare -n): nothing can leave the machine. KEEP=1 keeps the work folder.
#   MTASTS_BIN  the executable under test (default: <repo>/build/milter/mta-sts-milter)
# Prints "ok NAME" or "FAIL NAME: why" per scenario and last "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${MTASTS_BIN:-$ROOT/build/milter/mta-sts-milter}
LUA_DIR=$HERE/milter_protocol

if [ -z "${MTASTS_PROTO_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "FAIL setup: must run as root"; exit 1; }
  command -v miltertest >/dev/null || { echo "FAIL setup: miltertest not installed"; exit 1; }
  exec unshare -n env MTASTS_PROTO_NETNS=1 MTASTS_BIN="$BIN" bash "$0" "$@"
fi
ip link set lo up || { echo "FAIL setup: cannot bring up lo"; exit 1; }

WORK=$(mktemp -d /tmp/mtasts-proto.XXXXXX)
MILTER_PID=""
DNS_PID=""
cleanup() {
  [ -n "$MILTER_PID" ] && kill "$MILTER_PID" 2>/dev/null && wait "$MILTER_PID" 2>/dev/null
  [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null && wait "$DNS_PID" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ENFORCE=enforce.example
NOPOLICY=nopolicy.example
LOG=$WORK/milter.log
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SOCK="inet:$PORT@127.0.0.1"

# write_config ENFORCE_ACTION: the private configuration.
write_config() {
  cat >"$WORK/conf.toml" <<EOF
[milter]
socket = "$SOCK"
[decision]
rcpt_deadline_ms = 1500
message_budget_ms = 5000
enforce_action = "$1"
non_smtp_action = "tag"
[store]
path = "$WORK/store/cache.db"
[dns]
use_resolv_conf = false
forwarders = ["$DNS_ADDR"]
trust_anchor_files = ["$WORK/anchor.txt"]
timeout = 1
[probe]
step_timeout_ms = 500
[policy]
txt_recheck_interval = 86400
EOF
}

# The forwarder answers SERVFAIL to every query at once (so the enforce
# domain's MX lookup fails and every other domain has no policy, quickly),
# and after 3 s to names containing "slow" (a decision still in flight).
DNS_ADDR=127.0.0.9
cat >"$WORK/servfail_dns.py" <<'PY'
import socket, struct, sys, threading, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
def answer(query, peer):
    i, labels = 12, []
    while i < len(query) and query[i]:
        labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
        i += 1 + query[i]
    if "slow" in ".".join(labels).lower():
        with open(sys.argv[2], "a") as seen:  # the test waits for this: a decision is in flight
            seen.write(".".join(labels) + "\n")
        time.sleep(3)
    flags = struct.pack(">BB", 0x80 | (query[2] & 0x01), 0x80 | 2)  # QR, RD copied, RA, SERVFAIL
    sock.sendto(query[:2] + flags + query[4:6] + b"\0" * 6 + query[12:i + 5], peer)
while True:
    query, peer = sock.recvfrom(4096)
    if len(query) > 12:
        threading.Thread(target=answer, args=(query, peer), daemon=True).start()
PY
python3 "$WORK/servfail_dns.py" "$DNS_ADDR" "$WORK/slow-queries" 2>"$WORK/dns.err" &
DNS_PID=$!

# A replaced trust anchor skips the root-zone self-test (no root here).
echo "$ENFORCE. IN DS 12345 13 2 $(printf '0%.0s' {1..64})" >"$WORK/anchor.txt"
write_config tempfail
printf '{"domain":"%s","txt_id":"20240101","raw":"version: STSv1\\nmode: enforce\\nmx: mx.%s\\nmax_age: 604800\\n"}\n' \
  "$ENFORCE" "$ENFORCE" >"$WORK/seed.jsonl"
if ! "$BIN" -c "$WORK/conf.toml" cache import "$WORK/seed.jsonl" >"$WORK/import.out" 2>&1; then
  echo "FAIL setup: cache import: $(cat "$WORK/import.out")"; exit 1
fi

# ---- the python3 milter client (raw protocol: 4-byte length, command byte, data)
cat >"$WORK/mclient.py" <<'PY'
import socket, struct, sys, threading

PORT = int(sys.argv[1])
ENFORCE, NOPOLICY = "enforce.example", "nopolicy.example"
FINAL = b"acdrty"  # accept, continue, discard, reject, tempfail, replycode

def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data

class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=20)
    def send(self, cmd, data=b""):
        self.s.sendall(packet(cmd, data))
    def read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError("milter closed the connection")
            buf += chunk
        return buf
    def recv(self):
        n = struct.unpack(">I", self.read(4))[0]
        body = self.read(n)
        return body[:1], body[1:]
    def final(self):  # modifications (h, q, ...) then one final reply
        mods = []
        while True:
            cmd, data = self.recv()
            if cmd in FINAL:
                return cmd, data.rstrip(b"\0").decode(), mods
            mods.append((cmd, data))
    def negotiate(self):
        self.send(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF))
        cmd, data = self.recv()
        assert cmd == b"O", cmd
        self.steps = struct.unpack(">III", data[:12])[2]
        self.mail_no_reply = bool(self.steps & 0x4000)  # SMFIP_NR_MAIL
        self.macro_requests = {}  # stage -> macro list asked for (SMFIF_SETSYMLIST)
        rest = data[12:]
        while len(rest) >= 4:
            stage = struct.unpack(">I", rest[:4])[0]
            names, _, rest = rest[4:].partition(b"\0")
            self.macro_requests[stage] = names.decode()
    def macros(self, stage, pairs):
        self.send(b"D", stage + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in pairs))
    def mail(self, qid):
        self.macros(b"M", [("i", qid)])
        self.send(b"M", b"<sender@origin.example>\0")
        if getattr(self, "mail_no_reply", False):
            return b"c", "", []  # negotiated away: no reply comes
        return self.final()
    def rcpt(self, addr, pairs):
        self.macros(b"R", pairs)
        self.send(b"R", b"<" + addr.encode() + b">\0")
        return self.final()
    def eom(self):
        self.send(b"E")
        return self.final()
    def quit(self):
        self.send(b"Q")
        self.s.close()

def headers(mods):
    return [tuple(x.decode() for x in d.rstrip(b"\0").split(b"\0")) for c, d in mods if c == b"h"]

def transaction(kind, qid):
    """kind: enforce (macros), nopolicy (macros), nonsmtp (enforce, no macros)."""
    c = Conn()
    c.negotiate()
    # The milter declines every stage it does not use and needs no MAIL reply.
    unused = 0x1 | 0x2 | 0x10 | 0x20 | 0x40 | 0x100 | 0x200  # SMFIP_NOCONNECT ... SMFIP_NODATA
    assert c.steps & (unused | 0x4000) == unused | 0x4000, "negotiated steps 0x%x" % c.steps
    # {daemon_name} is asked for at MAIL (SMFIM_ENVFROM = 2), with the queue id.
    assert c.macro_requests.get(2) == "i {daemon_name}", "macro requests %r" % c.macro_requests
    assert c.mail(qid)[0] == b"c", "MAIL"
    domain = NOPOLICY if kind == "nopolicy" else ENFORCE
    pairs = [] if kind == "nonsmtp" else [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)]
    cmd, text, _ = c.rcpt("user@" + domain, pairs)
    got_rcpt = (cmd.decode(), text)
    cmd, _, mods = c.eom()
    c.quit()
    return got_rcpt, cmd.decode(), headers(mods)

def expect(kind, result):
    (rcmd, rtext), ecmd, hdrs = result
    want_hdr = [("MTA-STS", "unknown")] if kind == "nonsmtp" else []
    if kind == "enforce":
        rcpt_ok = rcmd == "y" and rtext.startswith("451 4.7.5 MTA-STS: %s: " % ENFORCE)
    else:
        rcpt_ok = rcmd == "c"
    return rcpt_ok and ecmd == "c" and hdrs == want_hdr

def cmd_rcpt_text():
    c = Conn()
    c.negotiate()
    c.mail("PYQID")
    for d in (ENFORCE, NOPOLICY):
        cmd, text, _ = c.rcpt("user@" + d, [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", d)])
        print("%s %s %s" % (d, cmd.decode(), text))
    c.send(b"A")
    c.quit()

def cmd_concurrent(n):
    kinds = ["enforce", "nopolicy", "nonsmtp"]
    barrier = threading.Barrier(n)
    results, errors = {}, []
    def run(i):
        kind = kinds[i % 3]
        try:
            c = Conn()
            c.negotiate()
            barrier.wait(timeout=20)
            assert c.mail("CONC%02d" % i)[0] == b"c", "MAIL"
            domain = NOPOLICY if kind == "nopolicy" else ENFORCE
            pairs = [] if kind == "nonsmtp" else [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)]
            cmd, text, _ = c.rcpt("u%d@%s" % (i, domain), pairs)
            ecmd, _, mods = c.eom()
            c.quit()
            results[i] = (kind, ((cmd.decode(), text), ecmd.decode(), headers(mods)))
        except Exception as e:
            errors.append("conn %d (%s): %r" % (i, kind, e))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    bad = ["conn %d (%s): %r" % (i, k, r) for i, (k, r) in sorted(results.items()) if not expect(k, r)]
    for line in errors + bad:
        print(line)
    print("answered=%d wrong=%d errors=%d" % (len(results), len(bad), len(errors)))
    sys.exit(1 if errors or bad or len(results) != n else 0)

def raw(data, wait_close=True):
    """Sends raw bytes; returns what the milter did: closed, or a reply."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=1.5)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR) if not wait_close else None
    try:
        got = s.recv(4096)
    except socket.timeout:
        got = b"<timeout>"
    except ConnectionResetError:
        got = b""
    s.close()
    return got

def cmd_garbage(case):
    neg = packet(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF))
    cases = {
        "text": b"EHLO garbage.example\r\nMAIL FROM:<a@b>\r\n",        # length field ~1.2 GB
        "zero-length": b"\0\0\0\0",
        "truncated-header": b"\0\0",
        "truncated-body": struct.pack(">I", 100) + b"O\0\0\0\x06",
        "huge-length": b"\x7f\xff\xff\xff" + b"M" + b"x" * 64,
        "unknown-cmd": packet(b"Z", b"junk\0"),
        "bad-negotiate": packet(b"O", b"\0\0"),
        "rcpt-before-mail": neg + packet(b"R", b"<u@" + ENFORCE.encode() + b">\0"),
        "no-nul": neg + packet(b"D", b"M" + b"i" * 50) + packet(b"M", b"<no-nul") + packet(b"R", b"<no-nul"),
        "binary": bytes(range(256)) * 8,
        "eom-first": neg + packet(b"E"),
    }
    if case == "list":
        print(" ".join(cases))
        return
    if case == "mid-rcpt-drop":  # connection dropped while a decision runs
        s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        s.sendall(neg + packet(b"D", b"R{rcpt_mailer}\0smtp\0{rcpt_host}\0" + ENFORCE.encode() + b"\0")
                  + packet(b"M", b"<a@b>\0") + packet(b"R", b"<u@" + ENFORCE.encode() + b">\0"))
        s.close()
        return
    got = raw(cases[case], wait_close=case not in ("truncated-header", "truncated-body"))
    print("%s -> %r" % (case, got[:40]))

def cmd_hold(ready, go, domain):
    """MAIL, then RCPT to DOMAIN and EOM. go: "now" sends the RCPT at once and
    then creates the ready file (the decision is in flight); a path waits for
    that file after creating the ready file; "-" never sends the RCPT."""
    import os, time
    c = Conn()
    c.negotiate()
    c.mail("HOLDQ")
    pairs = [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)]
    if go == "now":
        c.macros(b"R", pairs)
        c.send(b"R", b"<user@" + domain.encode() + b">\0")
        open(ready, "w").close()
        cmd, text, _ = c.final()
    else:
        open(ready, "w").close()
        while go == "-" or not os.path.exists(go):
            time.sleep(0.05)
        cmd, text, _ = c.rcpt("user@" + domain, pairs)
    ecmd, _, _ = c.eom()
    print("rcpt=%s eom=%s" % ((cmd.decode() + " " + text).strip(), ecmd.decode()))
    c.quit()

if __name__ == "__main__":
    what = sys.argv[2]
    if what == "rcpt-text": cmd_rcpt_text()
    elif what == "concurrent": cmd_concurrent(int(sys.argv[3]))
    elif what == "garbage": cmd_garbage(sys.argv[3])
    elif what == "hold": cmd_hold(sys.argv[3], sys.argv[4], sys.argv[5])
PY
client() { timeout 60 python3 "$WORK/mclient.py" "$PORT" "$@"; }

# mt SCRIPT -D ...: one miltertest run with common parameters.
mt() { local s=$1; shift; timeout 60 miltertest -D DIR="$LUA_DIR" -D SOCK="$SOCK" "$@" -s "$LUA_DIR/$s" 2>&1; }

# Log helpers: a mark is the line count before a scenario; log_has greps after it.
mark() { wc -l <"$LOG"; }
log_since() { tail -n +"$(($1 + 1))" "$LOG"; }
log_has() { log_since "$1" | grep -Eq -- "$2"; }
wait_log() {  # wait_log MARK REGEX SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do log_has "$1" "$2" && return 0; sleep 0.1; done
  return 1
}
wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
alive() { [ -n "$MILTER_PID" ] && kill -0 "$MILTER_PID" 2>/dev/null; }

start_milter() {
  "$BIN" -c "$WORK/conf.toml" 2>>"$LOG" &
  MILTER_PID=$!
  wait_log 0 'milter event=started' 10 || { echo "FAIL setup: milter did not start: $(tail -5 "$LOG")"; exit 1; }
}
: >"$LOG"
start_milter

# ---- 1. no next-hop macros: continue at RCPT, tag at EOM
m=$(mark)
out=$(mt no_macros.lua -D QID=S1QID -D DOMAIN=$ENFORCE)
if [ $? != 0 ]; then fail no-macros "$out"
elif ! wait_log "$m" "decision queue_id=S1QID domain=$ENFORCE next_hop=unknown mode=enforce .* action=tag " 3; then
  fail no-macros "no tag decision line: $(log_since "$m" | tail -3)"
else ok no-macros; fi

# ---- 2. macros: 451 4.7.5 for the enforce domain, continue without policy
m=$(mark)
out=$(mt rcpt_macros.lua -D QID=S2QID -D ENFORCE=$ENFORCE -D NOPOLICY=$NOPOLICY)
text=$(client rcpt-text 2>&1)
if ! grep -q "enforce=tempfail nopolicy=continue header=none" <<<"$out"; then fail rcpt-macros "$out"
elif ! grep -Eq "^$ENFORCE y 451 4\.7\.5 MTA-STS: $ENFORCE: [a-z0-9-]+\$" <<<"$text"; then
  fail rcpt-macros "reply text of the enforce recipient: $text"
elif ! grep -Eq "^$NOPOLICY c \$" <<<"$text"; then fail rcpt-macros "no-policy recipient: $text"
elif ! wait_log "$m" "decision queue_id=S2QID domain=$ENFORCE next_hop=domain mode=enforce policy_id=20240101 source=cache .* action=tempfail " 3; then
  fail rcpt-macros "no tempfail decision line: $(log_since "$m" | tail -3)"
elif ! log_has "$m" "decision queue_id=S2QID domain=$NOPOLICY next_hop=domain mode=- .* action=continue "; then
  fail rcpt-macros "no continue decision line: $(log_since "$m" | tail -3)"
elif [ "$(log_since "$m" | grep -c "decision queue_id=S2QID domain=$ENFORCE ")" != 1 ]; then
  fail rcpt-macros "not one decision line per (message, domain): $(log_since "$m" | grep S2QID)"
else ok rcpt-macros; fi

# ---- 3. abort after RCPT, then new transactions on the same connection
m=$(mark)
out=$(mt abort_then_new.lua -D QID_A=S3A -D QID_B=S3B -D ENFORCE=$ENFORCE -D NOPOLICY=$NOPOLICY)
if [ $? != 0 ]; then fail abort-new-txn "$out"
elif ! wait_log "$m" "decision queue_id=S3B domain=$NOPOLICY .* action=continue " 3; then
  fail abort-new-txn "no decision line for the second transaction: $(log_since "$m")"
elif [ "$(log_since "$m" | grep -c "decision queue_id=NOQUEUE domain=$ENFORCE .*action=tempfail ")" != 2 ]; then
  fail abort-new-txn "want two NOQUEUE tempfail lines: $(log_since "$m" | grep decision)"
elif log_has "$m" "queue_id=S3A "; then fail abort-new-txn "aborted transaction logged with its queue id"
else ok abort-new-txn; fi

# ---- 4. broken peers: garbage, truncated and invalid packets
m=$(mark)
why=""
for c in $(client garbage list) mid-rcpt-drop; do
  client garbage "$c" >>"$WORK/garbage.out" 2>&1 || why="$why client($c) failed;"
  alive || { why="$why daemon died after $c;"; break; }
done
sleep 0.3
if alive; then
  out=$(mt one_txn.lua -D QID=S4QID -D RCPT=user@$ENFORCE -D MAILER=smtp -D HOST=$ENFORCE -D WANT_RCPT=tempfail -D WANT_HDR=none)
  [ $? = 0 ] || why="$why session after garbage: $out;"
fi
alive || why="$why daemon not running: $(tail -5 "$LOG");"
if [ -n "$why" ]; then fail broken-peer "$why"; else ok broken-peer; fi

# ---- 5. 50 simultaneous connections, one transaction each
m=$(mark)
start=$(date +%s%N)
out=$(client concurrent 50 2>&1)
rc=$?
took=$((($(date +%s%N) - start) / 1000000))
lines=$(log_since "$m" | grep -c 'decision queue_id=CONC')
if [ $rc != 0 ]; then fail concurrent "$(tail -5 <<<"$out" | tr "\n" ";")"
elif ! alive; then fail concurrent "daemon died: $(tail -5 "$LOG")"
elif [ "$lines" != 50 ]; then fail concurrent "$lines decision lines, want 50"
else ok concurrent; echo "  50 connections in ${took} ms"; fi

# ---- 6a. SIGUSR1 with a valid changed config: new connections use it
m=$(mark)
rm -f "$WORK/ready" "$WORK/go"
mt hold_across_reload.lua -D ENFORCE=$ENFORCE -D READY="$WORK/ready" -D GO="$WORK/go" >"$WORK/hold.out" &
hold_pid=$!
why=""
wait_file "$WORK/ready" 10
[ -e "$WORK/ready" ] || why="held connection never got ready: $(cat "$WORK/hold.out");"
write_config tag
kill -USR1 "$MILTER_PID"
wait_log "$m" 'reload event=ok' 5 || why="$why no reload event=ok;"
out=$(mt one_txn.lua -D QID=S6QID -D RCPT=user@$ENFORCE -D MAILER=smtp -D HOST=$ENFORCE -D WANT_RCPT=continue -D WANT_HDR='unknown')
[ $? = 0 ] || why="$why new connection after reload: $out;"
touch "$WORK/go"
wait "$hold_pid" || why="$why held connection: $(cat "$WORK/hold.out");"
log_has "$m" "decision queue_id=S6QID domain=$ENFORCE .* action=tag " || why="$why no tag decision line;"
alive || why="$why daemon died;"
if [ -n "$why" ]; then fail reload-ok "$why"; else ok reload-ok; echo "  $(grep held- "$WORK/hold.out")"; fi

# ---- 6b. SIGUSR1 with a broken file: refused, the running config stays
m=$(mark)
why=""
cp "$WORK/conf.toml" "$WORK/conf.good"
printf '[decision\nenforce_action = "tempfail"\n' >"$WORK/conf.toml"
kill -USR1 "$MILTER_PID"
wait_log "$m" 'reload event=refused' 5 || why="no reload event=refused: $(log_since "$m" | tail -2);"
out=$(mt one_txn.lua -D QID=S6BQID -D RCPT=user@$ENFORCE -D MAILER=smtp -D HOST=$ENFORCE -D WANT_RCPT=continue -D WANT_HDR='unknown')
[ $? = 0 ] || why="$why not the old (tag) config after refusal: $out;"
printf '[decision]\nenforce_action = "bogus"\n' >"$WORK/conf.toml"
m2=$(mark)
kill -USR1 "$MILTER_PID"
wait_log "$m2" 'reload event=refused' 5 || why="$why out-of-range value not refused: $(log_since "$m2" | tail -2);"
alive || why="$why daemon died;"
cp "$WORK/conf.good" "$WORK/conf.toml"
if [ -n "$why" ]; then fail reload-refused "$why"; else ok reload-refused; fi

# ---- 6c. SIGTERM while one RCPT decision is in flight (its TXT lookup is
# answered after 3 s, the decision ends at rcpt_deadline_ms) and another connection sits idle after MAIL:
# the in-flight transaction is answered to its end, the idle one does not
# keep the daemon past its bounded drain, the exit status is 0.
m=$(mark)
why=""
rm -f "$WORK"/ready-* "$WORK/slow-queries"
client hold "$WORK/ready-a" now slow.example >"$WORK/hold-a.out" 2>&1 &
hold_a=$!
client hold "$WORK/ready-b" - $ENFORCE >"$WORK/hold-b.out" 2>&1 &
hold_b=$!
wait_file "$WORK/ready-a" 10 && wait_file "$WORK/ready-b" 10 || why="held clients not ready;"
# The RCPT callback is running once its TXT lookup reaches the slow DNS
# (the decision then takes rcpt_deadline_ms, 1.5 s).
wait_file "$WORK/slow-queries" 10 || why="$why the in-flight RCPT never asked DNS;"
start=$(date +%s%N)
kill -TERM "$MILTER_PID"
for ((i = 0; i < 170; i++)); do alive || break; sleep 0.1; done
if alive; then why="$why still running 17 s after SIGTERM;"; kill -KILL "$MILTER_PID"; fi
wait "$MILTER_PID"; rc=$?
took=$((($(date +%s%N) - start) / 1000000))
MILTER_PID=""
kill "$hold_b" 2>/dev/null; wait "$hold_a" "$hold_b" 2>/dev/null
[ "$rc" = 0 ] || why="$why exit status $rc;"
grep -qx 'rcpt=c eom=c' "$WORK/hold-a.out" ||
  why="$why in-flight transaction not finished after SIGTERM: $(tail -1 "$WORK/hold-a.out");"
log_has "$m" 'decision queue_id=HOLDQ domain=slow\.example .* elapsed_ms=1[0-9]{3}$' ||
  why="$why no decision line for the in-flight message, or not in flight: $(log_since "$m" | grep HOLDQ);"
log_has "$m" 'milter event=stopped' || why="$why no milter event=stopped: $(log_since "$m" | tail -3);"
if [ -n "$why" ]; then fail sigterm "$why"
else
  ok sigterm
  echo "  stopped in ${took} ms: $(grep -o 'milter event=stopped.*' "$LOG");" \
    "in-flight decision $(log_since "$m" | grep -o 'domain=slow.example .*elapsed_ms=[0-9]*' | grep -o 'elapsed_ms=.*')"
fi

if [ "$failed" != 0 ]; then echo "--- milter log (last 20 lines)"; tail -20 "$LOG"; fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
