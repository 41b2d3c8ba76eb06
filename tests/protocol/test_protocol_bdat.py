"""BDAT (RFC 3030): byte-counted chunks, refusals that keep the stream framed."""

from __future__ import annotations

import pytest

from lmtpd import protocol as p
from tests.protocol.driver import (
    ENVELOPE,
    HELLO,
    bytewise,
    connection,
    drive,
    pump,
    refuse_marked,
    split_at,
    whole,
)


def bdat(data: bytes, *, last: bool = False) -> bytes:
    return b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data


def test_chunks_are_raw_bytes_without_dot_handling() -> None:
    first, second = b"Subject: x\r\n\r\n.\r\n", b"..not stuffed\r\n.\r\n"
    session = ENVELOPE + bdat(first) + bdat(second, last=True)
    for feed in (whole, bytewise):
        t = drive(feed(session))
        assert t.bodies() == [first + second]
        assert t.of(p.DataStart) == [p.DataStart()]
        assert t.of(p.EndOfData) == [p.EndOfData(("a@orders.test",))]
        assert t.replies[3:] == [(250, "2.0.0"), (250, "2.0.0")]


def test_chunk_split_across_receive_calls_is_streamed() -> None:
    conn = connection()
    events: list[p.Event] = []
    conn.receive_data(ENVELOPE + b"BDAT 10 LAST\r\n0123")
    pump(conn, events)
    assert events[-2:] == [p.DataStart(), p.BodyChunk(b"0123")]
    assert conn.in_data
    conn.receive_data(b"456")
    pump(conn, events)
    assert events[-1] == p.BodyChunk(b"456")
    conn.receive_data(b"789NOOP\r\n")
    pump(conn, events)
    assert events[-2:] == [p.BodyChunk(b"789"), p.EndOfData(("a@orders.test",))]
    assert not conn.in_data
    assert conn.data_to_send().endswith(b"250 2.0.0 m0 accepted\r\n250 2.0.0 OK\r\n")


def test_bdat_zero_last_ends_an_empty_message() -> None:
    t = drive(whole(ENVELOPE + b"BDAT 0 LAST\r\n"))
    assert t.bodies() == [b""]
    assert t.of(p.EndOfData) == [p.EndOfData(("a@orders.test",))]


def test_bdat_last_is_case_insensitive_and_final_replies_are_per_recipient() -> None:
    session = ENVELOPE + b"RCPT TO:<b@orders.test>\r\nbdat 2 last\r\nhi"
    t = drive(whole(session))
    assert t.bodies() == [b"hi"]
    assert t.codes[-2:] == [250, 250]


def test_data_after_bdat_is_a_bad_sequence() -> None:
    t = drive(whole(ENVELOPE + bdat(b"abc") + b"DATA\r\n" + bdat(b"def", last=True)))
    assert t.replies[3:] == [(250, "2.0.0"), (503, "5.5.1"), (250, "2.0.0")]
    assert t.bodies() == [b"abcdef"]


def test_rcpt_after_the_first_chunk_is_a_bad_sequence() -> None:
    t = drive(whole(ENVELOPE + bdat(b"abc") + b"RCPT TO:<b@orders.test>\r\n"))
    assert t.replies[-1] == (503, "5.5.1")


@pytest.mark.parametrize(
    ("prefix", "reply"),
    [
        (b"", (503, "5.5.1")),
        (HELLO, (503, "5.5.1")),
        (HELLO + b"MAIL FROM:<>\r\n", (503, "5.5.1")),
        (HELLO + b"MAIL FROM:<>\r\nRCPT TO:<no@orders.test>\r\n", (554, "5.5.1")),
    ],
)
def test_refused_bdat_chunks_are_consumed_not_executed(
    prefix: bytes, reply: tuple[int, str]
) -> None:
    session = prefix + b"BDAT 6\r\nQUIT\r\nNOOP\r\n"
    t = drive(whole(session), accept=refuse_marked)
    assert t.replies[-2:] == [reply, (250, "2.0.0")]
    assert t.of(p.Quit) == []
    assert t.of(p.BodyChunk) == []
    assert not any(isinstance(e, p.EndOfData) for e in t.events)


