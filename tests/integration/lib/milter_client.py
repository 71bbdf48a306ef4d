#!/usr/bin/env python3
"""Raw milter protocol client for milter_protocol.sh.

It does what miltertest's Lua scripts cannot: reads the exact RCPT reply text,
opens 50 connections that start a transaction at the same moment, sends
garbage, truncated and oversized packets, and holds a transaction open across
a reload or SIGTERM. Wire format: 4-byte length, command byte, data. The
domains are those the script seeds: enforce.example (an enforce policy) and
nopolicy.example.

Usage: milter_client.py PORT COMMAND [ARGS...]
  rcpt-text              MAIL, RCPT to both domains, abort; one line per
                         recipient: "DOMAIN REPLY-COMMAND REPLY-TEXT"
  concurrent N           N simultaneous connections, one transaction each;
                         exits 1 unless every one got the expected answers
  garbage CASE           sends one broken input, prints what the milter did
  garbage list           prints the names of the cases
  hold READY GO DOMAIN   a transaction paced by files (see cmd_hold)
  many-rcpts N KIND QID [PREFIX]
                         one message with N recipients (see cmd_many_rcpts)
"""
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
    that file after creating the ready file; "-" never sends the RCPT.
    Prints "rcpt=REPLY" as soon as it comes, then "eom=REPLY"; a reply the
    milter never sent (it closed the connection) prints as "closed"."""
    import os, time
    c = Conn()
    c.negotiate()
    c.mail("HOLDQ")
    pairs = [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)]
    def reply(step):
        try:
            cmd, text, _ = step()
            return (cmd.decode() + " " + text).strip()
        except (EOFError, ConnectionError):
            return "closed"
    if go == "now":
        c.macros(b"R", pairs)
        c.send(b"R", b"<user@" + domain.encode() + b">\0")
        open(ready, "w").close()
        rcpt = reply(c.final)
    else:
        open(ready, "w").close()
        while go == "-" or not os.path.exists(go):
            time.sleep(0.05)
        rcpt = reply(lambda: c.rcpt("user@" + domain, pairs))
    print("rcpt=" + rcpt, flush=True)
    if rcpt == "closed":
        return
    print("eom=" + reply(c.eom), flush=True)
    try:
        c.quit()
    except (EOFError, ConnectionError):
        pass

def cmd_many_rcpts(count, kind, qid, prefix="r"):
    """MAIL, COUNT RCPTs each to its own domain (PREFIXNNNNN.many.example, no
    policy; the stand-in DNS answers "slow..." names late), then EOM: the message a direct milter client can send and
    Postfix cannot (smtpd_recipient_limit). KIND "smtp" sends next-hop
    macros (decided at RCPT), "nonsmtp" none (decided at end of message).
    Prints one line: accepted=A deferred=D (452 4.5.3) other=O
    first_deferred=INDEX (1-based, 0: none) rcpt_ms=T eom=REPLY eom_ms=T."""
    import time
    c = Conn()
    c.s.settimeout(60)
    c.negotiate()
    c.mail(qid)
    accepted = deferred = other = first_deferred = 0
    start = time.monotonic()
    for i in range(1, count + 1):
        domain = "%s%05d.many.example" % (prefix, i)
        pairs = [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)] if kind == "smtp" else []
        cmd, text, _ = c.rcpt("user@" + domain, pairs)
        if cmd == b"c":
            accepted += 1
        elif cmd == b"y" and text == "452 4.5.3 MTA-STS: too many recipients in one message":
            deferred += 1
            first_deferred = first_deferred or i
        else:
            other += 1
            print("rcpt %d: %s %s" % (i, cmd.decode(), text), file=sys.stderr)
    rcpt_ms = int((time.monotonic() - start) * 1000)
    start = time.monotonic()
    cmd, _, _ = c.eom()
    eom_ms = int((time.monotonic() - start) * 1000)
    c.quit()
    print("accepted=%d deferred=%d other=%d first_deferred=%d rcpt_ms=%d eom=%s eom_ms=%d"
          % (accepted, deferred, other, first_deferred, rcpt_ms, cmd.decode(), eom_ms))

if __name__ == "__main__":
    what = sys.argv[2]
    if what == "rcpt-text": cmd_rcpt_text()
    elif what == "concurrent": cmd_concurrent(int(sys.argv[3]))
    elif what == "garbage": cmd_garbage(sys.argv[3])
    elif what == "hold": cmd_hold(sys.argv[3], sys.argv[4], sys.argv[5])
    elif what == "many-rcpts": cmd_many_rcpts(int(sys.argv[3]), *sys.argv[4:7])
