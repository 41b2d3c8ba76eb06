"""One BlobStore contract for the fake, the local folder and S3 (a real moto_server)."""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.memory import MemoryBlobStore
from ingest_core.adapters.objects import LocalObjectStore, S3ObjectStore
from ingest_core.errors import ObjectNotFound, StoreUnavailable
from ingest_core.spool import Spool, SpoolWriter

if TYPE_CHECKING:
    from pathlib import Path

    from ingest_core.ports import BlobStore

KINDS = ["memory", "local", "s3"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return S3ObjectStore.from_env(
        request.getfixturevalue("s3_bucket_url"),
        environ=request.getfixturevalue("moto_env"),
        timeout_s=30.0,
    )


@pytest.fixture(params=KINDS)
def broken_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A store whose backend cannot be reached."""
    if request.param == "memory":
        fake = MemoryBlobStore()
        fake.failing = True
        return fake
    if request.param == "local":
        blocker = tmp_path / "objects"
        blocker.write_bytes(b"a file where the root folder should be")
        return LocalObjectStore(blocker)
    return S3ObjectStore(
        "s3://nowhere",
        endpoint=f"http://127.0.0.1:{request.getfixturevalue('closed_port')}",
        access_key_id="x",
        secret_access_key="y",
        region="us-east-1",
        allow_http=True,
        timeout_s=5.0,
    )


def spool_of(data: bytes, *, on_disk: bool = False) -> Spool:
    writer = SpoolWriter(threshold=16 if on_disk else len(data) + 1)
    for start in range(0, len(data), 65536):
        writer.write(data[start : start + 65536])
    spool = writer.finish()
    assert spool.in_memory is not on_disk
    return spool


def read_in_small_pieces(store: BlobStore, key: str) -> bytes:
    parts = []
    with store.open(key) as reader:
        while piece := reader.read(1000):
            assert len(piece) <= 1000
            parts.append(piece)
    return b"".join(parts)


def test_put_then_open_returns_the_exact_bytes(store: BlobStore) -> None:
    data = b"Received: by mx\r\nSubject: PO\r\n\r\nbody \x00\xff bytes\r\n.\r\n" * 50
    store.put("raw/org-1/aaa.eml", spool_of(data))
    assert store.exists("raw/org-1/aaa.eml")
    assert read_in_small_pieces(store, "raw/org-1/aaa.eml") == data


def test_spilled_multi_part_spool_round_trips(store: BlobStore) -> None:
    """Above 5 MiB: a temp-file spool, and a multipart upload on S3."""
    data = hashlib.sha256(b"seed").digest() * (6 * 1024 * 1024 // 32 + 7)
    spool = spool_of(data, on_disk=True)
    try:
        store.put("raw/org-1/big.eml", spool)
    finally:
        spool.discard()
    assert read_in_small_pieces(store, "raw/org-1/big.eml") == data


def test_put_file_with_a_stream_of_known_size(store: BlobStore) -> None:
    store.put_file("att/org-1/x", io.BytesIO(b"%PDF-1.7 ..."), 12)
    with store.open("att/org-1/x") as reader:
        assert reader.read() == b"%PDF-1.7 ..."


def test_putting_an_existing_key_again_keeps_the_content(store: BlobStore) -> None:
    store.put("raw/org-1/k.eml", Spool.from_bytes(b"same bytes"))
    store.put("raw/org-1/k.eml", Spool.from_bytes(b"same bytes"))
    with store.open("raw/org-1/k.eml") as reader:
        assert reader.read() == b"same bytes"


def test_empty_object(store: BlobStore) -> None:
    store.put("raw/org-1/empty.eml", Spool.from_bytes(b""))
    assert store.exists("raw/org-1/empty.eml")
    with store.open("raw/org-1/empty.eml") as reader:
        assert reader.read() == b""


def test_missing_key(store: BlobStore) -> None:
    assert not store.exists("raw/org-1/missing.eml")
    with pytest.raises(ObjectNotFound):
        store.open("raw/org-1/missing.eml")


def test_keys_are_separate(store: BlobStore) -> None:
    store.put("raw/a/1.eml", Spool.from_bytes(b"one"))
    store.put("raw/b/1.eml", Spool.from_bytes(b"two"))
    with store.open("raw/a/1.eml") as one, store.open("raw/b/1.eml") as two:
        assert (one.read(), two.read()) == (b"one", b"two")
    assert not store.exists("raw/a")


def test_delete_removes_only_that_key_and_is_idempotent(store: BlobStore) -> None:
    store.put("attachments/a/1", Spool.from_bytes(b"one"))
    store.put("attachments/a/2", Spool.from_bytes(b"two"))
    store.delete("attachments/a/1")
    assert not store.exists("attachments/a/1")
    with pytest.raises(ObjectNotFound):
        store.open("attachments/a/1")
    store.delete("attachments/a/1")  # already gone: no error
    store.delete("attachments/never/there")
    with store.open("attachments/a/2") as reader:
        assert reader.read() == b"two"
    store.put("attachments/a/1", Spool.from_bytes(b"one"))  # the key can be written again
    assert store.exists("attachments/a/1")


def test_unreachable_backend_is_store_unavailable(broken_store: BlobStore) -> None:
    with pytest.raises(StoreUnavailable):
        broken_store.put("raw/org-1/x.eml", Spool.from_bytes(b"data"))
    with pytest.raises(StoreUnavailable):
        broken_store.open("raw/org-1/x.eml")
    with pytest.raises(StoreUnavailable):
        broken_store.delete("raw/org-1/x.eml")