def test_bad_arguments_with_a_known_size_are_consumed() -> None:
    t = drive(whole(ENVELOPE + b"BDAT 6 FIRST\r\nQUIT\r\nNOOP\r\n"))
    assert t.replies[-2:] == [(501, "5.5.4"), (250, "2.0.0")]
    assert t.events[-1] == p.TransactionReset()


def test_a_refused_chunk_fails_the_transaction() -> None:
    session = ENVELOPE + bdat(b"ok") + b"BDAT 3 JUNK\r\nbad" + bdat(b"late", last=True)
    t = drive(whole(session))
    assert t.events[-1] == p.DataAborted("syntax")
    assert t.replies[3:] == [(250, "2.0.0"), (501, "5.5.4"), (503, "5.5.1")]
    assert t.of(p.EndOfData) == []


def test_refusal_before_data_resets_the_transaction() -> None:
    session = HELLO + b"MAIL FROM:<>\r\nBDAT 1\r\nxRCPT TO:<a@orders.test>\r\n"
    t = drive(whole(session))
    assert t.events[-1] == p.TransactionReset()
    assert t.replies[-2:] == [(503, "5.5.1"), (503, "5.5.1")]


def test_oversized_non_last_chunk_gets_one_552_and_aborts() -> None:
    session = (
        ENVELOPE
        + b"RCPT TO:<b@orders.test>\r\n"
        + bdat(b"a" * 60)
        + bdat(b"b" * 60)
        + bdat(b"c" * 10, last=True)
        + b"NOOP\r\n"
    )
    for feed in (whole, bytewise):
        t = drive(feed(session), max_message_bytes=100)
        assert t.replies[4:] == [(250, "2.0.0"), (552, "5.3.4"), (503, "5.5.1"), (250, "2.0.0")]
        assert p.DataAborted("size") in t.events
        assert t.bodies() == [b"a" * 60]  # the oversized chunk never reaches the app
        assert t.of(p.EndOfData) == []


def test_oversized_last_chunk_gets_552_per_recipient() -> None:
    session = ENVELOPE + b"RCPT TO:<b@orders.test>\r\n" + bdat(b"x" * 101, last=True)
    t = drive(whole(session), max_message_bytes=100)
    assert t.replies[4:] == [(552, "5.3.4"), (552, "5.3.4")]
    assert t.events[-1] == p.DataAborted("size")


@pytest.mark.parametrize(
    "command",
    [b"BDAT\r\n", b"BDAT x\r\n", b"BDAT -1\r\n", b"BDAT 1x LAST\r\n", b"BDAT 5\n", b"BDAT 5\r"],
)
def test_unframed_bdat_closes_the_connection(command: bytes) -> None:
    t = drive(whole(ENVELOPE + bdat(b"abc") + command + b"abcde\r\nNOOP\r\n"))
    assert t.replies[-1] == (421, "4.5.4")
    assert t.events[-1] == p.DataAborted("syntax")
    assert t.codes.count(250) == 4  # LHLO, MAIL, RCPT, the first chunk: nothing after


def test_over_long_bdat_line_closes_the_connection() -> None:
    conn = connection(max_line_length=64)
    t = drive([HELLO, b"BDAT 1" + b" " * 100], conn=conn)
    assert conn.closed
    assert t.replies[-1] == (421, "4.5.4")


def test_chunk_boundaries_do_not_matter() -> None:
    session = ENVELOPE + bdat(b"hello ") + bdat(b"world\r\n", last=True) + b"QUIT\r\n"
    reference = drive(whole(session))
    for cut in range(1, len(session)):
        t = drive(split_at(session, [cut, cut + 3]))
        assert (t.events, t.output) == (reference.events, reference.output), cut
