"""The accept path's span tree: lmtp.transaction → accept → blob.put, db.insert, enqueue."""

from __future__ import annotations

import pytest
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.server.conftest import DOMAIN
from tests.server.rawclient import RawClient

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The global provider can be set once per process; later tests share it."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    return _EXPORTER


async def test_accept_span_tree(start_server, spans: InMemorySpanExporter) -> None:
    h = await start_server()
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(
        f"MAIL FROM:<b@example.org>\r\nRCPT TO:<orders+acme@{DOMAIN}>\r\nDATA\r\n".encode()
    )
    assert await client.codes(3) == [250, 250, 354]
    await client.send(b"Subject: traced\r\n\r\nbody\r\n.\r\n")
    assert await client.code() == 250

    # the job is enqueued after the reply (the row is durable already)
    with trio.fail_after(10):
        while not any(s.name == "enqueue" for s in spans.get_finished_spans()):  # noqa: ASYNC110
            await trio.sleep(0.01)
    finished = {span.name: span for span in spans.get_finished_spans()}
    assert {"lmtp.transaction", "accept", "blob.put", "db.insert", "enqueue"} <= set(finished)
    root = finished["lmtp.transaction"]
    accept = finished["accept"]
    assert root.parent is None
    assert accept.parent is not None
    assert accept.parent.span_id == root.context.span_id
    for child in ("blob.put", "db.insert", "enqueue"):
        parent = finished[child].parent
        assert parent is not None
        assert parent.span_id == accept.context.span_id
    assert {s.context.trace_id for s in finished.values()} == {root.context.trace_id}


def test_extraction_span_links_to_the_accept_span(
    spans: InMemorySpanExporter, data_dir, pg_url: str
) -> None:
    from ingest_core.bootstrap import open_app
    from ingest_core.ports import Envelope
    from ingest_core.settings import Settings
    from ingest_core.spool import Spool

    settings = Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,))
    with open_app(settings) as app:
        app.admin.add("acme", "Acme")
        decision = app.service.check_recipient(f"orders+acme@{DOMAIN}", False)
        [outcome] = app.service.accept(
            Envelope(mail_from="buyer@customer.example", recipients=(decision,)),
            Spool.from_bytes(b"Subject: traced\r\n\r\nbody\r\n"),
        )
        assert outcome.reply.code == 250
        task = app.huey.dequeue()
        assert task is not None
        assert task.kwargs.get("traceparent")
        assert app.huey.execute(task) == "processed"

    finished = {span.name: span for span in spans.get_finished_spans()}
    accept, enqueue, extract = finished["accept"], finished["enqueue"], finished["extract"]
    # The job carries the context of the enqueue step, a child of the accept span.
    assert [link.context.span_id for link in extract.links] == [enqueue.context.span_id]
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == accept.context.span_id
    assert extract.context.trace_id != accept.context.trace_id  # its own trace, linked


def test_jobs_of_a_batch_carry_their_own_enqueue_spans(
    spans: InMemorySpanExporter, data_dir, pg_url: str
) -> None:
    """A batch's jobs go to the queue in one write; each keeps an ``enqueue``
    span under its own message's ``accept`` span, and its job names that span."""
    from ingest_core.bootstrap import open_app
    from ingest_core.ports import Delivery, Envelope
    from ingest_core.settings import Settings
    from ingest_core.spool import Spool

    settings = Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,))
    with open_app(settings) as app:
        app.admin.add("acme", "Acme")
        decision = app.service.check_recipient(f"orders+acme@{DOMAIN}", False)
        envelope = Envelope(mail_from="buyer@customer.example", recipients=(decision,))
        deliveries = [
            Delivery(envelope, Spool.from_bytes(f"Subject: n{n}\r\n\r\nbody {n}\r\n".encode()))
            for n in range(3)
        ]
        batch = app.service.accept_batch(deliveries)
        assert [o.reply.code for [o] in batch.outcomes] == [250, 250, 250]
        app.service.schedule(batch.jobs)
        tasks = []
        while (task := app.huey.dequeue()) is not None:
            tasks.append(task)

    finished = spans.get_finished_spans()
    accepts = [s for s in finished if s.name == "accept"]
    enqueues = [s for s in finished if s.name == "enqueue"]
    assert len(accepts) == len(enqueues) == len(tasks) == 3
    by_id = {s.context.span_id: s for s in accepts}
    parents = [s.parent.span_id for s in enqueues if s.parent is not None]
    assert sorted(parents) == sorted(by_id)  # one enqueue under each accept
    carried = [task.kwargs["traceparent"].split("-")[2] for task in tasks]
    assert carried == [f"{s.context.span_id:016x}" for s in enqueues]
    assert [task.args[0] for task in tasks] == [str(job.message_id) for job in batch.jobs]
