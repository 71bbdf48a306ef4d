#!/usr/bin/env python3
"""A small HTTPS server that takes RFC 8460 §5.4 report POSTs, for tests.

Each POST is saved as OUT/N.body (the exact bytes) and OUT/N.headers (the
request line and the headers as received), N = 1, 2, ... in arrival order,
and answered with the next code of --status ("503,503,200": the first POST
gets 503, the second 503, the third and later 200; the last code repeats).
A 3xx answer carries "Location: /redirected" on the same server. GET and
every other method get 405 and use up no code. One line per request on
stderr. Once listening, the port is printed on stdout ("--port 0" picks a
free one). Python 3.11 standard library only.

  https_sink.py --cert leaf.pem --key leaf.key --port 0 --out DIR \
      [--host 127.0.0.1] [--status 200] [--body-bytes N] [--exit-with-parent]

--body-bytes N  answer with N bytes of body (default: a short text); a
                huge N with a client that stops reading tests its cap.
--exit-with-parent  exit when the process that started the sink is gone.
"""

import argparse
import http.server
import os
import ssl
import sys
import threading
import time


def parse_args():
    parser = argparse.ArgumentParser(description="HTTPS sink for TLSRPT report POSTs")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--status", default="200")
    parser.add_argument("--out", required=True)
    parser.add_argument("--body-bytes", type=int, default=-1)
    parser.add_argument("--exit-with-parent", action="store_true")
    args = parser.parse_args()
    try:
        args.codes = [int(code) for code in args.status.split(",")]
    except ValueError:
        parser.error("--status takes codes like 200 or 503,503,200")
    if not args.codes or any(code < 100 or code > 999 for code in args.codes):
        parser.error("--status codes are 100..999")
    return args


class Sink:
    """The state the handler threads share."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.posts = 0

    def next_post(self):
        with self.lock:
            self.posts += 1
            code = self.args.codes[min(self.posts, len(self.args.codes)) - 1]
            return self.posts, code


def log(line):
    sys.stderr.write("https_sink: %s\n" % line)
    sys.stderr.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms delayed-ACK stall
    sink = None  # set in main()

    def log_message(self, *args):
        pass  # one line per request is written by the handlers

    def setup(self):
        # The handshake runs here, in the request's thread: a client that
        # never finishes it holds up only itself.
        self.request.do_handshake()
        super().setup()

    def answer(self, code, extra=None):
        size = self.sink.args.body_bytes
        body = b"%d from https_sink\n" % code if size < 0 else None
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body) if body is not None else size))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if body is not None:
            self.wfile.write(body)
            return
        chunk = b"x" * 65536
        left = size
        try:
            while left > 0:
                self.wfile.write(chunk[:left])
                left -= min(left, len(chunk))
        except OSError:
            self.close_connection = True  # the client stopped reading

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        number, code = self.sink.next_post()
        out = self.sink.args.out
        with open(os.path.join(out, "%d.body" % number), "wb") as f:
            f.write(body)
        with open(os.path.join(out, "%d.headers" % number), "wb") as f:
            f.write(self.raw_requestline)
            for name, value in self.headers.items():
                f.write(("%s: %s\r\n" % (name, value)).encode("latin-1"))
        log("POST %s %d bytes -> %d (#%d)" % (self.path, len(body), code, number))
        extra = {"Location": "/redirected"} if 300 <= code < 400 else None
        self.answer(code, extra)

    def refuse(self):
        log("%s %s -> 405" % (self.command, self.path))
        self.answer(405, {"Allow": "POST"})

    do_GET = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = refuse


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A failed handshake (the client refused our certificate) is a test
        # case, not a traceback.
        log("connection from %s:%d failed: %s" % (client_address[0], client_address[1], sys.exc_info()[1]))


def watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    Handler.sink = Sink(args)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = Server((args.host, args.port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    if args.exit_with_parent:
        threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    print(server.server_address[1], flush=True)
    log("listening on %s:%d" % (args.host, server.server_address[1]))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
