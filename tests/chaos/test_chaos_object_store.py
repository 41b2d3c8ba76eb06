"""The object store failing under `ingest serve`: an S3 server paused or killed,
a local object folder replaced by a regular file or bind-mounted read-only
(``chmod`` does not stop root).

While the store fails every recipient gets a 451 and no row is written
without its object; after the repair the same process serves again and the
resent messages end as one row each, pointing at identical bytes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.objects import S3ObjectStore
from ingest_core.errors import ObjectNotFound
from tests.chaos.audit import ObjectReader, ScenarioResult, audit, fetch_rows, local_reader
from tests.chaos.load import (
    Delivery,
    deliver_once,
    make_message,
    outage_under_load,
    resend_unacknowledged,
)
from tests.procs import IngestServer, MotoServer, ingest_env, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.chaos.audit import RecordScenario
    from tests.chaos.load import Outage

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


def s3_reader(url: str, moto: MotoServer) -> ObjectReader:
    store = S3ObjectStore.from_env(url, environ=moto.aws_env(), timeout_s=10)

    def read(key: str) -> bytes | None:
        try:
            with store.open(key) as source:
                return source.read()
        except ObjectNotFound:
            return None

    return read


def check_outage(outage: Outage) -> None:
    during = outage.during
    assert during, "no transaction ran while the store was failing"
    assert {a.code for a in during} == {451}, [(a.code, a.text) for a in during]
    assert all(a.text.startswith("4.3.0") for a in during)


def run_local_outage(
    name: str,
    data_dir: Path,
    acme_db: str,
    record_scenario: RecordScenario,
    break_it: Callable[[], None],
    repair_it: Callable[[], None],
) -> None:
    server = IngestServer(ingest_env(data_dir, acme_db), data_dir / "serve.log")
    server.start()
    try:
        outage = outage_under_load(server.port, name, break_it=break_it, repair_it=repair_it)
        server.check_alive("ingest serve")
        check_outage(outage)
        resent = resend_unacknowledged(server.port, outage.load.deliveries)
    finally:
        server.stop()
    result = audit(outage.load.deliveries, fetch_rows(acme_db), local_reader(data_dir / "objects"))
    assert result.clean, result.explain()
    assert result.stored == result.sent
    note = f"{len(outage.during)} transactions during the fault, all 451; {len(resent)} resent"
    record_scenario(ScenarioResult.of(name, result, note))


def test_local_folder_replaced_by_a_file(
    acme_db: str, data_dir: Path, record_scenario: RecordScenario
) -> None:
    objects, away = data_dir / "objects", data_dir / "objects.away"

    def break_it() -> None:
        os.rename(objects, away)
        objects.write_bytes(b"")

    def repair_it() -> None:
        objects.unlink()
        os.rename(away, objects)

    run_local_outage(
        "local object folder is a file", data_dir, acme_db, record_scenario, break_it, repair_it
    )


def _bind_mounts_work(folder: Path) -> bool:
    probe = folder / "mount-probe"
    probe.mkdir()
    try:
        argv = ["mount", "--bind", "-o", "ro", str(probe), str(probe)]
        done = subprocess.run(argv, capture_output=True, check=False)
        if done.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    except OSError:
        return False
    finally:
        probe.rmdir()


def test_local_folder_mounted_read_only(
    acme_db: str, data_dir: Path, record_scenario: RecordScenario
) -> None:
    if os.geteuid() != 0 or not _bind_mounts_work(data_dir):
        pytest.skip("a read-only bind mount needs root and mount permission")
    objects = data_dir / "objects"
    mounted = False

    def break_it() -> None:
        nonlocal mounted
        subprocess.run(["mount", "--bind", "-o", "ro", str(objects), str(objects)], check=True)
        mounted = True

    def repair_it() -> None:
        # The server keeps trying to write while the fault lasts: umount can find
        # the mount busy for the moment a write holds a folder open.
        nonlocal mounted
        deadline = time.monotonic() + 10
        while subprocess.run(["umount", str(objects)], check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not unmount {objects}")
            time.sleep(0.05)
        mounted = False

    try:
        run_local_outage(
            "local object folder read-only", data_dir, acme_db, record_scenario, break_it, repair_it
        )
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(objects)], check=False)


def s3_env(data_dir: Path, acme_db: str, moto: MotoServer, url: str) -> dict[str, str]:
    return ingest_env(
        data_dir, acme_db, INGEST_OBJECT_STORE_URL=url, INGEST_STORE_TIMEOUT_S="2", **moto.aws_env()
    )


def test_s3_server_paused_under_load(
    acme_db: str, data_dir: Path, moto: MotoServer, record_scenario: RecordScenario
) -> None:
    """SIGSTOP: connections are accepted by the kernel, nothing answers."""
    bucket = f"chaos-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    url = f"s3://{bucket}/mail"
    server = IngestServer(s3_env(data_dir, acme_db, moto, url), data_dir / "serve.log")
    server.start()
    try:
        outage = outage_under_load(
            server.port,
            "s3-paused",
            break_it=lambda: moto.signal(signal.SIGSTOP),
            repair_it=lambda: moto.signal(signal.SIGCONT),
            during=3,
        )
        check_outage(outage)
        resent = resend_unacknowledged(server.port, outage.load.deliveries)
    finally:
        server.stop()
    result = audit(outage.load.deliveries, fetch_rows(acme_db), s3_reader(url, moto))
    assert result.clean, result.explain()
    assert result.stored == result.sent
    note = f"{len(outage.during)} transactions while paused, all 451; {len(resent)} resent"
    record_scenario(ScenarioResult.of("S3 server paused (SIGSTOP) under load", result, note))


def test_s3_server_killed_and_restarted(
    acme_db: str, data_dir: Path, moto: MotoServer, record_scenario: RecordScenario
) -> None:
    """SIGKILL: connections are refused. moto keeps objects in memory only, so
    objects written before the kill are gone after its restart: the warm-up
    messages are audited before the kill, the rest after the restart."""
    bucket = f"chaos-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(bucket)
    url = f"s3://{bucket}"
    server = IngestServer(s3_env(data_dir, acme_db, moto, url), data_dir / "serve.log")
    server.start()
    try:
        warm_up = [Delivery(n, *make_message("s3-warm", n, 5000)) for n in range(2)]
        assert [deliver_once(server.port, d).code for d in warm_up] == [250, 250]
        before = audit(warm_up, fetch_rows(acme_db), s3_reader(url, moto))
        assert before.clean, before.explain()
        assert before.stored == 2

        moto.kill9()
        refused = [Delivery(n, *make_message("s3-killed", n, 5000)) for n in range(5)]
        attempts = [deliver_once(server.port, d) for d in refused]
        assert [(a.code, a.text[:5]) for a in attempts] == [(451, "4.3.0")] * 5
        assert len(fetch_rows(acme_db)) == 2  # nothing recorded without its object

        moto.start()  # same port, empty memory
        moto.create_bucket(bucket)
        # the breaker opened on the refusals: service resumes once its probe succeeds
        wait_for(lambda: deliver_once(server.port, refused[0]).code == 250, "the breaker's probe")
        resend_unacknowledged(server.port, refused)
    finally:
        server.stop()
    warm_ids = {d.message_id for d in warm_up}
    rows = [r for r in fetch_rows(acme_db) if r.source_message_id not in warm_ids]
    after = audit(refused, rows, s3_reader(url, moto))
    assert after.clean, after.explain()
    assert after.stored == after.sent == 5
    record_scenario(
        ScenarioResult(
            "S3 server killed, restarted",
            sent=before.sent + after.sent,
            acknowledged=before.acknowledged + after.acknowledged,
            stored=before.stored + after.stored,
            lost=len(after.lost) + len(after.rows_without_object),
            duplicates=len(before.duplicates) + len(after.duplicates),
            note="5 deliveries while killed, all 451 4.3.0 and no row; resent after restart",
        )
    )
