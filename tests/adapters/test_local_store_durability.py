"""Durability of the local-folder store: what is synced, in which order, before
a put returns, for one object (file, folder, new parents), for a batch (one
syncfs before any object takes its name, one fsync per folder after the
renames) and for concurrent puts into one folder (a shared folder sync)."""

from __future__ import annotations

import io
import os
import stat
import time
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.objects import LocalObjectStore, temporary
from ingest_core.adapters.objects import local as local_objects
from ingest_core.errors import StoreUnavailable
from ingest_core.spool import Spool

if TYPE_CHECKING:
    from pathlib import Path


class SyncRecorder:
    """Stands in for os.fsync: remembers what each synced descriptor was."""

    def __init__(self) -> None:
        self.synced: list[tuple[int, bool]] = []  # (inode, is_directory)

    def __call__(self, fd: int) -> None:
        info = os.fstat(fd)
        self.synced.append((info.st_ino, stat.S_ISDIR(info.st_mode)))
        os.fsync(fd)

    def saw_file(self, path: Path) -> bool:
        return (path.stat().st_ino, False) in self.synced

    def saw_dir(self, path: Path) -> bool:
        return (path.stat().st_ino, True) in self.synced


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> SyncRecorder:
    recorder = SyncRecorder()
    monkeypatch.setattr(local_objects, "_fsync", recorder)
    return recorder


def test_local_put_syncs_the_object_its_folder_and_new_parents(tmp_path: Path, syncs) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.put("raw/org-1/abc.eml", Spool.from_bytes(b"message bytes"))

    final = root / "raw/org-1/abc.eml"
    assert final.read_bytes() == b"message bytes"
    assert syncs.saw_file(final)
    for folder in (root / "raw/org-1", root / "raw", root, tmp_path):
        assert syncs.saw_dir(folder), folder  # each holds a new entry
    assert len(syncs.synced) == 5


def test_second_object_in_an_existing_folder_syncs_file_and_folder_only(
    tmp_path: Path, syncs
) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("raw/org-1/a.eml", Spool.from_bytes(b"a"))
    syncs.synced.clear()
    store.put("raw/org-1/b.eml", Spool.from_bytes(b"b"))
    assert syncs.saw_file(tmp_path / "raw/org-1/b.eml")
    assert syncs.saw_dir(tmp_path / "raw/org-1")
    assert len(syncs.synced) == 2


def test_local_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("raw/o/a.eml", Spool.from_bytes(b"a"))
    with pytest.raises(StoreUnavailable):
        store.put_file("raw/o/b.eml", io.BytesIO(b"short"), 10)
    assert sorted(p.name for p in (tmp_path / "raw/o").iterdir()) == ["a.eml"]


