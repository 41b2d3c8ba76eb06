"""MIME: from a stored raw message to the manifest of its attachments.

One entrance for the rest of the code; the modules behind it are
``manifest`` (walk the tree, decide what is an attachment), ``scan`` (the
parser with its limits), ``decode`` (transfer encodings, streamed),
``filenames`` (display names, never used for storage), ``tnef`` (winmail.dat)
and ``errors``.
"""

from ingest_core.mime.entries import ExtractedFile, ManifestEntry, MimeLimits, attachment_key
from ingest_core.mime.errors import MalformedMessage, ManifestError, ManifestLimitExceeded
from ingest_core.mime.manifest import (
    Manifest,
    ParsedMessage,
    build_manifest,
    iter_attachments,
    parse_message,
)

__all__ = [
    "ExtractedFile",
    "MalformedMessage",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "ManifestLimitExceeded",
    "MimeLimits",
    "ParsedMessage",
    "attachment_key",
    "build_manifest",
    "iter_attachments",
    "parse_message",
]
