"""Adapter-specific behaviour of the object stores: streaming of large objects,
key and size checks, URL parsing, S3 deadlines, stale temporary files (the
local store's durability: test_local_store_durability.py)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
import tracemalloc
from typing import TYPE_CHECKING

import pytest

from ingest_core.adapters.objects import LocalObjectStore, S3ObjectStore, object_store_from_url
from ingest_core.errors import ConfigError, StoreUnavailable
from ingest_core.spool import Spool, SpoolWriter

if TYPE_CHECKING:
    from pathlib import Path

    from ingest_core.ports import BlobStore

MIB = 1 << 20


@pytest.fixture(params=["local", "s3"])
def real_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return S3ObjectStore.from_env(
        request.getfixturevalue("s3_bucket_url"),
        environ=request.getfixturevalue("moto_env"),
        timeout_s=60.0,
    )


@pytest.mark.parametrize("key", ["../escape", "/abs/key", "a//b", "a/./b", "a/../b", "", "a\\b",
                                 "raw/.tmp-x", "a b", "ключ"])  # fmt: skip
def test_invalid_keys_are_refused(real_store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        real_store.put(key, Spool.from_bytes(b"x"))


def test_size_mismatch_is_refused(real_store: BlobStore) -> None:
    with pytest.raises(StoreUnavailable):
        real_store.put_file("att/o/x", io.BytesIO(b"12345"), 4)
    assert not real_store.exists("att/o/x")


class OneWayStream(io.RawIOBase):
    """A non-seekable source, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_non_seekable_source(real_store: BlobStore) -> None:
    data = os.urandom(100_000)
    real_store.put_file("att/o/pipe", io.BufferedReader(OneWayStream(data)), len(data))
    with real_store.open("att/o/pipe") as reader:
        assert reader.read() == data


def test_non_seekable_source_of_the_wrong_size(real_store: BlobStore) -> None:
    with pytest.raises(StoreUnavailable):
        real_store.put_file("att/o/pipe", io.BufferedReader(OneWayStream(b"x" * 10)), 11)
    assert not real_store.exists("att/o/pipe")


def _large_spool(size: int) -> tuple[Spool, str]:
    """A spilled spool of pseudo-random bytes, built without holding them in memory."""
    writer = SpoolWriter(threshold=MIB)
    digest = hashlib.sha256()
    block = hashlib.sha256(b"0").digest() * (MIB // 32)
    for index in range(size // MIB):
        chunk = block[index % 32 :] + block[: index % 32]
        writer.write(chunk)
        digest.update(chunk)
    return writer.finish(), digest.hexdigest()


@pytest.mark.slow
def test_50_mb_object_streams_both_ways(real_store: BlobStore) -> None:
    spool, expected = _large_spool(50 * MIB)
    try:
        assert not spool.in_memory
        tracemalloc.start()
        real_store.put("raw/o/large.eml", spool)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        size = 0
        with real_store.open("raw/o/large.eml") as reader:
            while chunk := reader.read(MIB):
                digest.update(chunk)
                size += len(chunk)
        _, get_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        spool.discard()
    assert (size, digest.hexdigest()) == (50 * MIB, expected)
    # Python-side buffers stay far below the object's size in both directions.
    assert put_peak < 16 * MIB, put_peak
    assert get_peak < 16 * MIB, get_peak


def test_object_store_from_url(tmp_path: Path, moto_env) -> None:
    default = object_store_from_url(None, tmp_path / "objects")
    assert isinstance(default, LocalObjectStore)
    assert default.root == tmp_path / "objects"
    explicit = object_store_from_url(f"file://{tmp_path}/elsewhere", tmp_path)
    assert isinstance(explicit, LocalObjectStore)
    assert explicit.root == tmp_path / "elsewhere"
    s3 = object_store_from_url("s3://bucket/some/prefix", tmp_path, environ=moto_env)
    assert isinstance(s3, S3ObjectStore)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")


@pytest.mark.parametrize("url", ["file://./var/objects", "file://host/x", "gs://b", "s3://"])
def test_object_store_from_url_refuses(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        object_store_from_url(url, tmp_path, environ={})


def test_s3_prefix_keeps_objects_apart(s3_bucket_url: str, moto_env) -> None:
    plain = S3ObjectStore.from_env(s3_bucket_url, environ=moto_env)
    prefixed = S3ObjectStore.from_env(f"{s3_bucket_url}/tenant-data", environ=moto_env)
    prefixed.put("raw/o/a.eml", Spool.from_bytes(b"under a prefix"))
    assert not plain.exists("raw/o/a.eml")
    with plain.open("tenant-data/raw/o/a.eml") as reader:
        assert reader.read() == b"under a prefix"


@pytest.mark.timeout(60)
def test_silent_s3_endpoint_gives_up_within_the_deadline() -> None:
    """An endpoint that accepts connections and never answers: the client
    deadline ends every call (the pytest timeout is the bound)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        store = S3ObjectStore(
            "s3://bucket",
            endpoint=f"http://127.0.0.1:{listener.getsockname()[1]}",
            access_key_id="x",
            secret_access_key="y",
            region="us-east-1",
            allow_http=True,
            timeout_s=1.0,
        )
        with pytest.raises(StoreUnavailable):
            store.put("raw/o/a.eml", Spool.from_bytes(b"x"))
        with pytest.raises(StoreUnavailable):
            store.open("raw/o/a.eml")
        with pytest.raises(StoreUnavailable):
            store.exists("raw/o/a.eml")


def test_slow_reader_outlives_the_request_deadline(s3_bucket_url: str, moto_env) -> None:
    """A consumer that pauses longer than one request's deadline still reads the
    whole object: each ranged request has its own deadline, none spans the read."""
    store = S3ObjectStore.from_env(s3_bucket_url, environ=moto_env, timeout_s=2.0)
    data = os.urandom(3 * MIB)
    store.put("raw/o/slow.eml", Spool.from_bytes(data))
    with store.open("raw/o/slow.eml") as reader:
        head = reader.read(1000)
        time.sleep(2.5)  # longer than timeout_s
        rest = reader.read()
    assert head + rest == data


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    from ingest_core.adapters.objects import LocalObjectStore
    from ingest_core.spool import Spool

    store = LocalObjectStore(tmp_path / "objects")
    store.put("raw/org/abc.eml", Spool.from_bytes(b"kept"))
    folder = tmp_path / "objects" / "raw" / "org"
    old, fresh = folder / ".tmp-dead", folder / ".tmp-writing"
    old.write_bytes(b"half a message")
    fresh.write_bytes(b"being written")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert store.remove_stale_temp_files(older_than_s=3600) == 1
    assert not old.exists()
    assert fresh.exists()  # a live write is left alone
    with store.open("raw/org/abc.eml") as kept:
        assert kept.read() == b"kept"
