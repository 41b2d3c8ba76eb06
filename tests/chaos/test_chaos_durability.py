"""Power loss cannot be simulated here, so durability is shown by inspection:

* the local object store fsyncs the object file and its folder (and every
  folder it had to create) before the LMTP reply is sent: the syncs are
  recorded through the store's ``_fsync`` seam and ordered against the reply;
* the embedded Postgres the defaults start runs with ``fsync``,
  ``synchronous_commit`` and ``full_page_writes`` on, as seen by the pool's own
  connections (so no session option turns them off);
* the SQLite queue runs in WAL mode with ``synchronous=NORMAL``: an enqueue is
  not synced, because the job is not what keeps a message (its committed
  RECEIVED row is; the sweeper re-enqueues a row whose job was lost).
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.objects import local as local_objects
from ingest_core.adapters.postgres.embedded import release_embedded
from ingest_core.bootstrap import open_app
from ingest_core.settings import Settings
from lmtpd.cli.serve import server_config
from lmtpd.server import LmtpServer
from tests.chaos.audit import ScenarioResult, audit, fetch_rows, local_reader
from tests.chaos.load import RECIPIENT, Attempt, Delivery, dot_stuff, make_message
from tests.procs import DOMAIN
from tests.server.rawclient import RawClient

if TYPE_CHECKING:
    from pathlib import Path

    import trio

    from tests.chaos.audit import RecordScenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]


class SyncLog:
    """Stands in for os.fsync and records each sync in one ordered event list."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, bool]] = []

    def __call__(self, fd: int) -> None:
        info = os.fstat(fd)
        os.fsync(fd)
        self.events.append(("fsync", info.st_ino, stat.S_ISDIR(info.st_mode)))

    def reply(self, code: int) -> None:
        self.events.append(("reply", code, False))

    def index(self, path: Path) -> int:
        entry = ("fsync", path.stat().st_ino, path.is_dir())
        return self.events.index(entry)


async def deliver(address: str, delivery: Delivery, log: SyncLog) -> int:
    data = delivery.data
    client = await RawClient.connect(address)
    await client.hello()
    await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]
    await client.send(dot_stuff(data) + b".\r\n")
    code, lines = await client.reply()
    log.reply(code)
    await client.aclose()
    delivery.attempts.append(Attempt(0.0, 0.0, code, lines[-1][4:].decode()))
    return code


async def test_object_and_folders_are_synced_before_the_reply(
    nursery: trio.Nursery,
    data_dir: Path,
    acme_db: str,
    monkeypatch: pytest.MonkeyPatch,
    record_scenario: RecordScenario,
) -> None:
    log = SyncLog()
    monkeypatch.setattr(local_objects, "_fsync", log)
    settings = Settings(data_dir=data_dir, database_url=acme_db, domains=(DOMAIN,))
    with open_app(settings.with_(log_format="console")) as app:
        server = LmtpServer(app.service, server_config(app.settings))
        address = await nursery.start(server.serve, "127.0.0.1:0")
        [tenant] = app.admin.list()
        root = data_dir / "objects"

        deliveries = [Delivery(n, *make_message("durable", n, 5000)) for n in (1, 2)]
        first, second = (d.data for d in deliveries)
        assert await deliver(address, deliveries[0], log) == 250
        path = root / "raw" / str(tenant.id) / f"{hashlib.sha256(first).hexdigest()}.eml"
        assert path.read_bytes() == first
        reply_at = log.events.index(("reply", 250, False))
        new_folders = (path.parent, root / "raw", root, data_dir)
        for synced in (path, *new_folders):
            assert log.index(synced) < reply_at, synced
        assert reply_at == 5  # the file, its folder, the two new folders' parents

        log.events.clear()
        assert await deliver(address, deliveries[1], log) == 250
        path = path.with_name(f"{hashlib.sha256(second).hexdigest()}.eml")
        assert log.events == [
            ("fsync", path.stat().st_ino, False),
            ("fsync", path.parent.stat().st_ino, True),
            ("reply", 250, False),
        ]
        server.shutdown()
    result = audit(deliveries, fetch_rows(acme_db), local_reader(root))
    assert result.clean, result.explain()
    note = "file and folder synced before each 250: 5 syncs, then 2 per new object"
    record_scenario(ScenarioResult.of("durability: fsync before reply", result, note))


def test_embedded_postgres_is_durable_and_the_queue_needs_not_be(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, domains=(DOMAIN,), log_format="console")
    assert settings.embedded_database
    try:
        with open_app(settings) as app, app.pool.connection() as conn:
            shown = {
                name: conn.execute(f"SHOW {name}").fetchone()
                for name in ("fsync", "synchronous_commit", "full_page_writes")
            }
            queue = app.huey.storage.conn.execute("PRAGMA synchronous").fetchone()[0]
            journal = app.huey.storage.conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        release_embedded()
    assert shown == {"fsync": ("on",), "synchronous_commit": ("on",), "full_page_writes": ("on",)}
    assert (queue, journal) == (1, "wal")  # NORMAL: no sync per enqueue, none needed
