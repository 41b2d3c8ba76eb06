"""The protocol's reply value, and what it accepts as one from the application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class ReplyLike(Protocol):
    """Any reply the application hands the protocol: basic code, enhanced
    status code (RFC 3463) and fixed text."""

    @property
    def code(self) -> int: ...

    @property
    def enhanced(self) -> str: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP/LMTP reply: basic code, enhanced status code (RFC 3463), fixed text."""

    code: int
    enhanced: str
    text: str

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500
