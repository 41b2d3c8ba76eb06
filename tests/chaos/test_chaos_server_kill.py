"""`kill -9` of `ingest serve` while a load generator delivers, three times over.

After each restart the clients carry on; at the end everything never
acknowledged is resent (as Postfix would). Then: every message that got a 250
has exactly its row and an object with the very bytes sent; no row points to a
missing object; a message without a 250 had no row or exactly one before the
resend, and exactly one after it.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.chaos.audit import ScenarioResult, audit, base_message_id, fetch_rows, local_reader
from tests.chaos.load import LoadGenerator, deliver_once
from tests.procs import IngestServer, ingest_env, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from tests.chaos.audit import RecordScenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

KILLS = 3
ACKS_BETWEEN_KILLS = 25


def size_of(number: int) -> int:
    """Mostly small orders; every fourth one about 1.5 MB, so that some DATA
    transfers and object writes are under way when the kill lands."""
    return 1_500_000 if number % 4 == 0 else 3000 + 97 * (number % 50)


def acked_since(load: LoadGenerator, moment: float) -> bool:
    return load.acked_since(moment) >= ACKS_BETWEEN_KILLS


def test_kill_9_under_load_loses_nothing_and_duplicates_nothing(
    acme_db: str, data_dir: Path, record_scenario: RecordScenario
) -> None:
    server = IngestServer(ingest_env(data_dir, acme_db), data_dir / "serve.log")
    server.start()
    kills_in_flight = 0
    try:
        with LoadGenerator(server.port, "kill9", workers=4, size_of=size_of) as load:
            for _ in range(KILLS):
                since = time.monotonic()
                wait_for(
                    functools.partial(acked_since, load, since), "acknowledgements between kills"
                )
                server.kill9()
                server.start()
            since = time.monotonic()
            wait_for(functools.partial(acked_since, load, since), "service after kills")
        deliveries = load.deliveries
        unacked = [d for d in deliveries if not d.acked]
        kills_in_flight = sum(1 for d in unacked if d.attempts[-1].code is None)

        rows_before = fetch_rows(acme_db)
        counts = Counter(base_message_id(row.source_message_id) for row in rows_before)
        assert all(counts[d.message_id] in (0, 1) for d in unacked)
        before = {row.source_message_id: row for row in rows_before}

        for delivery in unacked:
            attempt = deliver_once(server.port, delivery)
            assert attempt.code == 250, (delivery.message_id, attempt)
            if delivery.message_id in before:
                assert attempt.text.endswith("duplicate")
                assert attempt.message_uuid == before[delivery.message_id].id
    finally:
        server.stop()

    result = audit(deliveries, fetch_rows(acme_db), local_reader(data_dir / "objects"))
    assert result.clean, result.explain()
    assert result.stored == result.sent == len(deliveries)
    assert kills_in_flight >= 1, "no kill landed on a transaction in flight"
    leftovers = len(list((data_dir / "objects").rglob(".tmp-*")))
    record_scenario(
        ScenarioResult.of(
            "kill -9 server under load (x3)",
            result,
            f"{kills_in_flight} transactions cut by the kills, resent;"
            f" {leftovers} orphaned temp files left in the object folder",
        )
    )
