"""A scripted application around :class:`LmtpConnection`, for the protocol tests.

It feeds bytes in given pieces, answers every decision with a fixed policy and
records events and output, so that one session can be replayed with different
chunkings and compared.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lmtpd import protocol as p
from lmtpd.protocol import Reply

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

RCPT_OK = Reply(250, "2.1.5", "Recipient OK")
RCPT_REFUSED = Reply(550, "5.1.1", "No such mailbox")

_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -])([\x20-\x7e]*)\r\n")
_ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")


def connection(**limits: int) -> p.LmtpConnection:
    settings = {"max_message_bytes": 10_000, "max_recipients": 10, "max_line_length": 512}
    settings.update(limits)
    return p.LmtpConnection(hostname="lmtp.test", **settings)


def accept_all(address: str) -> bool:
    return True


def refuse_marked(address: str) -> bool:
    """Recipients whose local part starts with ``no`` are refused."""
    return not address.startswith("no")


@dataclass
class Transcript:
    events: list[p.Event] = field(default_factory=list)
    output: bytes = b""

    @property
    def replies(self) -> list[tuple[int, str]]:
        """(code, enhanced code) per reply; a multi-line reply counts once."""
        return [(code, enhanced) for code, enhanced, _ in parse_replies(self.output)]

    @property
    def codes(self) -> list[int]:
        return [code for code, _ in self.replies]

    def of(self, kind: type) -> list[p.Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def bodies(self) -> list[bytes]:
        """The content of each message (BodyChunks between DataStart and its end)."""
        bodies: list[bytes] = []
        for event in self.events:
            if isinstance(event, p.DataStart):
                bodies.append(b"")
            elif isinstance(event, p.BodyChunk):
                bodies[-1] += event.data
        return bodies


def parse_replies(output: bytes) -> list[tuple[int, str, str]]:
    """Split reply bytes into (code, enhanced, text of the last line); fails on
    anything that is not a well-formed reply stream."""
    replies: list[tuple[int, str, str]] = []
    pos = 0
    continuing: int | None = None
    while pos < len(output):
        match = _REPLY_LINE.match(output, pos)
        assert match is not None, f"malformed reply bytes at {pos}: {output[pos : pos + 80]!r}"
        code = int(match.group(1))
        assert continuing in (None, code), "a multi-line reply changed its code"
        pos = match.end()
        if match.group(2) == b"-":
            continuing = code
            continue
        continuing = None
        text = match.group(3).decode("ascii")
        first, _, rest = text.partition(" ")
        if _ENHANCED.fullmatch(first):
            replies.append((code, first, rest))
        else:
            replies.append((code, "", text))
    assert continuing is None, "output ends inside a multi-line reply"
    return replies


def merged(events: Iterable[p.Event]) -> list[p.Event]:
    """Adjacent BodyChunks joined: chunk boundaries depend on how input arrived."""
    out: list[p.Event] = []
    for event in events:
        if isinstance(event, p.BodyChunk) and out and isinstance(out[-1], p.BodyChunk):
            out[-1] = p.BodyChunk(out[-1].data + event.data)
        elif not (isinstance(event, p.BodyChunk) and not event.data):
            out.append(event)
    return out


def pump(
    conn: p.LmtpConnection,
    events: list[p.Event],
    accept: Callable[[str], bool] = accept_all,
) -> None:
    """Take events until NEED_DATA, answering decisions like an application."""
    while True:
        event = conn.next_event()
        if isinstance(event, p.NeedData):
            return
        events.append(event)
        if isinstance(event, p.RcptTo):
            conn.answer_rcpt(RCPT_OK if accept(event.address) else RCPT_REFUSED)
        elif isinstance(event, p.EndOfData):
            conn.answer_data(
                [Reply(250, "2.0.0", f"m{i} accepted") for i in range(len(event.recipients))]
            )
        elif isinstance(event, p.ConnectionClosed):
            return


def drive(
    pieces: Iterable[bytes],
    *,
    conn: p.LmtpConnection | None = None,
    accept: Callable[[str], bool] = accept_all,
    eof: bool = False,
    **limits: int,
) -> Transcript:
    """Run a session: feed each piece, pump after each, optionally end with EOF."""
    conn = conn if conn is not None else connection(**limits)
    events: list[p.Event] = []
    for piece in pieces:
        if conn.closed:
            break
        if not piece:
            continue  # b"" would mean EOF
        conn.receive_data(piece)
        pump(conn, events, accept)
    if eof:
        conn.receive_data(b"")
        pump(conn, events, accept)
    return Transcript(merged(events), conn.data_to_send())


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def linewise(data: bytes) -> list[bytes]:
    """Split after every LF: each command arrives on its own, as without pipelining."""
    return [line for line in data.splitlines(keepends=True)]


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


HELLO = b"LHLO client.test\r\n"
ENVELOPE = HELLO + b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<a@orders.test>\r\n"
