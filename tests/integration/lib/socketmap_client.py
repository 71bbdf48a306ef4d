"""Socketmap clients for tests/integration/socketmap_answers.sh: raw netstring
exchanges and hostile or idle clients against a running socketmap server
(Postfix socketmap_table(5), netstrings as in policy/socketmap.h).

  raw HOST PORT WAIT EXPR
      Sends the bytes of EXPR, a Python bytes expression (b"9:postfix a,",
      b"k" * 10), then reads until the server closes or WAIT seconds have
      passed. Prints one line: reply=REPR state=eof|open first_ms=N ms=N
      (REPR: Python repr of the bytes read; first_ms: until the first byte
      came, -1 if none; ms: until end of stream, or WAIT).
  halfopen HOST PORT EXPECT_FILE
  idle HOST PORT PID COUNT EXPECT_FILE
  pipeline HOST PORT PID COUNT EXPECT_FILE
  idletimeout HOST PORT TIMEOUT EXPECT_FILE
      Scenarios (see each function); print "ok NAME" / "FAIL NAME: why" lines.
      EXPECT_FILE: lines "MAP KEY<TAB>REPLY_PAYLOAD" of warm keys and their
      exact reply payloads (without the netstring framing).
"""
import os
import resource
import select
import socket
import subprocess
import sys
import time


def frame(payload):
    data = payload.encode() if isinstance(payload, str) else payload
    return str(len(data)).encode() + b":" + data + b","


def report(name, why):
    name = "B/" + name
    print(f"ok {name}" if not why else f"FAIL {name}: {why}", flush=True)


