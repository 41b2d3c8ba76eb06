"""``ingest export``: a tenant's messages and attachment manifests as a SQLite file,
read from real Postgres."""

from __future__ import annotations

import io
import json
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlite_utils import Database

from ingest_core.adapters.postgres import TenantAdmin
from ingest_core.adapters.postgres.common import Pool
from ingest_core.adapters.postgres.export import UnknownTenant
from ingest_core.adapters.sqlite_export import export_tenant
from ingest_core.errors import ExportError, IngestError, StoreUnavailable
from lmtpd.cli.export import parse_since, progress_bar

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def add_message(
    pool: Pool, org_id: uuid.UUID, received_at: datetime = T0, **extra: Any
) -> uuid.UUID:
    columns = {
        "org_id": org_id,
        "source_message_id": f"{uuid.uuid4()}@buyer.example",
        "sha256": "a" * 64,
        "content_sha256": "b" * 64,
        "size_bytes": 1234,
        "raw_object_key": f"raw/{org_id}/{uuid.uuid4().hex}.eml",
        "envelope_from": "buyer@example.org",
        "envelope_recipient": "orders+acme@orders.localhost",
        "subject": "PO 4711",
        "received_at": received_at,
        **extra,
    }
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    with pool.connection() as conn:
        row = conn.execute(
            f"INSERT INTO inbound_message ({names}) VALUES ({marks}) RETURNING id",
            [psycopg.types.json.Jsonb(v) if isinstance(v, list | dict) else v
             for v in columns.values()],
        ).fetchone()  # fmt: skip
    assert row is not None
    return row[0]


def add_attachment(
    pool: Pool, message_id: uuid.UUID, part_path: str = "2", notes: list[str] | None = None
) -> uuid.UUID:
    with pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO inbound_attachment (inbound_message_id, org_id, part_path, filename,"
            " content_type, size_bytes, sha256, object_key, notes)"
            " SELECT id, org_id, %s, 'po.pdf', 'application/pdf', 99, %s, 'att/key', %s"
            " FROM inbound_message WHERE id = %s RETURNING id",
            (part_path, "c" * 64, notes or [], message_id),
        ).fetchone()
    assert row is not None
    return row[0]


def read(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, params).fetchall()


@pytest.fixture
def tenants(pg_pool: Pool) -> dict[str, uuid.UUID]:
    admin = TenantAdmin(pg_pool)
    return {slug: admin.add(slug, slug.title()).id for slug in ("acme", "globex")}


# ----------------------------------------------------------------------- contents


def test_only_that_tenants_rows_are_exported(pg_pool, tenants, tmp_path) -> None:
    acme = [add_message(pg_pool, tenants["acme"]) for _ in range(3)]
    globex = [add_message(pg_pool, tenants["globex"]) for _ in range(2)]
    acme_attachment = add_attachment(pg_pool, acme[0])
    add_attachment(pg_pool, globex[0])

    summary = export_tenant(pg_pool, org_slug="acme", since=None, out=tmp_path / "orders.db")

    assert (summary.messages, summary.attachments) == (3, 1)
    out = summary.path
    assert {row[0] for row in read(out, "SELECT id FROM messages")} == {str(m) for m in acme}
    assert read(out, "SELECT id FROM attachments") == [(str(acme_attachment),)]
    assert read(out, "SELECT DISTINCT org_id FROM messages") == [(str(tenants["acme"]),)]
    assert read(out, "SELECT DISTINCT org_id FROM attachments") == [(str(tenants["acme"]),)]


def test_since_keeps_messages_received_at_or_after_it(pg_pool, tenants, tmp_path) -> None:
    old = add_message(pg_pool, tenants["acme"], T0 - timedelta(days=2))
    on_time = add_message(pg_pool, tenants["acme"], T0)
    new = add_message(pg_pool, tenants["acme"], T0 + timedelta(hours=1))
    add_attachment(pg_pool, old)
    kept_attachment = add_attachment(pg_pool, new)

    summary = export_tenant(pg_pool, org_slug="acme", since=T0, out=tmp_path / "orders.db")

    ids = read(summary.path, "SELECT id FROM messages ORDER BY received_at")
    assert ids == [(str(on_time),), (str(new),)]
    assert read(summary.path, "SELECT id FROM attachments") == [(str(kept_attachment),)]
    assert (summary.messages, summary.attachments, summary.since) == (2, 1, T0)

    naive = export_tenant(
        pg_pool, org_slug="acme", since=T0.replace(tzinfo=None), out=tmp_path / "naive.db"
    )
    assert (naive.messages, naive.since) == (2, T0)


