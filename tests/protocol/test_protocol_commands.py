"""Commands outside the data phase: replies, events, sequence rules (RFC 2033/5321)."""

from __future__ import annotations

import pytest

from lmtpd import protocol as p
from lmtpd.protocol import Reply
from tests.protocol.driver import ENVELOPE, HELLO, drive, refuse_marked, whole


def test_greeting_and_lhlo_capabilities() -> None:
    conn = p.LmtpConnection(hostname="mx.test", max_message_bytes=1234, max_recipients=5)
    conn.greet()
    conn.receive_data(b"LHLO client.example\r\n")
    assert conn.next_event() == p.Lhlo("client.example")
    assert conn.data_to_send() == (
        b"220 mx.test LMTP ready\r\n"
        b"250-mx.test\r\n"
        b"250-PIPELINING\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n"
        b"250-8BITMIME\r\n"
        b"250-SMTPUTF8\r\n"
        b"250-SIZE 1234\r\n"
        b"250-CHUNKING\r\n"
        b"250 XFORWARD NAME ADDR PROTO HELO SOURCE IDENT\r\n"
    )
    assert conn.next_event() is p.NEED_DATA


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"HELO client.test", (500, "5.5.1")),
        (b"EHLO client.test", (500, "5.5.1")),
        (b"STARTTLS", (500, "5.5.1")),
        (b"FROB", (500, "5.5.1")),
        (b"", (500, "5.5.1")),
        (b"EXPN list", (502, "5.5.1")),
        (b"NOOP", (250, "2.0.0")),
        (b"noop with an argument", (250, "2.0.0")),
        (b"VRFY someone", (252, "2.5.0")),
        (b"HELP", (214, "2.0.0")),
        (b"LHLO", (501, "5.5.4")),
        (b"LHLO two words", (501, "5.5.4")),
        (b"LHLO h\xc3\xa9llo", (501, "5.5.4")),
        (b"MAIL FROM:<a@b.example>", (503, "5.5.1")),
        (b"RCPT TO:<a@b.example>", (503, "5.5.1")),
        (b"DATA", (503, "5.5.1")),
        (b"XFORWARD NAME=x", (503, "5.5.1")),
    ],
)
def test_single_commands_before_lhlo(line: bytes, reply: tuple[int, str]) -> None:
    t = drive(whole(line + b"\r\n"))
    assert t.replies == [reply]
    assert t.events == []


def test_lhlo_is_case_insensitive_and_repeatable() -> None:
    t = drive(whole(b"lhlo one\r\nLhLo two\r\n"))
    assert t.events == [p.Lhlo("one"), p.Lhlo("two")]
    assert t.codes == [250, 250]


def test_rset_noop_quit() -> None:
    t = drive(whole(HELLO + b"RSET\r\nNOOP\r\nQUIT\r\nNOOP\r\n"))
    assert t.events == [p.Lhlo("client.test"), p.TransactionReset(), p.Quit()]
    assert t.replies == [(250, ""), (250, "2.0.0"), (250, "2.0.0"), (221, "2.0.0")]


def test_quit_closes_and_later_input_is_ignored() -> None:
    conn = p.LmtpConnection(hostname="h", max_message_bytes=100, max_recipients=1)
    conn.receive_data(b"QUIT\r\nNOOP\r\n")
    assert conn.next_event() == p.Quit()
    assert conn.closed
    assert conn.next_event() is p.NEED_DATA
    conn.receive_data(b"NOOP\r\n")
    assert conn.next_event() is p.NEED_DATA
    assert conn.data_to_send() == b"221 2.0.0 Bye\r\n"


def test_a_full_transaction_and_a_second_one() -> None:
    session = (
        ENVELOPE + b"DATA\r\nhello\r\n.\r\n"
        b"MAIL FROM:<>\r\nRCPT TO:<b@orders.test>\r\nDATA\r\nagain\r\n.\r\n"
    )
    t = drive(whole(session))
    assert t.of(p.MailFrom) == [
        p.MailFrom("sender@example.org", None, None, False),
        p.MailFrom("", None, None, False),
    ]
    assert t.of(p.EndOfData) == [p.EndOfData(("a@orders.test",)), p.EndOfData(("b@orders.test",))]
    assert t.bodies() == [b"hello\r\n", b"again\r\n"]
    assert t.codes == [250, 250, 250, 354, 250, 250, 250, 354, 250]


