"""Builds the MIME test corpus: ``mail/*.eml`` and ``expected_manifests.json``.

The messages are written out as text templates below, so each file reads like
the mail it imitates. Every expected size and sha256 is computed here from the
payload bytes that went *into* a message, never by the code under test.

Run ``python tests/data/build_corpus.py`` after changing a template; a test
checks that the committed files match what this script builds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import quopri
import struct
import sys
from pathlib import Path

HERE = Path(__file__).parent
MAIL_DIR = HERE / "mail"
EXPECTED = HERE / "expected_manifests.json"


def blob(seed: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def b64(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76))


# -- TNEF ---------------------------------------------------------------------


def _tnef_object(level: int, name: int, kind: int, data: bytes) -> bytes:
    header = struct.pack("<BHHI", level, name, kind, len(data))
    return header + data + struct.pack("<H", sum(data) & 0xFFFF)


def build_tnef(files: list[tuple[str, bytes, str | None]]) -> bytes:
    """A minimal winmail.dat: version, code page, class, then per file its
    rendering data, title (8.3 name), data and optionally a MAPI long name."""
    out = struct.pack("<IH", 0x223E9F78, 0x0101)
    out += _tnef_object(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))
    out += _tnef_object(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))
    out += _tnef_object(1, 0x8008, 0x0007, b"IPM.Microsoft Mail.Note\x00")
    for title, data, long_name in files:
        out += _tnef_object(2, 0x9002, 0x0006, struct.pack("<HIIIH", 1, 0xFFFFFFFF, 0, 0, 0))
        out += _tnef_object(2, 0x8010, 0x0001, title.encode("ascii") + b"\x00")
        out += _tnef_object(2, 0x800F, 0x0006, data)
        if long_name is not None:
            encoded = long_name.encode("utf-16-le") + b"\x00\x00"
            padded = encoded + b"\x00" * (-len(encoded) % 4)
            props = struct.pack("<IHHII", 1, 0x001F, 0x3707, 1, len(encoded)) + padded
            out += _tnef_object(2, 0x9005, 0x0006, props)
    return out


# -- payloads -----------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + blob("pdf", 300) + b"\n%%EOF\n"
XLSX = b"PK\x03\x04\x14\x00\x06\x00" + blob("xlsx", 700)
PNG = b"\x89PNG\r\n\x1a\n" + blob("png", 120)
CSV = b"Artikel;Menge\nSchraube M4;100\n"
INNER_PDF = b"%PDF-1.7\n" + blob("inner", 200)
TNEF_A = b"%PDF-1.5\n" + blob("tnef-a", 150)
TNEF_B = blob("tnef-b", 90) + b"\x00\x00"  # trailing NULs must survive
TNEF = build_tnef(
    [("ANGEBOT.PDF", TNEF_A, None), ("LIEFER~1.XLS", TNEF_B, "Lieferschein März.xls")]
)
TRUNCATED = blob("truncated", 301)
TRUNCATED_B64 = base64.b64encode(TRUNCATED).decode()[: 4 * 60 + 3]  # 60 quanta and 3 chars
TRUNCATED_KEPT = TRUNCATED[: 3 * 60 + 2]  # 3 base64 chars carry 2 whole bytes
ZIP = b"PK\x03\x04\x14\x00\x00\x00" + blob("zip", 500)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + blob("jpeg", 250)
FIRST_BLOB = b"%PDF-1.3\n" + blob("first", 100)  # 109 bytes: the encoding ends in "=="
SECOND_BLOB = blob("second", 200)

# What each payload's magic bytes say, keyed by its first 8 bytes.
DETECTED = {
    PDF[:8]: "application/pdf",
    INNER_PDF[:8]: "application/pdf",
    FIRST_BLOB[:8]: "application/pdf",
    TNEF_A[:8]: "application/pdf",
    PNG[:8]: "image/png",
    XLSX[:8]: "application/zip",
    ZIP[:8]: "application/zip",
    JPEG[:8]: "image/jpeg",
}

HEAD = """\
From: Buyer <buyer@customer.example>
To: orders+acme@orders.example.com
Date: Tue, 25 Nov 2025 10:00:00 +0100
MIME-Version: 1.0
"""


def _att(
    path: str,
    ctype: str,
    disposition: str | None,
    filename: str | None,
    data: bytes,
    detected: str | None = None,
) -> dict:
    """``detected``: the type the payload's signature says, known from how it was made."""
    if detected is None:
        detected = DETECTED.get(data[:8])
    return {
        "part_path": path,
        "content_type": ctype,
        "disposition": disposition,
        "filename": filename,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "detected_type": detected,
    }


