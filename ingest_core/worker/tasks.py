"""huey task definitions, registered on a given huey instance with the adapters
their bodies use.

Tasks take a message id (a string) and nothing else; their names are stable so
that renaming a module never orphans queued jobs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from huey import crontab

from ingest_core.automated import AutomatedCheck
from ingest_core.errors import RetryLater
from ingest_core.extraction import extract_message
from ingest_core.sender import SenderCheck
from ingest_core.telemetry import link_from

if TYPE_CHECKING:
    from ingest_core.extraction import ExtractionConfig
    from ingest_core.ports import (
        AutomatedPolicySource,
        BlobStore,
        MessageRepository,
        SenderRulesSource,
        SenderVerifier,
    )

log = logging.getLogger("ingest.worker")

# huey identifies a task by "<module>.<name>" of the decorated function. Both parts
# are pinned here, so moving or renaming this module never orphans queued jobs:
# the identifiers are "ingest.extract" and "ingest.sweep".
TASK_NAMESPACE = "ingest"
EXTRACT_TASK = "extract"
SWEEP_TASK = "sweep"
CLEAN_TASK = "clean_temp_files"
PURGE_TASK = "purge"


class WorkerDeps(Protocol):
    """What the task bodies use (``ingest_core.bootstrap.App`` is one). Read when a
    task runs, not when it is registered."""

    @property
    def extraction(self) -> ExtractionConfig: ...

    @property
    def repository(self) -> MessageRepository: ...

    @property
    def store(self) -> BlobStore: ...

    @property
    def sender_rules(self) -> SenderRulesSource: ...

    @property
    def automated_policies(self) -> AutomatedPolicySource: ...

    def verifier(self) -> SenderVerifier: ...

    def sweep(self) -> list[uuid.UUID]: ...

    def remove_stale_temp_files(self) -> int: ...

    def run_retention(self) -> int:
        """Remove what is past retention; the number of messages removed."""
        ...


@dataclass(frozen=True)
class Tasks:
    extract: Any
    sweep: Any


def register(huey: Any, deps: WorkerDeps) -> Tasks:
    """Register the tasks on ``huey`` (once per instance); their bodies use ``deps``."""

    @huey.task(name=EXTRACT_TASK, __module__=TASK_NAMESPACE)  # type: ignore[untyped-decorator]
    def extract(message_id: str, traceparent: str | None = None) -> str:
        try:
            result = extract_message(
                uuid.UUID(message_id),
                repo=deps.repository,
                store=deps.store,
                config=deps.extraction,
                sender=SenderCheck(deps.verifier(), deps.sender_rules),
                automated=AutomatedCheck(deps.automated_policies),
                links=link_from(traceparent),
            )
        except RetryLater as exc:
            extract.schedule(args=(message_id, traceparent), delay=exc.delay_s)
            return "retry"
        return result.outcome.value

    @huey.periodic_task(crontab(minute="*"), name=SWEEP_TASK, __module__=TASK_NAMESPACE)  # type: ignore[untyped-decorator]
    def periodic_sweep() -> int:
        return len(deps.sweep())

    @huey.periodic_task(crontab(minute="17"), name=CLEAN_TASK, __module__=TASK_NAMESPACE)  # type: ignore[untyped-decorator]
    def periodic_clean() -> int:
        return deps.remove_stale_temp_files()

    # Hourly; each run goes on until nothing past retention is left, in batches
    # that are transactions of their own, so a run stopped anywhere loses nothing.
    @huey.periodic_task(crontab(minute="41"), name=PURGE_TASK, __module__=TASK_NAMESPACE)  # type: ignore[untyped-decorator]
    def periodic_purge() -> int:
        return deps.run_retention()

    return Tasks(extract=extract, sweep=periodic_sweep)
