"""Hostile input: limits hold while feeding, memory stays bounded, nothing escapes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import struct
import tracemalloc

import pytest

from ingest_core.mime import (
    ManifestLimitExceeded,
    MimeLimits,
    build_manifest,
    iter_attachments,
    parse_message,
)
from ingest_core.mime import decode as mime_decode
from ingest_core.mime import tnef as mime_tnef


class CountingReader(io.BytesIO):
    """Counts what the parser actually pulled from the source."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data


def _many_parts(count: int) -> bytes:
    part = b"--b\nContent-Type: text/plain\n\nx\n"
    return b'Content-Type: multipart/mixed; boundary="b"\n\n' + part * count + b"--b--\n"


def test_a_thousand_levels_of_rfc822_stop_at_the_depth_limit():
    raw = b"Content-Type: message/rfc822\n\n" * 1000 + b"Subject: bottom\n\nhi\n"
    source = CountingReader(raw)
    with pytest.raises(ManifestLimitExceeded, match="nesting too deep"):
        parse_message(source, MimeLimits(max_depth=10), chunk_size=1024)
    assert source.consumed < len(raw)


def test_a_thousand_levels_of_multipart_stop_at_the_depth_limit():
    raw = b"".join(
        b'Content-Type: multipart/mixed; boundary="l%d"\n\n--l%d\n' % (i, i) for i in range(1000)
    )
    with pytest.raises(ManifestLimitExceeded, match="nesting too deep"):
        parse_message(io.BytesIO(raw), MimeLimits(max_depth=10))


def test_deep_nesting_beyond_the_scanner_ends_as_a_limit_not_a_recursion_error():
    """Even with the scanner's depth limit out of the way, the parser's own
    RecursionError is mapped to the limit error."""
    raw = b"Content-Type: message/rfc822\n\n" * 5000 + b"\nhi\n"
    with pytest.raises(ManifestLimitExceeded):
        parse_message(io.BytesIO(raw), MimeLimits(max_depth=10**6, max_parts=10**6))


def test_a_hundred_thousand_parts_stop_early():
    raw = _many_parts(100_000)
    source = CountingReader(raw)
    with pytest.raises(ManifestLimitExceeded, match=r"too many MIME parts: more than 1000"):
        parse_message(source, MimeLimits(max_parts=1000), chunk_size=16 * 1024)
    assert source.consumed < len(raw) // 20


def test_parts_just_under_the_limit_pass():
    manifest = build_manifest(io.BytesIO(_many_parts(998)), MimeLimits(max_parts=1000))
    assert manifest.entries == ()


def test_delivery_status_blocks_count_as_parts():
    raw = b"Content-Type: message/delivery-status\n\n" + b"Status: 5.0.0\n\n" * 5000
    with pytest.raises(ManifestLimitExceeded, match="too many"):
        parse_message(io.BytesIO(raw), MimeLimits(max_parts=100))


def test_rfc2231_boundary_is_seen_by_the_scanner():
    raw = b"Content-Type: multipart/mixed; boundary*0=ab; boundary*1=cd\n\n" + (
        b"--abcd\nContent-Type: text/plain\n\nx\n" * 50
    )
    with pytest.raises(ManifestLimitExceeded):
        parse_message(io.BytesIO(raw), MimeLimits(max_parts=20))


def test_boundary_on_a_folded_line_and_cr_only_line_ends():
    raw = (
        b'Content-Type: multipart/mixed;\r boundary="q"\r\r'
        + b"--q\rContent-Type: text/plain\r\rx\r" * 50
    )
    with pytest.raises(ManifestLimitExceeded):
        parse_message(io.BytesIO(raw), MimeLimits(max_parts=20), chunk_size=5)


def _single_line_base64(size: int) -> tuple[bytes, bytes]:
    payload = hashlib.sha256(b"seed").digest() * (size // 32)
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(payload)
        + b"\n--b--\n"
    )
    return raw, payload


