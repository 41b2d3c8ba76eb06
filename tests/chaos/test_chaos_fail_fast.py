"""Outages fail fast: a dependency that refuses costs a delivery its 451 within
2 s, never the pool's or the store's full timeout; one that stops answering
costs the first calls their deadline, then the breaker answers within 2 s.

The servers run with the default store timeout (60 s) unless the scenario
needs the first deadlines to be short; the 2 s bound is what each attempt's
reply took, as the client measured it.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import urllib.error
import urllib.request
import uuid
from typing import TYPE_CHECKING

import pytest

from tests.chaos.audit import ScenarioResult, audit, fetch_rows, local_reader
from tests.chaos.load import Attempt, Delivery, deliver_once, make_message, resend_unacknowledged
from tests.chaos.test_chaos_object_store import s3_reader
from tests.procs import IngestServer, MotoServer, free_port, ingest_env, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from tests.chaos.audit import RecordScenario
    from tests.chaos.conftest import OwnPostgres

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

BOUND_S = 2.0


def _deliveries(tag: str, count: int) -> list[Delivery]:
    return [Delivery(n, *make_message(tag, n, 3000)) for n in range(count)]


def _seconds(attempt: Attempt) -> float:
    return attempt.finished - attempt.started


def _all_fast_451(attempts: list[Attempt], enhanced: str) -> None:
    summary = [(a.code, a.text[:5], round(_seconds(a), 2)) for a in attempts]
    assert all(a.code == 451 and a.text.startswith(enhanced) for a in attempts), summary
    assert max(_seconds(a) for a in attempts) < BOUND_S, summary


def _readyz(port: int) -> dict[str, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as failed:
        return dict(json.loads(failed.read()))


@pytest.mark.parametrize(
    ("cache", "enhanced"),
    [("0", "4.4.3"), ("60", "4.3.0")],
    ids=["rcpt-uncached-tenant", "end-of-data"],
)
def test_postgres_stopped_gives_451_within_2_s(
    own_postgres: OwnPostgres,
    data_dir: Path,
    record_scenario: RecordScenario,
    cache: str,
    enhanced: str,
) -> None:
    http_port = free_port()
    env = ingest_env(
        data_dir,
        own_postgres.url,
        INGEST_STORE_TIMEOUT_S="60",
        INGEST_TENANT_CACHE_S=cache,
        INGEST_HTTP_LISTEN=f"127.0.0.1:{http_port}",
    )
    server = IngestServer(env, data_dir / "serve.log")
    server.start()
    try:
        warm = _deliveries(f"pg-warm-{cache}", 2)
        assert [deliver_once(server.port, d).code for d in warm] == [250, 250]
        own_postgres.stop()
        refused = _deliveries(f"pg-down-{cache}", 8)
        attempts = [deliver_once(server.port, d) for d in refused]
        _all_fast_451(attempts, enhanced)
        cause = _readyz(http_port)["postgres"]
        assert cause["ok"] is False
        assert cause["error"] in ("no such file", "connection refused"), cause
        own_postgres.start()
        wait_for(lambda: deliver_once(server.port, refused[0]).code == 250, "service again")
        resend_unacknowledged(server.port, refused)
    finally:
        server.stop()
    result = audit(warm + refused, fetch_rows(own_postgres.url), local_reader(data_dir / "objects"))
    assert result.clean, result.explain()
    slowest = max(_seconds(a) for a in attempts)
    record_scenario(
        ScenarioResult.of(
            f"Postgres stopped: 451 {enhanced} fast",
            result,
            f"8 deliveries, all 451 {enhanced}, slowest {slowest:.2f} s (store timeout 60 s)",
        )
    )


def test_postgres_paused_opens_the_breaker_then_451_within_2_s(
    own_postgres: OwnPostgres, data_dir: Path, record_scenario: RecordScenario
) -> None:
    """SIGSTOP on the server behind the Unix socket: no keepalive or
    statement_timeout ends a call, the pool's watchdog does (store timeout 3 s).
    The first deliveries wait that deadline; once the breaker is open (after 3
    failures here) every delivery gets its 451 within 2 s; the breaker's probe
    closes it once the server runs again."""
    env = ingest_env(
        data_dir,
        own_postgres.url,
        INGEST_STORE_TIMEOUT_S="3",
        INGEST_TENANT_CACHE_S="600",
        INGEST_BREAKER_FAILURES="3",
    )
    server = IngestServer(env, data_dir / "serve.log")
    server.start()
    waited: list[Attempt] = []
    try:
        warm = _deliveries("pg-paused-warm", 2)
        assert [deliver_once(server.port, d).code for d in warm] == [250, 250]
        own_postgres.pause()
        first = _deliveries("pg-paused-first", 6)
        for delivery in first:  # until the breaker answers
            waited.append(deliver_once(server.port, delivery))
            if _seconds(waited[-1]) < BOUND_S:
                break
        summary = [(a.code, round(_seconds(a), 1)) for a in waited]
        assert all(a.code == 451 for a in waited), summary
        assert max(_seconds(a) for a in waited) < 15, summary  # a deadline or two, not for ever
        assert _seconds(waited[-1]) < BOUND_S, summary  # the breaker opened
        fast = _deliveries("pg-paused-fast", 8)
        attempts = [deliver_once(server.port, d) for d in fast]
        _all_fast_451(attempts, "4.3.0")
        own_postgres.resume()
        wait_for(lambda: deliver_once(server.port, fast[0]).code == 250, "the probe to close it")
        resend_unacknowledged(server.port, first + fast)
    finally:
        own_postgres.resume()
        server.stop()
    result = audit(
        warm + first + fast, fetch_rows(own_postgres.url), local_reader(data_dir / "objects")
    )
    assert result.clean, result.explain()
    note = (
        f"{len(waited)} waited up to {max(_seconds(a) for a in waited):.1f} s; then 8 deliveries"
        f" all 451 4.3.0, slowest {max(_seconds(a) for a in attempts):.2f} s; closed by the probe"
    )
    record_scenario(ScenarioResult.of("Postgres paused: breaker opens", result, note))


def _s3_server(data_dir: Path, acme_db: str, moto: MotoServer, store_timeout: str) -> tuple:
    bucket = f"fast-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    url = f"s3://{bucket}"
    env = ingest_env(
        data_dir,
        acme_db,
        INGEST_OBJECT_STORE_URL=url,
        INGEST_STORE_TIMEOUT_S=store_timeout,
        **moto.aws_env(),
    )
    server = IngestServer(env, data_dir / "serve.log")
    server.start()
    return server, bucket, url


def test_s3_down_gives_451_within_2_s(
    acme_db: str,
    data_dir: Path,
    moto: MotoServer,
    record_scenario: RecordScenario,
) -> None:
    server, bucket, url = _s3_server(data_dir, acme_db, moto, "60")
    try:
        moto.kill9()
        refused = _deliveries("s3-down", 8)
        attempts = [deliver_once(server.port, d) for d in refused]
        _all_fast_451(attempts, "4.3.0")
        moto.start()
        moto.create_bucket(bucket)
        wait_for(lambda: deliver_once(server.port, refused[0]).code == 250, "service again")
        resend_unacknowledged(server.port, refused)
    finally:
        server.stop()
    result = audit(refused, fetch_rows(acme_db), s3_reader(url, moto))
    assert result.clean, result.explain()
    slowest = max(_seconds(a) for a in attempts)
    note = f"8 deliveries while killed, all 451 4.3.0, slowest {slowest:.2f} s"
    record_scenario(ScenarioResult.of("S3 down: 451 fast", result, note))


def test_s3_paused_opens_the_breaker_then_451_within_2_s(
    acme_db: str,
    data_dir: Path,
    moto: MotoServer,
    record_scenario: RecordScenario,
) -> None:
    """The first calls wait their deadline (3 s here); after five of them the
    breaker is open and every delivery gets its 451 within 2 s; once the server
    answers again the breaker's probe closes it."""
    server, _, url = _s3_server(data_dir, acme_db, moto, "3")
    try:
        moto.signal(signal.SIGSTOP)
        first = _deliveries("s3-paused-first", 6)
        with concurrent.futures.ThreadPoolExecutor(len(first)) as pool:
            waited = list(pool.map(lambda d: deliver_once(server.port, d), first))
        assert {a.code for a in waited} == {451}, [(a.code, a.text) for a in waited]
        fast = _deliveries("s3-paused-fast", 8)
        attempts = [deliver_once(server.port, d) for d in fast]
        _all_fast_451(attempts, "4.3.0")
        moto.signal(signal.SIGCONT)
        wait_for(lambda: deliver_once(server.port, fast[0]).code == 250, "the probe to close it")
        resend_unacknowledged(server.port, first + fast)
    finally:
        server.stop()
    result = audit(first + fast, fetch_rows(acme_db), s3_reader(url, moto))
    assert result.clean, result.explain()
    slowest = max(_seconds(a) for a in attempts)
    note = (
        f"first 6 waited up to {max(_seconds(a) for a in waited):.1f} s; then 8 deliveries "
        f"all 451 4.3.0, slowest {slowest:.2f} s; closed by the probe"
    )
    record_scenario(ScenarioResult.of("S3 paused: breaker opens", result, note))