def test_mail_parameters() -> None:
    t = drive(whole(HELLO + b"MAIL FROM:<a@b.example> SIZE=42 BODY=8bitmime SMTPUTF8\r\n"))
    assert t.of(p.MailFrom) == [p.MailFrom("a@b.example", 42, "8BITMIME", True)]
    assert t.replies[-1] == (250, "2.1.0")


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        (b"FROM: <a@b.example>", (250, "2.1.0")),
        (b"from:<a@b.example>", (250, "2.1.0")),
        (b"FROM:<> BODY=7BIT", (250, "2.1.0")),
        (b"FROM:<@relay.example:a@b.example>", (250, "2.1.0")),
        (b"FROM:<a@[192.0.2.1]>", (250, "2.1.0")),
        (b"FROM:a@b.example", (501, "5.5.4")),
        (b"FROM:<a@b.example", (501, "5.5.4")),
        (b"FROM:<a@b.example>SIZE=1", (501, "5.5.4")),
        (b"TO:<a@b.example>", (501, "5.5.4")),
        (b"FROM:  <a@b.example>", (501, "5.5.4")),
        (b"FROM:<a@b.example> SIZE=abc", (501, "5.5.4")),
        (b"FROM:<a@b.example> SIZE=", (501, "5.5.4")),
        (b"FROM:<a@b.example> SIZE=1 SIZE=2", (501, "5.5.4")),
        (b"FROM:<a@b.example> BODY=BINARYMIME", (501, "5.5.4")),
        (b"FROM:<a@b.example> SMTPUTF8=yes", (501, "5.5.4")),
        (b"FROM:<a@b.example> RET=FULL", (555, "5.5.4")),
        (b"FROM:<a@b.example> SIZE=10001", (552, "5.3.4")),
        (b"FROM:<a@b.example> SIZE=10000", (250, "2.1.0")),
        (b"FROM:<a b@b.example>", (501, "5.1.7")),
        (b"FROM:<a\x00b@b.example>", (501, "5.1.7")),
        (b"FROM:<a\tb@b.example>", (501, "5.1.7")),
        (b"FROM:<a@b..example>", (501, "5.1.7")),
        (b"FROM:<a@>", (501, "5.1.7")),
        (b"FROM:<@b.example>", (501, "5.1.7")),
        (b"FROM:<a(b)@b.example>", (501, "5.1.7")),
        (b'FROM:<"a b"@b.example>', (250, "2.1.0")),
        (b'FROM:<"a>b"@b.example>', (250, "2.1.0")),
        (b'FROM:<"a\x01b"@b.example>', (501, "5.1.7")),
        (b"FROM:<first..last@b.example>", (250, "2.1.0")),
        (b"FROM:<j\xc3\xbcrgen@b.example>", (553, "5.6.7")),
        (b"FROM:<j\xc3\xbcrgen@b.example> SMTPUTF8", (250, "2.1.0")),
        (b"FROM:<j\xfcrgen@b.example>", (500, "5.5.2")),
        (b"FROM:<a\xe2\x80\xa8b@b.example> SMTPUTF8", (501, "5.1.7")),
    ],
)
def test_mail_from_syntax(args: bytes, reply: tuple[int, str]) -> None:
    t = drive(whole(HELLO + b"MAIL " + args + b"\r\n"))
    assert t.replies[1:] == [reply]
    assert len(t.of(p.MailFrom)) == (1 if reply[0] == 250 else 0)


def test_oversized_declaration_starts_no_transaction() -> None:
    t = drive(whole(HELLO + b"MAIL FROM:<> SIZE=99999\r\nRCPT TO:<a@orders.test>\r\n"))
    assert t.replies[1:] == [(552, "5.3.4"), (503, "5.5.1")]
    assert t.of(p.RcptTo) == []


def test_nested_mail_is_a_bad_sequence() -> None:
    t = drive(whole(HELLO + b"MAIL FROM:<>\r\nMAIL FROM:<>\r\n"))
    assert t.replies[1:] == [(250, "2.1.0"), (503, "5.5.1")]


