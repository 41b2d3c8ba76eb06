"""``ingest export``: the command's terminal side (progress bar, ``--since``);
the file itself is written by the adapter behind ``App.export``."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

import click

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TextIO

    from click._termui_impl import ProgressBar

ProgressCallback: TypeAlias = Callable[[int, int], None]
"""Called with (rows written so far, total rows)."""


def no_progress(done: int, total: int) -> None:
    """A progress callback that shows nothing."""


@contextmanager
def progress_bar(
    label: str = "Exporting", *, stream: TextIO | None = None
) -> Iterator[ProgressCallback]:
    """A ``progress`` callback for ``export_tenant``: a click progress bar on
    ``stream`` (stderr) when it is a terminal, otherwise a callback that does nothing.

    The bar is drawn from the first call, when the total is known.
    """
    target = sys.stderr if stream is None else stream
    if not target.isatty():
        yield no_progress
        return
    with ExitStack() as stack:
        bar: ProgressBar[int] | None = None

        def report(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = stack.enter_context(click.progressbar(length=total, label=label, file=target))
            bar.update(done - bar.pos)

        yield report


_AGE = re.compile(r"(\d{1,9})([smhdw])")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time from an ISO date or time (``2026-11-01``,
    ``2026-11-01T12:00:00+00:00``; UTC when no offset is given) or an age before
    ``now`` (``30m``, ``24h``, ``7d``; also ``s`` and ``w``). Returned in UTC."""
    value = text.strip()
    if match := _AGE.fullmatch(value):
        amount, unit = match.groups()
        moment = datetime.now(UTC) if now is None else now
        if moment.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        try:
            return (moment - timedelta(**{_AGE_UNITS[unit]: int(amount)})).astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{text!r} reaches back too far") from None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use an ISO date or time"
            " (2026-11-01, 2026-11-01T12:00:00+00:00) or an age such as 30m, 24h or 7d"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
