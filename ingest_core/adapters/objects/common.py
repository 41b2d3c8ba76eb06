"""What both object stores share: the key check, the chunk size of copies,
the worker pools they make on first use, and the cause phrases of OS errors."""

from __future__ import annotations

import errno
import re
import threading
from concurrent.futures import ThreadPoolExecutor

_COPY_CHUNK = 1 << 20


class LazyExecutor:
    """A thread pool made on first use (a store that never writes a batch starts
    no threads); shared by every caller of its store."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
            return self._pool


_KEY = re.compile(r"[A-Za-z0-9._=-]+(?:/[A-Za-z0-9._=-]+)*")


def check_key(key: str) -> str:
    """Refuse keys that could leave the store's root or collide with temp files."""
    if not _KEY.fullmatch(key) or any(
        part in (".", "..") or part.startswith(".tmp-") for part in key.split("/")
    ):
        raise ValueError(f"invalid object key {key!r}")
    return key


def _os_cause(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection lost"
    return _FOLDER_CAUSES.get(exc.errno or 0, "unavailable")


_FOLDER_CAUSES = {
    errno.ENOTDIR: "not a folder",
    errno.EEXIST: "not a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "no space left",
}
