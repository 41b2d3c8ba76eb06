"""Builds the adapters from Settings. The only package that wires.

``app`` holds the App and what it is asked, ``wiring`` builds it (``open_app``,
``open_worker``), ``configs`` the use cases' parts of the settings, ``checks``
what ``ingest config`` asks of each dependency."""

from ingest_core.bootstrap.app import App
from ingest_core.bootstrap.checks import check_dependencies, migration_versions
from ingest_core.bootstrap.configs import (
    PROBE_TIMEOUT_S,
    api_base_url,
    dispatch_config,
    extraction_config,
    purge_config,
    sweep_config,
    uses_data_dir,
)
from ingest_core.bootstrap.wiring import Worker, open_app, open_worker

__all__ = [
    "PROBE_TIMEOUT_S",
    "App",
    "Worker",
    "api_base_url",
    "check_dependencies",
    "dispatch_config",
    "extraction_config",
    "migration_versions",
    "open_app",
    "open_worker",
    "purge_config",
    "sweep_config",
    "uses_data_dir",
]
