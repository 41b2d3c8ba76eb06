"""Message bodies: which parts, charsets to str, HTML rendered when there is no
text, quoted reply history split off, size caps, hostile input in bounded time."""

from __future__ import annotations

import time
from email import message_from_bytes, policy

from ingest_core.bodies import MAX_BODY_CHARS, extract_body


def _parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


MIXED = b"""From: a@b.example\r
Subject: order\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=B\r
\r
--B\r
Content-Type: multipart/alternative; boundary=A\r
\r
--A\r
Content-Type: text/plain; charset=iso-8859-1\r
Content-Transfer-Encoding: quoted-printable\r
\r
Bitte 10 St=FCck an Tor 4.\r
\r
Am 30.11.2026 um 10:00 schrieb Alice <a@x.example>:\r
> Wie viele?\r
--A\r
Content-Type: text/html; charset=utf-8\r
Content-Transfer-Encoding: base64\r
\r
PHA+Qml0dGUgMTAgU3TDvGNrPC9wPg==\r
--A--\r
--B\r
Content-Type: text/plain; name=notes.txt\r
Content-Disposition: attachment; filename=notes.txt\r
\r
an attachment, not the body\r
--B\r
Content-Type: message/rfc822\r
\r
Subject: forwarded\r
\r
the attached message's own text\r
--B--\r
"""


def test_text_and_html_decoded_attachments_and_attached_messages_skipped() -> None:
    body = extract_body(_parse(MIXED))
    assert body.text == (
        "Bitte 10 Stück an Tor 4.\n\nAm 30.11.2026 um 10:00 schrieb Alice <a@x.example>:\n"
        "> Wie viele?"
    )
    assert body.html == "<p>Bitte 10 Stück</p>"
    assert not body.text_from_html
    assert body.quoted
    assert body.reply == "Bitte 10 Stück an Tor 4."
    assert not body.truncated


def test_html_only_is_rendered_as_text() -> None:
    raw = (
        b"Content-Type: text/html; charset=x-no-such-charset\r\n\r\n"
        b"<html><body><p>Ship <b>10</b> widgets</p><ul><li>dock 4</li></ul>"
        b"<script>alert(1)</script></body></html>"
    )
    body = extract_body(_parse(raw))
    assert body.text_from_html
    assert body.html is not None
    assert body.text is not None
    assert "Ship 10 widgets" in body.text
    assert "dock 4" in body.text
    assert "alert" not in body.text
    assert not body.quoted
    assert body.reply == body.text


def test_no_body_part() -> None:
    body = extract_body(_parse(b"Content-Type: application/pdf\r\n\r\n%PDF"))
    assert (body.text, body.html, body.reply, body.quoted) == (None, None, None, False)


def test_undecodable_bytes_and_nul_are_storable() -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nqty \xff\xfe 5\x00\r\n"
    body = extract_body(_parse(raw))
    assert body.text is not None
    assert "\x00" not in body.text
    assert body.text.startswith("qty \ufffd")
    body.text.encode("utf-8")


def test_bodies_are_capped() -> None:
    raw = b"Content-Type: text/plain\r\n\r\n" + b"x" * (MAX_BODY_CHARS + 10)
    body = extract_body(_parse(raw))
    assert body.truncated
    assert body.text is not None
    assert len(body.text) == MAX_BODY_CHARS


def test_hostile_bodies_take_bounded_time() -> None:
    for text in (b"\r\n" * 100_000, b"> q\r\n" * 50_000, b"-- \r\n" * 50_000, b"x\r\n" * 100_000):
        started = time.perf_counter()
        extract_body(_parse(b"Content-Type: text/plain\r\n\r\n" + text))
        assert time.perf_counter() - started < 5.0
