"""The application's side of the API: decisions, refusals, and misuse."""

from __future__ import annotations

import pytest

from lmtpd import protocol as p
from lmtpd.protocol import Reply
from tests.protocol.driver import ENVELOPE, connection

ACCEPTED = Reply(250, "2.0.0", "accepted")


def until(conn: p.LmtpConnection, kind: type) -> p.Event:
    while True:
        event = conn.next_event()
        assert not isinstance(event, p.NeedData), f"no {kind.__name__} before NEED_DATA"
        if isinstance(event, kind):
            return event
        if isinstance(event, p.RcptTo):
            conn.answer_rcpt(Reply(250, "2.1.5", "OK"))


def at_end_of_data(recipients: int = 1) -> p.LmtpConnection:
    conn = connection()
    extra = b"".join(b"RCPT TO:<r%d@orders.test>\r\n" % i for i in range(recipients - 1))
    conn.receive_data(ENVELOPE + extra + b"DATA\r\nbody\r\n.\r\nNOOP\r\n")
    until(conn, p.EndOfData)
    return conn


def test_end_of_data_waits_for_the_answer() -> None:
    conn = at_end_of_data(2)
    assert conn.awaiting_decision
    conn.data_to_send()
    assert conn.next_event() is p.NEED_DATA
    assert conn.data_to_send() == b""
    conn.answer_data([ACCEPTED, Reply(451, "4.3.0", "Try later")])
    assert conn.next_event() is p.NEED_DATA
    assert conn.data_to_send() == (b"250 2.0.0 accepted\r\n451 4.3.0 Try later\r\n250 2.0.0 OK\r\n")


@pytest.mark.parametrize("count", [0, 2])
def test_answer_data_needs_one_reply_per_recipient(count: int) -> None:
    conn = at_end_of_data(1)
    with pytest.raises(p.LocalProtocolError):
        conn.answer_data([ACCEPTED] * count)
    assert conn.awaiting_decision  # nothing was half-applied
    conn.answer_data([ACCEPTED])


def test_answers_at_the_wrong_time_are_refused() -> None:
    conn = connection()
    with pytest.raises(p.LocalProtocolError):
        conn.answer_rcpt(Reply(250, "2.1.5", "OK"))
    with pytest.raises(p.LocalProtocolError):
        conn.answer_data([])
    conn.receive_data(ENVELOPE)
    assert isinstance(conn.next_event(), p.Lhlo)
    assert isinstance(conn.next_event(), p.MailFrom)
    assert isinstance(conn.next_event(), p.RcptTo)
    with pytest.raises(p.LocalProtocolError):
        conn.answer_data([ACCEPTED])
    conn.answer_rcpt(Reply(250, "2.1.5", "OK"))
    with pytest.raises(p.LocalProtocolError):
        conn.answer_rcpt(Reply(250, "2.1.5", "OK"))


@pytest.mark.parametrize(
    "reply",
    [
        Reply(354, "", "Go ahead"),
        Reply(600, "5.0.0", "Out of range"),
        Reply(250, "5.1.1", "Class mismatch"),
        Reply(250, "2.1", "Short enhanced code"),
        Reply(250, "2.1.5", "Injected\r\n250 2.1.5 second line"),
        Reply(250, "2.1.5", "Not ASCII: é"),
    ],
)
def test_replies_that_cannot_go_on_the_wire_are_refused(reply: Reply) -> None:
    conn = connection()
    conn.receive_data(ENVELOPE)
    until(conn, p.MailFrom)
    assert isinstance(conn.next_event(), p.RcptTo)
    with pytest.raises(p.LocalProtocolError):
        conn.answer_rcpt(reply)
    assert conn.awaiting_decision


def test_greet_once() -> None:
    conn = connection()
    conn.greet()
    with pytest.raises(p.LocalProtocolError):
        conn.greet()


def test_refuse_queues_the_reply_and_closes() -> None:
    conn = connection()
    conn.receive_data(b"NOOP\r\nNOOP\r\n")
    conn.refuse(Reply(421, "4.4.2", "Timeout, closing connection"))
    assert conn.closed
    assert not conn.in_data
    assert conn.next_event() is p.NEED_DATA
    assert conn.data_to_send() == b"421 4.4.2 Timeout, closing connection\r\n"
    conn.refuse(Reply(421, "4.3.0", "Shutting down"))  # once closed: ignored
    conn.receive_data(b"NOOP\r\n")
    assert conn.data_to_send() == b""


def test_refuse_while_a_decision_is_pending_cancels_it() -> None:
    conn = at_end_of_data()
    conn.refuse(Reply(421, "4.3.0", "Shutting down"))
    assert not conn.awaiting_decision
    with pytest.raises(p.LocalProtocolError):
        conn.answer_data([ACCEPTED])


def test_refuse_needs_a_negative_reply() -> None:
    with pytest.raises(p.LocalProtocolError):
        connection().refuse(Reply(250, "2.0.0", "OK"))


def test_receive_after_eof_is_misuse() -> None:
    conn = connection()
    conn.receive_data(b"")
    with pytest.raises(p.LocalProtocolError):
        conn.receive_data(b"NOOP\r\n")


def test_in_data_tracks_the_content_phases() -> None:
    conn = connection()
    conn.receive_data(ENVELOPE + b"DATA\r\n")
    until(conn, p.DataStart)
    assert conn.in_data
    conn.receive_data(b".\r\nBDAT 3\r\n")
    until(conn, p.EndOfData)
    assert not conn.in_data
    conn.answer_data([ACCEPTED])
    assert conn.next_event() is p.NEED_DATA
    assert conn.in_data  # a refused BDAT's bytes are still being consumed
    conn.receive_data(b"abc")
    assert conn.next_event() is p.NEED_DATA
    assert not conn.in_data


def test_constructor_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="hostname"):
        p.LmtpConnection(hostname="two words", max_message_bytes=1, max_recipients=1)
    with pytest.raises(ValueError, match="limits"):
        p.LmtpConnection(hostname="h", max_message_bytes=1, max_recipients=0)


def test_take_refusals_reports_only_what_the_protocol_refused_itself() -> None:
    conn = connection()
    conn.receive_data(
        b"LHLO client.test\r\nBOGUS\r\nRCPT TO:<r@orders.test>\r\nMAIL FROM:<a@b>\r\n"
    )
    conn.receive_data(b"RCPT TO:<no-brackets\r\nRCPT TO:<r@orders.test>\r\n")
    rcpt = until(conn, p.RcptTo)
    conn.answer_rcpt(Reply(550, "5.1.1", "No such mailbox"))  # the application's: not repeated
    assert conn.next_event() is p.NEED_DATA
    assert [(reply.code, reply.enhanced) for reply in conn.take_refusals()] == [
        (500, "5.5.1"),  # unknown command
        (503, "5.5.1"),  # RCPT before MAIL
        (501, "5.5.4"),  # unparsable RCPT argument
    ]
    assert isinstance(rcpt, p.RcptTo)
    assert conn.take_refusals() == []
