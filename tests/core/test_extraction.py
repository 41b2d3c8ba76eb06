"""The extraction use case against the in-memory fakes."""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ingest_core import extraction
from ingest_core.adapters.memory import MemoryBlobStore, MemoryJobQueue
from ingest_core.bootstrap import extraction_config, sweep_config
from ingest_core.errors import StoreUnavailable
from ingest_core.extraction import (
    PARSER_VERSION,
    Outcome,
    RetryLater,
    extract_message,
    retry_delay,
)
from ingest_core.model import MessageStatus, NewMessage
from ingest_core.operations import sweep

PDF = b"%PDF-1.4 order 1234 " + bytes(range(256))
CSV = b"sku;qty\nA-1;5\n"
SECRET_BODY = "The secret price is 4711 per unit"


def _raw_message(pdf: bytes = PDF) -> bytes:
    return (
        "From: buyer@customer.example\nMessage-ID: <x@customer.example>\nSubject: PO\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\n{SECRET_BODY}\n"
        "--b\nContent-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="../po.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{base64.encodebytes(pdf).decode()}"
        "--b\nContent-Type: text/csv\nContent-Disposition: attachment; filename=lines.csv\n\n"
        f"{CSV.decode()}\n--b--\n"
    ).encode()


def _received(repo, store, raw: bytes | None = None, *, age_s: float = 0.0, org_id=None):
    raw = _raw_message() if raw is None else raw
    org_id = org_id or uuid.uuid4()
    sha = hashlib.sha256(raw).hexdigest()
    key = f"raw/{org_id}/{sha}.eml"
    store.objects[key] = raw
    recorded = repo.record_received(
        NewMessage(
            org_id=org_id,
            source_message_id=f"x-{uuid.uuid4()}@customer.example",
            message_id_header="<x@customer.example>",
            sha256=sha,
            content_sha256=sha,
            size_bytes=len(raw),
            raw_object_key=key,
            envelope_from="buyer@customer.example",
            envelope_recipient="orders+acme@orders.example.com",
            subject="PO",
            from_header="buyer@customer.example",
            received_at=datetime.now(UTC) - timedelta(seconds=age_s),
        )
    )
    return recorded.id, org_id


def test_received_becomes_processed_with_content_addressed_attachments(repo, store, settings):
    message_id, org_id = _received(repo, store)
    result = extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    assert result.outcome is Outcome.PROCESSED
    row = repo.get(org_id, message_id)
    assert row.status is MessageStatus.PROCESSED
    assert row.parser_version == PARSER_VERSION
    stored = repo.list_attachments(org_id, message_id)
    assert [(a.part_path, a.filename, a.content_type) for a in stored] == [
        ("2", "po.pdf", "application/pdf"),
        ("3", "lines.csv", "text/csv"),
    ]
    for attachment, data in zip(stored, (PDF, CSV), strict=True):
        digest = hashlib.sha256(data).hexdigest()
        assert attachment.sha256 == digest
        assert attachment.size_bytes == len(data)
        assert attachment.object_key == f"attachments/{org_id}/{digest}"
        assert store.objects[attachment.object_key] == data
    assert list(result.attachments) == stored
    body = repo.bodies[message_id]  # written by the same finish as the manifest
    assert body.text == SECRET_BODY
    assert body.html is None


def test_temporary_files_are_removed(repo, store, settings, tmp_path):
    message_id, _ = _received(repo, store)
    extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    assert list(tmp_path.iterdir()) == []


def test_rerun_after_replay_is_idempotent(repo, store, settings):
    message_id, org_id = _received(repo, store)
    extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    first = repo.list_attachments(org_id, message_id)
    objects = dict(store.objects)
    assert repo.reset_for_replay(message_id)
    again = extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    assert again.outcome is Outcome.PROCESSED
    assert repo.list_attachments(org_id, message_id) == first
    assert store.objects == objects


def test_same_attachment_twice_is_stored_once(repo, store, settings):
    raw = _raw_message().replace(CSV, b"other;lines\n")  # another message, same PDF
    a, org_id = _received(repo, store)
    b, _ = _received(repo, store, raw, org_id=org_id)
    puts = []
    original = store.put_file
    store.put_file = lambda key, source, size: (puts.append(key), original(key, source, size))
    for message_id in (a, b):
        extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    pdf_keys = [k for k in puts if k.endswith(hashlib.sha256(PDF).hexdigest())]
    assert len(pdf_keys) == 1
    assert len(puts) == 3  # the PDF once, each message's own CSV


def test_a_claimed_message_is_not_processed_twice(repo, store, settings):
    message_id, org_id = _received(repo, store)
    assert repo.claim(message_id, settings.claim_lease_s) is not None  # another worker
    result = extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    assert result.outcome is Outcome.SKIPPED
    assert repo.list_attachments(org_id, message_id) == []
    assert not any(k.startswith("attachments/") for k in store.objects)


def test_a_processed_message_is_skipped(repo, store, settings):
    message_id, _ = _received(repo, store)
    extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    again = extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    assert again.outcome is Outcome.SKIPPED


def test_store_outage_retries_then_fails(repo, store, settings):
    message_id, org_id = _received(repo, store)
    store.failing = True
    for attempt in (1, 2):
        with pytest.raises(RetryLater) as caught:
            extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
        assert caught.value.attempts == attempt
        assert caught.value.delay_s == retry_delay(attempt)
        row = repo.get(org_id, message_id)
        assert row.status is MessageStatus.RECEIVED
        assert row.attempts == attempt
        assert "StoreUnavailable" in row.last_error
    result = extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    assert result.outcome is Outcome.FAILED
    row = repo.get(org_id, message_id)
    assert row.status is MessageStatus.FAILED
    assert row.attempts == settings.extract_retries


