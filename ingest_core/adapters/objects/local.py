"""The local-folder ``BlobStore``.

It is written by hand rather than with obstore's ``LocalStore``: that one
renames ``<key>#1`` into place without any fsync, and syncing only after the
rename would leave a window in which a crash keeps a final-named but incomplete
object that a later put takes for the real one. Here the bytes go to a
temporary file in the target folder, which is fsync'd, renamed into place, and
then the folder (and the parent of every folder just created) is fsync'd: a key
only ever names complete, durable bytes.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ingest_core.adapters.objects.common import _COPY_CHUNK, LazyExecutor, _os_cause, check_key
from ingest_core.errors import ObjectNotFound, StoreUnavailable
from ingest_core.group_commit import GroupCommit

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ingest_core.spool import Spool

# The seam through which tests count syncs; the local store calls nothing else.
_fsync = os.fsync

_PARALLEL_WRITES = 8


class LocalObjectStore:
    """Objects as files under ``root``; every put is durable on return."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self._writers = LazyExecutor(_PARALLEL_WRITES, "object-write")
        # Concurrent puts into one folder share its fsync: a folder sync that starts
        # after a rename makes that rename durable, whoever asked for it.
        self._folder_syncs: GroupCommit[Path, None] = GroupCommit(_fsync_dirs)

    def put(self, key: str, spool: Spool) -> None:
        with spool.open() as source:
            self.put_file(key, source, spool.size)

    def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        try:
            for folder in self._write(key, source, size):
                self._folder_syncs.submit(folder)
        except OSError as exc:
            raise StoreUnavailable(
                f"local object store: writing {key} failed ({type(exc).__name__})",
                cause=_os_cause(exc),
            ) from exc

    def put_many(self, items: Sequence[tuple[str, Spool]]) -> list[StoreUnavailable | None]:
        """Each file written and fsync'd, in parallel (the syncs of a batch overlap
        on the disk as those of concurrent writers would), then each folder they
        are in fsync'd once for all of them: N + 1 syncs instead of 2N, in about
        the time of two."""
        if len(items) <= 1:
            written = [self._put_one(key, spool) for key, spool in items]
        else:
            written = list(self._writers.get().map(lambda item: self._put_one(*item), items))
        errors = [error for error, _ in written]
        folders = dict.fromkeys(folder for _, synced in written for folder in synced)
        try:
            _fsync_dirs(list(folders))
        except OSError as exc:
            failed = StoreUnavailable(
                f"local object store: folder sync failed ({type(exc).__name__})",
                cause=_os_cause(exc),
            )
            errors = [error or failed for error in errors]
        return errors

    def _put_one(self, key: str, spool: Spool) -> tuple[StoreUnavailable | None, list[Path]]:
        try:
            with spool.open() as source:
                return None, self._write(key, source, spool.size)
        except StoreUnavailable as exc:
            return exc, []
        except OSError as exc:
            error = StoreUnavailable(
                f"local object store: writing {key} failed ({type(exc).__name__})",
                cause=_os_cause(exc),
            )
            return error, []

    def _write(self, key: str, source: BinaryIO, size: int) -> list[Path]:
        """Write the object durably but for its folder entries; the folders to sync."""
        path = self._path(key)
        if _size_or_none(path) == size:
            return [path.parent]  # already there; its folder entry may predate a failed sync
        created = _make_dirs(path.parent)
        self._write_atomically(path, source, size)
        return list(dict.fromkeys([path.parent, *(made.parent for made in created)]))

    @staticmethod
    def _write_atomically(path: Path, source: BinaryIO, size: int) -> None:
        fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as target:
                written = _copy(source, target)
                if written != size:
                    raise StoreUnavailable(
                        f"local object store: got {written} bytes for {path.name}, expected {size}"
                    )
                target.flush()
                _fsync(target.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def remove_stale_temp_files(self, older_than_s: float) -> int:
        """Delete ``.tmp-*`` files left by writers that died mid-write (kill -9,
        power loss) and are older than ``older_than_s``; returns how many. A live
        write renames its temp file within seconds, so an hour is a safe margin."""
        cutoff = time.time() - older_than_s
        removed = 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not name.startswith(".tmp-"):
                    continue
                path = os.path.join(folder, name)
                try:
                    if os.lstat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StoreUnavailable(
                f"local object store: opening {key} failed ({type(exc).__name__})"
            ) from exc

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except OSError as exc:
            raise StoreUnavailable(f"local object store: checking {key} failed") from exc

    def delete(self, key: str) -> None:
        """Unlink the file and sync its folder, so that the removal is durable."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            if path.parent.is_dir():
                _fsync_dir(path.parent)
        except OSError as exc:
            raise StoreUnavailable(
                f"local object store: deleting {key} failed ({type(exc).__name__})",
                cause=_os_cause(exc),
            ) from exc

    def ping(self) -> None:
        """The root is (or can be made) a folder we can create files in."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".tmp-probe-", dir=self.root)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise StoreUnavailable(
                f"local object store: {type(exc).__name__}", cause=_os_cause(exc)
            ) from exc

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """A walk of the folder under ``prefix``; temp files of writes are left out."""
        base = self.root / prefix if prefix else self.root
        for folder, _subfolders, names in os.walk(base):
            for name in names:
                if name.startswith(".tmp-"):
                    continue
                path = Path(folder) / name
                try:
                    modified = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StoreUnavailable(
                        f"local object store: listing {prefix} failed", cause=_os_cause(exc)
                    ) from exc
                yield path.relative_to(self.root).as_posix(), modified

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p`` that reports which folders it created (their parents need a sync)."""
    missing: list[Path] = []
    probe = folder
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return missing


def _fsync_dirs(folders: Sequence[Path]) -> list[None]:
    """One fsync per distinct folder of a batch."""
    for folder in dict.fromkeys(folders):
        _fsync_dir(folder)
    return [None] * len(folders)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def _copy(source: BinaryIO, target: BinaryIO) -> int:
    written = 0
    while chunk := source.read(_COPY_CHUNK):
        target.write(chunk)
        written += len(chunk)
    return written
