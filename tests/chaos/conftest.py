"""Fixtures of the fault scenarios, and the summary table printed at the end.

Run with ``just chaos`` (``pytest -m chaos tests/chaos``). Each scenario records
one line: messages sent, acknowledged (250), stored (a row exists), lost (an
acknowledged message without its row or identical object, or a row whose
object is missing) and duplicates (a message with more than one row).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.postgres.common import open_pool
from ingest_core.adapters.postgres.embedded import EmbeddedPostgres
from ingest_core.adapters.postgres.migrate import migrate
from ingest_core.adapters.postgres.tenants import TenantAdmin
from tests.chaos.audit import ScenarioResult
from tests.procs import MotoServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

_RESULTS = pytest.StashKey[list[ScenarioResult]]()


def add_tenant(database_url: str, slug: str) -> str:
    pool = open_pool(database_url, timeout_s=30.0, name="chaos-admin")
    try:
        return str(TenantAdmin(pool).add(slug, slug.title()).id)
    finally:
        pool.close()


@pytest.fixture
def record_scenario(request: pytest.FixtureRequest) -> Callable[[ScenarioResult], None]:
    results = request.config.stash.setdefault(_RESULTS, [])
    return results.append


@pytest.fixture
def acme_db(pg_url: str) -> str:
    """The shared test database, emptied, with the tenant ``acme``."""
    add_tenant(pg_url, "acme")
    return pg_url


@dataclass
class OwnPostgres:
    """An embedded server this test alone uses, so the test may stop it."""

    server: EmbeddedPostgres
    url: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        assert self.server.start() == self.url

    def pause(self) -> None:
        """SIGSTOP the postmaster and its backends: alive, answering nothing."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, number: signal.Signals) -> None:
        postmaster = int((self.server.folder / "postmaster.pid").read_text().split()[0])
        family = [postmaster]
        for task in Path(f"/proc/{postmaster}/task").glob("*/children"):
            family += [int(child) for child in task.read_text().split()]
        for pid in family:
            os.kill(pid, number)


@pytest.fixture
def own_postgres(
    make_private_dir: Callable[[str], AbstractContextManager[Path]],
) -> Iterator[OwnPostgres]:
    with make_private_dir("chaos-pg") as folder:
        server = EmbeddedPostgres(folder / "pg")
        url = server.start()
        try:
            migrate(url)
            add_tenant(url, "acme")
            yield OwnPostgres(server, url)
        finally:
            server.stop()


_COLUMNS = ("scenario", "sent", "acknowledged", "stored", "lost", "duplicates")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    results = terminalreporter.config.stash.get(_RESULTS, [])
    if not results:
        return
    rows = [
        (r.scenario, str(r.sent), str(r.acknowledged), str(r.stored), str(r.lost),
         str(r.duplicates))
        for r in results
    ]  # fmt: skip
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(_COLUMNS)]

    def line(cells: tuple[str, ...]) -> str:
        padded = [cells[0].ljust(widths[0])]
        padded += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join(padded)

    terminalreporter.section("chaos summary")
    terminalreporter.write_line(line(_COLUMNS))
    terminalreporter.write_line("-+-".join("-" * w for w in widths))
    for row in rows:
        terminalreporter.write_line(line(row))
    notes = [f"{r.scenario}: {r.note}" for r in results if r.note]
    for note in notes:
        terminalreporter.write_line(f"  {note}")


@pytest.fixture
def moto(data_dir: Path) -> Iterator[MotoServer]:
    """A moto S3 server this test alone uses, so it may pause or kill it."""
    server = MotoServer(data_dir / "moto.log")
    server.start()
    try:
        yield server
    finally:
        if server.alive():
            server.signal(signal.SIGCONT)
        server.stop()