@pytest.mark.slow
def test_30mb_base64_on_one_line_is_decoded_in_bounded_memory(tmp_path):
    raw, payload = _single_line_base64(22 * 1024 * 1024)  # 30 MB once encoded
    assert len(raw) > 30_000_000
    parsed = parse_message(io.BytesIO(raw), MimeLimits())
    del raw
    tracemalloc.start()
    try:
        (extracted,) = [
            (f.entry, f.path.stat().st_size)
            for f in iter_attachments(parsed.message, MimeLimits(), tmp_path)
        ]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    entry, on_disk = extracted
    assert entry.size == on_disk == len(payload)
    assert entry.sha256 == hashlib.sha256(payload).hexdigest()
    assert peak < 8 * mime_decode.DECODE_SLICE  # slices, not the 22 MB body


def test_decoded_bytes_are_counted_against_the_limit(tmp_path):
    raw, _ = _single_line_base64(3 * 1024 * 1024)
    parsed = parse_message(io.BytesIO(raw), MimeLimits())
    with pytest.raises(ManifestLimitExceeded, match="decoded attachments larger than"):
        list(iter_attachments(parsed.message, MimeLimits(max_decoded_bytes=1 << 20), tmp_path))


def _qp_message(body: bytes) -> bytes:
    return (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: quoted-printable\n\n"
        + body
        + b"\n--b--\n"
    )


def test_quoted_printable_soft_break_abuse():
    body = b"=\n" * 500_000 + b"A=3DB" + b"=\r\n" * 1000 + b"=41=\n=42"
    (entry,) = build_manifest(io.BytesIO(_qp_message(body)), MimeLimits()).entries
    assert entry.sha256 == hashlib.sha256(b"A=BAB").hexdigest()
    assert entry.size == 5


@pytest.mark.parametrize("slice_size", [1, 2, 3, 5, 64])
def test_quoted_printable_slices_never_split_an_escape(monkeypatch, slice_size):
    body = b"caf=C3=A9 =\nsoft=3D=\r\nbreak = stray=Z9 end=\n" * 7
    expected = binascii.a2b_qp(body)
    monkeypatch.setattr(mime_decode, "DECODE_SLICE", slice_size)
    (entry,) = build_manifest(io.BytesIO(_qp_message(body)), MimeLimits()).entries
    assert entry.sha256 == hashlib.sha256(expected).hexdigest()


@pytest.mark.parametrize("slice_size", [1, 3, 4, 7, 1024])
def test_base64_slices_and_garbage(monkeypatch, slice_size):
    data = bytes(range(256)) * 3
    encoded = base64.b64encode(data)
    noisy = b"\n".join(encoded[i : i + 50] + b"*!" for i in range(0, len(encoded), 50))
    monkeypatch.setattr(mime_decode, "DECODE_SLICE", slice_size)
    raw = b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + noisy
    (entry,) = build_manifest(io.BytesIO(raw), MimeLimits()).entries
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert any("invalid characters ignored" in note for note in entry.notes)


def _tnef_message(tnef: bytes) -> bytes:
    return (
        b"Content-Type: multipart/mixed; boundary=t\n\n--t\nContent-Type: text/plain\n\nx\n"
        b"--t\nContent-Type: application/ms-tnef\n"
        b'Content-Disposition: attachment; filename="winmail.dat"\n'
        b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(tnef) + b"--t--\n"
    )


def _obj(level: int, name: int, kind: int, data: bytes) -> bytes:
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", 0)


def test_tnef_that_tnefparse_cannot_finish_is_kept_as_is(monkeypatch):
    """A property count of 0xFFFFFFFF sends tnefparse into a four-billion-step
    loop: the child's CPU limit ends it and winmail.dat itself is kept."""
    monkeypatch.setattr(mime_tnef, "CPU_S", 1)
    hostile = struct.pack("<IH", 0x223E9F78, 1) + _obj(1, 0x9003, 6, struct.pack("<I", 0xFFFFFFFF))
    hostile += b"\x00" * 16
    (entry,) = build_manifest(io.BytesIO(_tnef_message(hostile)), MimeLimits()).entries
    assert entry.part_path == "2"
    assert entry.filename == "winmail.dat"
    assert entry.sha256 == hashlib.sha256(hostile).hexdigest()
    assert "TNEF not unpacked: kept as is" in entry.notes


