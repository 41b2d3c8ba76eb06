"""The command half of the LMTP state machine: what each command line does to
the session, and the session state that :class:`lmtpd.protocol.LmtpConnection`
frames bytes for. Internal; use :mod:`lmtpd.protocol`."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lmtpd.protocol import _replies as r
from lmtpd.protocol._body import DotDecoder
from lmtpd.protocol._commands import parse_bdat, parse_lhlo, parse_mail, parse_rcpt, parse_xforward
from lmtpd.protocol._events import (
    DataAborted,
    DataStart,
    EndOfData,
    Event,
    Lhlo,
    MailFrom,
    Quit,
    RcptTo,
    TransactionReset,
    Xforward,
)
from lmtpd.protocol._reply import Reply, ReplyLike

if TYPE_CHECKING:
    from collections.abc import Callable


class Phase(enum.Enum):
    COMMAND = "command"
    DATA = "data"  # dot-terminated DATA content
    CHUNK = "chunk"  # the byte-counted content of one BDAT


class Decision(enum.Enum):
    RCPT = "rcpt"
    DATA = "data"


class DataMode(enum.Enum):
    """How a transaction's content is being sent, once it began."""

    DATA = "DATA"  # one dot-terminated DATA
    BDAT = "BDAT"  # byte-counted BDAT chunks (CHUNKING)


@dataclass(slots=True)
class Transaction:
    mail: MailFrom
    recipients: list[str] = field(default_factory=list)
    rcpt_attempted: bool = False
    data_mode: DataMode | None = None  # None until the content began
    body_size: int = 0
    oversize: bool = False


@dataclass(slots=True)
class Chunk:
    """One BDAT chunk being consumed; ``refusal`` is queued (and ``then`` emitted)
    once a refused chunk has been read and discarded."""

    left: int
    last: bool
    refusal: Reply | None = None
    then: Event | None = None


