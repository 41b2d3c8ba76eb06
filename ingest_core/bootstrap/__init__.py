"""Builds the adapters from Settings. The only package that wires."""

from ingest_core.bootstrap.app import (
    PROBE_TIMEOUT_S,
    App,
    Worker,
    api_base_url,
    check_dependencies,
    dispatch_config,
    extraction_config,
    migration_versions,
    open_app,
    open_worker,
    purge_config,
    sweep_config,
    uses_data_dir,
)

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
