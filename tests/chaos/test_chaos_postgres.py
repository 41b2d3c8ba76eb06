"""Postgres stopped while a load generator delivers, then started again.

While the database is gone every recipient gets a 451 (the tenant check at
RCPT, or the insert after DATA), never a 250; the same server process serves
again once the database is back; resending what was refused ends as exactly
one row per message.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.chaos.audit import ScenarioResult, audit, fetch_rows, local_reader
from tests.chaos.load import LoadGenerator, deliver_once
from tests.chaos.procs import IngestServer, ingest_env, wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


def test_postgres_outage_gives_451_and_service_resumes(
    own_postgres, data_dir: Path, record_scenario
) -> None:
    env = ingest_env(data_dir, own_postgres.url, INGEST_STORE_TIMEOUT_S="2")
    server = IngestServer(env, data_dir / "serve.log")
    server.start()
    try:
        with LoadGenerator(server.port, "pgdown", workers=3) as load:
            wait_for(lambda: load.acked_since(0) >= 15, "acknowledgements before the outage")
            own_postgres.stop()
            down = time.monotonic()
            wait_for(lambda: load.finished_since(down) >= 6, "replies during the outage")
            restarting = time.monotonic()
            own_postgres.start()
            up = time.monotonic()
            wait_for(lambda: load.acked_since(up) >= 15, "service after the database returned")
            server.check_alive("ingest serve")
        during = [a for a in load.attempts() if a.started >= down and a.finished <= restarting]
        assert len(during) >= 6
        assert {a.code for a in during} == {451}, [(a.code, a.text) for a in during]
        refused = [d for d in load.deliveries if not d.acked]
        for delivery in refused:
            assert deliver_once(server.port, delivery).code == 250
    finally:
        server.stop()

    result = audit(
        load.deliveries, fetch_rows(own_postgres.url), local_reader(data_dir / "objects")
    )
    assert result.clean, result.explain()
    assert result.stored == result.sent
    record_scenario(
        ScenarioResult.of(
            "Postgres stopped under load",
            result,
            f"{len(during)} transactions during the outage, all 451; {len(refused)} resent",
        )
    )
