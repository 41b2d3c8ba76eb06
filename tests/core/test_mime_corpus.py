"""The hand-written corpus: each message against its expected manifest."""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
from pathlib import Path

import pytest

from ingest_core.mime import MimeLimits, build_manifest, parse_message

DATA = Path(__file__).parent.parent / "data"
EXPECTED = json.loads((DATA / "expected_manifests.json").read_text(encoding="utf-8"))


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_corpus", DATA / "build_corpus.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest(name: str):
    with (DATA / "mail" / f"{name}.eml").open("rb") as source:
        return build_manifest(source, MimeLimits())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_manifest_matches_expected(name):
    manifest = _manifest(name)
    got = [
        {
            "part_path": e.part_path,
            "content_type": e.content_type,
            "disposition": e.disposition,
            "filename": e.filename,
            "size": e.size,
            "sha256": e.sha256,
            "detected_type": e.detected_type,
        }
        for e in manifest.entries
    ]
    assert got == EXPECTED[name]["attachments"]
    for defect in EXPECTED[name].get("defects", []):
        assert defect in manifest.defects
    notes = {e.part_path: e.notes for e in manifest.entries}
    for part_path, note in EXPECTED[name].get("notes", {}).items():
        assert note in notes[part_path]


def test_corpus_files_are_what_the_builder_writes(tmp_path):
    _load_builder().write(tmp_path)
    for path in sorted((DATA / "mail").glob("*.eml")):
        assert (tmp_path / "mail" / path.name).read_bytes() == path.read_bytes(), path.name
    assert json.loads((tmp_path / "expected_manifests.json").read_text()) == EXPECTED
    assert len(list((DATA / "mail").glob("*.eml"))) == len(EXPECTED)


def test_clean_messages_carry_no_notes():
    for name in ("pdf_attachment", "spreadsheet", "rfc2047_filenames", "forwarded"):
        assert all(not e.notes for e in _manifest(name).entries), name


def test_object_keys_are_content_addressed():
    org = uuid.uuid4()
    for name in EXPECTED:
        for entry in _manifest(name).entries:
            key = entry.to_attachment(org).object_key
            assert re.fullmatch(rf"attachments/{org}/[0-9a-f]{{64}}", key)
            assert key.endswith(entry.sha256)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("chunk_size", [7, 64 * 1024])
def test_the_budget_counts_exactly_what_the_parser_builds(name, chunk_size):
    """Parts and nesting are charged by the parser's own parts: no estimate."""
    with (DATA / "mail" / f"{name}.eml").open("rb") as source:
        parsed = parse_message(source, MimeLimits(), chunk_size=chunk_size)
    assert parsed.parts_seen == sum(1 for _ in parsed.message.walk())
    assert parsed.depth == _nesting(parsed.message)


def _nesting(part) -> int:
    if not part.is_multipart():
        return 0
    return 1 + max((_nesting(p) for p in part.get_payload()), default=0)