def test_attachments_reference_their_messages(pg_pool, tenants, tmp_path) -> None:
    message = add_message(pg_pool, tenants["acme"])
    add_attachment(pg_pool, message, "2", notes=["filename repaired"])
    add_attachment(pg_pool, message, "3")

    out = export_tenant(pg_pool, org_slug="acme", since=None, out=tmp_path / "o.db").path

    db = Database(out)
    [foreign_key] = db.table("attachments").foreign_keys
    assert (foreign_key.column, foreign_key.other_table, foreign_key.other_column) == (
        "inbound_message_id",
        "messages",
        "id",
    )
    assert ["inbound_message_id"] in [index.columns for index in db.table("attachments").indexes]
    assert db.table("messages").pks == ["id"]
    db.close()
    rows = read(
        out,
        "SELECT a.part_path, a.notes, a.size_bytes, a.filename FROM attachments a"
        " JOIN messages m ON m.id = a.inbound_message_id ORDER BY a.part_path",
    )
    assert rows == [("2", '["filename repaired"]', 99, "po.pdf"), ("3", "[]", 99, "po.pdf")]


def test_every_column_is_exported_with_sqlite_friendly_values(pg_pool, tenants, tmp_path) -> None:
    """``m.*``: columns from later migrations (sender authentication) come along;
    jsonb becomes JSON text, uuids and timestamps ISO text, numbers stay numbers."""
    dkim = [{"domain": "example.org", "selector": "s1", "result": "pass"}]
    message = add_message(
        pg_pool,
        tenants["acme"],
        datetime(2026, 11, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        auth_dkim=dkim,
        auth_spf="pass",
        status="QUARANTINED",
        quarantine_reason="dmarc fail",
    )
    add_message(pg_pool, tenants["acme"], auth_dkim=None)

    out = export_tenant(pg_pool, org_slug="acme", since=None, out=tmp_path / "o.db").path

    with pg_pool.connection() as conn:
        pg_columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'inbound_message' ORDER BY ordinal_position"
            ).fetchall()
        ]
    assert "auth_dkim" in pg_columns
    with sqlite3.connect(out) as db:
        db.row_factory = sqlite3.Row
        assert [row["name"] for row in db.execute("PRAGMA table_info(messages)")] == pg_columns
        row = db.execute("SELECT * FROM messages WHERE id = ?", (str(message),)).fetchone()
        assert json.loads(row["auth_dkim"]) == dkim
        assert (row["auth_spf"], row["quarantine_reason"]) == ("pass", "dmarc fail")
        assert row["received_at"] == "2026-11-01T12:00:00+00:00"
        assert (row["size_bytes"], row["attempts"]) == (1234, 0)
        assert row["claimed_at"] is None
        assert (
            db.execute("SELECT count(*) FROM messages WHERE auth_dkim IS NULL").fetchone()[0] == 1
        )
        types = db.execute("SELECT typeof(size_bytes), typeof(id) FROM messages").fetchall()
        assert set(map(tuple, types)) == {("integer", "text")}


def test_every_attachment_column_is_exported(pg_pool, tenants, tmp_path) -> None:
    """``a.*``: the detected content type (migration 0003) comes along."""
    message = add_message(pg_pool, tenants["acme"])
    sniffed = add_attachment(pg_pool, message, "2")
    add_attachment(pg_pool, message, "3")
    with pg_pool.connection() as conn:
        conn.execute(
            "UPDATE inbound_attachment SET content_type = 'application/octet-stream',"
            " detected_content_type = 'application/pdf' WHERE id = %s",
            (sniffed,),
        )
        pg_columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'inbound_attachment' ORDER BY ordinal_position"
            ).fetchall()
        ]

    out = export_tenant(pg_pool, org_slug="acme", since=None, out=tmp_path / "o.db").path

    assert "detected_content_type" in pg_columns
    with sqlite3.connect(out) as db:
        names = [row[1] for row in db.execute("PRAGMA table_info(attachments)")]
    assert names == pg_columns
    types = "SELECT part_path, content_type, detected_content_type FROM attachments"
    assert read(out, types + " ORDER BY part_path") == [
        ("2", "application/octet-stream", "application/pdf"),
        ("3", "application/pdf", None),
    ]


