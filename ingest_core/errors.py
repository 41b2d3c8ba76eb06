"""The core's own exceptions. Adapters map third-party errors onto these."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uuid


class IngestError(Exception):
    """Base of every error the core raises on purpose."""


class Unavailable(IngestError):
    """A dependency could not be used. Temporary.

    ``cause`` is a fixed phrase for why, for readiness and logs: one of
    ``UNREACHABLE_CAUSES`` when the dependency could not be reached (the
    breaker counts those), else ``"unavailable"``. Never the dependency's or a
    sender's text."""

    def __init__(self, message: str = "", *, cause: str = "unavailable") -> None:
        super().__init__(message)
        self.cause = cause

    @property
    def unreachable(self) -> bool:
        return self.cause in UNREACHABLE_CAUSES


UNREACHABLE_CAUSES = frozenset(
    {"connection refused", "no such file", "name not found", "timeout", "connection lost"}
)


class DirectoryUnavailable(Unavailable):
    """The tenant directory (database) could not be asked. Temporary."""


class StoreUnavailable(Unavailable):
    """An object store, database or queue call failed or timed out. Temporary."""


class RecordRejected(StoreUnavailable):
    """The database refused the data of a batch (not its availability): one item
    may be to blame, so group commit retries each on its own."""


class QueueUnavailable(StoreUnavailable):
    """The job queue could not take a job. The message is durable regardless."""


class ObjectNotFound(IngestError):
    """A stored object that should exist does not. Permanent for that message."""


class ConfigError(IngestError):
    """The environment does not describe a runnable configuration."""


class TenantError(IngestError):
    """An administration request that cannot be carried out as asked."""


class UnknownTenant(TenantError):
    """No tenant has the slug an operator command named."""


class ExportError(IngestError):
    """The export file cannot be written as asked."""


class DnsTemporaryError(IngestError):
    """A DNS lookup timed out or every server failed: the answer is unknown, not
    empty. Sender authentication turns it into a temperror verdict."""


class RetryLater(IngestError):
    """Extraction hit a temporary failure; run the task again after ``delay_s``."""

    def __init__(
        self, message_id: uuid.UUID, attempts: int, reason: str, *, delay_s: float
    ) -> None:
        super().__init__(f"extraction of {message_id} to be retried: {reason}")
        self.message_id = message_id
        self.attempts = attempts
        self.delay_s = delay_s


class CircuitOpen(IngestError):
    """Raised instead of calling a dependency its breaker holds as unreachable
    (``ingest_core.breaker``); adapters turn it into their Unavailable error."""

    def __init__(self, name: str, cause: str) -> None:
        super().__init__(f"{name} unavailable ({cause}; not retried until the breaker's probe)")
        self.name = name
        self.cause = cause


class ManifestError(IngestError):
    """The message cannot be turned into a manifest (``ingest_core.mime``). Permanent
    for the message concerned: the same bytes fail the same way on every attempt,
    so extraction marks it FAILED."""


class ManifestLimitExceeded(ManifestError):
    """A limit (parts, nesting, decoded bytes, header size) was exceeded."""


class MalformedMessage(ManifestError):
    """The message is broken beyond what lenient parsing repairs."""
