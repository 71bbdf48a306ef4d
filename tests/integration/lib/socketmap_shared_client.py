#!/usr/bin/env python3
"""Both callers of one daemon at once, for socketmap_shared_engine.sh: the
milter (raw protocol, milter_client.Conn) and the socketmap (netstrings,
socketmap_table(5)) ask for the same policy domains at the same moment.

Usage: socketmap_shared_client.py MILTER_PORT SOCKETMAP_PORT DOMAIN_FILE OUT SEED CONNS

The domains (one a line) are shuffled with SEED; both sides walk that one
order, each with CONNS connections taking the next domain from the side's own
queue, so that the milter and the socketmap ask for a domain within moments
of each other while it is still cold. Every thread starts at one barrier.
  milter     per domain: MAIL (macro i=QIDnnnnn), RCPT user@DOMAIN with
             {rcpt_mailer}=smtp {rcpt_host}=DOMAIN, then end of message when
             the RCPT continued, else abort (either way the daemon logs the
             decision line)
  socketmap  per domain: `postfix DOMAIN`; a TEMP reply (the first discovery
             outlived the socketmap deadline) is asked again 1 s later, at
             most 5 times, by whichever connection is free then (the others
             go on meanwhile, as Postfix's other deliveries would)
OUT gets one line per request, tab-separated:
  SIDE DOMAIN ATTEMPT START_S END_S QID REPLY
(START_S/END_S: seconds since the barrier; QID "-" for the socketmap; REPLY
the reply text, or "error: ..." when the exchange failed). The last line on
stdout: "milter=N socketmap=N errors=N overlapped=N seconds=S", where
overlapped counts the domains whose first milter RCPT and first socketmap
request were both in flight at one moment (evidence that the two callers
really met in the engine, not one after the other). Exit status 0 unless a
connection failed.
"""
import os, random, socket, sys, threading, time

MILTER_PORT, SOCKETMAP_PORT = int(sys.argv[1]), int(sys.argv[2])
DOMAIN_FILE, OUT, SEED, CONNS = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
TEMP_RETRIES, TEMP_PAUSE_S = 5, 1.0

sys.argv = [sys.argv[0], str(MILTER_PORT)]  # milter_client reads its port from argv[1]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from milter_client import Conn  # noqa: E402


def netstring(data):
    return str(len(data)).encode() + b":" + data + b","


class Socketmap:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", SOCKETMAP_PORT), timeout=20)
        self.buf = b""

    def ask(self, key):
        self.s.sendall(netstring(b"postfix " + key.encode()))
        while b":" not in self.buf:
            self.more()
        length, _, rest = self.buf.partition(b":")
        n = int(length)
        while len(rest) < n + 1:
            self.more()
            length, _, rest = self.buf.partition(b":")
        if rest[n:n + 1] != b",":
            raise ValueError("bad netstring %r" % self.buf[:80])
        self.buf = rest[n + 1:]
        return rest[:n].decode()

    def more(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError("socketmap closed the connection")
        self.buf += chunk


def main():
    domains = [d.strip() for d in open(DOMAIN_FILE) if d.strip()]
    random.Random(SEED).shuffle(domains)
    qids = {d: "QID%05d" % i for i, d in enumerate(domains)}
    queues = {"milter": list(reversed(domains)), "socketmap": list(reversed(domains))}
    lock = threading.Lock()
    rows, errors = [], []
    t0 = [0.0]
    barrier = threading.Barrier(2 * CONNS, action=lambda: t0.__setitem__(0, time.monotonic()))

    def take(side):
        with lock:
            return queues[side].pop() if queues[side] else None

    def record(*row):
        with lock:
            rows.append(row)

    def milter_worker():
        c = Conn()
        c.negotiate()
        barrier.wait(timeout=30)
        while (domain := take("milter")) is not None:
            start = time.monotonic() - t0[0]
            try:
                c.mail(qids[domain])
                cmd, text, _ = c.rcpt("user@" + domain, [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)])
                end = time.monotonic() - t0[0]
                if cmd == b"c":
                    c.eom()
                else:
                    c.send(b"A")  # the MTA aborts a transaction left without recipients
                reply = (cmd.decode() + " " + text).strip()
            except Exception as e:  # reported in OUT and the summary, never raised past the thread
                end, reply = time.monotonic() - t0[0], "error: %r" % e
                with lock:
                    errors.append("milter %s: %r" % (domain, e))
                record("milter", domain, 1, start, end, qids[domain], reply)
                return
            record("milter", domain, 1, start, end, qids[domain], reply)
        c.quit()

    retries = []  # (due, domain, attempt): a TEMP is asked again 1 s later

    def next_socketmap():
        """(domain, attempt), a due retry first, or None when nothing is left.
        A worker with a TEMP pending stays in the loop, so its retry is done."""
        while True:
            with lock:
                now = time.monotonic()
                retries.sort()
                if retries and retries[0][0] <= now:
                    return retries.pop(0)[1:]
                if queues["socketmap"]:
                    return queues["socketmap"].pop(), 1
                if not retries:
                    return None
                pause = retries[0][0] - now
            time.sleep(min(pause, 0.05))

    def socketmap_worker():
        m = Socketmap()
        barrier.wait(timeout=30)
        while (job := next_socketmap()) is not None:
            domain, attempt = job
            start = time.monotonic() - t0[0]
            try:
                reply = m.ask(domain)
            except Exception as e:
                record("socketmap", domain, attempt, start, time.monotonic() - t0[0], "-", "error: %r" % e)
                with lock:
                    errors.append("socketmap %s: %r" % (domain, e))
                return
            record("socketmap", domain, attempt, start, time.monotonic() - t0[0], "-", reply)
            # Not waiting here keeps this side in step with the milter's.
            if reply.startswith("TEMP") and attempt <= TEMP_RETRIES:
                with lock:
                    retries.append((time.monotonic() + TEMP_PAUSE_S, domain, attempt + 1))
        m.s.close()

    def guarded(worker):
        def run():
            try:
                worker()
            except Exception as e:  # a connection or the barrier failed: counted, others released
                barrier.abort()
                with lock:
                    errors.append("%s: %r" % (worker.__name__, e))
        return run

    threads = [threading.Thread(target=guarded(milter_worker)) for _ in range(CONNS)]
    threads += [threading.Thread(target=guarded(socketmap_worker)) for _ in range(CONNS)]
    # Every connection is open (and negotiated) before the barrier; its
    # action sets t0, the moment all threads are released.
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = max((r[4] for r in rows), default=0.0)
    with open(OUT, "w") as f:
        for side, domain, attempt, start, end, qid, reply in sorted(rows, key=lambda r: r[3]):
            f.write("%s\t%s\t%d\t%.3f\t%.3f\t%s\t%s\n" % (side, domain, attempt, start, end, qid, reply))
    first = {}
    for side, domain, attempt, start, end, _, _ in rows:
        if attempt == 1:
            first[(side, domain)] = (start, end)
    overlapped = sum(1 for d in domains
                     if ("milter", d) in first and ("socketmap", d) in first
                     and first[("milter", d)][0] < first[("socketmap", d)][1]
                     and first[("socketmap", d)][0] < first[("milter", d)][1])
    for line in errors[:10]:
        print(line, file=sys.stderr)
    print("milter=%d socketmap=%d errors=%d overlapped=%d seconds=%.1f" % (
        sum(1 for r in rows if r[0] == "milter"), sum(1 for r in rows if r[0] == "socketmap"),
        len(errors), overlapped, seconds))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
