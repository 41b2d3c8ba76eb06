"""The huey instance for the consumer (`huey_consumer ingest_core.tasks.huey`).

The one module that does work at import time (DESIGN §2): huey's consumer needs
the instance at module level, and SqliteHuey opens its file in its constructor,
so settings are read and the data folder is created here.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from ingest_core import jobs
from ingest_core.adapters.queue import huey_from_url
from ingest_core.settings import Settings

if TYPE_CHECKING:
    from ingest_core.bootstrap import App

settings = Settings.from_env()
settings.data_dir.mkdir(parents=True, exist_ok=True)
huey: Any = huey_from_url(
    settings.queue_url, settings.queue_path, timeout_s=settings.store_timeout_s
)
extract = jobs.registered(huey).extract

_app_lock = threading.Lock()
_app: App | None = None
_stack = contextlib.ExitStack()


def _worker_app() -> App:
    global _app
    with _app_lock:
        if _app is None:
            from ingest_core.bootstrap import open_app

            _app = _stack.enter_context(open_app(settings, huey=huey))
            atexit.register(_stack.close)
        return _app


jobs.set_app_provider(_worker_app)


def run_consumer(*, workers: int = 2) -> int:
    """`ingest worker`: the huey consumer with thread workers and the periodic sweep."""
    from ingest_core.logs import configure_logging

    configure_logging(settings.log_format)
    _worker_app()  # fail fast on a bad configuration, before taking jobs
    # An idle consumer backs off its polling; 1 s bounds the wait for the first job
    # after a quiet spell (huey's default of 10 s would dominate accept → PROCESSED).
    consumer = huey.create_consumer(
        workers=workers, worker_type="thread", periodic=True, max_delay=1.0
    )
    consumer.run()  # installs its own SIGTERM/SIGINT handlers: this is its own process
    _stack.close()
    return 0
