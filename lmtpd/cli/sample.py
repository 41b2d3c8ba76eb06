"""`just send`: deliver a sample purchase order (with a small PDF) over LMTP."""

from __future__ import annotations

import argparse
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from ingest_core.settings import Settings
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
    target = parse_listen(listen)
    if isinstance(target, str):
        client = smtplib.LMTP(target)
    else:
        host, port = target
        client = smtplib.LMTP("127.0.0.1" if host in ("0.0.0.0", "") else host, port)
    with client:
        client.ehlo_or_helo_if_needed()
        client.mail(sender)
        code, _ = client.rcpt(to)
        if code != 250:
            return [(code, b"recipient refused")]
        client.putcmd("data")
        client.getreply()
        client.send(_dot_stuff(message.as_bytes()) + b"\r\n.\r\n")
        return [client.getreply()]


def _dot_stuff(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--to", default="orders+acme@orders.localhost")
    parser.add_argument("--from", dest="sender", default="buyer@example.org")
    args = parser.parse_args()
    settings = Settings.from_env()
    for code, text in send(
        sample_order(args.to, args.sender), settings.lmtp_listen, args.sender, args.to
    ):
        print(code, text.decode("ascii", "replace"))


if __name__ == "__main__":
    main()
