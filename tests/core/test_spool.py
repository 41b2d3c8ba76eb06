"""Spool: exact bytes, sha256 and the trace-insensitive content hash."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from ingest_core.spool import Spool, SpoolWriter

BODY = b"Message-ID: <a@b>\r\nSubject: PO 1\r\n\r\nHello\r\n"
TRACE = (
    b"Received: from mx.example.com (mx [192.0.2.1])\r\n\tby edge; Mon, 1 Jan 2024\r\n"
    b"Return-Path: <x@example.com>\r\n"
    b"ARC-Seal: i=1; cv=none\r\n"
    b"Authentication-Results: edge; spf=pass\r\n"
)


def write_in_pieces(data: bytes, cuts: list[int], threshold: int = 1 << 20) -> Spool:
    writer = SpoolWriter(threshold=threshold)
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        writer.write(data[start:cut])
        start = max(start, cut)
    writer.write(data[start:])
    return writer.finish()


def test_sha256_is_of_exact_bytes_and_content_hash_skips_leading_trace() -> None:
    spool = Spool.from_bytes(TRACE + BODY)
    assert spool.sha256 == hashlib.sha256(TRACE + BODY).hexdigest()
    assert spool.content_sha256 == hashlib.sha256(BODY).hexdigest()
    assert spool.size == len(TRACE + BODY)
    with spool.open() as f:
        assert f.read() == TRACE + BODY


def test_trace_fields_after_the_first_other_field_are_content() -> None:
    data = b"Subject: x\r\nReceived: later\r\n\r\nbody"
    assert Spool.from_bytes(data).content_sha256 == hashlib.sha256(data).hexdigest()


def test_a_new_received_line_does_not_change_the_content_hash() -> None:
    first = Spool.from_bytes(b"Received: by a\r\n" + BODY)
    second = Spool.from_bytes(b"Received: by b\r\nReceived: by a\r\n" + BODY)
    assert first.content_sha256 == second.content_sha256
    assert first.sha256 != second.sha256


def test_different_content_gives_different_hash() -> None:
    assert (
        Spool.from_bytes(TRACE + BODY).content_sha256
        != Spool.from_bytes(TRACE + BODY + b"x").content_sha256
    )


def test_spills_to_a_file_past_the_threshold() -> None:
    data = b"Subject: big\r\n\r\n" + b"x" * 10_000
    spool = write_in_pieces(data, [5, 100, 5000], threshold=1000)
    assert not spool.in_memory
    with spool.open() as f:
        assert f.read() == data
    spool.discard()


@given(
    st.lists(
        st.sampled_from(
            [b"Received: a\r\n", b" cont\r\n", b"ARC-x: 1\r\n", b"Return-Path: <>\r\n"]
        ),
        max_size=6,
    ),
    st.binary(max_size=300),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    st.integers(min_value=1, max_value=200),
)
def test_hashes_do_not_depend_on_how_bytes_are_split(
    trace: list[bytes], rest: bytes, cuts: list[int], threshold: int
) -> None:
    data = b"".join(trace) + rest
    whole = Spool.from_bytes(data)
    pieces = write_in_pieces(data, cuts, threshold)
    assert (pieces.sha256, pieces.content_sha256, pieces.size) == (
        whole.sha256,
        whole.content_sha256,
        whole.size,
    )
    with pieces.open() as f:
        assert f.read() == data
    pieces.discard()
