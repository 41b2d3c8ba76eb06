"""The huey instance for the consumer (`huey_consumer ingest_core.tasks.huey`;
``ingest_core.tasks`` re-exports this module).

The one module that does work at import time (docs/architecture.md): huey's
consumer needs the instance at module level, and SqliteHuey opens its file in
its constructor, so settings are read and the data folder is created here. The
adapters are opened by bootstrap on the first task (or by :func:`run_consumer`).
"""

from __future__ import annotations

import sys
from typing import Any

from ingest_core.bootstrap import open_worker
from ingest_core.errors import ConfigError
from ingest_core.settings import Settings

settings = Settings.from_env()
settings.data_dir.mkdir(parents=True, exist_ok=True)
worker = open_worker(settings)
huey: Any = worker.huey
extract = worker.tasks.extract


def run_consumer(*, workers: int = 2) -> int:
    """`ingest worker`: the huey consumer with thread workers and the periodic
    sweep, and the webhook dispatcher's loop in a thread of its own (huey's
    periodic tasks run at most once a minute, too slow for the first retries)."""
    import threading

    from ingest_core.logs import configure_logging

    configure_logging(settings.log_format)
    try:
        dispatcher = worker.app().dispatcher()  # fail fast on a bad configuration
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    dispatching = threading.Thread(
        target=dispatcher.run, args=(stop,), name="webhook-dispatcher", daemon=True
    )
    dispatching.start()
    # An idle consumer backs off its polling; 1 s bounds the wait for the first job
    # after a quiet spell (huey's default of 10 s would dominate accept → PROCESSED).
    consumer = huey.create_consumer(
        workers=workers, worker_type="thread", periodic=True, max_delay=1.0
    )
    consumer.run()  # installs its own SIGTERM/SIGINT handlers: this is its own process
    stop.set()
    dispatching.join(timeout=30.0)  # an attempt in flight ends within its timeouts
    worker.close()
    return 0
