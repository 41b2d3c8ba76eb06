"""Formatting for the console's templates and the parsing of its query strings.

Everything a sender wrote reaches a page through Jinja2's autoescape; ``show``
also removes control and bidi characters (they could reorder what a reader
sees) and keeps a value on one line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from ingest_core.model import MessageStatus
from ingest_core.text import displayable

if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "/console"
STATUSES = tuple(status.value for status in MessageStatus)
_SINCE = re.compile(r"(\d{1,4})\s*([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size(value: int | None) -> str:
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"  # pragma: no cover - the loop returns


def show(value: object, limit: int = 2000) -> str:
    """One line of text for a cell; ``—`` for nothing."""
    if value is None or value == "":
        return "—"
    return displayable(str(value), limit) or "—"


def part_indent(depth: int) -> str:
    return "\u2003" * min(depth, 12)


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``30m``, ``24h``, ``7d``, ``2026-11-01`` or ``2026-11-01T12:00`` (UTC).
    Raises ValueError for anything else."""
    if not text or not text.strip():
        return None
    text = text.strip()
    match = _SINCE.fullmatch(text.lower())
    if match:
        amount = int(match.group(1))
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match.group(2)]: amount})
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (no other site)."""
    if not target or not target.startswith(PREFIX + "/") or target.startswith("//"):
        return PREFIX + "/messages"
    if "\\" in target or any(ord(ch) < 0x21 for ch in target):
        return PREFIX + "/messages"
    return target


def sign_in_url(target: str) -> str:
    return f"{PREFIX}/sign-in?next={quote(safe_next(target), safe='')}"


def query(params: Mapping[str, str | None], **changes: str | None) -> str:
    """A query string of the non-empty ``params`` with ``changes`` applied."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v})


@dataclass(frozen=True, slots=True)
class Bar:
    status: str
    day: int
    week: int
    day_width: float
    week_width: float


CHART_WIDTH = 240.0


def chart(counts: Mapping[str, tuple[int, int]]) -> list[Bar]:
    """One pair of bars per status (last 24 h, last 7 d), scaled to the largest."""
    largest = max((week for _, week in counts.values()), default=0) or 1
    bars = []
    for status in STATUSES:
        day, week = counts.get(status, (0, 0))
        bars.append(
            Bar(
                status,
                day,
                week,
                round(CHART_WIDTH * day / largest, 1),
                round(CHART_WIDTH * week / largest, 1),
            )
        )
    return bars
