"""Reads for ``ingest export``: one tenant's messages and attachment manifests.

Operator code, explicitly cross-tenant like ``operator``
(docs/contracts.md#ports): the tenant is named by slug, and every query filters
on its ``org_id``. Nothing that serves a tenant may use this module.

Everything is read on one connection, in one ``REPEATABLE READ, READ ONLY``
transaction: the counts, the messages and the attachments all come from the same
snapshot, so the totals match the rows and no attachment points at a message the
export does not hold. Rows are streamed through server-side (named) cursors, one
batch at a time, so memory stays flat however many rows the tenant has.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from ingest_core.adapters.postgres.common import Pool, database_errors
from ingest_core.errors import UnknownTenant

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterator
    from datetime import datetime

    import psycopg

DEFAULT_BATCH_SIZE = 1000

_TENANT = "SELECT id, slug FROM organization WHERE slug = %s"

# now() is the transaction's start: the moment the snapshot reflects.
_SNAPSHOT = "SELECT now(), (SELECT max(version) FROM schema_migrations)"

_SINCE = "(%(since)s::timestamptz IS NULL OR m.received_at >= %(since)s::timestamptz)"

_COUNT = f"""
SELECT
    (SELECT count(*) FROM inbound_message m WHERE m.org_id = %(org)s AND {_SINCE}),
    (SELECT count(*) FROM inbound_attachment a
        JOIN inbound_message m ON m.id = a.inbound_message_id
        WHERE a.org_id = %(org)s AND m.org_id = %(org)s AND {_SINCE})
"""

# ``m.*``: columns that later migrations add are exported without a code change.
_MESSAGES = f"""
SELECT m.* FROM inbound_message m
WHERE m.org_id = %(org)s AND {_SINCE}
ORDER BY m.received_at, m.id
"""

_ATTACHMENTS = f"""
SELECT a.* FROM inbound_attachment a
JOIN inbound_message m ON m.id = a.inbound_message_id
WHERE a.org_id = %(org)s AND m.org_id = %(org)s AND {_SINCE}
ORDER BY m.received_at, m.id, a.part_path COLLATE "C"
"""


@dataclass(frozen=True, slots=True)
class Column:
    """A result column: its name and its Postgres type name (``uuid``, ``int8``,
    ``timestamptz``, ``jsonb``, ``_text`` for ``text[]``, ...)."""

    name: str
    pg_type: str


class TenantSnapshot:
    """One tenant's rows as of one moment. Valid only inside ``TenantExportReader.open``.

    ``messages()`` and ``attachments()`` yield lists of at most ``batch_size``
    dicts (psycopg's Python values: ``uuid.UUID``, ``datetime``, jsonb as
    ``dict``/``list``, arrays as ``list``). Read one stream to its end before
    starting the other.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        *,
        org_id: uuid.UUID,
        org_slug: str,
        since: datetime | None,
        batch_size: int,
    ) -> None:
        self._conn = conn
        self._params: dict[str, Any] = {"org": org_id, "since": since}
        self._batch_size = batch_size
        self.org_id = org_id
        self.org_slug = org_slug
        self.since = since
        with database_errors("export count"):
            snapshot = conn.execute(_SNAPSHOT).fetchone()
            counts = conn.execute(_COUNT, self._params).fetchone()
        assert snapshot is not None
        self.snapshot_at: datetime = snapshot[0]
        self.schema_version: str | None = snapshot[1]
        self.message_count: int = counts[0] if counts else 0
        self.attachment_count: int = counts[1] if counts else 0
        self.message_columns = self._columns("inbound_message")
        self.attachment_columns = self._columns("inbound_attachment")

    def messages(self) -> Iterator[list[dict[str, Any]]]:
        return self._stream("export_messages", _MESSAGES)

    def attachments(self) -> Iterator[list[dict[str, Any]]]:
        return self._stream("export_attachments", _ATTACHMENTS)

    def _stream(self, name: str, query: str) -> Iterator[list[dict[str, Any]]]:
        with (
            database_errors(f"export read ({name})"),
            self._conn.cursor(name, row_factory=dict_row) as cursor,
        ):
            cursor.itersize = self._batch_size
            cursor.execute(query, self._params)
            while batch := cursor.fetchmany(self._batch_size):
                yield batch

    def _columns(self, table: str) -> list[Column]:
        """The table's columns in order, read from the catalogue, so that an empty
        export still has every column and each one its declared type."""
        with database_errors("export columns"):
            rows = self._conn.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a"
                " JOIN pg_type t ON t.oid = a.atttypid"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
                " ORDER BY a.attnum",
                (table,),
            ).fetchall()
        return [Column(name, pg_type) for name, pg_type in rows]


class TenantExportReader:
    """Opens a ``TenantSnapshot``. Raises UnknownTenant or StoreUnavailable."""

    def __init__(self, pool: Pool, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._pool = pool
        self._batch_size = batch_size

    @contextmanager
    def open(self, org_slug: str, since: datetime | None) -> Iterator[TenantSnapshot]:
        """Holds one pooled connection and its transaction until the block ends."""
        with database_errors("export"), self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Every row will be read: plan for the whole result, not for the first
            # rows (a cursor's default), which can pick a nested loop over a table
            # scan when statistics are stale.
            conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            found = conn.execute(_TENANT, (org_slug,)).fetchone()
            if found is None:
                raise UnknownTenant(
                    f"no tenant with slug {org_slug!r}; `ingest tenants list` shows them"
                )
            yield TenantSnapshot(
                conn,
                org_id=found[0],
                org_slug=found[1],
                since=since,
                batch_size=self._batch_size,
            )
