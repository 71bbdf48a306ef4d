#!/usr/bin/env python3
"""Stand-in DNS forwarder for milter_protocol.sh (the milter's only resolver).

The protocol tests need DNS that fails at once and, in one scenario, answers
late on purpose; a real server would add set-up and nothing else. Every UDP query is answered SERVFAIL at once (the enforce domain's MX
lookup fails, every other domain has no policy, quickly); a query for a name
containing "slow" is first appended to SEEN_FILE (the test waits for it: a
decision is in flight) and answered after 3 s, one containing "slower" after
10 s (a decision still in flight when libmilter notices a SIGTERM, which
takes it up to 5 s).

With a third argument ANSWERED (a domain), that domain and the names under
it are answered at once and for real (NOERROR, not signed): MX "10
mx.ANSWERED", A 127.0.0.10 (no listener there: a probe is refused at once),
no data for other types, TTL 1 s. dns_flood.sh needs a domain that resolves.
With a fourth argument STS_ID as well, TXT "_mta-sts.ANSWERED" (and
"_mta-sts.NAME" for every NAME under ANSWERED) is answered "v=STSv1;
id=STS_ID;": a policy announced, whose host mta-sts.NAME is 127.0.0.10 like
every name. store_faults.sh needs broken policy hosts.

Usage: servfail_dns.py ADDRESS SEEN_FILE [ANSWERED [STS_ID]]   (binds ADDRESS:53/udp; runs until killed)
"""
import socket, struct, sys, threading, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
ANSWERED = sys.argv[3].lower().rstrip(".") if len(sys.argv) > 3 else None
STS_ID = sys.argv[4] if len(sys.argv) > 4 else None


def encode_name(name):
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split(".")) + b"\0"


def records_for(name, qtype):
    """The answer RRs (wire) for a name under ANSWERED: MX or A, the
    _mta-sts TXT with STS_ID, else none."""
    def rr(rtype, rdata):
        return b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 1, len(rdata)) + rdata  # TTL 1 s: looked up again and again
    if qtype == 15:
        return [rr(15, struct.pack(">H", 10) + encode_name("mx." + ANSWERED))]
    if qtype == 1:
        return [rr(1, socket.inet_aton("127.0.0.10"))]
    if qtype == 16 and STS_ID is not None and name.startswith("_mta-sts."):
        text = ("v=STSv1; id=%s;" % STS_ID).encode("ascii")
        return [rr(16, bytes([len(text)]) + text)]
    return []


def answer(query, peer):
    i, labels = 12, []
    while i < len(query) and query[i]:
        labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
        i += 1 + query[i]
    if "slow" in ".".join(labels).lower():
        with open(sys.argv[2], "a") as seen:  # the test waits for this: a decision is in flight
            seen.write(".".join(labels) + "\n")
        time.sleep(10 if "slower" in ".".join(labels).lower() else 3)
    name = ".".join(labels).lower()
    if ANSWERED and (name == ANSWERED or name.endswith("." + ANSWERED)):
        qtype = struct.unpack(">H", query[i + 1:i + 3])[0]
        records = records_for(name, qtype)
        flags = struct.pack(">BB", 0x80 | (query[2] & 0x01), 0x80)  # QR, RD copied, RA, NOERROR
        counts = struct.pack(">HHHH", 1, len(records), 0, 0)
        sock.sendto(query[:2] + flags + counts + query[12:i + 5] + b"".join(records), peer)
        return
    flags = struct.pack(">BB", 0x80 | (query[2] & 0x01), 0x80 | 2)  # QR, RD copied, RA, SERVFAIL
    sock.sendto(query[:2] + flags + query[4:6] + b"\0" * 6 + query[12:i + 5], peer)
while True:
    query, peer = sock.recvfrom(4096)
    if len(query) > 12:
        threading.Thread(target=answer, args=(query, peer), daemon=True).start()
