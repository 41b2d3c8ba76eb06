"""Property tests: arbitrary input never raises, framing is chunking-independent,
and no command sequence earns a positive reply it should not."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from lmtpd import protocol as p
from tests.protocol.driver import (
    ENVELOPE,
    HELLO,
    connection,
    drive,
    parse_replies,
    pump,
    refuse_marked,
    split_at,
)

LIMITS = {"max_message_bytes": 64, "max_recipients": 3, "max_line_length": 64}

PREFIXES = [
    b"",
    HELLO,
    ENVELOPE,
    ENVELOPE + b"DATA\r\n",
    ENVELOPE + b"BDAT 40\r\n",
    HELLO + b"XFORWARD NAME=x\r\nMAIL FROM:<> SMTPUTF8\r\nRCPT TO:<no@x.test>\r\n",
]

FRAGMENTS = [
    b"LHLO c\r\n",
    b"MAIL FROM:<s@x.test>\r\n",
    b"MAIL FROM:<> SIZE=10\r\n",
    b"RCPT TO:<a@x.test>\r\n",
    b"RCPT TO:<no@x.test>\r\n",
    b"DATA\r\n",
    b"BDAT 4\r\n",
    b"BDAT 2 LAST\r\n",
    b"BDAT 0 LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"XFORWARD ADDR=192.0.2.1\r\n",
    b"body line\r\n",
    b"..stuffed\r\n",
    b".\r\n",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r",
    b"\n",
    b".",
    b"x" * 70,
]

byte_streams = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=24)), max_size=40
).map(b"".join)


@given(
    prefix=st.sampled_from(PREFIXES),
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(min_value=0, max_value=700), max_size=12),
    eof=st.booleans(),
)
def test_arbitrary_bytes_never_raise(
    prefix: bytes, data: bytes, cuts: list[int], eof: bool
) -> None:
    session = prefix + data
    t = drive(split_at(session, cuts), accept=refuse_marked, eof=eof, **LIMITS)
    parse_replies(t.output)  # the output is always a well-formed reply stream
    if eof:
        assert t.events[-1] == p.ConnectionClosed()


@given(data=st.data(), stream=byte_streams, eof=st.booleans())
def test_chunking_never_changes_events_or_replies(
    data: st.DataObject, stream: bytes, eof: bool
) -> None:
    session = HELLO + stream
    cuts = data.draw(st.lists(st.integers(0, len(session)), max_size=20))
    reference = drive([session], accept=refuse_marked, eof=eof, **LIMITS)
    chunked = drive(split_at(session, cuts), accept=refuse_marked, eof=eof, **LIMITS)
    assert chunked.events == reference.events
    assert chunked.output == reference.output
    parse_replies(reference.output)


def reference_message(wire: bytes) -> bytes | None:
    """RFC 5321 §4.5.2 the slow, obvious way: split into CRLF lines, stop at ".",
    drop a leading dot unless a bare CR or LF follows it."""
    lines = wire.split(b"\r\n")
    out = []
    for line in lines[:-1]:
        if line == b".":
            return b"".join(out)
        if line.startswith(b".") and line[1:2] not in (b"\r", b"\n"):
            line = line[1:]
        out.append(line + b"\r\n")
    return None


dot_heavy = st.lists(
    st.sampled_from([b"\r\n", b".", b"..", b"\r", b"\n", b"a", b"\r\n.", b".\r\n"]), max_size=60
).map(b"".join)


@given(data=st.data(), wire=dot_heavy)
def test_data_decoding_matches_a_line_by_line_reference(data: st.DataObject, wire: bytes) -> None:
    wire += b"\r\n.\r\n"
    session = ENVELOPE + b"DATA\r\n" + wire
    cuts = data.draw(st.lists(st.integers(len(ENVELOPE), len(session)), max_size=10))
    t = drive(split_at(session, cuts))
    assert t.bodies() == [reference_message(wire)]
    assert len(t.of(p.EndOfData)) == 1


# -- a client model: which positive replies are legitimate --------------------------

COMMANDS = {
    "LHLO": b"LHLO c\r\n",
    "MAIL": b"MAIL FROM:<s@x.test>\r\n",
    "MAIL_NULL": b"MAIL FROM:<>\r\n",
    "MAIL_BAD": b"MAIL FROM:<not an address>\r\n",
    "RCPT": b"RCPT TO:<a@x.test>\r\n",
    "RCPT_REFUSED": b"RCPT TO:<no@x.test>\r\n",
    "RCPT_BAD": b"RCPT TO:<>\r\n",
    "DATA": b"DATA\r\n",
    "BDAT": b"BDAT 3\r\nabc",
    "BDAT_LAST": b"BDAT 2 LAST\r\nhi",
    "BDAT_EMPTY_LAST": b"BDAT 0 LAST\r\n",
    "RSET": b"RSET\r\n",
    "NOOP": b"NOOP\r\n",
    "XFORWARD": b"XFORWARD NAME=x\r\n",
    "HELO": b"HELO c\r\n",
    "JUNK": b"FROB\r\n",
}


@dataclass
class ClientView:
    """What a correct server must have agreed to so far, from its replies."""

    lhlo: bool = False
    mail: bool = False
    recipients: int = 0
    chunked: bool = False

    def reset(self) -> None:
        self.mail, self.recipients, self.chunked = False, 0, False


def exchange(conn: p.LmtpConnection, data: bytes) -> list[int]:
    conn.receive_data(data)
    pump(conn, [], refuse_marked)
    return [code for code, _, _ in parse_replies(conn.data_to_send())]


def check_step(conn: p.LmtpConnection, view: ClientView, name: str) -> None:
    codes = exchange(conn, COMMANDS[name])
    positive = bool(codes) and all(200 <= c < 300 for c in codes)
    if name.startswith("BDAT") and name.endswith("LAST") and positive:
        assert view.mail
        assert len(codes) == view.recipients > 0
        view.reset()
        return
    assert len(codes) == 1, (name, codes)
    code = codes[0]
    if name == "LHLO":
        assert code == 250
        view.lhlo = True
        view.reset()
    elif name in ("MAIL", "MAIL_NULL", "MAIL_BAD"):
        assert code != 250 or (view.lhlo and not view.mail and name != "MAIL_BAD")
        view.mail = view.mail or code == 250
    elif name.startswith("RCPT"):
        assert code != 250 or (view.mail and not view.chunked and name == "RCPT")
        view.recipients += code == 250
    elif name == "DATA":
        assert code != 354 or (view.mail and view.recipients and not view.chunked)
        if code == 354:
            replies = exchange(conn, b"line\r\n.\r\n")
            assert replies == [250] * view.recipients
            view.reset()
    elif name.startswith("BDAT"):
        assert code != 250 or (view.mail and view.recipients and name == "BDAT")
        if code == 250:
            view.chunked = True
        else:  # a refused chunk fails the transaction (RFC 3030)
            view.reset()
    elif name == "RSET":
        assert code == 250
        view.reset()
    elif name == "XFORWARD":
        assert code != 250 or (view.lhlo and not view.mail)
    elif name == "NOOP":
        assert code == 250
    else:
        assert code >= 500


@given(st.lists(st.sampled_from(sorted(COMMANDS)), max_size=40))
def test_no_positive_reply_for_an_invalid_sequence(names: list[str]) -> None:
    conn = connection(max_recipients=3)
    view = ClientView()
    for name in names:
        check_step(conn, view, name)
    assert not conn.closed