def connect(host, port, timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_reply(s, deadline):
    """One netstring payload from s (blocking until `deadline`, monotonic)."""
    buf = b""
    while b":" not in buf:
        buf += recv_some(s, deadline)
    head, rest = buf.split(b":", 1)
    want = int(head) + 1
    while len(rest) < want:
        rest += recv_some(s, deadline)
    if rest[want - 1:want] != b"," or len(rest) != want:
        raise ValueError(f"bad frame {buf!r}")
    return rest[:-1]


def recv_some(s, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no reply in time")
    s.settimeout(left)
    data = s.recv(65536)
    if not data:
        raise ConnectionError("closed by the server")
    return data


def ask(s, request, timeout=5.0):
    """Sends one request, returns (payload, seconds)."""
    start = time.monotonic()
    s.sendall(frame(request))
    return read_reply(s, start + timeout), time.monotonic() - start


def load_expect(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                request, reply = line.split("\t", 1)
                pairs.append((request, reply.encode()))
    return pairs


def check_answers(s, pairs, limit):
    """Asks every pair on s; returns a problem or ""."""
    slowest = 0.0
    for request, want in pairs:
        try:
            got, took = ask(s, request, timeout=max(limit, 5.0))
        except (OSError, ValueError) as e:
            return f"{request!r}: {e}"
        slowest = max(slowest, took)
        if got != want:
            return f"{request!r}: got {got!r}, want {want!r}"
        if took > limit:
            return f"{request!r}: answered after {took:.3f} s (limit {limit} s)"
    return ""


def state(s):
    """'open' (nothing to read), 'eof', or 'data' without blocking."""
    readable, _, _ = select.select([s], [], [], 0)
    if not readable:
        return "open"
    try:
        s.setblocking(False)
        data = s.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return "open"
    except OSError:
        return "eof"
    finally:
        s.setblocking(True)
    return "eof" if not data else "data"


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def server_recv_q(server_port, client_port):
    """Bytes the server has not read from one connection (ss), or -1."""
    out = subprocess.run(["ss", "-tnH", "state", "established"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        for i, field in enumerate(fields[2:], start=2):
            if field.endswith(f":{server_port}") and fields[i + 1:i + 2] == [f"127.0.0.1:{client_port}"]:
                return int(fields[i - 2])
    return -1


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


# ---------------------------------------------------------------- commands
def cmd_raw(host, port, wait, expr):
    data = eval(expr, {"__builtins__": {}})  # the test's own table, not untrusted input
    assert isinstance(data, bytes)
    s = connect(host, int(port))
    start = time.monotonic()
    s.sendall(data)
    got, end_state, first_ms = b"", "open", -1
    deadline = start + float(wait)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            end_state = "eof"  # reset after the reply: still closed by the server
            break
        if not chunk:
            end_state = "eof"
            break
        if not got:
            first_ms = int((time.monotonic() - start) * 1000)
        got += chunk
    ms = int((time.monotonic() - start) * 1000)
    print(f"reply={got!r} state={end_state} first_ms={first_ms} ms={ms}")


def cmd_halfopen(host, port, expect_file):
    """Half a frame on one connection, then nothing: it stays open, others are
    answered meanwhile, and the rest of the frame later gets its answer."""
    pairs = load_expect(expect_file)
    request, want = pairs[0]
    whole = frame(request)
    half = connect(host, int(port))
    half.sendall(whole[: len(whole) // 2])
    other = connect(host, int(port))
    report("halfopen/others-answered", check_answers(other, pairs * 3, 1.0))
    time.sleep(2.0)
    st = state(half)
    report("halfopen/stays-open", "" if st == "open" else f"half-frame connection is {st} after 2 s")
    why = ""
    if st == "open":
        start = time.monotonic()
        half.sendall(whole[len(whole) // 2:])
        try:
            got = read_reply(half, start + 5)
            why = "" if got == want else f"got {got!r}, want {want!r}"
        except (OSError, ValueError) as e:
            why = str(e)
    else:
        why = "connection not open"
    report("halfopen/completed-frame-answered", why)
    half.close()
    other.close()


def cmd_idle(host, port, pid, count, expect_file):
    """COUNT idle connections at once; a normal client still gets every answer,
    the server's descriptors follow the connections and are released."""
    pid, count = int(pid), int(count)
    pairs = load_expect(expect_file)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 256)), hard))
    base = fd_count(pid)
    idle = []
    try:
        for _ in range(count):
            idle.append(connect(host, int(port)))
    except OSError as e:
        report("idle/open-all", f"only {len(idle)} of {count} connections: {e}")
    else:
        report("idle/open-all", "")
    time.sleep(0.5)
    held = fd_count(pid)
    # One descriptor per connection; a few more for the server's own work
    # (a lookup's sockets) are fine, a descriptor per connection twice is not.
    why = "" if base + len(idle) <= held <= base + len(idle) + 16 else (
        f"{held} descriptors with {len(idle)} idle connections (before: {base})")
    report("idle/fd-count", why)
    normal = connect(host, int(port))
    report("idle/normal-client-answered", check_answers(normal, pairs * 3, 1.0))
    normal.close()
    closed = [st for st in (state(s) for s in idle) if st != "open"]
    report("idle/all-still-open", "" if not closed else f"{len(closed)} of {len(idle)} not open")
    for s in idle:
        s.close()
    after = held
    for _ in range(50):
        after = fd_count(pid)
        if after <= base + 2:
            break
        time.sleep(0.1)
    report("idle/fds-released", "" if after <= base + 2 else f"{after} descriptors 5 s after closing (before: {base})")
    print(f"info idle: descriptors before={base} with-{len(idle)}-idle={held} after-close={after}", flush=True)


def cmd_pipeline(host, port, pid, count, expect_file):
    """A client pipelines COUNT requests and never reads; another keeps
    getting every answer within 1 s; the server's memory stays bounded."""
    pid, count = int(pid), int(count)
    pairs = load_expect(expect_file)
    rss_before = rss_kib(pid)
    greedy = connect(host, int(port))
    greedy.setblocking(False)
    blob = b"".join(frame(pairs[i % len(pairs)][0]) for i in range(count))
    sent, stalled_since = 0, None
    start = time.monotonic()
    # Sends until everything is out or the server has stopped reading for 1 s.
    while sent < len(blob) and time.monotonic() - start < 10:
        try:
            sent += greedy.send(blob[sent:sent + 65536])
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 1.0:
                break
            select.select([], [greedy], [], 0.1)
    print(f"info pipeline: {sent} of {len(blob)} request bytes ({count} requests) accepted, "
          f"{'stalled (the server stopped reading)' if sent < len(blob) else 'all sent'}", flush=True)
    time.sleep(1.0)
    unread = server_recv_q(int(port), greedy.getsockname()[1])
    # The server stops reading a client that does not read its replies
    # (256 KiB of unread replies): its requests wait in the kernel.
    report("pipeline/server-stops-reading", "" if sent < len(blob) or unread > 0 else
           f"the server read all {sent} request bytes (unread: {unread})")
    print(f"info pipeline: request bytes the server left unread: {unread}", flush=True)
    other = connect(host, int(port))
    report("pipeline/other-client-within-1s", check_answers(other, pairs * 5, 1.0))
    other.close()
    rss_after = rss_kib(pid)
    grew = rss_after - rss_before
    report("pipeline/memory-bounded", "" if grew < 64 * 1024 else f"RSS grew by {grew} KiB")
    print(f"info pipeline: server RSS {rss_before} -> {rss_after} KiB", flush=True)
    st = state(greedy)
    report("pipeline/greedy-still-open", "" if st in ("open", "data") else f"greedy connection {st}")
    greedy.close()
    report("pipeline/server-alive", "" if alive(pid) else f"process {pid} is gone")


def cmd_idletimeout(host, port, timeout, expect_file):
    """With socketmap.idle_timeout = TIMEOUT: idle connections (never asked,
    or asked once and answered) are open at TIMEOUT-0.5 s and closed by
    TIMEOUT+2.5 s; a client asking every second stays open."""
    timeout = float(timeout)
    pairs = load_expect(expect_file)
    request, want = pairs[0]
    start = time.monotonic()
    silent = [connect(host, int(port)) for _ in range(5)]
    once = connect(host, int(port))
    got, _ = ask(once, request)
    busy = connect(host, int(port))
    busy_why, last_ask = "", 0.0
    closed_at = {}
    conns = silent + [once]
    while time.monotonic() - start < timeout + 2.5:
        time.sleep(0.25)
        elapsed = time.monotonic() - start
        for i, s in enumerate(conns):
            if i not in closed_at and state(s) == "eof":
                closed_at[i] = elapsed
        if not busy_why and elapsed - last_ask >= 1.0:
            last_ask = elapsed
            try:
                got, _ = ask(busy, request, timeout=2)
                if got != want:
                    busy_why = f"got {got!r}"
            except (OSError, ValueError) as e:
                busy_why = f"{e} after {elapsed:.1f} s"
    early = {i: t for i, t in closed_at.items() if t < timeout - 0.5}
    report("idle-timeout/not-before", "" if not early else f"closed too early: {sorted(early.values())}")
    missing = len(conns) - len(closed_at)
    report("idle-timeout/closed-after", "" if not missing else
           f"{missing} of {len(conns)} idle connections still open {timeout + 2.5:.1f} s after opening")
    report("idle-timeout/active-client-kept", busy_why)
    if closed_at:
        print(f"info idle-timeout: closed after {min(closed_at.values()):.2f}-{max(closed_at.values()):.2f} s "
              f"(idle_timeout {timeout:g} s)", flush=True)
    for s in conns + [busy]:
        s.close()


COMMANDS = {"raw": cmd_raw, "halfopen": cmd_halfopen, "idle": cmd_idle,
            "pipeline": cmd_pipeline, "idletimeout": cmd_idletimeout}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