def test_store_recovers_between_attempts(repo, store, settings):
    message_id, org_id = _received(repo, store)

    class FlakyPut(MemoryBlobStore):
        calls = 0

        def put_file(self, key, source, size):
            FlakyPut.calls += 1
            if FlakyPut.calls == 1:
                raise StoreUnavailable("object store timed out")
            super().put_file(key, source, size)

    flaky = FlakyPut()
    flaky.objects = store.objects
    with pytest.raises(RetryLater):
        extract_message(message_id, repo=repo, store=flaky, config=extraction_config(settings))
    result = extract_message(message_id, repo=repo, store=flaky, config=extraction_config(settings))
    assert result.outcome is Outcome.PROCESSED
    assert result.attempts == 2
    assert len(repo.list_attachments(org_id, message_id)) == 2


def test_limit_exceeded_fails_at_once(repo, store, settings):
    many = b'Content-Type: multipart/mixed; boundary="b"\n\n' + b"--b\n\nx\n" * 50 + b"--b--\n"
    message_id, org_id = _received(repo, store, many)
    result = extract_message(
        message_id,
        repo=repo,
        store=store,
        config=extraction_config(settings.with_(extract_max_parts=10)),
    )
    assert result.outcome is Outcome.FAILED
    row = repo.get(org_id, message_id)
    assert row.status is MessageStatus.FAILED
    assert row.attempts == 1
    assert "too many MIME parts: more than 10" in row.last_error


def test_missing_raw_object_fails_at_once(repo, store, settings):
    message_id, org_id = _received(repo, store)
    store.objects.clear()
    result = extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    assert result.outcome is Outcome.FAILED
    assert repo.get(org_id, message_id).last_error.startswith("ObjectNotFound")


def test_database_outage_leaves_the_row_for_the_sweeper(repo, store, settings):
    message_id, org_id = _received(repo, store)
    original_finish = repo.finish

    def finish_then_outage(*args, **kwargs):
        repo.failing = True
        original_finish(*args, **kwargs)

    repo.finish = finish_then_outage
    with pytest.raises(RetryLater):
        extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    repo.failing = False
    assert repo.get(org_id, message_id).status is MessageStatus.PROCESSING
    later = datetime.now(UTC) + timedelta(seconds=settings.claim_lease_s + 1)
    assert sweep(repo, MemoryJobQueue(), sweep_config(settings), later) == [message_id]


def test_claim_failure_asks_for_a_retry(repo, store, settings):
    message_id, _ = _received(repo, store)
    repo.failing = True
    with pytest.raises(RetryLater):
        extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))


def test_a_row_reclaimed_too_often_is_given_up(repo, store, settings):
    message_id, org_id = _received(repo, store)
    for _ in range(settings.extract_retries):  # workers that died mid-way
        repo.claim(message_id, 0.0)
    result = extract_message(
        message_id,
        repo=repo,
        store=store,
        config=extraction_config(settings.with_(claim_lease_s=0.0)),
    )
    assert result.outcome is Outcome.FAILED
    assert "gave up" in repo.get(org_id, message_id).last_error


def test_sweep_requeues_only_stale_rows(repo, store, settings):
    old, _ = _received(repo, store, age_s=settings.sweep_age_s + 60)
    fresh, _ = _received(repo, store)
    stuck, _ = _received(repo, store)
    repo.claim(stuck, settings.claim_lease_s)
    queue = MemoryJobQueue()
    assert sweep(repo, queue, sweep_config(settings)) == [old]
    assert queue.jobs == [old]
    later = datetime.now(UTC) + timedelta(seconds=settings.claim_lease_s + 1)
    assert set(sweep(repo, queue, sweep_config(settings), later)) == {old, fresh, stuck}


def test_a_row_waiting_for_its_retry_is_not_swept_early(repo, store, settings):
    """The sweep would otherwise run the retries at its own pace and spend the
    retry budget in minutes, whatever retry_delay says."""
    message_id, _ = _received(repo, store, age_s=settings.sweep_age_s + 60)
    store.failing = True
    with pytest.raises(RetryLater) as caught:
        extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    queue = MemoryJobQueue()
    assert sweep(repo, queue, sweep_config(settings)) == []
    due = datetime.now(UTC) + timedelta(seconds=caught.value.delay_s)
    later = due + timedelta(seconds=settings.sweep_age_s + 1)
    assert sweep(repo, queue, sweep_config(settings), later) == [message_id]


def test_retry_delay_grows_and_is_capped():
    delays = [retry_delay(n) for n in range(1, 20)]
    assert delays == sorted(delays)
    assert delays[1] == 2 * delays[0]
    assert max(delays) == extraction.RETRY_CAP_S


def test_one_log_line_and_one_span_without_the_body(repo, store, settings, caplog, monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(extraction, "tracer", provider.get_tracer("test"))
    message_id, org_id = _received(repo, store)
    with caplog.at_level(logging.INFO, logger="ingest.extraction"):
        extract_message(message_id, repo=repo, store=store, config=extraction_config(settings))
    (record,) = [r for r in caplog.records if r.name == "ingest.extraction"]
    assert record.message_id == str(message_id)
    assert record.org_id == str(org_id)
    assert record.attachments == 2
    assert record.outcome == "processed"
    assert record.duration_ms >= 0
    assert SECRET_BODY not in repr(vars(record))
    (span,) = exporter.get_finished_spans()
    assert span.name == "extract"
    assert span.attributes["ingest.message_id"] == str(message_id)
    assert span.attributes["ingest.attachments"] == 2
    assert span.attributes["ingest.outcome"] == "processed"
