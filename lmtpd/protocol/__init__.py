"""Sans-IO LMTP (RFC 2033 on RFC 5321; RFC 3463, RFC 3030, RFC 6531, Postfix XFORWARD).

Bytes go in with :meth:`LmtpConnection.receive_data`, events come out of
:meth:`LmtpConnection.next_event`, reply bytes come out of
:meth:`LmtpConnection.data_to_send`. No sockets, no clock: the caller owns I/O
and timeouts. Input is processed lazily, one command at a time, so pipelined
commands are answered strictly in order.

Most commands are answered by the protocol itself. Two events need a decision
from the application before anything else is read: :class:`RcptTo`
(:meth:`~LmtpConnection.answer_rcpt`) and :class:`EndOfData`
(:meth:`~LmtpConnection.answer_data`, one reply per accepted recipient).

A transaction starts with :class:`MailFrom` and ends with ``answer_data`` after
:class:`EndOfData`, with :class:`DataAborted`, or with :class:`TransactionReset`
(which also drops XFORWARD attributes and any spool the application opened).

BDAT (RFC 3030): a chunk is always consumed by its byte count, even when the
command is refused, so the stream stays framed; a refused BDAT fails the whole
transaction (later chunks get ``503``). A BDAT whose size cannot be read leaves
the stream unframed: it gets ``421 4.5.4`` and the connection closes.

Peer errors never raise: they become replies. :class:`LocalProtocolError` means
the application misused this API.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from lmtpd.protocol import _replies as r
from lmtpd.protocol._dialogue import Decision, Dialogue, Phase
from lmtpd.protocol._events import (
    NEED_DATA,
    BodyChunk,
    ConnectionClosed,
    DataAborted,
    DataStart,
    EndOfData,
    Event,
    Lhlo,
    LocalProtocolError,
    MailFrom,
    NeedData,
    Quit,
    RcptTo,
    TransactionReset,
    Xforward,
)
from lmtpd.protocol._reply import Reply, ReplyLike

if TYPE_CHECKING:
    from collections.abc import Sequence


__all__ = [
    "NEED_DATA",
    "BodyChunk",
    "ConnectionClosed",
    "DataAborted",
    "DataStart",
    "EndOfData",
    "Event",
    "Lhlo",
    "LmtpConnection",
    "LocalProtocolError",
    "MailFrom",
    "NeedData",
    "Quit",
    "RcptTo",
    "Reply",
    "ReplyLike",
    "TransactionReset",
    "Xforward",
]

_NAMES_BDAT: Final = re.compile(rb"BDAT(?:[ \r\n]|$)", re.IGNORECASE)


class LmtpConnection(Dialogue):
    """The server side of one LMTP connection."""

    # -- the caller's side ---------------------------------------------------

    @property
    def closed(self) -> bool:
        """After QUIT, :meth:`refuse`, EOF or an unrecoverable peer error."""
        return self._closed

    @property
    def in_data(self) -> bool:
        """True while message content (DATA or a BDAT chunk) is being received."""
        return not self._closed and self._phase is not Phase.COMMAND

    @property
    def awaiting_decision(self) -> bool:
        return self._decision is not None

    @property
    def buffered(self) -> int:
        """Received bytes not yet turned into events (bounded by the input
        chunk size plus ``max_line_length`` when driven as documented)."""
        return len(self._in)

    def greet(self) -> None:
        if self._greeted or self._closed:
            raise LocalProtocolError("greet() once, before anything else")
        self._greeted = True
        self._out += r.format_greeting(self._hostname)

    def refuse(self, reply: ReplyLike) -> None:
        """Queue a final 4xx/5xx reply and close. Ignored once closed."""
        if self._closed:
            return
        self._check(reply, "45")
        self._answer(reply)
        self._events.clear()
        self._close()

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side."""
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        if not data:
            self._eof = True
            return
        if self._closed:
            return
        if self._discarding_line and not self._in:
            end = data.find(b"\r\n")
            if end < 0:
                # still inside an over-long line: drop it without buffering, but
                # keep a final CR, which may begin the CRLF that ends it
                if data.endswith(b"\r"):
                    self._in += b"\r"
                return
            data = data[end:]
        self._in += data

    def next_event(self) -> Event | NeedData:
        while not self._events:
            if self._closed:
                return ConnectionClosed() if self._eof else NEED_DATA
            if self._decision is not None:
                return NEED_DATA
            if not self._step():
                if not self._eof:
                    return NEED_DATA
                self._close()
                return ConnectionClosed()
        return self._events.popleft()

    def answer_rcpt(self, reply: ReplyLike) -> None:
        """Answer the pending :class:`RcptTo`; a 2xx reply adds the recipient."""
        if self._decision is not Decision.RCPT or self._txn is None:
            raise LocalProtocolError("no RCPT is waiting for an answer")
        self._check(reply, "245")
        self._decision = None
        self._answer(reply)
        if 200 <= reply.code < 300:
            self._txn.recipients.append(self._rcpt_in_question)

    def answer_data(self, replies: Sequence[ReplyLike]) -> None:
        """Answer the pending :class:`EndOfData`: one reply per recipient, in order."""
        if self._decision is not Decision.DATA or self._txn is None:
            raise LocalProtocolError("no end of data is waiting for an answer")
        if len(replies) != len(self._txn.recipients):
            raise LocalProtocolError(
                f"{len(replies)} replies for {len(self._txn.recipients)} recipients"
            )
        for reply in replies:
            self._check(reply, "245")
        self._decision = None
        for reply in replies:
            self._answer(reply)
        self._end_transaction()

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def take_refusals(self) -> list[Reply]:
        """The 4xx/5xx replies the protocol gave on its own (malformed commands,
        bad sequences, limits) since the last call, oldest first."""
        taken, self._refusals = self._refusals, []
        return taken

    # -- framing ------------------------------------------------------------

    def _step(self) -> bool:
        """Make progress on the buffered input; False when more input is needed."""
        if self._phase is Phase.DATA:
            return self._step_data()
        if self._phase is Phase.CHUNK:
            return self._step_chunk()
        return self._step_command()

    def _step_command(self) -> bool:
        """Frame one command line. Only CRLF ends a line (RFC 5321 §2.3.8): a bare
        LF or CR inside it makes the whole line one refused command, so a peer and
        anything in front of us always agree on where commands begin."""
        if self._too_many_errors():
            return True
        buf = self._in
        if self._discarding_line:
            end = buf.find(b"\r\n")
            if end < 0:
                _keep_trailing_cr(buf)
                return False
            del buf[: end + 2]
            self._discarding_line = False
            self._reply(r.LINE_TOO_LONG)
            return True
        end = buf.find(b"\r\n", 0, self._max_line_length)
        if end < 0:
            if len(buf) < self._max_line_length:
                return False
            if _NAMES_BDAT.match(buf):
                self._unframed()
            else:
                self._discarding_line = True  # the next step drops it up to its CRLF
            return True
        line = bytes(buf[:end])
        del buf[: end + 2]
        if b"\n" in line or b"\r" in line:
            if _NAMES_BDAT.match(line):
                self._unframed()
            else:
                self._reply(r.BARE_NEWLINE)
        else:
            self._on_command_line(line)
        return True

    def _step_data(self) -> bool:
        txn = self._transaction()
        decoded = self._dots.decode(self._in)
        del self._in[: decoded.consumed]
        if decoded.content and not txn.oversize:
            txn.body_size += len(decoded.content)
            if txn.body_size > self._max_message_bytes:
                txn.oversize = True
            else:
                self._events.append(BodyChunk(decoded.content))
        if decoded.ended:
            self._phase = Phase.COMMAND
            self._end_of_data(txn, last=True)
            return True
        return decoded.consumed > 0

    def _step_chunk(self) -> bool:
        chunk = self._chunk
        if chunk.left:
            take = min(chunk.left, len(self._in))
            if not take:
                return False
            if chunk.refusal is None and not self._transaction().oversize:
                with memoryview(self._in) as view:
                    data = view[:take].tobytes()
                self._transaction().body_size += take
                self._events.append(BodyChunk(data))
            del self._in[:take]
            chunk.left -= take
            if chunk.left:
                return True
        self._phase = Phase.COMMAND
        if chunk.refusal is not None:
            self._reply(chunk.refusal)
            if chunk.then is not None:
                self._events.append(chunk.then)
        else:
            self._end_of_data(self._transaction(), last=chunk.last)
        return True

    @staticmethod
    def _check(reply: ReplyLike, classes: str) -> None:
        problem = r.reply_problem(reply, classes)
        if problem is not None:
            raise LocalProtocolError(problem)


def _keep_trailing_cr(buf: bytearray) -> None:
    """Empty ``buf`` but for a final CR (a CRLF may be split across reads)."""
    tail = buf[-1:] == b"\r"
    buf.clear()
    if tail:
        buf += b"\r"
