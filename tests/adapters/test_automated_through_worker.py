"""The automated-mail corpus delivered and extracted for real (Postgres, the
local object store): each message classified, recorded on its row, held or
extracted by the tenant's default policy (the migration's rows, not the code's
defaults), as expected by tests/data/build_automated.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest_core.automated import AutomatedAction, AutomatedCheck
from ingest_core.bootstrap import App, open_app
from ingest_core.extraction import Outcome, extract_message
from ingest_core.model import AutomatedKind
from ingest_core.ports import Envelope
from ingest_core.settings import Settings
from ingest_core.spool import Spool

DOMAIN = "orders.example.com"
CORPUS = Path(__file__).parent.parent / "data" / "automated"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def app(pg_migrated_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    data_dir = tmp_path_factory.mktemp("automated")
    settings = Settings(data_dir=data_dir, database_url=pg_migrated_url, domains=(DOMAIN,))
    with open_app(settings) as app:
        yield app


def _tenant(app: App) -> str:
    slug = f"a{uuid.uuid4().hex[:10]}"
    app.admin.add(slug, "Automated")
    return slug


def _deliver(app: App, slug: str, raw: bytes, envelope_from: str) -> uuid.UUID:
    decision = app.service.check_recipient(f"orders+{slug}@{DOMAIN}", False)
    [outcome] = app.service.accept(
        Envelope(mail_from=envelope_from, recipients=(decision,)), Spool.from_bytes(raw)
    )
    assert outcome.message_id is not None
    return outcome.message_id


def _extract(app: App, message_id: uuid.UUID) -> Outcome:
    return extract_message(
        message_id,
        repo=app.repository,
        store=app.store,
        config=app.extraction,
        automated=AutomatedCheck(app.automated_policies),
    ).outcome


@pytest.fixture(scope="module")
def slug(app: App) -> str:
    return _tenant(app)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_corpus_message_is_recorded_and_held_or_extracted(
    app: App, slug: str, name: str
) -> None:
    want = EXPECTED[name]
    raw = (CORPUS / f"{name}.eml").read_bytes()
    message_id = _deliver(app, slug, raw, want["envelope_from"])
    outcome = _extract(app, message_id)
    detail = app.operator.show_message(message_id)
    assert detail is not None
    assert detail["status"] == want["status"], (outcome, detail["last_error"])
    assert detail["automated_kind"] == want["kind"]
    assert detail["automated_reason"] == want["reason"]
    assert detail["automated_checked_at"] is not None
    bounce = want["bounce"] or {}
    for field in ("original_recipient", "action", "status", "diagnostic"):
        assert detail[f"bounce_{field}"] == bounce.get(field)
    if want["status"] == "QUARANTINED":
        assert want["kind"] in detail["quarantine_reason"]
        assert detail["attachments"] == []


def test_new_tenants_get_the_default_policy_from_the_database(app: App) -> None:
    slug = _tenant(app)
    table = app.automated.policy(slug).table()
    with app.pool.connection() as conn:
        rows = conn.execute(
            "SELECT p.kind, p.action FROM tenant_automated_policy p"
            " JOIN organization o ON o.id = p.org_id WHERE o.slug = %s",
            (slug,),
        ).fetchall()
    assert dict(rows) == {kind.value: action.value for kind, action in table.items()}
    assert table[AutomatedKind.BULK] is AutomatedAction.EXTRACT
    assert table[AutomatedKind.BOUNCE] is AutomatedAction.HOLD


def test_a_tenant_may_extract_a_kind_and_release_holds_for_good(app: App) -> None:
    slug = _tenant(app)
    raw = (CORPUS / "mailman_list.eml").read_bytes()
    env = EXPECTED["mailman_list"]["envelope_from"]
    held = _deliver(app, slug, raw, env)
    assert _extract(app, held) is Outcome.QUARANTINED

    assert app.release(held)
    assert _extract(app, held) is Outcome.PROCESSED
    assert app.replay([held]) == [held]
    assert _extract(app, held) is Outcome.PROCESSED  # released once: never held again

    app.automated.set_action(slug, AutomatedKind.LIST, AutomatedAction.EXTRACT)
    other = _deliver(app, slug, raw.replace(b"<list1@", b"<list2@"), env)
    assert _extract(app, other) is Outcome.PROCESSED
    assert app.operator.show_message(other)["automated_kind"] == "list"


def test_automated_counts_per_tenant_and_kind(app: App) -> None:
    slug = _tenant(app)
    for name in ("postfix_bounce", "qmail_bounce", "newsletter"):
        _extract(app, _deliver(app, slug, (CORPUS / f"{name}.eml").read_bytes(),
                               EXPECTED[name]["envelope_from"]))  # fmt: skip
    counts = {kind: n for (tenant, kind), n in app.automated_counts().items() if tenant == slug}
    assert counts == {"auto-reply": 0, "bounce": 2, "feedback-report": 0, "list": 0, "bulk": 1}
