#!/usr/bin/env python3
"""Stand-in DNS forwarder for milter_protocol.sh (the milter's only resolver).

The protocol tests need DNS that fails at once and, in one scenario, answers
late on purpose; a real server would add set-up and nothing else. Every UDP query is answered SERVFAIL at once (the enforce domain's MX
lookup fails, every other domain has no policy, quickly); a query for a name
containing "slow" is first appended to SEEN_FILE (the test waits for it: a
decision is in flight) and answered after 3 s, one containing "slower" after
10 s (a decision still in flight when libmilter notices a SIGTERM, which
takes it up to 5 s).

Usage: servfail_dns.py ADDRESS SEEN_FILE    (binds ADDRESS:53/udp; runs until killed)
"""
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
        time.sleep(10 if "slower" in ".".join(labels).lower() else 3)
    flags = struct.pack(">BB", 0x80 | (query[2] & 0x01), 0x80 | 2)  # QR, RD copied, RA, SERVFAIL
    sock.sendto(query[:2] + flags + query[4:6] + b"\0" * 6 + query[12:i + 5], peer)
while True:
    query, peer = sock.recvfrom(4096)
    if len(query) > 12:
        threading.Thread(target=answer, args=(query, peer), daemon=True).start()
