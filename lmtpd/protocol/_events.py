"""The events of :mod:`lmtpd.protocol` (frozen, slotted dataclasses) and its error type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias


class LocalProtocolError(Exception):
    """The application used the connection wrongly (e.g. answered at the wrong time)."""


class NeedData:
    """Returned by ``next_event`` when no event can be produced without more input
    (or while a decision is pending, or once the connection is closed)."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


@dataclass(frozen=True, slots=True)
class Lhlo:
    hostname: str


@dataclass(frozen=True, slots=True)
class MailFrom:
    """Already answered ``250 2.1.0``. ``address`` is ``""`` for the null sender."""

    address: str
    size: int | None
    body: str | None
    smtputf8: bool


@dataclass(frozen=True, slots=True)
class RcptTo:
    """Needs :meth:`LmtpConnection.answer_rcpt`; a positive reply adds the recipient."""

    address: str


@dataclass(frozen=True, slots=True)
class Xforward:
    """Already answered ``250 2.0.0``; upper-case attribute names, xtext-decoded values."""

    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class DataStart:
    """``354`` queued (DATA) or the first BDAT chunk began: open a spool."""


@dataclass(frozen=True, slots=True)
class BodyChunk:
    """Message bytes as received, after dot-unstuffing (DATA) or raw (BDAT)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfData:
    """Needs :meth:`LmtpConnection.answer_data` with one reply per recipient, in order."""

    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DataAborted:
    """The data phase failed (``"size"``, ``"syntax"``); already answered. Discard the spool."""

    reason: str


@dataclass(frozen=True, slots=True)
class TransactionReset:
    """RSET, a new LHLO, or a refused BDAT: drop all per-transaction state."""


@dataclass(frozen=True, slots=True)
class Quit:
    """``221`` queued: flush and close."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side (``receive_data(b"")``)."""


Event: TypeAlias = (
    Lhlo
    | MailFrom
    | RcptTo
    | Xforward
    | DataStart
    | BodyChunk
    | EndOfData
    | DataAborted
    | TransactionReset
    | Quit
    | ConnectionClosed
)
