"""The adapters' readiness probes and scrape-time reads against the real things."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.objects import LocalObjectStore, S3ObjectStore
from ingest_core.adapters.postgres import health as pg_health
from ingest_core.adapters.postgres.common import open_pool
from ingest_core.adapters.postgres.tenants import TenantAdmin
from ingest_core.adapters.queue import huey_from_url, pending_jobs
from ingest_core.errors import QueueUnavailable, StoreUnavailable

if TYPE_CHECKING:
    from pathlib import Path

    from ingest_core.adapters.postgres.common import Pool


def test_local_store_probe_creates_its_root_and_refuses_a_file(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.ping()
    assert (tmp_path / "objects").is_dir()
    assert list((tmp_path / "objects").iterdir()) == []  # the probe file is gone
    (tmp_path / "blocker").write_bytes(b"")
    with pytest.raises(StoreUnavailable):
        LocalObjectStore(tmp_path / "blocker").ping()


def test_s3_probe_needs_the_bucket(s3_bucket_url: str, moto_env: dict[str, str]) -> None:
    S3ObjectStore.from_env(s3_bucket_url, environ=moto_env, timeout_s=5).ping()
    missing = S3ObjectStore.from_env("s3://no-such-bucket-here", environ=moto_env, timeout_s=5)
    with pytest.raises(StoreUnavailable):
        missing.ping()


def test_pending_jobs_counts_and_maps_errors(tmp_path: Path) -> None:
    huey = huey_from_url(None, tmp_path / "queue.db")
    assert pending_jobs(huey) == 0

    class Broken:
        def pending_count(self) -> int:
            raise OSError("gone")

    with pytest.raises(QueueUnavailable):
        pending_jobs(Broken())


def test_postgres_ping_and_message_counts(pg_pool: Pool) -> None:
    pg_health.ping(pg_pool, 2.0)
    TenantAdmin(pg_pool).add("acme", "Acme")
    counts = pg_health.message_counts(pg_pool, 2.0)
    assert counts == {
        ("acme", status): 0
        for status in ("RECEIVED", "PROCESSING", "PROCESSED", "FAILED", "QUARANTINED")
    }


def test_postgres_ping_fails_within_its_timeout(closed_port: int) -> None:
    pool = open_pool(f"postgresql://nobody@127.0.0.1:{closed_port}/none", timeout_s=1.0)
    try:
        with pytest.raises(StoreUnavailable):
            pg_health.ping(pool, 0.5)
    finally:
        pool.close()
