"""The MIME corpus delivered and extracted for real: accept into Postgres and the
local object store, run the extraction, compare every stored attachment with
the corpus's expected manifest (computed by its builder, not by the parser)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ingest_core.bootstrap import App, open_app
from ingest_core.extraction import PARSER_VERSION, Outcome, extract_message
from ingest_core.model import Attachment
from ingest_core.ports import Envelope
from ingest_core.settings import Settings
from ingest_core.spool import Spool

DOMAIN = "orders.example.com"
DATA = Path(__file__).parent.parent / "data"
EXPECTED = json.loads((DATA / "expected_manifests.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def app(pg_migrated_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    data_dir = tmp_path_factory.mktemp("corpus")
    settings = Settings(data_dir=data_dir, database_url=pg_migrated_url, domains=(DOMAIN,))
    with open_app(settings) as app:
        slug = f"c{uuid.uuid4().hex[:10]}"
        app.admin.add(slug, "Corpus")
        app.extras["slug"] = slug
        yield app


def _deliver(app: App, raw: bytes, slug: str | None = None) -> uuid.UUID:
    slug = slug or app.extras["slug"]
    decision = app.service.check_recipient(f"orders+{slug}@{DOMAIN}", False)
    [outcome] = app.service.accept(
        Envelope(mail_from="buyer@customer.example", recipients=(decision,)),
        Spool.from_bytes(raw),
    )
    assert outcome.message_id is not None
    return outcome.message_id


def _extract(app: App, message_id: uuid.UUID) -> None:
    result = extract_message(
        message_id, repo=app.repository, store=app.store, config=app.extraction
    )
    assert result.outcome is Outcome.PROCESSED, result.error


def _stored(app: App, message_id: uuid.UUID) -> list[dict]:
    detail = app.operator.show_message(message_id)
    assert detail is not None
    assert detail["parser_version"] == PARSER_VERSION
    return sorted(detail["attachments"], key=lambda a: a["part_path"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_corpus_message_stores_its_expected_files(app: App, name: str) -> None:
    raw = (DATA / "mail" / f"{name}.eml").read_bytes()
    message_id = _deliver(app, raw)
    _extract(app, message_id)
    stored = _stored(app, message_id)
    want = EXPECTED[name]["attachments"]
    keys = ("part_path", "content_type", "filename", "size_bytes", "sha256", "detected_type")
    got = [{k: a[k] for k in keys} for a in stored]
    assert got == [
        {
            "part_path": w["part_path"],
            "content_type": w["content_type"],
            "filename": w["filename"],
            "size_bytes": w["size"],
            "sha256": w["sha256"],
            "detected_type": w["detected_type"],
        }
        for w in want
    ]
    for attachment in stored:
        with app.store.open(attachment["object_key"]) as source:
            assert hashlib.sha256(source.read()).hexdigest() == attachment["sha256"]
    notes = {a["part_path"]: a["notes"] for a in stored}
    for part_path, note in EXPECTED[name].get("notes", {}).items():
        assert note in notes[part_path]


def test_replay_replaces_what_an_older_parser_stored(app: App) -> None:
    """A message extracted by an older parser (here: the forwarded PDF under a
    wrong name and type, plus a part that no longer exists) gets exactly the
    new manifest when replayed, and the surviving part keeps its id."""
    raw = (DATA / "mail" / "forwarded_base64.eml").read_bytes()
    slug = f"r{uuid.uuid4().hex[:10]}"
    app.admin.add(slug, "Replayed")
    message_id = _deliver(app, raw, slug)
    row = app.repository.claim(message_id, 60)
    assert row is not None
    old = Attachment(
        part_path="2.2",
        content_type="text/plain",
        disposition=None,
        filename="noname",
        size_bytes=3,
        sha256="0" * 64,
        object_key=f"attachments/{row.org_id}/{'0' * 64}",
    )
    app.repository.finish(message_id, [old, replace(old, part_path="9")], "mime-1")
    before = _attachment_ids(app, message_id)
    assert sorted(before) == ["2.2", "9"]

    assert app.replay([message_id]) == [message_id]
    _extract(app, message_id)

    after = _stored(app, message_id)
    assert [a["part_path"] for a in after] == ["2", "2.2"]
    assert after[1]["filename"] == "inner.pdf"
    assert after[1]["content_type"] == "application/pdf"
    assert _attachment_ids(app, message_id)["2.2"] == before["2.2"]


def _attachment_ids(app: App, message_id: uuid.UUID) -> dict[str, uuid.UUID]:
    with app.pool.connection() as conn:
        rows = conn.execute(
            "SELECT part_path, id FROM inbound_attachment WHERE inbound_message_id = %s",
            (message_id,),
        ).fetchall()
    return {part_path: attachment_id for part_path, attachment_id in rows}
