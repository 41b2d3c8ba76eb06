"""huey task definitions, registered on a given huey instance.

Tasks take a message id (a string) and nothing else; their names are stable so
that renaming a module never orphans queued jobs. The worker's adapters are built
once per process, on first use, from the same environment.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huey import crontab

from ingest_core.extraction import RetryLater, extract_message, sweep
from ingest_core.sender.gate import SenderCheck
from ingest_core.telemetry import link_from

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest_core.bootstrap import App

log = logging.getLogger("ingest.worker")

# huey identifies a task by "<module>.<name>" of the decorated function. Both parts
# are pinned here, so moving or renaming this module never orphans queued jobs:
# the identifiers are "ingest.extract" and "ingest.sweep".
TASK_NAMESPACE = "ingest"
EXTRACT_TASK = "extract"
SWEEP_TASK = "sweep"
CLEAN_TASK = "clean_temp_files"


@dataclass(frozen=True)
class Tasks:
    extract: Any
    sweep: Any


_registered: dict[int, Tasks] = {}
_lock = threading.Lock()
_app_provider: Callable[[], App] | None = None


def set_app_provider(provider: Callable[[], App]) -> None:
    """Where task bodies get their adapters (the worker process, or a test)."""
    global _app_provider
    _app_provider = provider


def _app() -> App:
    if _app_provider is None:
        raise RuntimeError("no app provider set for the worker")
    return _app_provider()


def registered(huey: Any) -> Tasks:
    """The tasks registered on ``huey`` (registering them once)."""
    with _lock:
        tasks = _registered.get(id(huey))
        if tasks is None:
            tasks = _register(huey)
            _registered[id(huey)] = tasks
        return tasks


def _register(huey: Any) -> Tasks:
    @huey.task(name=EXTRACT_TASK, __module__=TASK_NAMESPACE)  # type: ignore[untyped-decorator]
    def extract(message_id: str, traceparent: str | None = None) -> str:
        app = _app()
        try:
            result = extract_message(
                uuid.UUID(message_id),
                repo=app.repository,
                store=app.store,
                settings=app.settings,
                sender=SenderCheck(app.verifier(), app.sender_rules),
                links=link_from(traceparent),
            )
        except RetryLater as exc:
            extract.schedule(args=(message_id, traceparent), delay=exc.delay_s)
            return "retry"
        return result.outcome.value

    @huey.periodic_task(crontab(minute="*"), name=SWEEP_TASK, __module__=TASK_NAMESPACE)  # type: ignore[untyped-decorator]
    def periodic_sweep() -> int:
        app = _app()
        return len(sweep(app.repository, app.queue, app.settings))

    @huey.periodic_task(crontab(minute="17"), name=CLEAN_TASK, __module__=TASK_NAMESPACE)  # type: ignore[untyped-decorator]
    def periodic_clean() -> int:
        return _app().remove_stale_temp_files()

    return Tasks(extract=extract, sweep=periodic_sweep)