@pytest.mark.parametrize(
    ("args", "reply", "address"),
    [
        (b"TO:<a@orders.test>", (250, "2.1.5"), "a@orders.test"),
        (b"to: <A@Orders.Test>", (250, "2.1.5"), "A@Orders.Test"),
        (b"TO:<Postmaster>", (250, "2.1.5"), "Postmaster"),
        (b'TO:<"quoted local"@orders.test>', (250, "2.1.5"), '"quoted local"@orders.test'),
        (b"TO:<>", (501, "5.1.3"), None),
        (b"TO:<a b@orders.test>", (501, "5.1.3"), None),
        (b"TO:<a\x00@orders.test>", (501, "5.1.3"), None),
        (b"TO:<a\x7f@orders.test>", (501, "5.1.3"), None),
        (b"TO:<a@orders.test> NOTIFY=NEVER", (555, "5.5.4"), None),
        (b"TO:<a@orders.test> =x", (501, "5.5.4"), None),
        (b"TO:a@orders.test", (501, "5.5.4"), None),
        (b"<a@orders.test>", (501, "5.5.4"), None),
        (b"TO:<\xc3\xa4@orders.test>", (553, "5.6.7"), None),
    ],
)
def test_rcpt_to_syntax(args: bytes, reply: tuple[int, str], address: str | None) -> None:
    t = drive(whole(HELLO + b"MAIL FROM:<>\r\nRCPT " + args + b"\r\n"))
    assert t.replies[2:] == [reply]
    assert t.of(p.RcptTo) == ([p.RcptTo(address)] if address else [])


def test_recipient_with_crlf_inside_becomes_two_refused_lines() -> None:
    t = drive(whole(HELLO + b"MAIL FROM:<>\r\nRCPT TO:<a\r\nb@orders.test>\r\n"))
    assert t.replies[2:] == [(501, "5.5.4"), (500, "5.5.1")]
    assert t.of(p.RcptTo) == []


def test_non_ascii_recipient_needs_smtputf8_on_mail() -> None:
    rcpt = "RCPT TO:<bestellung+ä@orders.test>\r\n".encode()
    plain = drive(whole(HELLO + b"MAIL FROM:<>\r\n" + rcpt))
    assert plain.replies[2:] == [(553, "5.6.7")]
    utf8 = drive(whole(HELLO + b"MAIL FROM:<> SMTPUTF8\r\n" + rcpt))
    assert utf8.of(p.RcptTo) == [p.RcptTo("bestellung+ä@orders.test")]


def test_refused_recipients_are_not_in_the_transaction() -> None:
    session = (
        HELLO + b"MAIL FROM:<>\r\nRCPT TO:<x@o.test>\r\nRCPT TO:<no@o.test>\r\n"
        b"RCPT TO:<y@o.test>\r\nDATA\r\n.\r\n"
    )
    t = drive(whole(session), accept=refuse_marked)
    assert t.codes[2:] == [250, 550, 250, 354, 250, 250]
    assert t.of(p.EndOfData) == [p.EndOfData(("x@o.test", "y@o.test"))]


def test_data_sequence_errors() -> None:
    assert drive(whole(HELLO + b"DATA\r\n")).replies[1:] == [(503, "5.5.1")]
    assert drive(whole(HELLO + b"MAIL FROM:<>\r\nDATA\r\n")).replies[2:] == [(503, "5.5.1")]
    all_refused = HELLO + b"MAIL FROM:<>\r\nRCPT TO:<no@o.test>\r\nDATA\r\n"
    t = drive(whole(all_refused), accept=refuse_marked)
    assert t.replies[3:] == [(554, "5.5.1")]
    assert t.of(p.DataStart) == []
    with_args = drive(whole(ENVELOPE + b"DATA now\r\n"))
    assert with_args.replies[3:] == [(501, "5.5.4")]


def test_recipient_limit_answers_452_without_asking_the_application() -> None:
    rcpts = b"".join(b"RCPT TO:<r%d@orders.test>\r\n" % i for i in range(10_000))
    t = drive(whole(HELLO + b"MAIL FROM:<>\r\n" + rcpts + b"DATA\r\n.\r\n"), max_recipients=100)
    assert len(t.of(p.RcptTo)) == 100
    assert t.replies.count((452, "4.5.3")) == 9_900
    assert t.replies[2:102] == [(250, "2.1.5")] * 100
    [end] = t.of(p.EndOfData)
    assert len(end.recipients) == 100
    assert t.codes[-101:] == [354] + [250] * 100


