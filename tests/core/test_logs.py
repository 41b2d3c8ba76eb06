"""The log context: fields bound per connection and transaction reach every line,
in both formats, and follow trio tasks into the worker threads they start."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
import trio

from ingest_core.logs import (
    ConsoleFormatter,
    ContextFilter,
    JsonFormatter,
    bind,
    current_context,
    log_context,
)


@pytest.fixture
def capture():
    """``(logger, stream, handler)``: a logger whose lines go to ``stream``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_json_lines_carry_the_context(capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())
    with log_context(conn="c0ffee01"):
        logger.info("greeting")
        bind(txn="7a7a7a7a")
        logger.info("rcpt", extra={"code": 250})
        bind(message_id="0b5e...")
        logger.info("done")
        bind(txn=None, message_id=None)
        logger.info("after the transaction")
    logger.info("outside")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line.get("conn") for line in lines] == ["c0ffee01"] * 4 + [None]
    assert [line.get("txn") for line in lines] == [None, "7a7a7a7a", "7a7a7a7a", None, None]
    assert lines[2]["message_id"] == "0b5e..."
    assert "message_id" not in lines[3]
    assert lines[1]["code"] == 250


def test_extra_wins_over_the_context(capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())
    with log_context(message_id="from-context"):
        logger.info("outcome", extra={"message_id": "from-extra"})
    assert json.loads(stream.getvalue())["message_id"] == "from-extra"


def test_console_lines_have_a_timestamp_and_lead_with_the_context(capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(ConsoleFormatter())
    with log_context(conn="c0ffee01", txn="7a7a7a7a", message_id="m-1"):
        logger.info("transaction done", extra={"size": 12, "missing": None})
    line = stream.getvalue().strip()
    stamp, level, name, *rest = line.split()
    assert stamp.endswith("Z")
    assert "T" in stamp
    assert (level, name) == ("info", "tests.logs:")
    assert " ".join(rest) == "transaction done conn=c0ffee01 txn=7a7a7a7a message_id=m-1 size=12"


def test_the_context_ends_with_its_block_even_after_bind() -> None:
    with log_context(conn="a"):
        bind(txn="b")
        assert dict(current_context()) == {"conn": "a", "txn": "b"}
    assert dict(current_context()) == {}


async def test_context_follows_into_worker_threads_and_stays_in_its_task(capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(JsonFormatter())
    seen: dict[str, object] = {}

    def in_thread(name: str) -> None:
        seen[name] = threading.current_thread() is not threading.main_thread()
        logger.info("from a worker thread")

    async def connection(conn: str, txn: str) -> None:
        with log_context(conn=conn):
            bind(txn=txn)
            await trio.sleep(0.01)  # let the other connection interleave
            await trio.to_thread.run_sync(in_thread, conn)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection, "conn-1", "txn-1")
        nursery.start_soon(connection, "conn-2", "txn-2")
    assert seen == {"conn-1": True, "conn-2": True}
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sorted((line["conn"], line["txn"]) for line in lines) == [
        ("conn-1", "txn-1"),
        ("conn-2", "txn-2"),
    ]
    assert dict(current_context()) == {}
