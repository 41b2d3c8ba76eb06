"""``ingest export``'s writer: one tenant's messages and attachment manifests as SQLite.

The file is for support and analysis, written with sqlite-utils:

- ``messages``: every ``inbound_message`` column (primary key ``id``);
- ``attachments``: every ``inbound_attachment`` column, ``inbound_message_id``
  a foreign key to ``messages.id`` (indexed);
- ``export_info``: one row saying what the file holds and as of when.

Uuids and timestamps (UTC) are ISO text, jsonb and array columns JSON text.
The file is written under a temporary name in the target's folder and renamed
into place only when complete, so the target name never holds half an export.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlite_utils import Database

from ingest_core.adapters.postgres.export import DEFAULT_BATCH_SIZE, TenantExportReader
from ingest_core.errors import ExportError

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterable, Iterator

    from sqlite_utils.db import Table

    from ingest_core.adapters.postgres.common import Pool
    from ingest_core.adapters.postgres.export import Column, TenantSnapshot

ProgressCallback: TypeAlias = Callable[[int, int], None]
"""Called with (rows written so far, total rows): first (0, total), then after
each batch. Rows are messages plus attachments."""

EXPORT_FORMAT = 1
"""Version of the file's layout, recorded in ``export_info``."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path
    org_slug: str
    org_id: uuid.UUID
    since: datetime | None
    exported_at: datetime
    """The database snapshot the file reflects (the read transaction's start)."""
    messages: int
    attachments: int
    schema_version: str | None


def export_tenant(
    pool: Pool,
    *,
    org_slug: str,
    since: datetime | None,
    out: Path,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ExportSummary:
    """Write the tenant's messages received at or after ``since`` (all when None)
    and their attachment manifests to the SQLite file ``out``.

    Raises UnknownTenant, StoreUnavailable (database), ExportError (the file),
    or whatever ``progress`` raises; in every case ``out`` is left as it was.
    A ``since`` without a timezone is taken as UTC.
    """
    out = Path(out)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    _check_target(out, overwrite=overwrite)
    with (
        TenantExportReader(pool, batch_size=batch_size).open(org_slug, since) as snapshot,
        _temporary_file(out) as partial,
    ):
        try:
            messages, attachments = _write(snapshot, partial, progress or _no_progress)
            _publish(partial, out, overwrite=overwrite)
        except (sqlite3.Error, OSError) as exc:
            raise ExportError(f"could not write the export to {out}: {exc}") from exc
    return ExportSummary(
        path=out,
        org_slug=snapshot.org_slug,
        org_id=snapshot.org_id,
        since=since,
        exported_at=snapshot.snapshot_at.astimezone(UTC),
        messages=messages,
        attachments=attachments,
        schema_version=snapshot.schema_version,
    )


# ----------------------------------------------------------------------- the file


def _check_target(out: Path, *, overwrite: bool) -> None:
    """Fail before any work is done; ``_publish`` checks again at the end."""
    if out.is_dir():
        raise ExportError(f"{out} is a folder; name the file to write")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; remove it or export with --force")
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist")


@contextmanager
def _temporary_file(out: Path) -> Iterator[Path]:
    """An empty, private (mode 0600) file beside ``out``, removed on the way out
    unless it was renamed to ``out``."""
    try:
        handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    except OSError as exc:
        raise ExportError(f"could not create a file beside {out}: {exc}") from exc
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
    finally:
        partial.unlink(missing_ok=True)


def _publish(partial: Path, out: Path, *, overwrite: bool) -> None:
    """Make the complete file durable, then give it the target name."""
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    if overwrite:
        os.replace(partial, out)
    else:
        try:
            # Unlike a rename, a link never replaces a file created meanwhile.
            os.link(partial, out)
        except FileExistsError:
            raise ExportError(f"{out} appeared during the export; nothing replaced") from None
        except OSError:  # a filesystem without hard links
            if out.exists():
                raise ExportError(f"{out} appeared during the export; nothing replaced") from None
            os.replace(partial, out)
    folder = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _write(snapshot: TenantSnapshot, path: Path, progress: ProgressCallback) -> tuple[int, int]:
    """Fill the SQLite file; returns the numbers of messages and attachments."""
    db = Database(path, execute_plugins=False)
    try:
        # The file is discarded on failure and synced once at the end.
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        messages = _create(db.table("messages"), snapshot.message_columns)
        attachments = _create(
            db.table("attachments"),
            snapshot.attachment_columns,
            foreign_keys=[("inbound_message_id", "messages", "id")],
        )
        counter = _Counter(progress, snapshot.message_count + snapshot.attachment_count)
        message_count = _copy(snapshot.messages(), messages, snapshot.message_columns, counter)
        attachment_count = _copy(
            snapshot.attachments(), attachments, snapshot.attachment_columns, counter
        )
        attachments.create_index(["inbound_message_id"])
        db.table("export_info").insert(
            {
                "org_slug": snapshot.org_slug,
                "org_id": str(snapshot.org_id),
                "since": _timestamp(snapshot.since),
                "exported_at": _timestamp(snapshot.snapshot_at),
                "message_count": message_count,
                "attachment_count": attachment_count,
                "schema_version": snapshot.schema_version,
                "export_format": EXPORT_FORMAT,
            }
        )
    finally:
        db.close()
    return message_count, attachment_count


class _Counter:
    def __init__(self, progress: ProgressCallback, total: int) -> None:
        self._progress = progress
        self.total = total
        self.done = 0
        progress(0, total)

    def add(self, rows: int) -> None:
        self.done += rows
        # A row inserted after the count is not in the snapshot; but never report
        # more than the total a progress bar was sized for.
        self._progress(self.done, max(self.total, self.done))


def _create(table: Table, columns: list[Column], **options: Any) -> Table:
    return table.create({c.name: _sqlite_type(c.pg_type) for c in columns}, pk="id", **options)


def _copy(
    batches: Iterable[list[dict[str, Any]]],
    table: Table,
    columns: list[Column],
    counter: _Counter,
) -> int:
    converters = [(c.name, _converter(c.pg_type)) for c in columns]
    copied = 0
    for batch in batches:
        rows = [{name: convert(row[name]) for name, convert in converters} for row in batch]
        table.insert_all(rows, batch_size=len(rows))
        copied += len(rows)
        counter.add(len(rows))
    return copied


# --------------------------------------------------------------------- the values

_INTEGER_TYPES = frozenset({"int2", "int4", "int8", "oid", "bool"})
_REAL_TYPES = frozenset({"float4", "float8"})


def _sqlite_type(pg_type: str) -> type:
    if pg_type in _INTEGER_TYPES:
        return int
    if pg_type in _REAL_TYPES:
        return float
    if pg_type == "bytea":
        return bytes
    return str


def _converter(pg_type: str) -> Callable[[Any], Any]:
    """How one column's Python values (as psycopg loads them) become SQLite values."""
    if pg_type in ("json", "jsonb") or pg_type.startswith("_"):
        return _json_text
    if pg_type in ("timestamptz", "timestamp", "date", "time", "timetz"):
        return _timestamp
    if pg_type == "bool":
        return _as_int
    if pg_type in _INTEGER_TYPES or pg_type in _REAL_TYPES or pg_type == "bytea":
        return _unchanged
    return _as_text


def _unchanged(value: Any) -> Any:
    return value


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _as_text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _timestamp(value: datetime | date | time | None) -> str | None:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    return None if value is None else value.isoformat()


def _no_progress(done: int, total: int) -> None:
    """The ``progress`` callback that reports nowhere."""
