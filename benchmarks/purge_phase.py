"""The purge phase of `just bench`: the rate at which retention removes messages.

``count`` stored messages of a tenant of their own (rows inserted in bulk with
COPY, each with a small raw object written to the local store and every fourth
with an attachment row and object), all received two days ago; the tenant's
retention is set to one day, so every one is due; then ``App.purge`` (what
``ingest purge`` and the worker's ``ingest.purge`` run) is timed. Rows, their
objects and the removal markers all go in that time.
"""

from __future__ import annotations

import hashlib
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from ingest_core.bootstrap import open_app

if TYPE_CHECKING:
    from pathlib import Path

    from ingest_core.settings import Settings

TENANT = "purge-bench"
ATTACHMENT_EVERY = 4
CHUNK = 2000  # rows per transaction
_MESSAGE_COLUMNS = (
    "id, org_id, source_message_id, message_id_header, sha256, size_bytes, raw_object_key,"
    " envelope_from, content_sha256, envelope_recipient, subject, from_header, received_at,"
    " client_address, client_helo, status, attempts, parser_version, processed_at"
)
_ATTACHMENT_COLUMNS = (
    "id, inbound_message_id, org_id, part_path, filename, content_type, disposition,"
    " size_bytes, sha256, object_key"
)


def _raw(index: int, tenant: str) -> bytes:
    return (
        f"From: Buyer {index} <buyer{index}@customer.example>\r\n"
        f"To: orders+{tenant}@orders.localhost\r\n"
        f"Subject: Purchase order PO-{index:07d}\r\n"
        f"Message-ID: <po-{index}@customer.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Please ship 3 x SKU-{index % 977:04d} to warehouse {index % 13}.\r\n"
    ).encode()


def seed(
    url: str,
    objects_root: Path,
    count: int,
    *,
    tenant: str = TENANT,
    age: timedelta = timedelta(days=2),
    attachment_bytes: int = 200,
) -> tuple[int, list[tuple[uuid.UUID, uuid.UUID | None]]]:
    """``count`` PROCESSED messages of ``tenant`` received ``age`` ago, every
    fourth with an attachment of about ``attachment_bytes``; their bytes and
    their ids (message, attachment or None)."""
    total = 0
    ids: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM organization WHERE slug = %s", (tenant,)).fetchone()
        assert row is not None
        org = row[0]
        folders: set[Path] = set()
        received = datetime.now(UTC) - age
        for start in range(0, count, CHUNK):
            total += _seed_chunk(
                conn, objects_root, org, tenant, range(start, min(count, start + CHUNK)),
                received, attachment_bytes, folders, ids,
            )  # fmt: skip
            conn.commit()
    return total, ids


def _seed_chunk(
    conn: psycopg.Connection[Any],
    objects_root: Path,
    org: uuid.UUID,
    tenant: str,
    indexes: range,
    received: datetime,
    attachment_bytes: int,
    folders: set[Path],
    ids: list[tuple[uuid.UUID, uuid.UUID | None]],
) -> int:
    """One transaction of rows (a trigger takes an advisory lock per object key,
    held to the commit, so one transaction of 100,000 rows runs out of locks)."""
    total = 0
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY inbound_message ({_MESSAGE_COLUMNS}) FROM STDIN") as copy,
    ):
        attachments: list[tuple[Any, ...]] = []
        for index in indexes:
            raw = _raw(index, tenant)
            digest = hashlib.sha256(raw).hexdigest()
            key = f"raw/{org}/{digest}.eml"
            _write(objects_root, key, raw, folders)
            message_id = uuid.uuid4()
            copy.write_row(
                (
                    message_id, org, f"po-{index}@customer.example",
                    f"<po-{index}@customer.example>", digest, len(raw), key,
                    f"buyer{index}@customer.example", digest,
                    f"orders+{tenant}@orders.localhost", f"Purchase order PO-{index:07d}",
                    f"Buyer {index} <buyer{index}@customer.example>", received,
                    "127.0.0.1", "mx.customer.example", "PROCESSED", 1, "1", received,
                )
            )  # fmt: skip
            total += len(raw)
            attachment_id = None
            if index % ATTACHMENT_EVERY == 0:
                line = f"%PDF-1.4 order {index}\n".encode()
                body = line * max(1, attachment_bytes // len(line))
                attachment_id = uuid.uuid4()
                sha = hashlib.sha256(body).hexdigest()
                akey = f"attachments/{org}/{sha}"
                _write(objects_root, akey, body, folders)
                attachments.append(
                    (attachment_id, message_id, org, "2", f"PO-{index:07d}.pdf",
                     "application/pdf", "attachment", len(body), sha, akey)
                )  # fmt: skip
                total += len(body)
            ids.append((message_id, attachment_id))
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY inbound_attachment ({_ATTACHMENT_COLUMNS}) FROM STDIN") as copy,
    ):
        for attachment in attachments:
            copy.write_row(attachment)
    return total


def _write(root: Path, key: str, data: bytes, folders: set[Path]) -> None:
    path = root / key
    if path.parent not in folders:
        path.parent.mkdir(parents=True, exist_ok=True)
        folders.add(path.parent)
    path.write_bytes(data)


def run_phase(settings: Settings, count: int) -> dict[str, Any]:
    """Seed ``count`` due messages, then time one purge of them."""
    with open_app(settings) as app:
        app.admin.add(TENANT, "Purge benchmark tenant")
        app.lifecycle.set_retention(TENANT, 1)
        started = time.monotonic()
        stored, _ = seed(settings.database_url, settings.objects_dir, count)
        seed_s = time.monotonic() - started
        print(f"  seeded {count} messages in {seed_s:.1f} s", file=sys.stderr)
        started = time.monotonic()
        report = app.purge(actor="benchmark")
        elapsed = time.monotonic() - started
        with psycopg.connect(settings.database_url) as conn:
            left = conn.execute(
                "SELECT count(*) FROM inbound_message m JOIN organization o ON o.id = m.org_id"
                " WHERE o.slug = %s",
                (TENANT,),
            ).fetchone()
    remaining = int(left[0]) if left else -1
    return {
        "messages": count,
        "stored_mb": round(stored / 1e6, 1),
        "seed_s": round(seed_s, 2),
        "purge_s": round(elapsed, 2),
        "removed": report.messages,
        "attachments_removed": report.attachments,
        "objects_removed": report.objects,
        "objects_failed": report.objects_failed,
        "left": remaining,
        "messages_per_s": round(report.messages / elapsed, 1) if elapsed > 0 else None,
        "objects_per_s": round(report.objects / elapsed, 1) if elapsed > 0 else None,
    }


def markdown(result: dict[str, Any]) -> str:
    """A small table of the purge phase."""
    return "\n".join(
        [
            "| purge | messages | objects | seconds | messages/s | objects/s | left |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| ingest purge | {result['removed']} | {result['objects_removed']}"
            f" | {result['purge_s']} | {result['messages_per_s']} | {result['objects_per_s']}"
            f" | {result['left']} |",
        ]
    )
