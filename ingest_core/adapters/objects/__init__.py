"""``BlobStore`` adapters: a local folder (``local``), and S3 through obstore
(``s3``); ``object_store_from_url`` picks one from the configured URL.

Keys are ours (``raw/<org>/<sha256>.eml``, content addressed), never sender
text, so a put of an existing key whose size matches is a no-op.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ingest_core.adapters.objects.common import check_key
from ingest_core.adapters.objects.local import LocalObjectStore
from ingest_core.adapters.objects.s3 import S3ObjectStore
from ingest_core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["LocalObjectStore", "S3ObjectStore", "check_key", "object_store_from_url"]


def object_store_from_url(
    url: str | None,
    default_root: Path,
    *,
    timeout_s: float = 60.0,
    connect_timeout_s: float = 5.0,
    environ: Mapping[str, str] | None = None,
) -> LocalObjectStore | S3ObjectStore:
    """``None`` → the folder ``default_root``; ``file:///abs/path``; ``s3://bucket/prefix``
    (endpoint and credentials from ``AWS_*`` in ``environ``, default os.environ)."""
    if url is None:
        return LocalObjectStore(default_root)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"object store URL must be file:///absolute/path, not {url!r}")
        return LocalObjectStore(Path(parts.path))
    if parts.scheme == "s3":
        return S3ObjectStore.from_env(
            url, environ=environ, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s
        )
    raise ConfigError(f"unsupported object store URL {url!r}: use file:///… or s3://bucket/…")
