"""Postgres stopped while a load generator delivers, then started again.

While the database is gone every recipient gets a 451 (the tenant check at
RCPT, or the insert after DATA), never a 250; the same server process serves
again once the database is back; resending what was refused ends as exactly
one row per message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.chaos.audit import ScenarioResult, audit, fetch_rows, local_reader
from tests.chaos.load import outage_under_load, resend_unacknowledged
from tests.procs import IngestServer, ingest_env

if TYPE_CHECKING:
    from pathlib import Path

    from tests.chaos.audit import RecordScenario
    from tests.chaos.conftest import OwnPostgres

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


def test_postgres_outage_gives_451_and_service_resumes(
    own_postgres: OwnPostgres, data_dir: Path, record_scenario: RecordScenario
) -> None:
    env = ingest_env(data_dir, own_postgres.url, INGEST_STORE_TIMEOUT_S="2")
    server = IngestServer(env, data_dir / "serve.log")
    server.start()
    try:
        outage = outage_under_load(
            server.port,
            "pgdown",
            break_it=own_postgres.stop,
            repair_it=own_postgres.start,
            before=15,
            during=6,
            after=15,
        )
        server.check_alive("ingest serve")
        during = outage.during
        assert len(during) >= 6
        assert {a.code for a in during} == {451}, [(a.code, a.text) for a in during]
        resent = resend_unacknowledged(server.port, outage.load.deliveries)
    finally:
        server.stop()

    rows = fetch_rows(own_postgres.url)
    result = audit(outage.load.deliveries, rows, local_reader(data_dir / "objects"))
    assert result.clean, result.explain()
    assert result.stored == result.sent
    record_scenario(
        ScenarioResult.of(
            "Postgres stopped under load",
            result,
            f"{len(during)} transactions during the outage, all 451; {len(resent)} resent",
        )
    )