def test_existing_object_with_the_right_size_is_not_rewritten(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("raw/o/a.eml", Spool.from_bytes(b"abc"))
    inode = (tmp_path / "raw/o/a.eml").stat().st_ino
    store.put("raw/o/a.eml", Spool.from_bytes(b"abc"))
    assert (tmp_path / "raw/o/a.eml").stat().st_ino == inode


def test_existing_object_with_another_size_is_replaced(tmp_path: Path) -> None:
    """A torn object of the wrong size (e.g. copied in by hand) is repaired."""
    (tmp_path / "raw/o").mkdir(parents=True)
    (tmp_path / "raw/o/a.eml").write_bytes(b"ab")
    LocalObjectStore(tmp_path).put("raw/o/a.eml", Spool.from_bytes(b"abc"))
    assert (tmp_path / "raw/o/a.eml").read_bytes() == b"abc"


class FileSystemSyncs:
    """Stands in for syncfs: what the root folder held (final names and
    temporary files) each time the whole file system was synced."""

    def __init__(self, root: Path, fail: OSError | None = None) -> None:
        self.root = root
        self.fail = fail
        self.seen: list[set[str]] = []

    def __call__(self, fd: int) -> None:
        assert stat.S_ISDIR(os.fstat(fd).st_mode)
        self.seen.append(
            {str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()}
        )
        if self.fail is not None:
            raise self.fail
        os.sync()


def _spools(count: int, prefix: str = "raw/org") -> list[tuple[str, Spool]]:
    return [
        (f"{prefix}/m{n}.eml", Spool.from_bytes(f"message {n}".encode() * (n + 1)))
        for n in range(count)
    ]


def test_a_batch_syncs_the_file_system_once_before_any_object_takes_its_name(
    tmp_path: Path, syncs: SyncRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.put("raw/org/first.eml", Spool.from_bytes(b"0"))  # the folders exist now
    syncs.synced.clear()
    file_system = FileSystemSyncs(root)
    monkeypatch.setattr(local_objects, "_syncfs", file_system)
    items = _spools(5)

    assert store.put_many(items) == [None] * 5

    [seen] = file_system.seen
    temporary = {name for name in seen if name.rsplit("/", 1)[-1].startswith(".tmp-")}
    assert len(temporary) == 5
    assert seen - temporary == {"raw/org/first.eml"}
    for key, spool in items:
        with store.open(key) as stored, spool.open() as sent:
            assert stored.read() == sent.read()
    # no file of the batch fsync'd on its own; its one folder once, after the renames
    assert syncs.synced == [((root / "raw/org").stat().st_ino, True)]
    assert sorted(p.name for p in (root / "raw/org").iterdir()) == sorted(
        ["first.eml", *(key.rsplit("/", 1)[1] for key, _ in items)]
    )


def test_a_batch_into_new_folders_syncs_each_new_entry_once(
    tmp_path: Path, syncs: SyncRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "objects"
    monkeypatch.setattr(local_objects, "_syncfs", FileSystemSyncs(root))
    items = [*_spools(2, "raw/a"), *_spools(2, "raw/b")]
    assert LocalObjectStore(root).put_many(items) == [None] * 4
    expected = {root / "raw/a", root / "raw/b", root / "raw", root, tmp_path}
    assert all(syncs.saw_dir(folder) for folder in expected)
    assert len(syncs.synced) == len(expected)  # each folder once, no file on its own


def test_a_failed_file_system_sync_fails_the_batch_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.put("raw/org/there.eml", Spool.from_bytes(b"there"))
    monkeypatch.setattr(local_objects, "_syncfs", FileSystemSyncs(root, OSError(5, "EIO")))
    items = [("raw/org/there.eml", Spool.from_bytes(b"there")), *_spools(3)]

    errors = store.put_many(items)

    assert errors[0] is None  # already durable, not rewritten
    assert all(isinstance(error, StoreUnavailable) for error in errors[1:])
    assert sorted(p.name for p in (root / "raw/org").iterdir()) == ["there.eml"]


def test_one_bad_object_of_a_batch_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "objects"
    monkeypatch.setattr(local_objects, "_syncfs", FileSystemSyncs(root))
    torn = Spool(size=99, sha256="0" * 64, content_sha256="0" * 64, buffer=b"short")
    items = [*_spools(2), ("raw/org/torn.eml", torn)]

    errors = LocalObjectStore(root).put_many(items)

    assert errors[:2] == [None, None]
    assert isinstance(errors[2], StoreUnavailable)
    assert sorted(p.name for p in (root / "raw/org").iterdir()) == ["m0.eml", "m1.eml"]


def test_without_syncfs_each_file_of_a_batch_is_synced(
    tmp_path: Path, syncs: SyncRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.put("raw/org/first.eml", Spool.from_bytes(b"0"))
    syncs.synced.clear()
    monkeypatch.setattr(local_objects, "_syncfs", None)
    items = _spools(4)
    assert store.put_many(items) == [None] * 4
    for key, _ in items:
        assert syncs.saw_file(root / key)
    assert syncs.saw_dir(root / "raw/org")
    assert len(syncs.synced) == 5


def test_syncfs_is_found_on_linux() -> None:
    if os.uname().sysname != "Linux":
        pytest.skip("syncfs(2) is Linux's")
    assert local_objects._syncfs is not None


def test_concurrent_puts_into_one_folder_share_its_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each put returns only after a folder sync that began after its rename."""
    import threading

    store = LocalObjectStore(tmp_path)
    store.put("raw/org/first.eml", Spool.from_bytes(b"0"))  # the folders exist now
    folder = tmp_path / "raw" / "org"
    lock = threading.Lock()
    folder_syncs: list[set[str]] = []  # the entries each folder sync covered

    def slow_fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            with lock:
                folder_syncs.append(set(os.listdir(folder)))
            time.sleep(0.02)
        os.fsync(fd)

    monkeypatch.setattr(local_objects, "_fsync", slow_fsync)
    names = [f"m{n}.eml" for n in range(24)]
    start = threading.Barrier(len(names))
    returned: dict[str, int] = {}

    def put(name: str) -> None:
        start.wait()
        store.put(f"raw/org/{name}", Spool.from_bytes(name.encode()))
        with lock:
            returned[name] = len(folder_syncs)

    threads = [threading.Thread(target=put, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(returned) == sorted(names)
    assert len(folder_syncs) < len(names)  # syncs were shared
    for name, syncs_before_return in returned.items():
        # some folder sync that had finished when the put returned saw its entry
        assert any(name in seen for seen in folder_syncs[:syncs_before_return]), name


def test_a_folder_removed_behind_the_store_fails_one_put_and_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.put("raw/org/a.eml", Spool.from_bytes(b"a"))  # the store knows raw/org now
    for path in (root / "raw/org").iterdir():
        path.unlink()
    (root / "raw/org").rmdir()

    with pytest.raises(StoreUnavailable):
        store.put("raw/org/b.eml", Spool.from_bytes(b"b"))
    store.put("raw/org/b.eml", Spool.from_bytes(b"b"))
    assert (root / "raw/org/b.eml").read_bytes() == b"b"

    monkeypatch.setattr(local_objects, "_syncfs", FileSystemSyncs(root))
    for path in (root / "raw/org").iterdir():
        path.unlink()
    (root / "raw/org").rmdir()
    first, second = store.put_many(_spools(2))
    assert isinstance(first, StoreUnavailable)
    assert second is None  # the folder is made again for the next object
    assert store.put_many(_spools(2)) == [None, None]
    assert sorted(p.name for p in (root / "raw/org").iterdir()) == ["m0.eml", "m1.eml"]


def test_temporary_files_are_private_and_named_for_the_sweep(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.put("raw/org/a.eml", Spool.from_bytes(b"a"))
    fd, name = temporary.open_temporary(root / "raw/org")
    os.close(fd)
    assert os.path.basename(name).startswith(".tmp-")
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
    assert [key for key, _ in store.list_keys("raw")] == ["raw/org/a.eml"]
    old = time.time() - 7200
    os.utime(name, (old, old))
    assert store.remove_stale_temp_files(3600) == 1
