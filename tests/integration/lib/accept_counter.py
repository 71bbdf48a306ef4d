#!/usr/bin/env python3
"""A broken policy host for store_faults.sh: accepts TCP connections and
closes each at once (the milter's TLS handshake fails: a policy fetch error),
appending one line per connection to COUNT_FILE, so the test can count the
fetch attempts that reached the host.

Usage: accept_counter.py ADDRESS PORT COUNT_FILE   (runs until killed)
"""
import socket, sys

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen(64)
with open(sys.argv[3], "a", buffering=1) as seen:
    while True:
        conn, peer = listener.accept()
        conn.close()
        seen.write("%s:%d\n" % peer)
