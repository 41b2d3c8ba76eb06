"""``huey_consumer ingest_core.tasks.huey``: the documented consumer command keeps
working; the instance lives in :mod:`ingest_core.worker.consumer`."""

from ingest_core.worker.consumer import extract, huey, run_consumer, settings

__all__ = ["extract", "huey", "run_consumer", "settings"]