def test_lhlo_in_a_transaction_resets_it() -> None:
    t = drive(whole(ENVELOPE + b"LHLO again\r\nRCPT TO:<b@orders.test>\r\n"))
    assert t.events[-2:] == [p.TransactionReset(), p.Lhlo("again")]
    assert t.replies[-1] == (503, "5.5.1")


def test_rset_ends_the_transaction() -> None:
    t = drive(whole(ENVELOPE + b"RSET\r\nDATA\r\n"))
    assert t.events[-1] == p.TransactionReset()
    assert t.replies[-2:] == [(250, "2.0.0"), (503, "5.5.1")]


def test_rcpt_decision_blocks_later_commands() -> None:
    conn = p.LmtpConnection(hostname="h", max_message_bytes=100, max_recipients=5)
    conn.receive_data(HELLO + b"MAIL FROM:<>\r\nRCPT TO:<a@o.test>\r\nNOOP\r\nNOOP\r\n")
    assert isinstance(conn.next_event(), p.Lhlo)
    assert isinstance(conn.next_event(), p.MailFrom)
    assert conn.next_event() == p.RcptTo("a@o.test")
    assert conn.awaiting_decision
    before = conn.data_to_send()
    assert conn.next_event() is p.NEED_DATA
    assert conn.next_event() is p.NEED_DATA
    assert conn.data_to_send() == b""  # the NOOPs wait behind the decision
    conn.answer_rcpt(Reply(550, "5.1.1", "No such user"))
    assert not conn.awaiting_decision
    assert conn.next_event() is p.NEED_DATA
    assert before.endswith(b"250 2.1.0 Sender OK\r\n")
    assert conn.data_to_send() == b"550 5.1.1 No such user\r\n250 2.0.0 OK\r\n250 2.0.0 OK\r\n"


class TestXforward:
    def test_attributes_are_decoded_and_upper_cased(self) -> None:
        line = (
            b"XFORWARD name=mail.example ADDR=192.0.2.7 PROTO=ESMTP "
            b"HELO=[UNAVAILABLE] SOURCE=REMOTE IDENT=4Xab+2BC+3Dd\r\n"
        )
        t = drive(whole(HELLO + line))
        assert t.events[-1] == p.Xforward(
            {
                "NAME": "mail.example",
                "ADDR": "192.0.2.7",
                "PROTO": "ESMTP",
                "HELO": "[UNAVAILABLE]",
                "SOURCE": "REMOTE",
                "IDENT": "4Xab+C=d",
            }
        )
        assert t.replies[-1] == (250, "2.0.0")

    def test_several_lines_each_give_an_event(self) -> None:
        t = drive(whole(HELLO + b"XFORWARD NAME=a\r\nXFORWARD ADDR=IPV6:2001:db8::1\r\n"))
        assert t.events[1:] == [p.Xforward({"NAME": "a"}), p.Xforward({"ADDR": "IPV6:2001:db8::1"})]

    def test_decoded_control_characters_are_made_printable(self) -> None:
        t = drive(whole(HELLO + b"XFORWARD HELO=evil+0D+0Ahost\r\n"))
        assert t.events[-1] == p.Xforward({"HELO": "evil??host"})

    @pytest.mark.parametrize(
        "args",
        [b"", b"PORT=25", b"NAME", b"NAME=a+ZZ", b"NAME=a+4", b"NAME=a\xc3\xa4", b"FOO=1 NAME=a"],
    )
    def test_malformed(self, args: bytes) -> None:
        t = drive(whole(HELLO + b"XFORWARD " + args + b"\r\n"))
        assert t.replies[-1] == (501, "5.5.4")
        assert t.of(p.Xforward) == []

    def test_not_inside_a_transaction(self) -> None:
        t = drive(whole(HELLO + b"MAIL FROM:<>\r\nXFORWARD NAME=a\r\n"))
        assert t.replies[-1] == (503, "5.5.1")
        assert t.of(p.Xforward) == []

    def test_lhlo_after_xforward_resets(self) -> None:
        t = drive(whole(HELLO + b"XFORWARD NAME=a\r\nLHLO b\r\n"))
        assert t.events[-2:] == [p.TransactionReset(), p.Lhlo("b")]
