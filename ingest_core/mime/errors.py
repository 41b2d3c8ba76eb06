"""Errors of the MIME manifest; they live in :mod:`ingest_core.errors` with the
others the core catches, and are named here for the package's own modules."""

from __future__ import annotations

from ingest_core.errors import MalformedMessage, ManifestError, ManifestLimitExceeded

__all__ = ["MalformedMessage", "ManifestError", "ManifestLimitExceeded"]
