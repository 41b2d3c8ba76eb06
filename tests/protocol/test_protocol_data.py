"""DATA: end marker, dot-unstuffing, smuggling vectors, size limit, streaming."""

from __future__ import annotations

import hashlib

import pytest

from lmtpd import protocol as p
from tests.protocol.driver import (
    ENVELOPE,
    bytewise,
    connection,
    drive,
    linewise,
    pump,
    split_at,
    whole,
)

OPEN = ENVELOPE + b"DATA\r\n"


def message(body_on_wire: bytes, **limits: int) -> list[bytes]:
    """The message content(s) decoded from one DATA session, checked chunking-independent."""
    session = OPEN + body_on_wire
    results = [drive(feed(session), **limits) for feed in (whole, bytewise, linewise)]
    assert results[0].events == results[1].events == results[2].events
    assert results[0].output == results[1].output == results[2].output
    return results[0].bodies()


@pytest.mark.parametrize(
    ("wire", "content"),
    [
        (b".\r\n", b""),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.\r\n", b"..\r\n"),
        (b"a\r\n..b\r\n.\r\n", b"a\r\n.b\r\n"),
        (b"a\r\n.b\r\n.\r\n", b"a\r\nb\r\n"),  # RFC 5321 §4.5.2: the first dot goes
        (b"a.\r\nb..c\r\n.\r\n", b"a.\r\nb..c\r\n"),  # only a dot at line start counts
        (b"\r\n.\r\n", b"\r\n"),
        (b"a\r\n\r\n.\r\n", b"a\r\n\r\n"),
        (b"no final newline.\r\n.\r\n", b"no final newline.\r\n"),
    ],
)
def test_end_marker_and_dot_unstuffing(wire: bytes, content: bytes) -> None:
    assert message(wire) == [content]


@pytest.mark.parametrize(
    "smuggled",
    [
        b"a\n.\nMAIL FROM:<evil@x.test>\r\n",
        b"a\r\n.\nRCPT TO:<evil@x.test>\r\n",
        b"a\n.\r\nDATA\r\n",
        b"a\r.\rQUIT\r\n",
        b"a\r\n.\rQUIT\r\n",
        b"a\r\n.\r.\r\n",
        b".\nfirst line\r\n",
        b".\rfirst line\r\n",
    ],
)
def test_smuggling_vectors_are_content(smuggled: bytes) -> None:
    session = OPEN + smuggled + b".\r\nNOOP\r\n"
    for feed in (whole, bytewise, linewise):
        t = drive(feed(session))
        assert t.bodies() == [smuggled]
        assert len(t.of(p.MailFrom)) == 1
        assert len(t.of(p.EndOfData)) == 1
        assert t.codes[-3:] == [354, 250, 250]  # one end of data, then the NOOP


def test_end_marker_split_across_every_boundary() -> None:
    wire = b"line one\r\n..two\r\n.\r\n"
    session = OPEN + wire + b"NOOP\r\n"
    for cut in range(len(OPEN), len(session)):
        t = drive(split_at(session, [cut]))
        assert t.bodies() == [b"line one\r\n.two\r\n"], cut
        assert t.codes[-2:] == [250, 250], cut


def test_chunks_are_emitted_before_the_end_arrives() -> None:
    conn = connection()
    events: list[p.Event] = []
    conn.receive_data(OPEN)
    pump(conn, events)
    assert events[-1] == p.DataStart()
    assert conn.in_data
    conn.receive_data(b"first part\r\nsecond")
    pump(conn, events)
    assert events[-1] == p.BodyChunk(b"first part\r\nsecond")
    conn.receive_data(b" part\r\n")
    pump(conn, events)
    # the trailing CRLF could begin the end marker, so it waits
    assert events[-1] == p.BodyChunk(b" part")
    assert conn.buffered == 2
    conn.receive_data(b".\r\n")
    pump(conn, events)
    assert events[-2:] == [p.BodyChunk(b"\r\n"), p.EndOfData(("a@orders.test",))]
    assert not conn.in_data


def test_message_at_the_size_limit_is_accepted() -> None:
    body = b"x" * 98 + b"\r\n"
    assert message(body + b".\r\n", max_message_bytes=100) == [body]


def test_oversized_message_is_discarded_and_answered_per_recipient() -> None:
    session = (
        ENVELOPE
        + b"RCPT TO:<b@orders.test>\r\nDATA\r\n"
        + b"y" * 5000
        + b"\r\n..\r\n"
        + b"z" * 5000
        + b"\r\n.\r\nNOOP\r\n"
        + b"MAIL FROM:<>\r\n"
    )
    for feed in (whole, linewise):
        t = drive(feed(session), max_message_bytes=6000)
        assert t.of(p.EndOfData) == []
        assert p.DataAborted("size") in t.events
        emitted = sum(len(e.data) for e in t.of(p.BodyChunk))
        assert emitted <= 6000
        assert t.replies[-4:] == [(552, "5.3.4"), (552, "5.3.4"), (250, "2.0.0"), (250, "2.1.0")]


def test_eof_inside_data_reports_connection_closed_only() -> None:
    t = drive(whole(OPEN + b"partial body\r\n"), eof=True)
    assert t.events[-1] == p.ConnectionClosed()
    assert t.of(p.EndOfData) == []
    assert t.of(p.DataAborted) == []


@pytest.mark.slow
def test_fifty_megabytes_in_64k_pieces_stream_with_bounded_buffering() -> None:
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (50 * 2**20 // len(line)) + b"..dotted\r\n"
    expected = hashlib.sha256(body.replace(b"\r\n..dotted", b"\r\n.dotted")).hexdigest()
    conn = connection(max_message_bytes=60 * 2**20)
    events: list[p.Event] = []
    conn.receive_data(OPEN)
    pump(conn, events)
    digest = hashlib.sha256()
    chunks = 0
    wire = memoryview(body + b".\r\n")
    for start in range(0, len(wire), 65536):
        events.clear()
        conn.receive_data(bytes(wire[start : start + 65536]))
        pump(conn, events)
        assert conn.buffered <= 2
        for event in events:
            if isinstance(event, p.BodyChunk):
                assert len(event.data) <= 65536 + 2  # plus a held-back CRLF
                digest.update(event.data)
                chunks += 1
    assert events[-1] == p.EndOfData(("a@orders.test",))
    assert digest.hexdigest() == expected
    assert chunks >= len(wire) // 65536
