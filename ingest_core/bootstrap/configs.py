"""The use cases' and adapters' parts of the settings: small builders over Settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest_core import operations
from ingest_core.breaker import Breaker
from ingest_core.extraction import ExtractionConfig
from ingest_core.lifecycle import PurgeConfig
from ingest_core.mime import MimeLimits
from ingest_core.webhooks import DispatchConfig

if TYPE_CHECKING:
    from ingest_core.settings import Settings

# Readiness and metrics reads wait at most this long for a pooled connection and
# their statement; the HTTP endpoint gives each its own, shorter, deadline too.
PROBE_TIMEOUT_S = 5.0


def extraction_config(settings: Settings) -> ExtractionConfig:
    """The extraction use case's part of the settings."""
    return ExtractionConfig(
        limits=MimeLimits(
            max_parts=settings.extract_max_parts,
            max_depth=settings.extract_max_depth,
            max_decoded_bytes=settings.extract_max_decoded_bytes,
            max_lines=settings.extract_max_lines,
        ),
        retries=settings.extract_retries,
        claim_lease_s=settings.claim_lease_s,
        spool_dir=settings.spool_dir,
    )


def api_base_url(settings: Settings) -> str:
    """The base of the tenant API's absolute URLs (payloads of events, the API's own)."""
    return (settings.api_public_url or f"http://{settings.api_listen}").rstrip("/")


def purge_config(settings: Settings) -> PurgeConfig:
    """The retention run's part of the settings."""
    return PurgeConfig(
        default_days=settings.retention_days,
        batch=settings.purge_batch,
        refuse_s=settings.purge_grace_s,
    )


def dispatch_config(settings: Settings) -> DispatchConfig:
    """The webhook dispatcher's part of the settings: private addresses only when
    allowed, and https in production unless private addresses are allowed."""
    return DispatchConfig(
        allow_private=settings.webhook_allow_private,
        require_https=settings.production and not settings.webhook_allow_private,
    )


def sweep_config(settings: Settings) -> operations.SweepConfig:
    """The sweep's part of the settings."""
    return operations.SweepConfig(
        received_age_s=settings.sweep_age_s, claim_lease_s=settings.claim_lease_s
    )


def breaker(name: str, settings: Settings) -> Breaker:
    """One per dependency and process, shared by every caller (LMTP, the milter's
    recipient checks, readiness): docs/throughput.md, "Outages"."""
    return Breaker(name, failures=settings.breaker_failures, reset_s=settings.breaker_reset_s)


def uses_data_dir(settings: Settings) -> bool:
    """Whether a default keeps data under ``INGEST_DATA_DIR`` (embedded database,
    object folder, SQLite queue)."""
    return None in (settings.database_url, settings.object_store_url, settings.queue_url)