class Dialogue:
    """Session state and command handlers; framing lives in the subclass."""

    def __init__(
        self,
        *,
        hostname: str,
        max_message_bytes: int,
        max_recipients: int,
        max_line_length: int = 4096,
        max_errors: int | None = None,
    ) -> None:
        if not hostname or " " in hostname or not r.is_printable_ascii(hostname):
            raise ValueError("hostname must be one printable ASCII token")
        if max_message_bytes < 0 or max_recipients < 1 or max_line_length < 16:
            raise ValueError("limits out of range")
        self._hostname = hostname
        self._max_message_bytes = max_message_bytes
        self._max_recipients = max_recipients
        self._max_line_length = max_line_length
        # Like Postfix's smtpd_hard_error_limit: a peer that keeps sending broken
        # commands is cut off. Only errors the protocol itself answers count, not
        # the application's refusals (e.g. unknown recipients).
        self._max_errors = max_errors
        self._errors = 0
        # Refusals the protocol answered on its own, for the caller to log and count
        # (``take_refusals``); the application's own refusals are not repeated here.
        self._refusals: list[Reply] = []
        self._in = bytearray()
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._phase = Phase.COMMAND
        self._greeted = self._closed = self._eof = False
        self._lhlo_done = self._xforward_given = self._discarding_line = False
        self._txn: Transaction | None = None
        self._decision: Decision | None = None
        self._rcpt_in_question = ""
        self._dots = DotDecoder()
        self._chunk = Chunk(0, last=False)
        self._commands: dict[bytes, Callable[[str], None]] = {
            b"LHLO": self._on_lhlo,
            b"MAIL": self._on_mail,
            b"RCPT": self._on_rcpt,
            b"DATA": self._on_data,
            b"RSET": self._on_rset,
            b"QUIT": self._on_quit,
            b"XFORWARD": self._on_xforward,
            b"NOOP": lambda _: self._reply(r.OK),
            b"VRFY": lambda _: self._reply(r.CANNOT_VRFY),
            b"HELP": lambda _: self._reply(r.HELP),
            b"EXPN": lambda _: self._reply(r.NOT_IMPLEMENTED),
            b"HELO": lambda _: self._reply(r.USE_LHLO),
            b"EHLO": lambda _: self._reply(r.USE_LHLO),
        }

    def _on_command_line(self, line: bytes) -> None:
        verb, _, rest = line.partition(b" ")
        verb = verb.upper()
        if verb == b"BDAT":
            self._on_bdat(rest)
            return
        handler = self._commands.get(verb)
        if handler is None:
            self._reply(r.UNKNOWN_COMMAND)
            return
        try:
            args = rest.decode("utf-8")
        except UnicodeDecodeError:
            self._reply(r.BAD_ENCODING)
            return
        handler(args)

    def _end_of_data(self, txn: Transaction, *, last: bool) -> None:
        """After DATA's end marker or a BDAT chunk's last byte."""
        if txn.oversize:
            # RFC 3030: a non-LAST chunk gets one reply; the end of data one per recipient
            self._out += r.format_reply(r.TOO_BIG) * (len(txn.recipients) if last else 1)
            self._events.append(DataAborted("size"))
            self._end_transaction()
        elif last:
            self._decision = Decision.DATA
            self._events.append(EndOfData(tuple(txn.recipients)))
        else:
            self._reply(r.CHUNK_OK)

    # -- commands -----------------------------------------------------------

    def _on_lhlo(self, args: str) -> None:
        name = parse_lhlo(args)
        if isinstance(name, Reply):
            self._reply(name)
            return
        if self._txn is not None or self._xforward_given:
            self._events.append(TransactionReset())
        self._end_transaction()
        self._lhlo_done = True
        self._out += r.format_lhlo(self._hostname, self._max_message_bytes)
        self._events.append(Lhlo(name))

    def _on_mail(self, args: str) -> None:
        if not self._lhlo_done:
            self._reply(r.NEED_LHLO)
            return
        if self._txn is not None:
            self._reply(r.NESTED_MAIL)
            return
        parsed = parse_mail(args, self._max_message_bytes)
        if isinstance(parsed, Reply):
            self._reply(parsed)
            return
        event = MailFrom(parsed.address, parsed.size, parsed.body, parsed.smtputf8)
        self._txn = Transaction(event)
        self._reply(r.SENDER_OK)
        self._events.append(event)

    def _on_rcpt(self, args: str) -> None:
        txn = self._txn
        if txn is None:
            self._reply(r.NEED_MAIL if self._lhlo_done else r.NEED_LHLO)
            return
        if txn.data_mode is not None:
            self._reply(r.BAD_SEQUENCE)
            return
        txn.rcpt_attempted = True
        parsed = parse_rcpt(args, txn.mail.smtputf8)
        if isinstance(parsed, Reply):
            self._reply(parsed)
        elif len(txn.recipients) >= self._max_recipients:
            self._reply(r.TOO_MANY_RECIPIENTS)
        else:
            self._decision = Decision.RCPT
            self._rcpt_in_question = parsed
            self._events.append(RcptTo(parsed))

    def _on_data(self, args: str) -> None:
        refusal = self._data_refusal()
        if refusal is None and args.strip(" "):
            refusal = r.BAD_SYNTAX
        if refusal is not None:
            self._reply(refusal)
            return
        self._transaction().data_mode = DataMode.DATA
        self._phase = Phase.DATA
        self._dots = DotDecoder()
        self._reply(r.START_DATA)
        self._events.append(DataStart())

    def _on_bdat(self, raw_args: bytes) -> None:
        args = parse_bdat(raw_args)
        if args.size is None:
            self._unframed()
            return
        refusal = self._data_refusal(bdat=True) or args.error
        if refusal is not None:
            failed = self._txn
            then: Event | None = None
            if failed is not None:  # RFC 3030: a refused BDAT fails the transaction
                self._end_transaction()
                then = DataAborted("syntax") if failed.data_mode is not None else TransactionReset()
            self._start_chunk(Chunk(args.size, args.last, refusal, then))
            return
        txn = self._transaction()
        if txn.data_mode is None:
            txn.data_mode = DataMode.BDAT
            self._events.append(DataStart())
        if txn.body_size + args.size > self._max_message_bytes:
            txn.oversize = True
        self._start_chunk(Chunk(args.size, args.last))

    def _data_refusal(self, *, bdat: bool = False) -> Reply | None:
        """Why DATA (or BDAT) cannot start the content now, or None."""
        txn = self._txn
        if txn is None:
            return r.NEED_MAIL if self._lhlo_done else r.NEED_LHLO
        if txn.data_mode is not None and not (bdat and txn.data_mode is DataMode.BDAT):
            return r.BAD_SEQUENCE
        if not txn.rcpt_attempted:
            return r.NEED_RCPT
        if not txn.recipients:
            return r.NO_VALID_RECIPIENTS
        return None

    def _on_rset(self, _args: str) -> None:
        self._end_transaction()
        self._reply(r.OK)
        self._events.append(TransactionReset())

    def _on_quit(self, _args: str) -> None:
        self._reply(r.BYE)
        self._events.append(Quit())
        self._close()

    def _on_xforward(self, args: str) -> None:
        if not self._lhlo_done:
            self._reply(r.NEED_LHLO)
            return
        if self._txn is not None:
            self._reply(r.BAD_SEQUENCE)
            return
        attributes = parse_xforward(args)
        if isinstance(attributes, Reply):
            self._reply(attributes)
            return
        self._xforward_given = True
        self._reply(r.OK)
        self._events.append(Xforward(attributes))

    # -- helpers ------------------------------------------------------------

    def _start_chunk(self, chunk: Chunk) -> None:
        self._chunk = chunk
        self._phase = Phase.CHUNK

    def _unframed(self) -> None:
        """The byte stream can no longer be split into commands: answer and close."""
        self._reply(r.BDAT_UNFRAMED)
        if self._txn is not None and self._txn.data_mode is not None:
            self._events.append(DataAborted("syntax"))
        self._close()

    def _end_transaction(self) -> None:
        self._txn = None
        self._xforward_given = False

    def _close(self) -> None:
        self._closed = True
        self._decision = None
        self._phase = Phase.COMMAND
        self._in.clear()

    def _transaction(self) -> Transaction:
        if self._txn is None:  # unreachable: phases that need one are entered with one
            raise AssertionError("no transaction")
        return self._txn

    def _answer(self, reply: ReplyLike) -> None:
        """The application's reply: sent, never counted as the protocol's own refusal."""
        self._out += r.format_reply(reply)

    def _reply(self, reply: Reply) -> None:
        self._out += r.format_reply(reply)
        if reply.code >= 400:
            self._refusals.append(reply)
            if reply.code >= 500:
                self._errors += 1

    def _too_many_errors(self) -> bool:
        """True (and the connection closed with 421) once the error limit is reached."""
        if self._max_errors is None or self._errors < self._max_errors:
            return False
        self._out += r.format_reply(r.TOO_MANY_ERRORS)
        self._refusals.append(r.TOO_MANY_ERRORS)
        self._events.clear()
        self._close()
        return True
