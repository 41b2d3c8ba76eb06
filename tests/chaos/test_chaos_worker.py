"""A worker killed in the middle of an extraction.

huey has already taken the job off the queue, so nothing but the sweeper can
bring the message back: once the claim's lease (INGEST_CLAIM_LEASE_S) has run
out, `ingest sweep` enqueues it again. Sweeping twice enqueues it twice; the
second job must find nothing to do. The message ends PROCESSED once, with each
attachment recorded once and stored with its exact bytes, and one
``message.processed`` event that the worker's dispatcher delivers to a live
endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from ingest_core.bootstrap import App, open_app
from ingest_core.extraction import Outcome, extract_message
from ingest_core.ports import Envelope
from ingest_core.settings import Settings
from ingest_core.spool import Spool
from tests.chaos.audit import ScenarioResult, processed_events
from tests.chaos.load import RECIPIENT
from tests.events.receiver import Receiver
from tests.procs import DOMAIN, IngestWorker, ingest_env, run_ingest, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.chaos.audit import RecordScenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]

LEASE_S = 1.0


def order_with_attachments(count: int, size: int) -> tuple[bytes, dict[str, str]]:
    """A multipart order and the sha256 of each attachment, by IMAP part path."""
    rnd = random.Random(count * size)
    parts = [
        f"Message-ID: <big-{uuid.uuid4().hex}@buyer.example>\r\nSubject: big order\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nsee the attached documents\r\n".encode()
    ]
    expected: dict[str, str] = {}
    for number in range(2, count + 2):
        data = rnd.randbytes(size)
        expected[str(number)] = hashlib.sha256(data).hexdigest()
        parts.append(
            b"--BB\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            + f'Content-Disposition: attachment; filename="po-{number}.pdf"\r\n\r\n'.encode()
            + base64.encodebytes(data).replace(b"\n", b"\r\n")
        )
    parts.append(b"--BB--\r\n")
    return b"".join(parts), expected


def accept(app: App, raw: bytes) -> uuid.UUID:
    """The durable accept, as the LMTP server runs it: object, row, job."""
    decision = app.service.check_recipient(RECIPIENT, False)
    assert decision.accepted
    envelope = Envelope(mail_from="buyer@buyer.example", recipients=(decision,))
    [outcome] = app.service.accept(envelope, Spool.from_bytes(raw))
    assert outcome.reply.code == 250
    assert outcome.message_id is not None
    return outcome.message_id


def state(conn: psycopg.Connection, message_id: uuid.UUID) -> tuple[str, int, int]:
    row = conn.execute(
        "SELECT status, attempts, (SELECT count(*) FROM inbound_attachment"
        " WHERE inbound_message_id = m.id) FROM inbound_message m WHERE id = %s",
        (message_id,),
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


@pytest.fixture
def app(data_dir: Path, acme_db: str) -> Iterator[App]:
    settings = Settings(
        data_dir=data_dir,
        database_url=acme_db,
        domains=(DOMAIN,),
        claim_lease_s=LEASE_S,
        webhook_allow_private=True,
    )
    with open_app(settings.with_(log_format="console")) as app:
        yield app


def kill_mid_extraction(
    worker: IngestWorker, conn: psycopg.Connection, app: App, size: int
) -> tuple[uuid.UUID, dict[str, str]] | None:
    """Accept a large order, let the worker claim it, SIGKILL the worker while the
    row is PROCESSING. None if the extraction finished before the kill landed."""
    raw, expected = order_with_attachments(24, size)
    message_id = accept(app, raw)
    worker.start()
    wait_for(
        lambda: worker.check_alive("ingest worker") and state(conn, message_id)[0] != "RECEIVED",
        "the worker to claim the message",
    )
    worker.kill9()
    status, attempts, attachments = state(conn, message_id)
    if status == "PROCESSED":
        return None
    assert (status, attempts, attachments) == ("PROCESSING", 1, 0)
    return message_id, expected


def test_worker_killed_mid_extraction_ends_processed_once(
    app: App, acme_db: str, data_dir: Path, record_scenario: RecordScenario
) -> None:
    env = ingest_env(
        data_dir, acme_db, INGEST_CLAIM_LEASE_S=str(LEASE_S), INGEST_WEBHOOK_ALLOW_PRIVATE="true"
    )
    worker = IngestWorker(env, data_dir / "worker.log")
    receiver = Receiver()
    _, secret = app.endpoints().add("acme", receiver.url, ["message.processed"])
    with psycopg.connect(acme_db, autocommit=True) as conn:
        killed = None
        for size in (1_000_000, 2_000_000, 3_000_000):  # larger if the kill came too late
            killed = kill_mid_extraction(worker, conn, app, size)
            if killed is not None:
                break
        assert killed is not None, "every extraction finished before the kill"
        message_id, expected = killed
        assert jobs_for(app, message_id) == 0  # the job died with the worker

        wait_for(lambda: message_id in stale_ids(app), "the claim's lease to run out")
        for _ in range(2):
            done = run_ingest(env, "sweep")
            assert done.returncode == 0, done.stderr
        assert jobs_for(app, message_id) == 2

        worker.start()
        try:
            wait_for(
                lambda: not jobs_for(app, message_id) and state(conn, message_id)[0] == "PROCESSED",
                "the worker to finish the reclaimed message",
            )
            wait_for(lambda: receiver.requests, "the dispatcher to deliver message.processed")
        finally:
            worker.stop()
            receiver.close()
        assert state(conn, message_id) == ("PROCESSED", 2, len(expected))
    row = app.repository.get(app.admin.list()[0].id, message_id)
    assert row is not None
    stored = app.repository.list_attachments(row.org_id, message_id)
    assert {a.part_path: a.sha256 for a in stored} == expected
    for attachment in stored:
        with app.store.open(attachment.object_key) as source:
            assert hashlib.sha256(source.read()).hexdigest() == attachment.sha256
    duplicates = len(stored) - len({a.part_path for a in stored})
    assert processed_events(acme_db) == {str(message_id): 1}
    [request] = receiver.requests
    event = Webhook(secret).verify(request.body, request.headers)
    assert (event["type"], event["data"]["message_id"]) == ("message.processed", str(message_id))
    record_scenario(
        ScenarioResult(
            "worker kill -9 mid-extraction",
            sent=1,
            acknowledged=1,
            stored=1,
            lost=0,
            duplicates=duplicates,
            note=f"reclaimed after the lease, swept twice: PROCESSED with attempts=2 and"
            f" {len(stored)} attachment rows, one per part",
        )
    )


def jobs_for(app: App, message_id: uuid.UUID) -> int:
    """Queued extraction jobs for one message (the periodic sweep may be queued too)."""
    return sum(1 for task in app.huey.pending() if task.args == (str(message_id),))


def stale_ids(app: App) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    return app.repository.stale(
        received_before=now - timedelta(hours=1), claimed_before=now - timedelta(seconds=LEASE_S)
    )


def test_claim_of_a_dead_worker_is_reclaimed_after_its_lease(app: App) -> None:
    """The same, in-process and without a race: a claim nobody finishes."""
    raw, expected = order_with_attachments(3, 20_000)
    message_id = accept(app, raw)
    assert app.repository.claim(message_id, LEASE_S) is not None  # the worker that died
    config = app.extraction
    skipped = extract_message(message_id, repo=app.repository, store=app.store, config=config)
    assert skipped.outcome is Outcome.SKIPPED  # the lease still holds
    wait_for(lambda: message_id in stale_ids(app), "the claim's lease to run out")
    results = [
        extract_message(message_id, repo=app.repository, store=app.store, config=config)
        for _ in range(2)
    ]
    assert [r.outcome for r in results] == [Outcome.PROCESSED, Outcome.SKIPPED]
    assert results[0].attempts == 2
    org_id = results[0].org_id
    assert org_id is not None
    stored = app.repository.list_attachments(org_id, message_id)
    assert {a.part_path: a.sha256 for a in stored} == expected
