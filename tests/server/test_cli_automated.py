"""``ingest tenants automated|show`` and the automated-mail fields in ``messages
list/show`` and the export, against the test Postgres."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest_core.automated import AutomatedCheck
from ingest_core.bootstrap import open_app
from ingest_core.extraction import Outcome, extract_message
from tests.server.test_cli_operations import _deliver, run
from tests.server.test_cli_operations import env as env  # the fixture

BOUNCE = (Path(__file__).parent.parent / "data" / "automated" / "postfix_bounce.eml").read_bytes()


def test_automated_policy_administration(env, capsys):
    assert run(capsys, "tenants", "add", "acme")[0] == 0
    code, out, _ = run(capsys, "tenants", "automated", "acme")
    assert code == 0
    assert "bounce           hold" in out
    assert "bulk             extract" in out
    assert run(capsys, "tenants", "automated", "acme", "bounce", "extract")[0] == 0
    code, out, _ = run(capsys, "tenants", "show", "acme")
    assert code == 0
    assert "sender policy:   monitor" in out
    assert "bounce           extract" in out
    code, _, err = run(capsys, "tenants", "automated", "acme", "bounce")
    assert code == 2
    assert "extract|hold" in err
    code, _, err = run(capsys, "tenants", "automated", "nobody", "list", "hold")
    assert code != 0
    assert "nobody" in err


def test_messages_show_list_and_export_carry_the_bounce(env, capsys, tmp_path):
    with open_app(env) as app:
        app.admin.add("acme", "Acme")
        message_id = _deliver(app, "acme", BOUNCE)
        result = extract_message(
            message_id,
            repo=app.repository,
            store=app.store,
            config=app.extraction,
            automated=AutomatedCheck(app.automated_policies),
        )
        assert result.outcome is Outcome.QUARANTINED
    code, out, _ = run(capsys, "messages", "list", "--org", "acme")
    assert code == 0
    assert "AUTOMATED" in out.splitlines()[0]
    assert "bounce" in out.splitlines()[1]
    code, out, _ = run(capsys, "messages", "show", str(message_id))
    assert code == 0
    assert "kind:                 bounce" in out
    assert "bounced recipient:    nobody@customer.example" in out
    assert "bounce status:        5.1.1" in out
    assert "Recipient address rejected: User unknown" in out
    target = tmp_path / "acme.sqlite"
    assert run(capsys, "export", "--org", "acme", "--out", str(target))[0] == 0
    with sqlite3.connect(target) as db:
        row = db.execute(
            "SELECT automated_kind, bounce_original_recipient, bounce_status FROM messages"
        ).fetchone()
    assert row == ("bounce", "nobody@customer.example", "5.1.1")
