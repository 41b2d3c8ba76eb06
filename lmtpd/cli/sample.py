"""`./dev send`: deliver a sample purchase order (with a small PDF) over LMTP."""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
from email.message import EmailMessage
from email.utils import make_msgid

from lmtpd.listeners import parse_listen

SAMPLE_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def sample_order(to: str, sender: str = "buyer@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Purchasing <{sender}>"
    message["To"] = to
    message["Subject"] = "Purchase order PO-1001"
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content("Please find our purchase order PO-1001 attached.\n")
    message.add_attachment(
        SAMPLE_PDF, maintype="application", subtype="pdf", filename="PO-1001.pdf"
    )
    return message


def send(message: EmailMessage, listen: str, sender: str, to: str) -> list[tuple[int, bytes]]:
    """Deliver over LMTP; every reply after the greeting, as (code, text): MAIL,
    RCPT and, when the recipient was accepted, DATA and the end of data."""
    target = parse_listen(listen)
    if isinstance(target, str):
        client = smtplib.LMTP(target)
    else:
        host, port = target
        client = smtplib.LMTP("127.0.0.1" if host in ("0.0.0.0", "") else host, port)
    replies: list[tuple[int, bytes]] = []
    with client:
        client.ehlo_or_helo_if_needed()
        replies.append(client.mail(sender))
        replies.append(client.rcpt(to))
        if replies[-1][0] != 250:
            return replies
        client.putcmd("data")
        replies.append(client.getreply())
        client.send(_dot_stuff(message.as_bytes()) + b"\r\n.\r\n")
        replies.append(client.getreply())
    return replies


def _dot_stuff(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="./dev send",
        description="Deliver a sample purchase order (with a small PDF) over LMTP and print"
        " the server's replies; exits 1 when the server refuses or defers it.",
    )
    parser.add_argument("--to", default="orders+acme@orders.localhost", help="the recipient")
    parser.add_argument("--from", dest="sender", default="buyer@example.org", help="the sender")
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="the LMTP server (or unix:/path); default INGEST_LMTP_LISTEN, 127.0.0.1:2424",
    )
    args = parser.parse_args(argv)
    listen = args.server or os.environ.get("INGEST_LMTP_LISTEN") or "127.0.0.1:2424"
    try:
        replies = send(sample_order(args.to, args.sender), listen, args.sender, args.to)
    except ValueError as exc:
        print(f"--server: {exc}", file=sys.stderr)
        return 2
    except (OSError, smtplib.SMTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        print(f"cannot deliver to {listen}: {reason} (is `./dev run` running?)", file=sys.stderr)
        return 1
    for code, text in replies:
        print(code, text.decode("ascii", "replace").replace("\n", " "))
    return 0 if replies[-1][0] == 250 and len(replies) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
