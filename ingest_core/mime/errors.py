"""Errors of the MIME manifest. All are permanent for the message concerned:
the same bytes fail the same way on every attempt, so the caller marks it FAILED."""

from __future__ import annotations

from ingest_core.errors import IngestError


class ManifestError(IngestError):
    """The message cannot be turned into a manifest."""


class ManifestLimitExceeded(ManifestError):
    """A limit (parts, nesting, decoded bytes, header size) was exceeded."""


class MalformedMessage(ManifestError):
    """The message is broken beyond what lenient parsing repairs."""