def uuencode(data: bytes, name: str | None) -> str:
    lines = [f"begin 644 {name}" if name else "begin 644"]
    lines += [
        binascii.b2a_uu(data[i : i + 45]).decode().rstrip("\n") for i in range(0, len(data), 45)
    ]
    return "\n".join([*lines, "`", "end"])


def corpus() -> dict[str, tuple[bytes, dict]]:
    """name -> (raw message, expectation)."""
    cases: dict[str, tuple[str | bytes, dict]] = {}
    cases["plain"] = (
        HEAD + "Message-ID: <plain@customer.example>\nSubject: Order 1\n"
        "Content-Type: text/plain; charset=utf-8\n\nPlease send 10 units.\n",
        {"attachments": []},
    )
    cases["alternative"] = (
        HEAD + "Message-ID: <alt@customer.example>\nSubject: Order 2\n"
        'Content-Type: multipart/alternative; boundary="alt"\n\n'
        "--alt\nContent-Type: text/plain; charset=utf-8\n\n10 units\n"
        "--alt\nContent-Type: text/html; charset=utf-8\n\n<p>10 units</p>\n--alt--\n",
        {"attachments": []},
    )
    cases["pdf_attachment"] = (
        HEAD + "Message-ID: <pdf@customer.example>\nSubject: PO 1234\n"
        'Content-Type: multipart/mixed; boundary="mix"\n\n'
        "--mix\nContent-Type: text/plain; charset=us-ascii\n\nSee attached PO.\n"
        '--mix\nContent-Type: application/pdf; name="order-1234.pdf"\n'
        'Content-Disposition: attachment; filename="order-1234.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(PDF)}\n--mix--\n",
        {"attachments": [_att("2", "application/pdf", "attachment", "order-1234.pdf", PDF)]},
    )
    xlsx_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    cases["spreadsheet"] = (
        HEAD + "Message-ID: <xlsx@customer.example>\nSubject: Bestellung\n"
        'Content-Type: multipart/mixed; boundary="=_xl"\n\n'
        "--=_xl\nContent-Type: text/plain\n\nAnbei.\n"
        f"--=_xl\nContent-Type: {xlsx_type}\n"
        "Content-Disposition: attachment; filename=Bestellung.xlsx\n"
        f"Content-Transfer-Encoding: base64\n\n{b64(XLSX)}\n--=_xl--\n",
        {"attachments": [_att("2", xlsx_type, "attachment", "Bestellung.xlsx", XLSX)]},
    )
    cases["inline_image"] = (
        HEAD + "Message-ID: <img@customer.example>\nSubject: Logo\n"
        'Content-Type: multipart/related; boundary="rel"\n\n'
        '--rel\nContent-Type: multipart/alternative; boundary="alt"\n\n'
        "--alt\nContent-Type: text/plain\n\nlogo below\n"
        '--alt\nContent-Type: text/html\n\n<img src="cid:logo@x">\n--alt--\n\n'
        "--rel\nContent-Type: image/png\nContent-ID: <logo@x>\nContent-Disposition: inline\n"
        f"Content-Transfer-Encoding: base64\n\n{b64(PNG)}\n--rel--\n",
        {"attachments": [_att("2", "image/png", "inline", None, PNG)]},
    )
    cases["rfc2231_filenames"] = (
        HEAD + "Message-ID: <2231@customer.example>\nSubject: Filenames\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nzwei Dateien\n"
        "--b\nContent-Type: application/pdf\nContent-Disposition: attachment;\n"
        " filename*0*=iso-8859-1''Bestellbest%E4tigung;\n filename*1*=%20M%E4rz.pdf\n"
        f"Content-Transfer-Encoding: base64\n\n{b64(PDF)}\n"
        "--b\nContent-Type: text/csv; charset=utf-8\nContent-Disposition: attachment;\n"
        " filename*0*=utf-8''%E6%B3%A8%E6%96%87;\n filename*1=\"-2025.csv\"\n\n"
        + CSV.decode()
        + "\n--b--\n",  # the line break before a delimiter belongs to the delimiter
        {
            "attachments": [
                _att("2", "application/pdf", "attachment", "Bestellbestätigung März.pdf", PDF),
                _att("3", "text/csv", "attachment", "注文-2025.csv", CSV),
            ]
        },
    )
    words = [
        ("=?utf-8?B?w5xiZXJ3ZWlzdW5nLnBkZg==?=", "Überweisung.pdf"),
        ("=?UTF-8?Q?R=C3=A9sum=C3=A9_Auftrag.pdf?=", "Résumé Auftrag.pdf"),
        ("=?iso-8859-1?Q?Caf=E9.pdf?=", "Café.pdf"),
        ("=?shift_jis?B?ko2Vto+RLnBkZg==?=", "注文書.pdf"),
        ("=?koi8-r?B?2sHLwdouZG9j?=", "заказ.doc"),
    ]
    body = HEAD + "Message-ID: <2047@customer.example>\nSubject: Encoded words\n"
    body += (
        'Content-Type: multipart/mixed; boundary="ew"\n\n--ew\nContent-Type: text/plain\n\nfive\n'
    )
    expected = []
    for number, (word, decoded) in enumerate(words, 2):
        data = blob(decoded, 40 + number)
        body += f'--ew\nContent-Type: application/octet-stream; name="{word}"\n'
        body += f'Content-Disposition: attachment; filename="{word}"\n'
        body += f"Content-Transfer-Encoding: base64\n\n{b64(data)}\n"
        expected.append(_att(str(number), "application/octet-stream", "attachment", decoded, data))
    cases["rfc2047_filenames"] = (body + "--ew--\n", {"attachments": expected})
    inner = (
        "From: Supplier <s@supplier.example>\r\nSubject: Original order\r\n"
        "Message-ID: <inner@supplier.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="in"\r\n\r\n'
        "--in\r\nContent-Type: text/plain\r\n\r\noriginal text\r\n"
        "--in\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="inner.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n" + b64(INNER_PDF).replace("\n", "\r\n") + "\r\n"
        "--in--\r\n"
    )
    cases["forwarded"] = (
        (HEAD + "Message-ID: <fwd@customer.example>\nSubject: Fwd: Original order\n").replace(
            "\n", "\r\n"
        )
        + 'Content-Type: multipart/mixed; boundary="out"\r\n\r\n'
        "--out\r\nContent-Type: text/plain\r\n\r\nForwarding.\r\n"
        "--out\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
        + inner
        + "\r\n--out--\r\n",
        {
            "attachments": [
                _att("2", "message/rfc822", "attachment", "Original order.eml", inner.encode()),
                _att("2.2", "application/pdf", "attachment", "inner.pdf", INNER_PDF),
            ]
        },
    )
    odd_shapes(cases, inner)
    cases["tnef"] = (
        HEAD + "Message-ID: <tnef@customer.example>\nSubject: Outlook\n"
        'Content-Type: multipart/mixed; boundary="t"\n\n'
        "--t\nContent-Type: text/plain\n\nsee winmail\n"
        '--t\nContent-Type: application/ms-tnef; name="winmail.dat"\n'
        'Content-Disposition: attachment; filename="winmail.dat"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(TNEF)}\n--t--\n",
        {
            "attachments": [
                _att("2.1", "application/pdf", "attachment", "ANGEBOT.PDF", TNEF_A),
                _att(
                    "2.2", "application/vnd.ms-excel", "attachment", "Lieferschein März.xls", TNEF_B
                ),
            ],
            "notes": {"2.1": "unpacked from TNEF part 2"},
        },
    )
    cases["missing_message_id"] = (
        HEAD + "Subject: no id\n"
        'Content-Type: multipart/mixed; boundary="n"\n\n'
        "--n\nContent-Type: text/plain\n\nx\n"
        '--n\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="a.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(PDF)}\n--n--\n",
        {"attachments": [_att("2", "application/pdf", "attachment", "a.pdf", PDF)]},
    )
    cases["duplicate_message_id"] = (
        HEAD + "Message-ID: <one@customer.example>\nMessage-ID: <two@customer.example>\n"
        "Subject: two ids\n"
        'Content-Type: multipart/mixed; boundary="d"\n\n'
        "--d\nContent-Type: text/plain\n\nx\n"
        "--d\nContent-Type: text/csv\nContent-Disposition: attachment; filename=order.csv\n\n"
        + CSV.decode()
        + "\n--d--\n",
        {"attachments": [_att("2", "text/csv", "attachment", "order.csv", CSV)]},
    )
    cases["eight_bit_headers"] = (
        (
            HEAD + "Message-ID: <8bit@customer.example>\nSubject: Größe und Maße\n"
            'Content-Type: multipart/mixed; boundary="8"\n\n'
            "--8\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            "Grüße\n"
            "--8\nContent-Type: application/pdf\n"
            'Content-Disposition: attachment; filename="Größe.pdf"\n'
            f"Content-Transfer-Encoding: base64\n\n{b64(PDF)}\n--8--\n"
        ).encode("utf-8"),
        {"attachments": [_att("2", "application/pdf", "attachment", "Größe.pdf", PDF)]},
    )
    cases["broken_boundary"] = (
        HEAD + "Message-ID: <broken@customer.example>\nSubject: cut\n"
        'Content-Type: multipart/mixed; boundary="cut"\n\n'
        "--cut\nContent-Type: text/plain\n\nx\n"
        "--cut\nContent-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="last.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(PDF)}\n",
        {
            "attachments": [_att("2", "application/pdf", "attachment", "last.pdf", PDF)],
            "defects": ["CloseBoundaryNotFoundDefect"],
        },
    )
    cases["truncated_base64"] = (
        HEAD + "Message-ID: <trunc@customer.example>\nSubject: truncated\n"
        'Content-Type: multipart/mixed; boundary="tr"\n\n'
        "--tr\nContent-Type: text/plain\n\nx\n"
        "--tr\nContent-Type: application/octet-stream\n"
        'Content-Disposition: attachment; filename="t.bin"\n'
        f"Content-Transfer-Encoding: base64\n\n{TRUNCATED_B64}\n--tr--\n",
        {
            "attachments": [
                _att("2", "application/octet-stream", "attachment", "t.bin", TRUNCATED_KEPT)
            ],
            "notes": {"2": "base64: truncated or missing padding"},
        },
    )
    return {
        name: (raw if isinstance(raw, bytes) else raw.encode("ascii"), expected)
        for name, (raw, expected) in cases.items()
    }