def test_export_info_describes_the_file(pg_pool, tenants, tmp_path) -> None:
    message = add_message(pg_pool, tenants["acme"])
    add_attachment(pg_pool, message)
    since = T0 - timedelta(days=7)
    before = datetime.now(UTC)

    summary = export_tenant(pg_pool, org_slug="acme", since=since, out=tmp_path / "o.db")

    with pg_pool.connection() as conn:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    assert row is not None
    with sqlite3.connect(summary.path) as db:
        db.row_factory = sqlite3.Row
        [info] = db.execute("SELECT * FROM export_info").fetchall()
    assert dict(info) == {
        "org_slug": "acme",
        "org_id": str(tenants["acme"]),
        "since": "2026-10-25T12:00:00+00:00",
        "exported_at": summary.exported_at.astimezone(UTC).isoformat(),
        "message_count": 1,
        "attachment_count": 1,
        "schema_version": row[0],
        "export_format": 1,
    }
    assert summary.exported_at >= before - timedelta(seconds=5)
    assert (summary.path, summary.org_id, summary.schema_version) == (
        tmp_path / "o.db",
        tenants["acme"],
        row[0],
    )


def test_a_tenant_without_messages_gives_empty_tables(pg_pool, tenants, tmp_path) -> None:
    summary = export_tenant(pg_pool, org_slug="globex", since=None, out=tmp_path / "o.db")

    assert (summary.messages, summary.attachments) == (0, 0)
    db = Database(summary.path)
    assert {"id", "auth_dkim", "received_at"} <= set(db.table("messages").columns_dict)
    assert {"id", "inbound_message_id", "notes", "detected_content_type"} <= set(
        db.table("attachments").columns_dict
    )
    assert db.table("messages").count == 0
    db.close()


# ------------------------------------------------------------------------ refusals


def test_unknown_tenant_is_named_and_writes_nothing(pg_pool, tenants, tmp_path) -> None:
    with pytest.raises(UnknownTenant, match="'nobody'") as raised:
        export_tenant(pg_pool, org_slug="nobody", since=None, out=tmp_path / "o.db")
    assert isinstance(raised.value, IngestError)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_kept_unless_overwrite(pg_pool, tenants, tmp_path) -> None:
    add_message(pg_pool, tenants["acme"])
    out = tmp_path / "orders.db"
    out.write_bytes(b"keep me")

    with pytest.raises(ExportError, match="already exists"):
        export_tenant(pg_pool, org_slug="acme", since=None, out=out)
    assert out.read_bytes() == b"keep me"

    summary = export_tenant(pg_pool, org_slug="acme", since=None, out=out, overwrite=True)
    assert summary.messages == 1
    assert read(out, "SELECT count(*) FROM messages") == [(1,)]
    assert list(tmp_path.iterdir()) == [out]


