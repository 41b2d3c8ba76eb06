"""Hostile MIME through the worker's use case: ``extract_message`` against the
real Postgres repository and the local object store, with the default limits.

Each message ends FAILED (a limit, with the reason in ``last_error``) or
PROCESSED, the Python heap of the extraction stays within a stated multiple
of the message size (tracemalloc peak), and no object key — indeed no path in
the object folder — holds anything the sender wrote.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tracemalloc
import unicodedata
import uuid
from typing import TYPE_CHECKING

import pytest

from ingest_core.extraction import Outcome, extract_message
from ingest_core.model import MessageStatus
from ingest_core.ports import Envelope
from ingest_core.spool import Spool
from tests.hostile.conftest import ACME
from tests.server.rawclient import RawClient

if TYPE_CHECKING:
    from ingest_core.bootstrap import App
    from ingest_core.extraction import ExtractionResult
    from tests.hostile.conftest import ServeApp

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20
HEAP_PER_BYTE = 8  # the bound: extraction heap at most 8x the message size
KEY = re.compile(r"(raw/[0-9a-f-]{36}/[0-9a-f]{64}\.eml|attachments/[0-9a-f-]{36}/[0-9a-f]{64})")


def accept(app: App, raw: bytes) -> uuid.UUID:
    decision = app.service.check_recipient(ACME, False)
    envelope = Envelope(mail_from="b@example.org", recipients=(decision,))
    [outcome] = app.service.accept(envelope, Spool.from_bytes(raw))
    assert outcome.message_id is not None, outcome
    return outcome.message_id


def extract(app: App, message_id: uuid.UUID) -> tuple[ExtractionResult, int]:
    """Run the worker's use case; its result and the heap's peak during it."""
    tracemalloc.start()
    try:
        result = extract_message(
            message_id, repo=app.repository, store=app.store, config=app.extraction
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def status(app: App, message_id: uuid.UUID) -> tuple[MessageStatus, str | None]:
    [tenant] = [t for t in app.admin.list() if t.slug == "acme"]
    row = app.repository.get(tenant.id, message_id)
    assert row is not None
    return row.status, row.last_error


def assert_store_holds_only_our_keys(app: App) -> None:
    root = app.settings.objects_dir
    for path in root.rglob("*"):
        if path.is_file():
            assert KEY.fullmatch(path.relative_to(root).as_posix()), path


def multipart(parts: list[bytes], boundary: str = "b") -> bytes:
    head = (
        f"Message-ID: <{uuid.uuid4()}@x.example>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
    )
    delimiter = f"--{boundary}\r\n".encode()
    return head.encode() + b"".join(delimiter + p for p in parts) + f"--{boundary}--\r\n".encode()


def test_thousand_levels_of_nesting_fail_at_the_depth_limit(pg_app: App) -> None:
    raw = b"".join(
        b'Content-Type: multipart/mixed; boundary="l%d"\r\n\r\n--l%d\r\n' % (i, i)
        for i in range(1000)
    )
    message_id = accept(pg_app, b"Subject: deep\r\n" + raw)
    result, peak = extract(pg_app, message_id)
    assert result.outcome is Outcome.FAILED
    state, error = status(pg_app, message_id)
    assert state is MessageStatus.FAILED
    assert error is not None
    assert "nesting too deep" in error
    assert peak < 16 * MIB


def test_hundred_thousand_parts_fail_at_the_part_limit(pg_app: App) -> None:
    raw = multipart([b"Content-Type: text/plain\r\n\r\nx\r\n"] * 100_000)
    message_id = accept(pg_app, raw)
    result, peak = extract(pg_app, message_id)
    assert result.outcome is Outcome.FAILED
    state, error = status(pg_app, message_id)
    assert state is MessageStatus.FAILED
    assert error is not None
    assert "too many MIME parts" in error
    assert peak < len(raw) + 16 * MIB  # stopped at the limit, not after the whole tree


@pytest.mark.slow
def test_thirty_megabyte_base64_line_is_processed(pg_app: App) -> None:
    payload = hashlib.sha256(b"seed").digest() * (22 * MIB // 32)
    raw = multipart(
        [
            b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="big.pdf"\r\n\r\n'
            + base64.b64encode(payload)
            + b"\r\n"
        ]
    )
    assert len(raw) > 30_000_000
    message_id = accept(pg_app, raw)
    result, peak = extract(pg_app, message_id)
    assert result.outcome is Outcome.PROCESSED
    [attachment] = result.attachments
    assert attachment.size_bytes == len(payload)
    assert attachment.sha256 == hashlib.sha256(payload).hexdigest()
    # The stdlib parser holds the encoded line a few times over (about 5.4x was
    # measured); the decoded bytes go to disk in slices.
    assert peak < HEAP_PER_BYTE * len(raw)
    assert_store_holds_only_our_keys(pg_app)


def soft_break_flood(lines: int) -> bytes:
    body = b"=\r\n" * lines + b"A=3DB" + b"=\n" * 1000 + b"=41=\r\n=42\r\n"
    return multipart(
        [
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
        ]
    )


def test_quoted_printable_soft_break_abuse_is_processed(pg_app: App) -> None:
    message_id = accept(pg_app, soft_break_flood(200_000))
    result, _ = extract(pg_app, message_id)
    assert result.outcome is Outcome.PROCESSED
    [attachment] = result.attachments
    assert attachment.sha256 == hashlib.sha256(b"A=BAB").hexdigest()


HEAP_PER_LINE = 100  # the parser's cost of one held body line, generously


def test_short_line_flood_is_cut_off_by_the_line_limit(pg_app: App) -> None:
    """The stdlib parser keeps each body line as its own string (about 60 bytes
    a line), so a flood of 3-byte lines costs about 20x its size. The line limit
    stops the parse while feeding: the heap stays within limit x line cost."""
    limit = 200_000
    app = pg_app
    app.settings = app.settings.with_(extract_max_lines=limit)
    raw = soft_break_flood(limit * 5)  # 3 MB of soft line breaks
    message_id = accept(app, raw)
    result, peak = extract(app, message_id)
    assert result.outcome is Outcome.FAILED
    assert status(app, message_id) == (
        MessageStatus.FAILED,
        f"ManifestLimitExceeded: too many lines: more than {limit}",
    )
    assert peak < HEAP_PER_LINE * limit + HEAP_PER_BYTE * 65536


HOSTILE_FILENAMES = [
    b'filename="../../../etc/passwd"',
    b'filename="..\\\\..\\\\windows\\\\system32\\\\evil.dll"',
    b'filename="a\x00b.pdf"',
    b"filename*=utf-8''invoice%E2%80%AEfdp.exe",
    b"filename*=utf-8''%00%0D%0AX-Injected%3A%201.pdf",
    b'filename="' + b"A" * 1000 + b'.pdf"',
    b'filename="/abs/path.pdf"',
    b'filename=".hidden"',
    b'filename="=?utf-8?b?Li4vLi4vZXRjL3NoYWRvdw==?="',  # "../../etc/shadow"
]


def test_hostile_filenames_are_display_only(pg_app: App) -> None:
    parts = [
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment; "
        + name
        + b"\r\n\r\n"
        + f"attachment {n}\r\n".encode()
        for n, name in enumerate(HOSTILE_FILENAMES)
    ]
    message_id = accept(pg_app, multipart(parts))
    result, _ = extract(pg_app, message_id)
    assert result.outcome is Outcome.PROCESSED
    assert len(result.attachments) == len(HOSTILE_FILENAMES)
    [tenant] = [t for t in pg_app.admin.list() if t.slug == "acme"]
    for attachment in pg_app.repository.list_attachments(tenant.id, message_id):
        assert KEY.fullmatch(attachment.object_key)
        name = attachment.filename
        if name is None:
            continue
        assert len(name) <= 255
        assert not name.startswith(".")
        assert not set(name) & {"/", "\\", "\x00", "\r", "\n"}
        assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in name), name
    assert_store_holds_only_our_keys(pg_app)


async def test_ten_megabyte_header_block_over_lmtp(pg_app: App, serve_app: ServeApp) -> None:
    """Straight over LMTP: accepted (it is under the size limit), recorded with
    bounded header fields, then processed or failed by the worker in bounded memory."""
    filler = b"X-Filler: " + b"f" * 88 + b"\r\n"
    folded = b"Subject: " + b"s" * 70 + (b"\r\n " + b"s" * 70) * 20_000 + b"\r\n"
    head = b"Message-ID: <huge-head@x.example>\r\n" + folded + filler * 95_000
    raw = head + b"\r\nbody\r\n"
    assert len(raw) > 10 * MIB
    client = await RawClient.connect(await serve_app(pg_app))
    await client.hello()
    await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]
    await client.send(raw + b".\r\n")
    code, lines = await client.reply()
    assert code == 250, lines
    message_id = uuid.UUID(lines[0].split()[2].decode())
    shown = pg_app.operator.show_message(message_id)
    assert shown is not None
    assert shown["size_bytes"] == len(raw)
    assert shown["subject"] is None or len(shown["subject"]) <= 998
    result, peak = extract(pg_app, message_id)
    assert result.outcome in (Outcome.PROCESSED, Outcome.FAILED)
    assert status(pg_app, message_id)[0] in (MessageStatus.PROCESSED, MessageStatus.FAILED)
    assert peak < HEAP_PER_BYTE * len(raw)
    assert_store_holds_only_our_keys(pg_app)