def odd_shapes(cases: dict, inner: str) -> None:
    """Shapes real mailers send that a strict reading loses: each must yield its files."""
    cases["forwarded_base64"] = (
        HEAD + "Message-ID: <fwd64@customer.example>\nSubject: Fwd: encoded\n"
        'Content-Type: multipart/mixed; boundary="o"\n\n'
        "--o\nContent-Type: text/plain\n\nForwarded as base64.\n"
        "--o\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
        + b64(inner.encode())
        + "\n--o--\n",
        {
            "attachments": [
                _att("2", "message/rfc822", None, "Original order.eml", inner.encode()),
                _att("2.2", "application/pdf", "attachment", "inner.pdf", INNER_PDF),
            ],
            "notes": {"2": "base64 message decoded"},
        },
    )
    inner_lf = inner.replace("\r\n", "\n").encode()
    cases["forwarded_quoted_printable"] = (
        HEAD + "Message-ID: <fwdqp@customer.example>\nSubject: Fwd: qp\n"
        'Content-Type: multipart/mixed; boundary="o"\n\n'
        "--o\nContent-Type: text/plain\n\nForwarded as quoted-printable.\n"
        '--o\nContent-Type: message/rfc822; name="fwd.eml"\n'
        "Content-Transfer-Encoding: quoted-printable\n\n"
        + quopri.encodestring(inner_lf).decode()
        + "\n--o--\n",
        {
            "attachments": [
                _att("2", "message/rfc822", None, "fwd.eml", inner_lf),
                _att("2.2", "application/pdf", "attachment", "inner.pdf", INNER_PDF),
            ],
            "notes": {"2": "quoted-printable message decoded"},
        },
    )
    cases["boundary_without_semicolon"] = (
        HEAD + "Message-ID: <fold@customer.example>\nSubject: folded boundary\n"
        'Content-Type: multipart/mixed\n boundary="fold"\n\n'
        "--fold\nContent-Type: text/plain\n\nPicture attached.\n"
        '--fold\nContent-Type: image/png\nContent-Disposition: attachment; filename="shelf.png"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(PNG)}\n--fold--\n",
        {
            "attachments": [_att("2", "image/png", "attachment", "shelf.png", PNG)],
            "notes": {"2": "multipart boundary recovered from a malformed Content-Type"},
        },
    )
    cases["uuencode"] = (
        HEAD + "Message-ID: <uu@customer.example>\nSubject: uuencoded\n"
        'Content-Type: multipart/mixed; boundary="u"\n\n'
        "--u\nContent-Type: text/plain\n\nTwo files.\n"
        '--u\nContent-Type: application/zip; name="orders.zip"\n'
        f"Content-Transfer-Encoding: x-uuencode\n\n{uuencode(ZIP, 'orders.zip')}\n"
        "--u\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: x-uue\n\n"
        f"{uuencode(PDF, 'from-begin-line.pdf')}\n"
        "--u\nContent-Type: application/octet-stream; name=broken.bin\n"
        "Content-Transfer-Encoding: uuencode\n\nthis was never uuencoded\n--u--\n",
        {
            "attachments": [
                _att("2", "application/zip", None, "orders.zip", ZIP),
                _att("3", "application/octet-stream", None, "from-begin-line.pdf", PDF),
                _att(
                    "4", "application/octet-stream", None, "broken.bin", b"this was never uuencoded"
                ),
            ],
            "notes": {"4": "uuencode: no begin line: body kept undecoded"},
        },
    )
    not_a_message = "this is not a message\njust some text that was attached\n"
    cases["attached_broken_message"] = (
        HEAD + "Message-ID: <eml@customer.example>\nSubject: attached messages\n"
        'Content-Type: multipart/mixed; boundary="m"\n\n'
        "--m\nContent-Type: text/plain\n\nTwo attached messages.\n"
        "--m\nContent-Type: message/rfc822\n"
        'Content-Disposition: attachment; filename="broken.eml"\n\n'
        + not_a_message
        + "\n--m\nContent-Type: message/rfc822\n\n"
        "From: a@customer.example\nSubject: only text\n\nJust a text body.\n"
        "\n--m--\n",
        {
            "attachments": [
                _att("2", "message/rfc822", "attachment", "broken.eml", not_a_message.encode()),
                _att(
                    "3",
                    "message/rfc822",
                    None,
                    "only text.eml",
                    b"From: a@customer.example\nSubject: only text\n\nJust a text body.\n",
                ),
            ]
        },
    )
    kept = "this multipart\nnever uses its boundary\n"
    cases["unsplittable_multipart"] = (
        HEAD + "Message-ID: <nosplit@customer.example>\nSubject: unsplittable\n"
        'Content-Type: multipart/mixed; boundary="outer"\n\n'
        "--outer\nContent-Type: text/plain\n\nsee below\n"
        '--outer\nContent-Type: multipart/related; boundary="gone"\n\n'
        + kept
        + '\n--outer\nContent-Type: multipart/alternative; boundary="empty"\n\n'
        '\n--outer\nContent-Type: application/pdf; name="po.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(PDF)}\n--outer--\n",
        {
            "attachments": [
                _att("2", "application/octet-stream", None, None, kept.encode()),
                _att("4", "application/pdf", None, "po.pdf", PDF),
            ],
            "notes": {"2": "multipart that cannot be split: body kept as one blob"},
        },
    )
    cases["filename_paths"] = (
        HEAD + "Message-ID: <paths@customer.example>\nSubject: paths in names\n"
        'Content-Type: multipart/mixed; boundary="p"\n\n'
        "--p\nContent-Type: text/plain\n\nthree files\n"
        "--p\nContent-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="C:\\orders\\PO.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(PDF)}\n"
        "--p\nContent-Type: application/zip\n"
        "Content-Disposition: attachment; filename=/foo/bar.zip\n"
        f"Content-Transfer-Encoding: base64\n\n{b64(ZIP)}\n"
        '--p\nContent-Type: image/png; name="Regal =?utf-8?Q?M=C3=A4rz?=.png"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(PNG)}\n--p--\n",
        {
            "attachments": [
                _att("2", "application/pdf", "attachment", "PO.pdf", PDF),
                _att("3", "application/zip", "attachment", "bar.zip", ZIP),
                _att("4", "image/png", None, "Regal März.png", PNG),
            ]
        },
    )
    cases["empty_content_type"] = (
        HEAD + "Message-ID: <notype@customer.example>\nSubject: no type\n"
        'Content-Type: multipart/mixed; boundary="e"\n\n'
        "--e\nContent-Type: text/plain\n\nphoto\n"
        '--e\nContent-Type: ; name="x.jpg"\nContent-Transfer-Encoding: base64\n\n'
        f"{b64(JPEG)}\n"
        '--e\nContent-Type: application/octet-stream; name="scan.dat"\n'
        f"Content-Transfer-Encoding: base64\n\n{b64(PDF)}\n--e--\n",
        {
            "attachments": [
                _att("2", "application/octet-stream", None, "x.jpg", JPEG),
                _att("3", "application/octet-stream", None, "scan.dat", PDF),
            ],
            "notes": {"2": "unusable Content-Type: recorded as application/octet-stream"},
        },
    )
    two_blobs = base64.b64encode(FIRST_BLOB).decode() + base64.b64encode(SECOND_BLOB).decode()
    cases["concatenated_base64"] = (
        HEAD + "Message-ID: <blobs@customer.example>\nSubject: two blobs\n"
        'Content-Type: multipart/mixed; boundary="c"\n\n'
        "--c\nContent-Type: text/plain\n\nx\n"
        '--c\nContent-Type: application/pdf; name="joined.pdf"\n'
        "Content-Transfer-Encoding: base64\n\n"
        + "\n".join(two_blobs[i : i + 76] for i in range(0, len(two_blobs), 76))
        + "\n--c--\n",
        {
            "attachments": [
                _att("2", "application/pdf", None, "joined.pdf", FIRST_BLOB + SECOND_BLOB)
            ]
        },
    )
    phantom = "Content-Type: application/pdf\nContent-ID: <catalog@customer.example>\n\n"
    fragment = (
        "From: Buyer <buyer@customer.example>\nSubject: big order\n"
        "Message-ID: <orig@customer.example>\nContent-Type: application/pdf\n"
        "Content-Transfer-Encoding: base64\n\n" + b64(PDF)[:152] + "\n"
    )
    cases["external_and_partial"] = (
        HEAD + "Message-ID: <ext@customer.example>\nSubject: by reference\n"
        'Content-Type: multipart/mixed; boundary="x"\n\n'
        "--x\nContent-Type: text/plain\n\ncatalogue by reference, order in pieces\n"
        "--x\nContent-Type: message/external-body; access-type=URL;\n"
        ' URL="https://files.customer.example/catalog.pdf"; name="catalog.pdf"\n\n'
        + phantom
        + '\n--x\nContent-Type: message/partial; id="frag@customer.example"; number=1; total=2\n\n'
        + fragment
        + "\n--x--\n",
        {
            "attachments": [
                _att("2", "message/external-body", None, "catalog.pdf", phantom.encode()),
                _att("3", "message/partial", None, None, fragment.encode()),
            ],
            "notes": {
                "2": "external body (access-type url): the content is not in the message",
                "3": "message/partial fragment 1 of 2: fragments are not reassembled",
            },
        },
    )


def write(target: Path = HERE) -> None:
    mail_dir = target / "mail"
    mail_dir.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (raw, manifest) in corpus().items():
        (mail_dir / f"{name}.eml").write_bytes(raw)
        expected[name] = manifest
    text = json.dumps(expected, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    (target / "expected_manifests.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
