"""Command-line framing: CRLF only, bounded length, encodings, EOF."""

from __future__ import annotations

import pytest

from lmtpd import protocol as p
from tests.protocol.driver import HELLO, bytewise, connection, drive, pump, whole


@pytest.mark.parametrize(
    "line",
    [
        b"NOOP\nNOOP\r\n",
        b"NOOP\rNOOP\r\n",
        b"\n\r\n",
        b"MAIL FROM:<a@b.test>\nRCPT TO:<c@d.test>\r\n",
        b"\r\r\n",
    ],
)
def test_a_line_with_a_bare_lf_or_cr_is_one_refused_command(line: bytes) -> None:
    """Only CRLF ends a line: whatever a bare LF or CR separates stays one line,
    refused once, so no command can hide behind it."""
    for feed in (whole, bytewise):
        t = drive(feed(HELLO + line + b"NOOP\r\n"))
        assert t.replies[1:] == [(500, "5.5.2"), (250, "2.0.0")]
        assert t.of(p.MailFrom) == []


def test_lf_only_lines_never_end_a_command() -> None:
    t = drive(whole(HELLO + b"NOOP\nNOOP\nQUIT\n"))
    assert t.replies[1:] == []  # no CRLF yet: nothing was a command
    assert drive(whole(HELLO + b"NOOP\nQUIT\n" + b"\r\n")).replies[1:] == [(500, "5.5.2")]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    line = b"NOOP " + b"x" * (64 - len(b"NOOP \r\n")) + b"\r\n"
    assert len(line) == 64
    assert drive(whole(line), max_line_length=64).replies == [(250, "2.0.0")]
    longer = b"NOOP x" + line[5:]
    assert drive(whole(longer), max_line_length=64).replies == [(500, "5.5.2")]


def test_one_megabyte_line_gets_one_reply_with_bounded_buffering() -> None:
    conn = connection(max_line_length=4096)
    events: list[p.Event] = []
    conn.receive_data(HELLO)
    pump(conn, events)
    conn.data_to_send()
    piece = b"MAIL FROM:<" + b"a" * (65536 - 11)
    for _ in range(16):
        conn.receive_data(piece)
        pump(conn, events)
        assert conn.buffered <= 4096
    conn.receive_data(b"@x.test>\r\nNOOP\r\n")
    pump(conn, events)
    assert conn.data_to_send() == b"500 5.5.2 Command line too long\r\n250 2.0.0 OK\r\n"
    assert events == [p.Lhlo("client.test")]


def test_a_long_line_fed_at_once_is_not_kept_while_discarding() -> None:
    conn = connection(max_line_length=100)
    events: list[p.Event] = []
    conn.receive_data(b"X" * 1000)
    pump(conn, events)
    assert conn.buffered == 0
    conn.receive_data(b"Y" * 1_000_000)  # still the same line: dropped on arrival
    assert conn.buffered == 0
    conn.receive_data(b"\r\nNOOP\r\n")
    pump(conn, events)
    assert conn.data_to_send() == b"500 5.5.2 Command line too long\r\n250 2.0.0 OK\r\n"


def test_invalid_utf8_in_arguments_is_refused() -> None:
    t = drive(whole(HELLO + b"MAIL FROM:<\xff@b.test> SMTPUTF8\r\nNOOP \xfe\r\n"))
    assert t.replies[1:] == [(500, "5.5.2"), (500, "5.5.2")]


def test_non_ascii_verb_is_unknown() -> None:
    t = drive(whole("NÖOP\r\n".encode() + b"\xff\xfe\r\n"))
    assert t.replies == [(500, "5.5.1"), (500, "5.5.1")]


def test_eof_after_complete_commands_processes_them_first() -> None:
    t = drive(whole(HELLO + b"NOOP\r\nNOO"), eof=True)
    assert t.events == [p.Lhlo("client.test"), p.ConnectionClosed()]
    assert t.codes == [250, 250]


def test_eof_is_reported_and_the_connection_closed() -> None:
    conn = connection()
    conn.receive_data(b"")
    assert conn.next_event() == p.ConnectionClosed()
    assert conn.closed
    assert conn.next_event() == p.ConnectionClosed()
    assert conn.data_to_send() == b""


def test_replies_never_echo_peer_input() -> None:
    marker = b"zq7marker"
    session = (
        b"LHLO "
        + marker
        + b"\r\n"
        + marker
        + b"\r\nMAIL FROM:<"
        + marker
        + b"@x.test> "
        + marker
        + b"=1\r\nMAIL FROM:<"
        + marker
        + b">\r\nVRFY "
        + marker
        + b"\r\n"
        + b"XFORWARD NAME="
        + marker
        + b"\r\nXFORWARD "
        + marker
        + b"=1\r\n"
        + b"MAIL FROM:<"
        + marker
        + b"@x.test>\r\nRCPT TO:<"
        + marker
        + b">\r\n"
    )
    t = drive(whole(session))
    assert marker not in t.output
    assert len(t.replies) == session.count(b"\r\n")


def test_too_many_protocol_errors_close_the_connection() -> None:
    garbage = b"FOO\r\n" * 5 + b"NOOP\r\n"
    for feed in (whole, bytewise):
        t = drive(feed(HELLO + garbage), max_errors=3)
        assert t.replies[1:] == [(500, "5.5.1")] * 3 + [(421, "4.7.0")]


def test_application_refusals_do_not_count_as_errors() -> None:
    from tests.protocol.driver import refuse_marked

    rcpts = b"".join(b"RCPT TO:<no%d@x.test>\r\n" % n for n in range(6))
    session = HELLO + b"MAIL FROM:<a@b.test>\r\n" + rcpts + b"NOOP\r\n"
    t = drive(whole(session), max_errors=3, accept=refuse_marked)
    assert t.codes[1:] == [250] + [550] * 6 + [250]