def test_tnef_garbage_is_kept_as_is():
    garbage = b"not a tnef stream at all" * 10
    (entry,) = build_manifest(io.BytesIO(_tnef_message(garbage)), MimeLimits()).entries
    assert entry.content_type == "application/ms-tnef"
    assert entry.sha256 == hashlib.sha256(garbage).hexdigest()
    assert "TNEF not unpacked: kept as is" in entry.notes


def test_tnef_without_files_is_kept_as_is():
    empty = struct.pack("<IH", 0x223E9F78, 1) + _obj(1, 0x9006, 8, struct.pack("<I", 0x10000))
    (entry,) = build_manifest(io.BytesIO(_tnef_message(empty)), MimeLimits()).entries
    assert entry.part_path == "2"
    assert "TNEF without files" in entry.notes


def _base64_message(inner: bytes) -> bytes:
    return (
        b'Content-Type: multipart/mixed; boundary="o"\n\n--o\nContent-Type: text/plain\n\nx\n'
        b"--o\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(inner)
        + b"--o--\n"
    )


def _manifest_of(raw: bytes, limits: MimeLimits, tmp_path) -> list:
    parsed = parse_message(io.BytesIO(raw), limits)
    return [f.entry for f in iter_attachments(parsed.message, limits, tmp_path)]


def test_parts_of_an_encoded_message_count_against_the_outer_limit(tmp_path):
    part = b"--b\nContent-Type: application/octet-stream\n\nx\n"
    inner = b'Content-Type: multipart/mixed; boundary="b"\n\n' + part * 30 + b"--b--\n"
    raw = _base64_message(inner)
    assert parse_message(io.BytesIO(raw), MimeLimits(max_parts=20)).parts_seen < 20
    with pytest.raises(ManifestLimitExceeded, match="too many MIME parts"):
        _manifest_of(raw, MimeLimits(max_parts=20), tmp_path)
    # the .eml and its 30 parts
    assert len(_manifest_of(raw, MimeLimits(max_parts=100), tmp_path)) == 31


def test_encoded_messages_nested_in_each_other_stop_at_the_depth_limit(tmp_path):
    raw = b"Content-Type: application/pdf\n\n%PDF-1.4\n"
    for _ in range(15):
        raw = _base64_message(raw)
    with pytest.raises(ManifestLimitExceeded, match="nesting too deep"):
        _manifest_of(raw, MimeLimits(max_depth=10), tmp_path)
    entries = _manifest_of(raw, MimeLimits(max_depth=100), tmp_path)
    assert entries[-1].part_path == ".".join(["2"] * 15 + ["1"])


def test_decoded_encoded_messages_count_against_the_decoded_bytes_limit(tmp_path):
    raw = _base64_message(b"Subject: big\n\n" + b"y" * 300_000)
    with pytest.raises(ManifestLimitExceeded, match="decoded attachments larger than"):
        _manifest_of(raw, MimeLimits(max_decoded_bytes=200_000), tmp_path)


def test_a_recovered_boundary_counts_against_the_limits(tmp_path):
    part = b"--b\nContent-Type: text/plain\n\nx\n"
    raw = b'Content-Type: multipart/mixed\n boundary="b"\n\n' + part * 50 + b"--b--\n"
    with pytest.raises(ManifestLimitExceeded, match="too many MIME parts"):
        _manifest_of(raw, MimeLimits(max_parts=20), tmp_path)


def test_a_huge_content_type_field_is_refused_before_the_header_registry_reads_it():
    raw = b"Content-Type: multipart/mixed;\n" + b" x=y;\n" * 20_000 + b" boundary=b\n\nhi\n"
    with pytest.raises(ManifestLimitExceeded, match="Content-Type header longer than"):
        parse_message(io.BytesIO(raw), MimeLimits())
