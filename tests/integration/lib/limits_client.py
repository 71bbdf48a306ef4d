#!/usr/bin/env python3
"""Milter clients for milter_limits.sh: many connections at once, and
recipients that wait for the engine at the same time. Built on
milter_client.Conn (raw protocol, no libmilter).

Usage: limits_client.py PORT COMMAND [ARGS...]
  flood N HOLD_S DOMAIN  opens N connections one after another, negotiating
                         each; prints "accepted=A refused=R unanswered=U"
                         (refused: the milter closed the connection at
                         negotiation; unanswered: no reply within 1 s); then
                         one RCPT to DOMAIN on the first accepted connection,
                         printing "rcpt=CMD ms=MS"; holds every connection
                         HOLD_S seconds, prints "held", closes them.
  rcpts GAP_S DOMAIN...  one connection per domain, each sending MAIL and
                         RCPT (next-hop macros: smtp, the domain), started
                         GAP_S apart; prints "DOMAIN CMD MS" per recipient
                         (MS from its RCPT to the reply), in start order.
  spray N CONNS SUFFIX   N recipients at distinct domains dI.SUFFIX over
                         CONNS connections at once; prints "sprayed=N
                         answered=A seconds=S", then "failed STAGE:ERROR=COUNT..."
                         when some were not answered
  watch DOMAIN COUNT INTERVAL_S
                         COUNT recipients to DOMAIN, INTERVAL_S apart, each
                         printed with its reply time
"""
import os, socket, sys, threading, time

sys.argv = [sys.argv[0]] + sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milter_client  # noqa: E402  (reads PORT from sys.argv[1])
from milter_client import Conn  # noqa: E402


def negotiated():
    """(connection, "accepted"), or (None, "refused") when the milter closed
    it, or (None, "unanswered") when it did not answer within 1 s (a milter
    out of descriptors cannot accept: the kernel queues the connection)."""
    c = Conn()
    c.s.settimeout(1)
    try:
        c.negotiate()
        c.s.settimeout(20)
        return c, "accepted"
    except socket.timeout:
        c.s.close()
        return None, "unanswered"
    except (EOFError, ConnectionResetError, AssertionError):
        c.s.close()
        return None, "refused"


def rcpt_to(c, domain, qid):
    """MAIL, RCPT, then end of message (where the decision line is logged)."""
    c.mail(qid)
    start = time.monotonic()
    cmd, text, _ = c.rcpt("user@" + domain, [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)])
    ms = int((time.monotonic() - start) * 1000)
    if cmd == b"c":
        c.eom()
    else:
        c.send(b"A")  # the MTA aborts a transaction left without recipients
    return cmd.decode(), text, ms


def cmd_flood(n, hold_s, domain):
    conns, counts = [], {"accepted": 0, "refused": 0, "unanswered": 0}
    for _ in range(n):
        c, how = negotiated()
        counts[how] += 1
        if c is not None:
            conns.append(c)
    print("accepted=%(accepted)d refused=%(refused)d unanswered=%(unanswered)d" % counts, flush=True)
    if conns:
        cmd, text, ms = rcpt_to(conns[0], domain, "FLOOD")
        print("rcpt=%s ms=%d text=%s" % (cmd, ms, text.replace(" ", "_") or "-"), flush=True)
    time.sleep(hold_s)
    print("held", flush=True)
    for c in conns:
        c.s.close()


def cmd_rcpts(gap_s, domains):
    results = [None] * len(domains)

    def run(i, domain):
        try:
            c = Conn()
            c.negotiate()
            results[i] = rcpt_to(c, domain, "LIM%02d" % i)
            c.s.close()
        except Exception as e:  # reported, never raised past the thread
            results[i] = ("error", repr(e), -1)

    threads = []
    for i, domain in enumerate(domains):
        t = threading.Thread(target=run, args=(i, domain))
        t.start()
        threads.append(t)
        time.sleep(gap_s)
    for t in threads:
        t.join()
    for domain, (cmd, text, ms) in zip(domains, results):
        print("%s %s %d %s" % (domain, cmd, ms, text.replace(" ", "_") or "-"))


def cmd_spray(n, conns, suffix):
    """N recipients at distinct domains dN.SUFFIX over CONNS connections, each
    connection one recipient after another (aborting each transaction);
    prints "sprayed=N answered=A seconds=S"."""
    answered = [0] * conns
    failures = {}  # "stage:exception" -> count, printed when some were not answered

    def run(k):
        stage = "connect"
        try:
            c = Conn()
            stage = "negotiate"
            c.negotiate()
            for i in range(k, n, conns):
                domain = "d%d.%s" % (i, suffix)
                stage = "mail"
                c.mail("SPRAY")
                stage = "rcpt"
                c.rcpt("user@" + domain, [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)])
                c.send(b"A")
                answered[k] += 1
            c.s.close()
        except Exception as e:  # counted, never raised past the thread
            key = "%s:%s" % (stage, type(e).__name__)
            failures[key] = failures.get(key, 0) + 1

    start = time.monotonic()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(conns)]
    for t in threads: t.start()
    for t in threads: t.join()
    print("sprayed=%d answered=%d seconds=%.1f" % (n, sum(answered), time.monotonic() - start), flush=True)
    if failures:
        print("failed " + " ".join("%s=%d" % kv for kv in sorted(failures.items())), flush=True)


def cmd_watch(domain, count, interval_s):
    """COUNT recipients to DOMAIN on one connection, INTERVAL_S apart;
    prints "T_S CMD MS TEXT" per recipient (T_S: seconds since start)."""
    c = Conn()
    c.negotiate()
    start = time.monotonic()
    for _ in range(count):
        t = time.monotonic() - start
        c.mail("WATCH")
        s0 = time.monotonic()
        cmd, text, _ = c.rcpt("user@" + domain, [("{rcpt_mailer}", "smtp"), ("{rcpt_host}", domain)])
        ms = int((time.monotonic() - s0) * 1000)
        c.send(b"A")
        print("%.1f %s %d %s" % (t, cmd.decode(), ms, text.replace(" ", "_") or "-"), flush=True)
        time.sleep(max(0.0, interval_s - ms / 1000.0))
    c.s.close()


if __name__ == "__main__":
    command, args = sys.argv[2], sys.argv[3:]
    if command == "flood":
        cmd_flood(int(args[0]), float(args[1]), args[2])
    elif command == "rcpts":
        cmd_rcpts(float(args[0]), args[1:])
    elif command == "spray":
        cmd_spray(int(args[0]), int(args[1]), args[2])
    elif command == "watch":
        cmd_watch(args[0], int(args[1]), float(args[2]))
    else:
        sys.exit("unknown command " + command)
