#!/usr/bin/env python3
"""One SMTP transaction for the end-to-end MTA tests.

    [SMTP_FROM=ADDRESS] smtp_client.py PORT RCPT...  ->  JSON on stdout:
    {"connect", "mail": [code, text], "rcpt": [[code, text]...], "data", "queue_id"}

Each recipient's own reply is kept (smtplib.sendmail hides partial failures).
The envelope sender is SMTP_FROM, else sender@sender.test.
The queue id is read from the DATA reply of either MTA: Postfix says
"2.0.0 Ok: queued as QUEUEID", Sendmail "2.0.0 QUEUEID Message accepted".
"""
import json
import os
import re
import smtplib
import sys

QUEUE_ID = (re.compile(r"queued as ([0-9A-Za-z]+)"),
            re.compile(r"^\d\.\d\.\d+ ([0-9A-Za-z]+) Message accepted"))


def pair(code, text):
    return [code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)]


def queue_id(reply):
    for pattern in QUEUE_ID:
        m = pattern.search(reply)
        if m:
            return m.group(1)
    return None


def main():
    port, rcpts = int(sys.argv[1]), sys.argv[2:]
    out = {"connect": None, "mail": None, "rcpt": [], "data": None, "queue_id": None}
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.sender.test", timeout=60)
        out["connect"] = [220, ""]
        s.ehlo()
        out["mail"] = pair(*s.mail(os.environ.get("SMTP_FROM", "sender@sender.test")))
        if out["mail"][0] == 250:
            out["rcpt"] = [pair(*s.rcpt(r)) for r in rcpts]
            if any(c == 250 for c, _ in out["rcpt"]):
                out["data"] = pair(*s.data(b"From: <sender@sender.test>\r\n"
                                           b"Subject: mta-sts milter test\r\n\r\ntest\r\n"))
                out["queue_id"] = queue_id(out["data"][1])
            else:
                s.rset()
        s.quit()
    except smtplib.SMTPResponseException as e:
        key = "connect" if out["connect"] is None else "mail" if out["mail"] is None else "data"
        out[key] = pair(e.smtp_code, e.smtp_error)
    except (OSError, smtplib.SMTPException) as e:
        out["error"] = str(e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
