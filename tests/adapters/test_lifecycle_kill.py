"""kill -9 of a purge in the middle of its object deletions, then a rerun: it
converges, with no row pointing at a missing object and nothing left marked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from tests.adapters.test_lifecycle_pg import World, objects, run, world  # noqa: F401

if TYPE_CHECKING:
    from ingest_core.adapters.postgres.common import Pool

ROOT = Path(__file__).resolve().parents[2]

# A purge in its own process whose deletions are slow enough to be cut: it says
# "deleted" after each, so the test kills it at a known point.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from ingest_core.adapters.objects import LocalObjectStore, S3ObjectStore
    from ingest_core.adapters.postgres.common import open_pool
    from ingest_core.adapters.postgres.lifecycle import PostgresLifecycle
    from ingest_core.lifecycle import PurgeConfig, purge

    url, kind, where, environ = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if kind == "local":
        inner = LocalObjectStore(__import__("pathlib").Path(where))
    else:
        inner = S3ObjectStore.from_env(where, environ=environ, timeout_s=30.0)

    class Slow:
        def delete(self, key):
            inner.delete(key)
            print("deleted", flush=True)
            time.sleep(0.2)

    pool = open_pool(url, timeout_s=30.0, min_size=1, max_size=2)
    pool.wait(timeout=30.0)
    purge(PostgresLifecycle(pool), Slow(), PurgeConfig(default_days=None, batch=4))
    print("finished", flush=True)
    """
)


def test_kill_9_mid_purge_then_rerun_converges(
    world: World,  # noqa: F811
    pg_url: str,
    request: object,
    tmp_path: Path,
) -> None:
    org, other = world.tenant("acme"), world.tenant("other")
    world.life.set_retention("acme", 1)
    for index in range(12):
        world.message(org, age_days=5, body=f"old {index}".encode(), attachments=(b"shared",))
    live = world.message(org, age_days=0, body=b"new", attachments=(b"shared",))
    theirs = world.message(other, age_days=5, body=b"old 3", attachments=(b"shared",))
    old_keys = {
        f"raw/{org}/{uuid.uuid5(uuid.NAMESPACE_URL, f'old {i}').hex * 2}.eml" for i in range(12)
    }

    store = world.objects
    if hasattr(store, "root"):
        kind, where, environ = "local", str(store.root), "{}"
    else:
        import json

        fixtures = request.getfixturevalue  # type: ignore[attr-defined]
        kind, where = "s3", f"s3://{store.bucket}"  # type: ignore[attr-defined]
        environ = json.dumps(fixtures("moto_env"))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, pg_url, kind, where, environ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        for _ in range(5):
            assert child.stdout.readline().strip() == "deleted"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    world.nothing_dangles()  # even now: rows go before their objects
    assert any(store.exists(key) for key in old_keys)  # the kill left work behind
    run(world, batch=4)
    assert world.message_ids() == {live, theirs}
    world.nothing_dangles()
    assert not any(store.exists(key) for key in old_keys)
    assert world.life.unconfirmed(100) == []
    _no_markers_but_confirmed(world.pool)


def _no_markers_but_confirmed(pool: Pool) -> None:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM object_removal WHERE removed_at IS NULL"
        ).fetchone()
    assert row == (0,)
