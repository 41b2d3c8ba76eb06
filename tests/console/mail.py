"""Messages the console tests deliver through the real accept path and extract
with the real extraction: an order with a PDF, a hostile one, and helpers that
hold one in quarantine or fail it."""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING

from ingest_core.automated import AutomatedCheck
from ingest_core.extraction import extract_message
from ingest_core.ports import Envelope
from ingest_core.sender import SenderCheck
from ingest_core.spool import Spool

if TYPE_CHECKING:
    from ingest_core.bootstrap import App

DOMAIN = "orders.example.com"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def order(subject: str, sender: str = "buyer@shop.example", pdf: bytes = PDF) -> bytes:
    encoded = base64.encodebytes(pdf).replace(b"\n", b"\r\n")
    return (
        (
            f"From: Buyer <{sender}>\r\nTo: orders@{DOMAIN}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@shop.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "Please ship 10 widgets to dock 4.\r\n"
            "--b1\r\nContent-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="order-4711.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + encoded
        + b"--b1--\r\n"
    )


def hostile(beacon: str) -> bytes:
    """Script in the subject, the attachment's filename and the HTML body; each
    payload would raise an alert, and those with room for a URL call ``beacon``,
    if a browser ever ran or loaded them."""
    script = f"<script>alert(1);fetch('{beacon}/subject')</script>"
    name = "<img src=x onerror=alert(2)><svg onload=alert(5)>.html"  # no "/": names lose paths
    html = (
        "<html><body><h1>Totally an order</h1>"
        f"<script>alert(3);fetch('{beacon}/body')</script>"
        f'<img src="{beacon}/img"><iframe src="{beacon}/frame"></iframe>'
        f"<a href=\"javascript:fetch('{beacon}/link')\">click</a></body></html>"
    )
    return (
        f"From: Mallory <mallory@evil.example>\r\nTo: orders@{DOMAIN}\r\n"
        f"Subject: {script}\r\nMessage-ID: <{uuid.uuid4().hex}@evil.example>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b2"\r\n\r\n'
        "--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"{html}\r\n"
        "--b2\r\nContent-Type: text/html\r\n"
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'
        f"<script>alert(4);fetch('{beacon}/file')</script>\r\n"
        "--b2--\r\n"
    ).encode()


def deliver(app: App, slug: str, raw: bytes, *, extract: bool = True) -> uuid.UUID:
    """Accepted as the LMTP server would accept it from Postfix (XFORWARD names
    the client), then extracted as the worker extracts it: the sender check (the
    suite's DNS stub answers) and the automated-mail check included."""
    decision = app.service.check_recipient(f"orders+{slug}@{DOMAIN}", False)
    envelope = Envelope(
        mail_from="buyer@shop.example",
        recipients=(decision,),
        lhlo="mx.postfix.example",
        xforward={"ADDR": "192.0.2.7", "NAME": "mail.shop.example", "HELO": "mail.shop.example",
                  "IDENT": "4Q1xZk2Lm9"},
    )  # fmt: skip
    [outcome] = app.service.accept(envelope, Spool.from_bytes(raw))
    assert outcome.message_id is not None
    if extract:
        extract_message(
            outcome.message_id,
            repo=app.repository,
            store=app.store,
            config=app.extraction,
            sender=SenderCheck(app.verifier(), app.sender_rules),
            automated=AutomatedCheck(app.automated_policies),
        )
    return outcome.message_id


def quarantined(app: App, slug: str, raw: bytes) -> uuid.UUID:
    message_id = deliver(app, slug, raw, extract=False)
    assert app.repository.claim(message_id, 60) is not None
    app.repository.quarantine(message_id, "DMARC fail for shop.example")
    return message_id


def failed(app: App, slug: str, raw: bytes) -> uuid.UUID:
    message_id = deliver(app, slug, raw, extract=False)
    assert app.repository.claim(message_id, 60) is not None
    app.repository.fail(message_id, "extraction: MIME nesting too deep", final=True)
    return message_id
