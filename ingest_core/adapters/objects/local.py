"""The local-folder ``BlobStore``.

It is written by hand rather than with obstore's ``LocalStore``: that one
renames ``<key>#1`` into place without any fsync, and syncing only after the
rename would leave a window in which a crash keeps a final-named but incomplete
object that a later put takes for the real one. Here the bytes go to a
temporary file in the target folder, which is fsync'd, renamed into place, and
then the folder (and the parent of every folder just created) is fsync'd: a key
only ever names complete, durable bytes.

A batch (``put_many``) keeps that order with fewer syncs: every object's bytes
go to their temporary files, one ``syncfs`` makes all of them durable, then
they are renamed into place and each folder is fsync'd once. Where libc has no
``syncfs`` (not Linux), each file of a batch is fsync'd, in parallel.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ingest_core.adapters.objects.common import LazyExecutor, _os_cause, check_key
from ingest_core.adapters.objects.temporary import copy_to, open_temporary
from ingest_core.errors import ObjectNotFound, StoreUnavailable
from ingest_core.group_commit import GroupCommit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ingest_core.spool import Spool

# The seams through which tests count syncs; the local store calls nothing else.
_fsync = os.fsync


def _load_syncfs() -> Callable[[int], None] | None:
    """syncfs(2) from libc (ctypes drops the GIL around the call), or None."""
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if function(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return syncfs


_syncfs = _load_syncfs()

_PARALLEL_WRITES = 8
_KNOWN_FOLDERS = 4096  # folders remembered as existing (a tenant's day each)


class LocalObjectStore:
    """Objects as files under ``root``; every put is durable on return."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self._writers = LazyExecutor(_PARALLEL_WRITES, "object-write")
        # Concurrent puts into one folder share its fsync: a folder sync that starts
        # after a rename makes that rename durable, whoever asked for it.
        self._folder_syncs: GroupCommit[Path, None] = GroupCommit(_fsync_dirs)
        # Folders this store made or found: a put into one of them skips the
        # check (a system call each). One removed behind our back fails a put
        # once (its temporary file cannot be created) and is forgotten.
        self._folders: set[Path] = set()

    def put(self, key: str, spool: Spool) -> None:
        with spool.open() as source:
            self.put_file(key, source, spool.size)

    def put_file(self, key: str, source: BinaryIO, size: int) -> None:
        try:
            for folder in self._write(key, source, size):
                self._folder_syncs.submit(folder)
        except OSError as exc:
            raise _failure(f"writing {key} failed", exc) from exc

    def put_many(self, items: Sequence[tuple[str, Spool]]) -> list[StoreUnavailable | None]:
        """Each object durable on return, or its error. Two or more: the bytes of
        all to temporary files, one ``syncfs``, the renames, then one fsync per
        folder (instead of two syncs per object)."""
        if len(items) <= 1:
            return self._put_each(items)
        if _syncfs is None:
            return self._put_each(items, parallel=True)
        return self._put_batch(items, _syncfs)

    def _put_each(
        self, items: Sequence[tuple[str, Spool]], *, parallel: bool = False
    ) -> list[StoreUnavailable | None]:
        """Each file written and fsync'd (in parallel: the syncs overlap on the
        disk as those of concurrent writers would), then each folder once."""
        if parallel:
            written = list(self._writers.get().map(lambda item: self._put_one(*item), items))
        else:
            written = [self._put_one(key, spool) for key, spool in items]
        errors = [error for error, _ in written]
        folders = dict.fromkeys(folder for _, synced in written for folder in synced)
        return _sync_folders(list(folders), errors)

    def _put_batch(
        self, items: Sequence[tuple[str, Spool]], syncfs: Callable[[int], None]
    ) -> list[StoreUnavailable | None]:
        errors: list[StoreUnavailable | None] = [None] * len(items)
        staged: list[tuple[int, str, Path]] = []  # (item, temporary file, final path)
        folders: dict[Path, None] = {}
        # A folder of the file system, opened before the first write: syncfs
        # reports the write-back errors on the file system since it was opened.
        anchor: int | None = None
        try:
            for index, (key, spool) in enumerate(items):
                try:
                    path, to_sync, needed = self._prepare(key, spool.size)
                    folders.update(dict.fromkeys(to_sync))
                    if not needed:
                        continue
                    if anchor is None:
                        anchor = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
                    with spool.open() as source:
                        temp = self._write_temporary(path, source, spool.size, sync=False)
                except StoreUnavailable as exc:
                    errors[index] = exc
                    continue
                except OSError as exc:
                    if isinstance(exc, FileNotFoundError):
                        self._folders.discard(self._path(key).parent)
                    errors[index] = _failure(f"writing {key} failed", exc)
                    continue
                staged.append((index, temp, path))
            if staged and anchor is not None:
                self._commit(staged, errors, partial(syncfs, anchor))
        finally:
            if anchor is not None:
                os.close(anchor)
        return _sync_folders(list(folders), errors)

    @staticmethod
    def _commit(
        staged: list[tuple[int, str, Path]],
        errors: list[StoreUnavailable | None],
        sync: Callable[[], None],
    ) -> None:
        """Make the staged bytes durable, then rename them into place."""
        try:
            sync()
        except OSError as exc:
            failed = _failure("file system sync failed", exc)
            for index, temp, _ in staged:
                errors[index] = failed
                Path(temp).unlink(missing_ok=True)
            return
        for index, temp, path in staged:
            try:
                os.replace(temp, path)
            except OSError as exc:
                errors[index] = _failure(f"renaming {path.name} failed", exc)
                Path(temp).unlink(missing_ok=True)

    def _put_one(self, key: str, spool: Spool) -> tuple[StoreUnavailable | None, list[Path]]:
        try:
            with spool.open() as source:
                return None, self._write(key, source, spool.size)
        except StoreUnavailable as exc:
            return exc, []
        except OSError as exc:
            return _failure(f"writing {key} failed", exc), []

    def _write(self, key: str, source: BinaryIO, size: int) -> list[Path]:
        """Write the object durably but for its folder entries; the folders to sync."""
        path, folders, needed = self._prepare(key, size)
        if needed:
            self._write_atomically(path, source, size)
        return folders

    def _prepare(self, key: str, size: int) -> tuple[Path, list[Path], bool]:
        """The object's path, the folders whose entries its put must sync, and
        whether it must be written (not when it is there with its size; its
        folder entry may still predate a failed sync). Makes missing folders."""
        path = self._path(key)
        folder = path.parent
        if _size_or_none(path) == size:
            return path, [folder], False
        if folder in self._folders:
            return path, [folder], True
        created = _make_dirs(folder)
        if len(self._folders) >= _KNOWN_FOLDERS:
            self._folders.clear()
        self._folders.add(folder)
        return path, list(dict.fromkeys([folder, *(m.parent for m in created)])), True

    def _write_temporary(self, path: Path, source: BinaryIO, size: int, *, sync: bool) -> str:
        try:
            return _write_temporary(path, source, size, sync=sync)
        except FileNotFoundError:
            self._folders.discard(path.parent)  # removed since: made again next time
            raise

    def _write_atomically(self, path: Path, source: BinaryIO, size: int) -> None:
        temp_name = self._write_temporary(path, source, size, sync=True)
        try:
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


def _write_temporary(path: Path, source: BinaryIO, size: int, *, sync: bool) -> str:
    """``size`` bytes from ``source`` in a new temporary file beside ``path``
    (fsync'd if ``sync``; written as ``temporary`` says); its name. Nothing is
    left behind on failure."""
    fd, temp_name = open_temporary(path.parent)
    try:
        try:
            written = copy_to(source, fd)
            if written != size:
                raise StoreUnavailable(
                    f"local object store: got {written} bytes for {path.name}, expected {size}"
                )
            if sync:
                _fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return temp_name


def _failure(what: str, exc: OSError) -> StoreUnavailable:
    return StoreUnavailable(
        f"local object store: {what} ({type(exc).__name__})", cause=_os_cause(exc)
    )


def _sync_folders(
    folders: list[Path], errors: list[StoreUnavailable | None]
) -> list[StoreUnavailable | None]:
    """Each folder fsync'd once; if one fails, every object still standing fails with it."""
    try:
        _fsync_dirs(folders)
    except OSError as exc:
        failed = _failure("folder sync failed", exc)
        return [error or failed for error in errors]
    return errors


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
