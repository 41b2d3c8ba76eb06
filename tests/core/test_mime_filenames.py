"""Filenames: decoded for display, harmless, never part of a storage key."""

from __future__ import annotations

import io
import re
import uuid

import pytest

from ingest_core.mime import MimeLimits, build_manifest
from ingest_core.mime.filenames import MAX_FILENAME_CHARS, sanitize_filename


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("order.pdf", "order.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.exe", "evil.exe"),
        ("...hidden", "hidden"),
        ("a\x00b.pdf", "ab.pdf"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("\u2066x\u2069\u200e\u200f\u061c.txt", "x.txt"),
        ("line\r\nbreak.pdf", "linebreak.pdf"),
        ("tab\there.pdf", "tab here.pdf"),
        ("  spaced   name .pdf ", "spaced name .pdf"),
        ("bad\udcffbyte.pdf", "badbyte.pdf"),
        ("", None),
        ("../", None),
        ("\x00\u202e", None),
        (None, None),
    ],
)
def test_sanitize(raw, expected):
    assert sanitize_filename(raw) == expected


def test_long_name_is_capped_and_keeps_its_extension():
    name = sanitize_filename("x" * 1000 + ".pdf")
    assert name is not None
    assert len(name) == MAX_FILENAME_CHARS
    assert name.endswith(".pdf")


def test_long_name_without_extension_is_capped():
    name = sanitize_filename("y" * 1000)
    assert name == "y" * MAX_FILENAME_CHARS


def _message(filename_param: str) -> bytes:
    return (
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nx\n"
        f"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
        f"{filename_param}\nContent-Transfer-Encoding: base64\n\nAAEC\n--b--\n"
    ).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ('filename="../../x.pdf"', "x.pdf"),
        ("filename*=utf-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("filename*=utf-8''a%00b%E2%80%AEfdp.exe", "abfdp.exe"),
        ('filename="=?utf-8?Q?..=2F=E2=80=AEx.pdf?="', "x.pdf"),
        ("filename==?utf-8?B?w6l0w6kucGRm?=", "été.pdf"),
        ('filename="' + "n" * 1000 + '.xlsx"', "n" * (MAX_FILENAME_CHARS - 5) + ".xlsx"),
        ('filename="\\\\server\\\\share\\\\o.pdf"', "o.pdf"),
    ],
)
def test_hostile_filenames_in_messages(param, expected):
    manifest = build_manifest(io.BytesIO(_message(param)), MimeLimits())
    (entry,) = manifest.entries
    assert entry.filename == expected
    org = uuid.uuid4()
    key = entry.to_attachment(org).object_key
    assert re.fullmatch(rf"attachments/{org}/[0-9a-f]{{64}}", key)


def test_content_type_name_is_the_fallback():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        b'Content-Type: application/pdf; name="po.pdf"\n\n%PDF\n--b--\n'
    )
    (entry,) = build_manifest(io.BytesIO(raw), MimeLimits()).entries
    assert entry.filename == "po.pdf"
    assert entry.disposition is None
