#!/usr/bin/python3
"""SMTP peers playing MX hosts for the mail test bed (lib/mailbed.sh).

One asyncio process serves many listeners, each an (address, port) with its
own behaviour, so the bed needs one process for every MX host. The peers
implement just enough of RFC 5321 and RFC 3207 (STARTTLS) for a sending MTA's
probe: greeting, EHLO/HELO, STARTTLS, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
Mail is accepted and thrown away.

Usage: smtp_peer.py SPEC.json
SPEC is a JSON list of listeners:
  {"addr": "127.25.0.1", "port": 25, "name": "mx.good.plain.test",
   "behaviour": "starttls" | "nostarttls" | "starttls454" | "tls10",
   (tls10: TLS 1.0 only; the session ends after the STARTTLS handshake)
   "cert": "/path/cert.pem", "key": "/path/key.pem"}   (cert/key: TLS ones)
Prints "ready N" on stdout once every listener is bound, then one line per
session event: "<addr> <event> [detail]" (connect, ehlo, starttls-ok,
starttls-refused, tls-failed, mail, rcpt, data, quit, closed).
"""
import asyncio
import json
import logging
import ssl
import sys
import warnings

BEHAVIOURS = ("starttls", "nostarttls", "starttls454", "tls10")


def log(addr, event, detail=""):
    print(f"{addr} {event} {detail}".rstrip(), flush=True)


def tls_context(spec):
    """Server context for a STARTTLS listener, None when it offers no TLS."""
    if spec["behaviour"] not in ("starttls", "tls10"):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(spec["cert"], spec["key"])
    if spec["behaviour"] == "tls10":
        # An outdated peer: RFC 8461 §4.2 senders need TLS 1.2 or later.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # TLSv1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
    return ctx


class Session:
    """One SMTP connection to one listener."""

    def __init__(self, spec, ctx, reader, writer):
        self.spec, self.ctx = spec, ctx
        self.reader, self.writer = reader, writer
        self.addr = spec["addr"]
        self.tls = False

    async def reply(self, text):
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()

    def ehlo_lines(self):
        lines = [self.spec["name"], "PIPELINING", "8BITMIME", "SIZE 10240000"]
        if not self.tls and self.spec["behaviour"] != "nostarttls":
            lines.append("STARTTLS")
        return "\r\n".join(
            f"250{' ' if i == len(lines) - 1 else '-'}{line}" for i, line in enumerate(lines))

    async def starttls(self):
        if self.tls or self.spec["behaviour"] == "nostarttls":
            await self.reply("502 5.5.1 STARTTLS not offered")
            return True
        if self.spec["behaviour"] == "starttls454":
            log(self.addr, "starttls-refused")
            await self.reply("454 4.7.0 TLS not available due to local problem")
            return True
        await self.reply("220 2.0.0 Ready to start TLS")
        if self.spec["behaviour"] == "tls10":
            await self.outdated_handshake()
            return False
        try:
            await self.writer.start_tls(self.ctx, ssl_handshake_timeout=10)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            log(self.addr, "tls-failed", type(exc).__name__)
            return False
        self.tls = True
        obj = self.writer.get_extra_info("ssl_object")
        log(self.addr, "starttls-ok", obj.version() if obj else "")
        return True

    async def outdated_handshake(self):
        """TLS 1.0 handshake through memory BIOs, so that the protocol_version
        alert a modern client provokes reaches it (asyncio's start_tls drops
        it when the handshake fails). The session ends after the handshake."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.ctx.wrap_bio(incoming, outgoing, server_side=True)
        try:
            while True:
                try:
                    obj.do_handshake()
                    log(self.addr, "starttls-ok", obj.version())
                    return
                except ssl.SSLWantReadError:
                    self.writer.write(outgoing.read())
                    await self.writer.drain()
                    data = await asyncio.wait_for(self.reader.read(16384), timeout=10)
                    if not data:
                        raise ConnectionError("closed during handshake")
                    incoming.write(data)
        except (ssl.SSLError, ConnectionError, asyncio.TimeoutError) as exc:
            self.writer.write(outgoing.read())  # the alert, if any
            await self.writer.drain()
            log(self.addr, "tls-failed", type(exc).__name__)

    async def data(self):
        await self.reply("354 End data with <CR><LF>.<CR><LF>")
        while True:
            line = await self.reader.readline()
            if not line or line.rstrip(b"\r\n") == b".":
                break
        log(self.addr, "data")
        await self.reply("250 2.0.0 Ok: discarded")

    async def command(self, line):
        """Answers one command; False ends the session."""
        verb = line.split(" ", 1)[0].upper()
        if verb == "EHLO":
            log(self.addr, "ehlo", line[5:].strip())
            await self.reply(self.ehlo_lines())
        elif verb == "HELO":
            await self.reply(f"250 {self.spec['name']}")
        elif verb == "STARTTLS":
            return await self.starttls()
        elif verb in ("MAIL", "RCPT"):
            log(self.addr, verb.lower(), line[5:].strip())
            await self.reply("250 2.1.0 Ok")
        elif verb == "DATA":
            await self.data()
        elif verb in ("RSET", "NOOP"):
            await self.reply("250 2.0.0 Ok")
        elif verb == "QUIT":
            log(self.addr, "quit")
            await self.reply("221 2.0.0 Bye")
            return False
        else:
            await self.reply("500 5.5.2 Command not recognized")
        return True

    async def run(self):
        log(self.addr, "connect")
        try:
            await self.reply(f"220 {self.spec['name']} ESMTP test peer")
            while True:
                raw = await asyncio.wait_for(self.reader.readline(), timeout=60)
                if not raw:
                    break
                if not await self.command(raw.decode("utf-8", "replace").rstrip("\r\n")):
                    break
        except (OSError, ConnectionError, asyncio.TimeoutError, ssl.SSLError):
            pass
        finally:
            log(self.addr, "closed")
            self.writer.close()


async def serve(specs):
    servers = []
    for spec in specs:
        if spec["behaviour"] not in BEHAVIOURS:
            raise SystemExit(f"unknown behaviour {spec['behaviour']!r} for {spec['addr']}")
        ctx = tls_context(spec)

        def handler(reader, writer, spec=spec, ctx=ctx):
            return Session(spec, ctx, reader, writer).run()

        servers.append(await asyncio.start_server(
            handler, spec["addr"], spec.get("port", 25), reuse_address=True))
    print(f"ready {len(servers)}", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: smtp_peer.py SPEC.json")
    with open(sys.argv[1], encoding="utf-8") as f:
        specs = json.load(f)
    # asyncio warns about every TLS close; the event log is on stdout.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    try:
        asyncio.run(serve(specs))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
