"""Plain-HTTP upstream behind the test bed's nginx (RFC 8461 §3.3 edge cases).

  /ping     200, empty (readiness probe)
  /chunked  200 text/plain, 70 000 bytes without Content-Length (nginx
            passes it to the client chunked)
  /slow/N   200 text/plain, a valid policy, after sleeping N seconds

Usage: upstream.py ADDRESS PORT
"""
import http.server
import sys
import time

POLICY = b"version: STSv1\nmode: enforce\nmx: mx.slow.plain.test\nmax_age: 86400\n"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # no Content-Length: the body ends at close

    def do_GET(self):
        if self.path == "/ping":
            self._start()
        elif self.path == "/chunked":
            self._start()
            line = b"# padding line of a policy that is far too large......\n"
            for _ in range(70000 // len(line) + 1):
                self.wfile.write(line)
        elif self.path.startswith("/slow/"):
            time.sleep(float(self.path[len("/slow/"):]))
            self._start()
            self.wfile.write(POLICY)
        else:
            self.send_error(404)

    def _start(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: " + fmt % args + "\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
