"""The extraction worker over real Postgres, the local object store and SQLite huey."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from huey import MemoryHuey

from ingest_core.bootstrap import App, open_app, sweep_config
from ingest_core.extraction import Outcome, extract_message
from ingest_core.model import MessageStatus
from ingest_core.operations import sweep
from ingest_core.ports import Envelope
from ingest_core.settings import Settings
from ingest_core.spool import Spool
from ingest_core.worker.tasks import register

DOMAIN = "orders.example.com"


def order_with_attachments() -> bytes:
    message = EmailMessage()
    message["From"] = "buyer@example.org"
    message["Subject"] = "PO with files"
    message["Message-ID"] = f"<{uuid.uuid4()}@buyer.example>"
    message.set_content("See attached.\n")
    message.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="po.pdf"
    )
    message.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="lines.csv")
    return message.as_bytes().replace(b"\n", b"\r\n")


@pytest.fixture
def app(data_dir: Path, pg_url: str) -> Iterator[App]:
    settings = Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,))
    with open_app(settings) as app:
        app.admin.add("acme", "Acme")
        yield app


def accept(app: App, data: bytes) -> uuid.UUID:
    decision = app.service.check_recipient(f"orders+acme@{DOMAIN}", False)
    [outcome] = app.service.accept(
        Envelope(mail_from="buyer@example.org", recipients=(decision,)), Spool.from_bytes(data)
    )
    assert outcome.message_id is not None
    return outcome.message_id


def run_queued(app: App) -> list[str]:
    results = []
    while (task := app.huey.dequeue()) is not None:
        results.append(app.huey.execute(task))
    return results


def status(app: App, message_id: uuid.UUID) -> MessageStatus:
    detail = app.operator.show_message(message_id)
    assert detail is not None
    return MessageStatus(detail["status"])


def test_queued_job_processes_the_message_and_stores_attachments(app: App) -> None:
    message_id = accept(app, order_with_attachments())
    assert run_queued(app) == ["processed"]
    assert status(app, message_id) is MessageStatus.PROCESSED
    detail = app.operator.show_message(message_id)
    assert detail is not None
    names = sorted(a["filename"] for a in detail["attachments"])
    assert names == ["lines.csv", "po.pdf"]
    for attachment in detail["attachments"]:
        assert attachment["object_key"] == f"attachments/{detail['org_id']}/{attachment['sha256']}"
        assert app.store.exists(attachment["object_key"])


def test_replay_reprocesses_without_duplicate_attachment_rows(app: App) -> None:
    message_id = accept(app, order_with_attachments())
    run_queued(app)
    before = app.operator.show_message(message_id)
    assert app.replay([message_id]) == [message_id]
    assert status(app, message_id) is MessageStatus.RECEIVED
    assert run_queued(app) == ["processed"]
    after = app.operator.show_message(message_id)
    assert before is not None
    assert after is not None
    assert [a["part_path"] for a in after["attachments"]] == [
        a["part_path"] for a in before["attachments"]
    ]


def test_two_concurrent_workers_process_a_message_once(app: App) -> None:
    message_id = accept(app, order_with_attachments())
    outcomes: list[Outcome] = []
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        result = extract_message(
            message_id, repo=app.repository, store=app.store, config=app.extraction
        )
        outcomes.append(result.outcome)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == sorted([Outcome.PROCESSED, Outcome.SKIPPED])
    detail = app.operator.show_message(message_id)
    assert detail is not None
    assert detail["attempts"] == 1


def test_a_dead_workers_claim_is_swept_and_finished_once(app: App) -> None:
    message_id = accept(app, order_with_attachments())
    taken = app.huey.dequeue()  # the job the dead worker had taken
    assert taken is not None
    claimed = app.repository.claim(message_id, app.settings.claim_lease_s)
    assert claimed is not None  # ...and then the worker died before finishing
    now = datetime.now(UTC)
    assert (
        sweep(app.repository, app.queue, sweep_config(app.settings), now=now) == []
    )  # lease not expired
    later = now + timedelta(seconds=app.settings.claim_lease_s + 1)
    assert sweep(app.repository, app.queue, sweep_config(app.settings), now=later) == [message_id]
    # the lease is judged by the database clock: age the claim instead of waiting
    with app.pool.connection() as conn:
        conn.execute(
            "UPDATE inbound_message SET claimed_at = now() - interval '1 day' WHERE id = %s",
            (message_id,),
        )
    assert run_queued(app) == ["processed"]
    detail = app.operator.show_message(message_id)
    assert detail is not None
    assert detail["status"] == MessageStatus.PROCESSED
    assert detail["attempts"] == 2
    assert len(detail["attachments"]) == 2


def test_task_identifiers_are_stable() -> None:
    huey = MemoryHuey("names")
    register(huey, deps=None)  # type: ignore[arg-type]  # names only; no task runs
    assert set(huey._registry._registry) == {
        "ingest.extract",
        "ingest.sweep",
        "ingest.clean_temp_files",
        "ingest.purge",
    }