def test_a_missing_folder_is_an_export_error(pg_pool, tenants, tmp_path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_tenant(pg_pool, org_slug="acme", since=None, out=tmp_path / "no" / "o.db")


# ------------------------------------------------------------------------ failures


def test_a_failing_progress_callback_leaves_no_file(pg_pool, tenants, tmp_path) -> None:
    for _ in range(5):
        add_message(pg_pool, tenants["acme"])
    out = tmp_path / "orders.db"
    out.write_bytes(b"previous export")

    def interrupt(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_tenant(
            pg_pool,
            org_slug="acme",
            since=None,
            out=out,
            overwrite=True,
            progress=interrupt,
            batch_size=2,
        )
    assert out.read_bytes() == b"previous export"
    assert list(tmp_path.iterdir()) == [out]


def test_losing_the_database_mid_export_leaves_no_file(pg_pool, pg_url, tenants, tmp_path) -> None:
    for _ in range(10):
        add_message(pg_pool, tenants["acme"])

    def kill_the_export_session(done: int, total: int) -> None:
        if done == 0:
            return
        with psycopg.connect(pg_url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'FETCH%'"
            ).fetchall()
        assert killed == [(True,)]

    with pytest.raises(StoreUnavailable, match="export read"):
        export_tenant(
            pg_pool,
            org_slug="acme",
            since=None,
            out=tmp_path / "orders.db",
            progress=kill_the_export_session,
            batch_size=3,
        )
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------- streaming


def test_many_messages_stream_in_batches_through_a_server_side_cursor(
    pg_pool, pg_url, tenants, tmp_path
) -> None:
    with pg_pool.connection() as conn:
        conn.execute(
            "INSERT INTO inbound_message (org_id, source_message_id, sha256, content_sha256,"
            " size_bytes, raw_object_key, envelope_from, envelope_recipient, received_at)"
            " SELECT %s, 'm' || n, 'a', 'b', n, 'raw/' || n, 'f@x', 'r@y',"
            "        %s + n * interval '1 second'"
            " FROM generate_series(1, 5000) AS n",
            (tenants["acme"], T0),
        )
        conn.execute(
            "INSERT INTO inbound_attachment (inbound_message_id, org_id, part_path,"
            " content_type, size_bytes, sha256, object_key)"
            " SELECT id, org_id, '2', 'text/csv', 1, 'c', 'k' FROM inbound_message"
            " WHERE size_bytes % 10 = 0"
        )
    calls: list[tuple[int, int]] = []
    statements: list[str] = []

    def watch(done: int, total: int) -> None:
        calls.append((done, total))
        if done in (600, 5200):  # during the messages, then during the attachments
            with psycopg.connect(pg_url, autocommit=True) as conn:
                statements.extend(
                    row[0]
                    for row in conn.execute(
                        "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state = 'idle in transaction'"
                    ).fetchall()
                )

    summary = export_tenant(
        pg_pool, org_slug="acme", since=None, out=tmp_path / "o.db", progress=watch, batch_size=200
    )

    assert (summary.messages, summary.attachments) == (5000, 500)
    assert calls[0] == (0, 5500)
    assert calls[-1] == (5500, 5500)
    assert len(calls) == 1 + 25 + 3  # the count, then one call per batch
    assert statements == [
        'FETCH FORWARD 200 FROM "export_messages"',
        'FETCH FORWARD 200 FROM "export_attachments"',
    ]
    assert read(summary.path, "SELECT min(size_bytes), max(size_bytes) FROM messages") == [
        (1, 5000)
    ]


# ------------------------------------------------------------------------ progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress_bar(stream=stream) as report:
        report(0, 10)
        report(10, 10)
    assert stream.getvalue() == ""


def test_progress_bar_draws_on_a_terminal() -> None:
    stream = _Terminal()
    with progress_bar("Exporting acme", stream=stream) as report:
        report(0, 4)
        report(2, 4)
        report(4, 4)
    assert "Exporting acme" in stream.getvalue()
    assert "100%" in stream.getvalue()


# ------------------------------------------------------------------------- --since

NOW = datetime(2026, 11, 8, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T12:00:00+00:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T14:00:00+02:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01 12:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("30m", NOW - timedelta(minutes=30)),
        ("45s", NOW - timedelta(seconds=45)),
        ("2w", NOW - timedelta(weeks=2)),
        (" 7d ", NOW - timedelta(days=7)),
        ("0d", NOW),
    ],
)
def test_parse_since_accepts_iso_times_and_ages(text: str, expected: datetime) -> None:
    parsed = parse_since(text, now=NOW)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "yesterday", "7 days", "-7d", "7D", "1.5h", "2026-13-01"])
def test_parse_since_explains_what_it_accepts(text: str) -> None:
    with pytest.raises(ValueError, match=r"as a time: use an ISO date or time .* 7d"):
        parse_since(text, now=NOW)


def test_parse_since_refuses_an_age_beyond_the_calendar() -> None:
    with pytest.raises(ValueError, match="too far"):
        parse_since("999999999w", now=NOW)


def test_parse_since_defaults_to_the_current_time() -> None:
    before = datetime.now(UTC)
    parsed = parse_since("1h")
    assert before - timedelta(hours=1) <= parsed <= datetime.now(UTC) - timedelta(hours=1)


@given(amount=st.integers(min_value=0, max_value=100_000), unit=st.sampled_from("smhdw"))
def test_parse_since_ages_count_back_from_now(amount: int, unit: str) -> None:
    names = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    assert parse_since(f"{amount}{unit}", now=NOW) == NOW - timedelta(**{names[unit]: amount})
