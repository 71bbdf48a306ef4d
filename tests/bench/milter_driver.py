#!/usr/bin/env python3
"""Milter-protocol load driver for benchmarks: plays the MTA side of the
milter protocol (version 6, raw packets: 4-byte length, command byte, data)
against a milter socket, without an MTA, and counts the RCPT replies.

Each of --connections worker processes opens one connection, negotiates,
and sends its share of the recipients as messages of --rcpts recipients:
  D 'M' (no macros) + MAIL 'M'       reply only if SMFIP_NR_MAIL was not granted
  per recipient: D 'R' {rcpt_mailer}=smtp {rcpt_host}=<domain>, RCPT 'R'
  D 'E' i=<queue id> + end of message 'E' (no body: the milter declines it)
  ABORT 'A' (as Postfix does when the transaction is reset), finally QUIT 'Q'.
Stages the milter declines in OPTNEG (SMFIP_NO*) are not sent, replies it
declines (SMFIP_NR_*) are not awaited; a milter that asks for connect/HELO
gets them. Recipients are user<N>@<domain>, domains from --format (printf
style, --first .. --first+--count-1, each domain once) or one --domain for
every recipient. Queue ids are <--qid-prefix><worker:02d>Q<message:06d>.

Usage:
  milter_driver.py --port 8891 --format 'd%06d.rss.plain.test' --count 100000 \
                   [--first 1] [--connections 8] [--rcpts 250] [--qid-prefix RSS]
  milter_driver.py --port 8891 --domain one.rss.plain.test --count 100000 --rcpts 1
Prints one line of key=value figures (recipients, messages, continue,
tempfail, reject, other, errors, elapsed_s, rcpt_per_s, eom_mods) and up to
5 sample problems on stderr. Exit status 0 only when every RCPT was answered
'c' (continue) and every end of message 'c'; 1 otherwise; 2 on bad usage.
"""
import argparse
import multiprocessing
import socket
import struct
import sys
import time

# mfdef.h
NOCONNECT, NOHELO, NOMAIL, NORCPT = 0x1, 0x2, 0x4, 0x8
NR_CONN, NR_HELO, NR_MAIL, NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000
OFFERED_ACTIONS = 0x1FF
OFFERED_STEPS = 0x1FFFFF  # every SMFIP_NO*/NR_* bit an MTA of protocol 6 knows
FINAL = b"acdrty"  # accept, continue, discard, reject, tempfail, reply code
SOCKET_TIMEOUT = 60   # s; the milter's per-message budget is 20 s


class MilterError(Exception):
    pass


