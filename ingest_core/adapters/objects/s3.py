"""The S3 ``BlobStore``, through obstore.

S3 calls are bounded by obstore's HTTP client deadlines and a short retry
budget: one call gives up after at most about twice ``timeout_s``. Reads are
ranged requests of 1 MiB, so a reader may stay open as long as its consumer
needs; uploads above 5 MiB are multipart with two parts in flight.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from ingest_core.adapters.objects.common import _COPY_CHUNK, LazyExecutor, _os_cause, check_key
from ingest_core.errors import ConfigError, ObjectNotFound, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from ingest_core.spool import Spool

_READ_CHUNK = 1 << 20
# Multipart part size and parts in flight: memory per S3 put stays near 10 MiB.
_PART_SIZE = 5 << 20
_PARTS_IN_FLIGHT = 2
_PROBE_KEY = "health/readiness-probe"
_PARALLEL_PUTS = 16


class S3ObjectStore:
    """Objects in an S3 bucket (or an S3-compatible server) under an optional prefix."""

    def __init__(
        self,
        url: str,
        *,
        endpoint: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        region: str | None = None,
        allow_http: bool = False,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError(f"S3 object store URL must look like s3://bucket/prefix, not {url!r}")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/") or None
        self._uploads = LazyExecutor(_PARALLEL_PUTS, "s3-put")
        config = {
            "endpoint": endpoint,
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "session_token": session_token,
            "region": region,
        }
        try:
            self._store = S3Store(
                self.bucket,
                prefix=self.prefix,
                client_options={
                    "timeout": timedelta(seconds=timeout_s),
                    "connect_timeout": timedelta(seconds=min(timeout_s, connect_timeout_s)),
                    "allow_http": allow_http,
                },
                retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=timeout_s)},
                **{k: v for k, v in config.items() if v is not None},  # type: ignore[arg-type]
            )
        except (ObstoreError, ValueError) as exc:
            raise ConfigError(f"invalid S3 object store configuration for {url!r}") from exc

    @classmethod
    def from_env(
        cls,
        url: str,
        *,
        environ: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
    ) -> S3ObjectStore:
        """Endpoint and credentials from ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` (or
        ``AWS_DEFAULT_REGION``) and ``AWS_ALLOW_HTTP``."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(name) or None

        return cls(
            url,
            endpoint=get("AWS_ENDPOINT_URL"),
            access_key_id=get("AWS_ACCESS_KEY_ID"),
            secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
            session_token=get("AWS_SESSION_TOKEN"),
            region=get("AWS_REGION") or get("AWS_DEFAULT_REGION"),
            allow_http=(get("AWS_ALLOW_HTTP") or "").lower() in ("1", "true", "yes"),
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )

    def put(self, key: str, spool: Spool) -> None:
        with spool.open() as source:
            self.put_file(key, source, spool.size)

    def put_many(self, items: Sequence[tuple[str, Spool]]) -> list[StoreUnavailable | None]:
        """The puts of a batch in parallel (each is a HEAD and a PUT round trip)."""
        if len(items) <= 1:
            return [_put_or_error(self, key, spool) for key, spool in items]
        return list(self._uploads.get().map(lambda item: _put_or_error(self, *item), items))

    def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        check_key(key)
        with _s3_errors("writing", key):
            if self._size_or_none(key) == size:
                return
            body: BinaryIO | Iterator[bytes]
            if source.seekable():
                _check_remaining(source, size, key)
                body = source
            else:
                body = _counted_chunks(source, size, key)
            obstore.put(
                self._store,
                key,
                body,
                chunk_size=_PART_SIZE,
                max_concurrency=_PARTS_IN_FLIGHT,
            )

    def open(self, key: str) -> BinaryIO:
        """A reader that fetches the object in ranged GETs of ``_READ_CHUNK``
        bytes: each request has its own deadline, so a slow consumer (a long
        parse) never outlives one long-running download."""
        check_key(key)
        with _s3_errors("opening", key):
            remote = obstore.open_reader(self._store, key, buffer_size=_READ_CHUNK)
        return io.BufferedReader(_RangeReader(remote, key), buffer_size=_COPY_CHUNK // 16)

    def exists(self, key: str) -> bool:
        check_key(key)
        with _s3_errors("checking", key):
            return self._size_or_none(key) is not None

    def delete(self, key: str) -> None:
        """S3 answers a DELETE of a missing key with success too."""
        check_key(key)
        try:
            with _s3_errors("deleting", key):
                obstore.delete(self._store, key)
        except ObjectNotFound:
            return

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """A LIST of the bucket (under the store's prefix), a thousand keys a call."""
        with _s3_errors("listing", prefix):
            for batch in obstore.list(self._store, prefix=prefix or None):
                for meta in batch:
                    yield str(meta["path"]), meta["last_modified"].timestamp()

    def ping(self) -> None:
        """A HEAD of a fixed empty probe object, written on first use: a HEAD alone
        would also answer not-found for a bucket that does not exist."""
        try:
            self.put_file(_PROBE_KEY, io.BytesIO(b""), 0)
        except ObjectNotFound as exc:
            raise StoreUnavailable(f"S3 object store: bucket {self.bucket} not found") from exc

    def _size_or_none(self, key: str) -> int | None:
        try:
            return int(obstore.head(self._store, key)["size"])
        except (NotFoundError, FileNotFoundError):
            return None


class _RangeReader(io.RawIOBase):
    """A raw reader over obstore's ranged ``ReadableFile``, with errors mapped."""

    def __init__(self, remote: Any, key: str) -> None:
        self._remote = remote
        self._key = key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Moves the next ranged GET (a ``Range`` request of the tenant API)."""
        with _s3_errors("seeking", self._key):
            return int(self._remote.seek(offset, whence))

    def tell(self) -> int:
        return int(self._remote.tell())

    def readinto(self, buffer: Any) -> int:
        with _s3_errors("reading", self._key):
            chunk = self._remote.read(len(buffer))
        count = len(chunk)
        buffer[:count] = memoryview(chunk)
        return count

    def close(self) -> None:
        if not self.closed:
            self._remote.close()
        super().close()


@contextmanager
def _s3_errors(action: str, key: str) -> Iterator[None]:
    """Map obstore's exceptions for one key onto the core's."""
    try:
        yield
    except (StoreUnavailable, ObjectNotFound):
        raise
    except (NotFoundError, FileNotFoundError) as exc:
        raise ObjectNotFound(key) from exc
    except (ObstoreError, OSError) as exc:
        raise StoreUnavailable(
            f"S3 object store: {action} {key} failed ({type(exc).__name__})",
            cause=_s3_cause(exc),
        ) from exc


# What obstore's error text says (its debug form names the HTTP client's error
# kind), and the cause we report for it. "retry_timeout" is in every message.
_S3_CAUSES = (
    ("connectionrefused", "connection refused"),
    ("connection refused", "connection refused"),
    ("dns error", "name not found"),
    ("kind: timeout", "timeout"),
    ("timedout", "timeout"),
    ("kind: connect", "connection lost"),
    ("connection reset", "connection lost"),
    ("connection closed", "connection lost"),
    ("error sending request", "connection lost"),
)


def _s3_cause(exc: BaseException) -> str:
    """The cause phrase of an S3 call's failure: unreachable ones are counted
    by the breaker; an answer the server gave (403, 500 …) is not."""
    if isinstance(exc, OSError):
        return _os_cause(exc)
    text = str(exc).lower()
    for needle, cause in _S3_CAUSES:
        if needle in text:
            return cause
    return "unavailable"


def _put_or_error(store: S3ObjectStore, key: str, spool: Spool) -> StoreUnavailable | None:
    try:
        store.put(key, spool)
    except StoreUnavailable as exc:
        return exc
    except ObjectNotFound:
        return StoreUnavailable(f"S3 object store: bucket {store.bucket} not found")
    return None


def _check_remaining(source: BinaryIO, size: int, key: str) -> None:
    start = source.tell()
    end = source.seek(0, io.SEEK_END)
    source.seek(start)
    if end - start != size:
        raise StoreUnavailable(f"S3 object store: {key} has {end - start} bytes, expected {size}")


def _counted_chunks(source: BinaryIO, size: int, key: str) -> Iterator[bytes]:
    """Chunks of a non-seekable stream; a short or long stream aborts the upload."""
    seen = 0
    while chunk := source.read(_PART_SIZE):
        seen += len(chunk)
        if seen > size:
            break
        yield chunk
    if seen != size:
        raise StoreUnavailable(f"S3 object store: {key} stream size differs from {size}")
