"""Generated MIME trees: the manifest lists exactly the generated attachments."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest_core.mime import ManifestLimitExceeded, MimeLimits, build_manifest, parse_message
from tests.hypothesis_profiles import examples


@dataclass(frozen=True)
class Leaf:
    maintype: str
    subtype: str
    data: bytes
    filename: str | None
    disposition: str | None

    @property
    def is_attachment(self) -> bool:
        if self.disposition == "attachment" or self.filename is not None:
            return True
        return (self.maintype, self.subtype) not in (("text", "plain"), ("text", "html"))


@dataclass(frozen=True)
class Multi:
    subtype: str
    children: tuple


filenames = st.one_of(
    st.none(),
    st.builds(
        lambda stem, ext: f"{stem}.{ext}",
        st.from_regex(r"[A-Za-z0-9_\-éü注文]{1,24}", fullmatch=True),
        st.sampled_from(["pdf", "xlsx", "bin", "txt"]),
    ),
)
binary_leaves = st.builds(
    Leaf,
    maintype=st.just("application"),
    subtype=st.sampled_from(["pdf", "octet-stream", "vnd.ms-excel", "zip"]),
    data=st.binary(max_size=400),
    filename=filenames,
    disposition=st.sampled_from(["attachment", "inline", None]),
)
image_leaves = st.builds(
    Leaf,
    maintype=st.just("image"),
    subtype=st.sampled_from(["png", "jpeg"]),
    data=st.binary(min_size=1, max_size=200),
    filename=filenames,
    disposition=st.sampled_from(["inline", None]),
)
text_leaves = st.builds(
    Leaf,
    maintype=st.just("text"),
    subtype=st.sampled_from(["plain", "html", "csv"]),
    data=st.from_regex(r"[A-Za-z0-9 ,.;]{0,70}\n", fullmatch=True).map(str.encode),
    filename=filenames,
    disposition=st.sampled_from(["attachment", "inline", None]),
)
leaves = st.one_of(binary_leaves, image_leaves, text_leaves)
trees = st.recursive(
    leaves,
    lambda children: st.builds(
        Multi,
        st.sampled_from(["mixed", "alternative", "related"]),
        st.lists(children, min_size=1, max_size=4).map(tuple),
    ),
    max_leaves=14,
)


def _build(node) -> EmailMessage:
    part = EmailMessage()
    if isinstance(node, Multi):
        part["Content-Type"] = f"multipart/{node.subtype}"
        part.set_payload([_build(child) for child in node.children])
        return part
    if node.maintype == "text":
        part.set_content(
            node.data.decode(),
            subtype=node.subtype,
            disposition=node.disposition,
            filename=node.filename,
        )
    else:
        part.set_content(
            node.data,
            node.maintype,
            node.subtype,
            disposition=node.disposition,
            filename=node.filename,
        )
    return part


def _expected(node, path: str) -> list[tuple[str, Leaf]]:
    if isinstance(node, Leaf):
        return [(path, node)] if node.is_attachment else []
    found = []
    for number, child in enumerate(node.children, 1):
        found += _expected(child, f"{path}.{number}" if path else str(number))
    return found


def _message(tree) -> bytes:
    message = _build(tree)
    message["From"] = "a@example.com"
    message["Subject"] = "generated"
    return message.as_bytes(policy=policy.default)


@given(trees)
def test_manifest_lists_exactly_the_generated_attachments(tree):
    raw = _message(tree)
    manifest = build_manifest(io.BytesIO(raw), MimeLimits())
    # a message that is one leaf has that leaf as part "1"
    expected = _expected(tree, "1" if isinstance(tree, Leaf) else "")
    got = [(e.part_path, e.content_type, e.filename, e.size, e.sha256) for e in manifest.entries]
    want = [
        (
            path,
            f"{leaf.maintype}/{leaf.subtype}",
            leaf.filename,
            len(leaf.data),
            hashlib.sha256(leaf.data).hexdigest(),
        )
        for path, leaf in expected
    ]
    assert got == want
    assert all(not e.notes for e in manifest.entries)


@given(trees, st.integers(min_value=1, max_value=200))
def test_the_budget_counts_exactly_what_the_parser_builds(tree, chunk_size):
    raw = _message(tree)
    parsed = parse_message(io.BytesIO(raw), MimeLimits(), chunk_size=chunk_size)
    assert parsed.parts_seen == sum(1 for _ in parsed.message.walk())
    assert parsed.depth == _nesting(parsed.message)
    assert parsed.bytes_fed == len(raw)


LINE_SOUP = [
    "--a",
    "--a--",
    "--a  ",
    "--b",
    "--b--",
    "--a-- trailing",
    "Content-Type: multipart/mixed; boundary=a",
    'content-type: MULTIPART/digest; boundary="b"',
    "Content-Type: multipart/alternative;",
    " boundary=b",
    "\tboundary*0=a",
    "Content-Type: message/rfc822",
    "Content-Type: message/delivery-status",
    'Content-Type: multipart/related; boundary="b"',
    "Content-Type: text/plain",
    "--b\t",
    "Content-Type : multipart/mixed; boundary=a",
    "X-Other: y",
    "body text",
    "From someone",
    "",
    "",
]


def _nesting(part) -> int:
    if not part.is_multipart():
        return 0
    return 1 + max((_nesting(p) for p in part.get_payload()), default=0)


@settings(max_examples=examples(5))
@example(
    [
        'content-type: MULTIPART/digest; boundary="b"',
        "--b",
        "Content-Type: multipart/alternative;",
        " boundary=b",
        "--b\t",
    ],
    ["\n"],
    64,
)  # a folded boundary= once read differently by a second reader: 3 parts counted, 4 built
@given(
    st.lists(st.sampled_from(LINE_SOUP), max_size=60),
    st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1, max_size=3),
    st.integers(min_value=1, max_value=64),
)
def test_the_budget_is_what_the_parser_builds_on_line_soup(lines, endings, chunk_size):
    raw = "".join(line + endings[i % len(endings)] for i, line in enumerate(lines)).encode()
    parsed = parse_message(
        io.BytesIO(raw), MimeLimits(max_parts=10**6, max_depth=10**6), chunk_size=chunk_size
    )
    assert parsed.parts_seen == sum(1 for _ in parsed.message.walk())
    assert parsed.depth == _nesting(parsed.message)


@settings(max_examples=examples(5))
@given(
    st.lists(st.sampled_from(LINE_SOUP), max_size=60),
    st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1, max_size=3),
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=0, max_value=6),
)
def test_a_limit_below_what_the_parser_builds_always_stops_it(lines, endings, max_parts, depth):
    raw = "".join(line + endings[i % len(endings)] for i, line in enumerate(lines)).encode()
    unlimited = parse_message(io.BytesIO(raw), MimeLimits(max_parts=10**6, max_depth=10**6))
    limits = MimeLimits(max_parts=max_parts, max_depth=depth)
    if unlimited.parts_seen > max_parts or unlimited.depth > depth:
        with pytest.raises(ManifestLimitExceeded):
            parse_message(io.BytesIO(raw), limits)
    else:
        assert parse_message(io.BytesIO(raw), limits).parts_seen == unlimited.parts_seen