class Connection:
    """One milter connection, MTA side. Not thread-safe."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=SOCKET_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.steps = 0

    def send(self, *packets):
        """Sends (cmd, data) pairs in one write: a macro packet and its
        command travel together, as an MTA writes them."""
        self.sock.sendall(b"".join(struct.pack(">I", len(d) + 1) + c + d for c, d in packets))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MilterError("milter closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        (length,) = struct.unpack(">I", self._read(4))
        if length < 1 or length > 1 << 20:
            raise MilterError("bad reply length %d" % length)
        body = self._read(length)
        return body[:1], body[1:]

    def final(self):
        """Modifications and progress packets, then one final reply:
        returns (reply byte, text, number of modifications)."""
        mods = 0
        while True:
            cmd, data = self.recv()
            if cmd in FINAL:
                return cmd, data.rstrip(b"\0").decode("utf-8", "replace"), mods
            if cmd != b"p":  # progress: keep waiting
                mods += 1

    def negotiate(self):
        self.send((b"O", struct.pack(">III", 6, OFFERED_ACTIONS, OFFERED_STEPS)))
        cmd, data = self.recv()
        if cmd != b"O" or len(data) < 12:
            raise MilterError("OPTNEG answered %r" % cmd)
        version, _, self.steps = struct.unpack(">III", data[:12])
        if version < 2 or self.steps & (NORCPT | NR_RCPT):
            raise MilterError("milter declines RCPT replies (steps 0x%x)" % self.steps)
        if not self.steps & NOCONNECT:
            self.stage(NR_CONN, b"C", b"client.bench.test\x004" + struct.pack(">H", 40000) + b"127.0.0.1\0")
        if not self.steps & NOHELO:
            self.stage(NR_HELO, b"H", b"client.bench.test\0")

    def stage(self, no_reply_flag, cmd, data, macros=None):
        """Sends an envelope stage; waits for its reply unless declined."""
        packets = [(b"D", cmd + macros)] if macros else []
        self.send(*packets, (cmd, data))
        if self.steps & no_reply_flag:
            return b"c", ""
        reply, text, _ = self.final()
        return reply, text

    def mail(self):
        if self.steps & NOMAIL:
            return b"c", ""
        return self.stage(NR_MAIL, b"M", b"<bench@sender.test>\0")

    def rcpt(self, address, domain):
        macros = b"{rcpt_mailer}\0smtp\0{rcpt_host}\0" + domain.encode() + b"\0"
        self.send((b"D", b"R" + macros), (b"R", b"<" + address.encode() + b">\0"))
        reply, text, _ = self.final()
        return reply, text

    def end(self, queue_id):
        self.send((b"D", b"Ei\0" + queue_id.encode() + b"\0"), (b"E", b""))
        reply, _, mods = self.final()
        self.send((b"A", b""))  # transaction reset: no reply
        return reply, mods

    def quit(self):
        try:
            self.send((b"Q", b""))
        finally:
            self.sock.close()


def recipients_for(args, worker):
    """(address, domain) pairs of this worker: every --connections-th index."""
    for i in range(worker, args.count, args.connections):
        domain = args.domain or args.format % (args.first + i)
        yield "user%d@%s" % (i, domain), domain


def tally(counts, samples, key, what):
    counts[key] += 1
    if key != "continue" and len(samples) < 5:
        samples.append(what)


def run_worker(args, worker, out):
    counts = dict(recipients=0, messages=0, eom_bad=0, eom_mods=0, errors=0,
                  **{k: 0 for k in ("continue", "tempfail", "reject", "other")})
    samples = []
    names = {b"c": "continue", b"t": "tempfail", b"y": "tempfail", b"r": "reject"}
    try:
        conn = Connection(args.host, args.port)
        conn.negotiate()
        pending = list(recipients_for(args, worker))
        for start in range(0, len(pending), args.rcpts):
            batch = pending[start:start + args.rcpts]
            reply, text = conn.mail()
            if reply != b"c":
                raise MilterError("MAIL answered %r %s" % (reply, text))
            for address, domain in batch:
                reply, text = conn.rcpt(address, domain)
                counts["recipients"] += 1
                tally(counts, samples, names.get(reply, "other"), "%s: %s %s" % (address, reply.decode(), text))
            qid = "%s%02dQ%06d" % (args.qid_prefix, worker, counts["messages"])
            reply, mods = conn.end(qid)
            counts["messages"] += 1
            counts["eom_mods"] += mods
            if reply != b"c":
                counts["eom_bad"] += 1
                samples.append("%s: end of message %r" % (qid, reply))
        conn.quit()
    except (OSError, MilterError) as e:
        counts["errors"] += 1
        samples.append("worker %d: %s" % (worker, e))
    out.put((counts, samples))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--format", help="recipient domain format, e.g. d%%06d.rss.plain.test")
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--domain", help="one recipient domain for every recipient")
    p.add_argument("--count", type=int, required=True, help="recipients (and domains with --format)")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--rcpts", type=int, default=250, help="recipients per message")
    p.add_argument("--qid-prefix", default="BENCH")
    args = p.parse_args(argv)
    if bool(args.format) == bool(args.domain):
        p.error("give exactly one of --format and --domain")
    if args.count < 1 or args.connections < 1 or args.rcpts < 1:
        p.error("--count, --connections and --rcpts must be positive")
    return args


def main(argv):
    args = parse_args(argv)
    out = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=run_worker, args=(args, w, out))
               for w in range(min(args.connections, args.count))]
    started = time.monotonic()
    for w in workers:
        w.start()
    results = [out.get() for _ in workers]  # before join: a full queue blocks the child
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    total = {k: sum(c[k] for c, _ in results) for k in results[0][0]}
    for _, samples in results:
        for s in samples[:5]:
            print("milter_driver: " + s, file=sys.stderr)
    total["errors"] += sum(1 for w in workers if w.exitcode != 0)
    print(" ".join("%s=%d" % (k, total[k]) for k in
                   ("recipients", "messages", "continue", "tempfail", "reject", "other", "errors", "eom_bad",
                    "eom_mods"))
          + " elapsed_s=%.3f rcpt_per_s=%.1f" % (elapsed, total["recipients"] / elapsed))
    ok = (total["continue"] == args.count == total["recipients"] and total["errors"] == 0
          and total["eom_bad"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
