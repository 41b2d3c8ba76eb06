"""Operator commands against the test Postgres: message listing and detail,
lookup by the id Postfix logs or by Message-ID, quarantine release, sender
policy administration, export."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from ingest_core.bootstrap import open_app
from ingest_core.model import Attachment, AuthVerdict, MessageStatus
from ingest_core.ports import Envelope
from ingest_core.settings import Settings
from ingest_core.spool import Spool
from lmtpd.cli import main

DOMAIN = "orders.example.com"


@pytest.fixture
def env(monkeypatch, data_dir, pg_url):
    monkeypatch.setenv("INGEST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("INGEST_DATABASE_URL", pg_url)
    monkeypatch.setenv("INGEST_DOMAINS", DOMAIN)
    monkeypatch.setenv("INGEST_LOG_FORMAT", "console")
    for name in ("INGEST_ENV", "INGEST_OBJECT_STORE_URL", "INGEST_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    return Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,))


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _deliver(app, slug: str, raw: bytes):
    decision = app.service.check_recipient(f"orders+{slug}@{DOMAIN}", False)
    [outcome] = app.service.accept(
        Envelope(mail_from="buyer@big.example", recipients=(decision,)), Spool.from_bytes(raw)
    )
    return outcome.message_id


def _raw(mid: str, subject: str = "PO 1") -> bytes:
    return (
        f"From: Buyer <buyer@big.example>\r\nMessage-ID: <{mid}>\r\nSubject: {subject}\r\n\r\n"
        "body\r\n"
    ).encode()


VERDICT = AuthVerdict(
    spf="fail",
    dkim=(("big.example", "s1", "fail"),),
    dmarc="fail",
    dmarc_policy="reject",
    arc="none",
    from_domain="big.example",
    from_address="buyer@big.example",
    aligned=False,
    temporary=False,
    summary=f"{DOMAIN}; spf=fail smtp.mailfrom=big.example; dmarc=fail header.from=big.example",
)


def test_list_is_a_table_and_filters(env, capsys):
    with open_app(env) as app:
        app.admin.add("acme", "Acme")
        app.admin.add("beta", "Beta")
        first = _deliver(app, "acme", _raw("a1@big.example", "x" * 80 + "\x1b[31m"))
        _deliver(app, "beta", _raw("b1@big.example"))
        with app.pool.connection() as conn:
            conn.execute(
                "UPDATE inbound_message SET received_at = now() - interval '3 days' WHERE id = %s",
                (first,),
            )
    code, out, _ = run(capsys, "messages", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "TENANT", "STATUS", "ATT"]
    assert lines[-1] == "(2 messages)"
    assert "\x1b" not in out
    assert "x" * 39 + "…" in out  # long subjects are cut, not wrapped
    code, out, err = run(capsys, "messages", "list", "--limit", "1")
    assert out.splitlines()[-1] == "(1 message)"
    assert "--limit N shows more" in err
    code, out, _ = run(capsys, "messages", "list", "--since", "24h", "--json")
    assert [row["org_slug"] for row in json.loads(out)] == ["beta"]
    code, out, _ = run(capsys, "messages", "list", "--org", "acme", "--json")
    assert [row["id"] for row in json.loads(out)] == [str(first)]
    code, out, _ = run(capsys, "messages", "list", "--status", "processed")
    assert out.splitlines()[-1] == "(0 messages)"
    code, _, err = run(capsys, "messages", "list", "--since", "yesterday-ish")
    assert code == 2
    assert "--since" in err


def test_show_by_id_or_message_id(env, capsys):
    with open_app(env) as app:
        app.admin.add("acme", "Acme")
        app.admin.add("beta", "Beta")
        message_id = _deliver(app, "acme", _raw("po-7@big.example"))
        app.repository.record_auth(message_id, VERDICT)
        _deliver(app, "acme", _raw("shared@big.example"))
        _deliver(app, "beta", _raw("shared@big.example"))
    for reference in (str(message_id), "po-7@big.example", "<po-7@big.example>"):
        code, out, _ = run(capsys, "messages", "show", reference)
        assert code == 0, reference
        assert f"id:                   {message_id}" in out
        assert "tenant:               acme" in out
        assert "dmarc:                fail" in out
        assert "dkim:                 fail d=big.example s=s1" in out
        assert "summary:              orders.example.com; spf=fail" in out
        assert "Attachments (0)" in out
    code, out, _ = run(capsys, "messages", "show", "po-7@big.example", "--json")
    detail = json.loads(out)
    assert detail["auth_dkim"] == [{"domain": "big.example", "selector": "s1", "result": "fail"}]
    code, _, err = run(capsys, "messages", "show", "shared@big.example")
    assert code == 1
    assert "2 messages match" in err
    code, _, err = run(capsys, "messages", "show", "nothing@nowhere")
    assert code == 1
    assert "no message" in err


def test_show_says_when_a_waiting_retry_is_due(env, capsys):
    with open_app(env) as app:
        app.admin.add("acme", "Acme")
        message_id = _deliver(app, "acme", _raw("po-retry@big.example"))
        app.repository.claim(message_id, 900)
        app.repository.fail(message_id, "object store: timeout", final=False, retry_in_s=120)
    before = datetime.now(UTC)
    code, out, _ = run(capsys, "messages", "show", str(message_id), "--json")
    assert code == 0
    due = datetime.fromisoformat(json.loads(out)["retry_at"])
    assert before + timedelta(seconds=100) < due < before + timedelta(seconds=130)
    code, out, _ = run(capsys, "messages", "show", str(message_id))
    assert f"next retry:           {due.astimezone(UTC):%Y-%m-%d %H:%M:%S}" in out
    with open_app(env) as app:
        app.repository.claim(message_id, 900)  # the attempt is under way: nothing pending
    code, out, _ = run(capsys, "messages", "show", str(message_id))
    assert "next retry" not in out


def test_show_gives_the_declared_and_the_detected_type(env, capsys):
    with open_app(env) as app:
        app.admin.add("acme", "Acme")
        message_id = _deliver(app, "acme", _raw("po-8@big.example"))
        assert app.repository.claim(message_id, 3600.0) is not None
        app.repository.finish(
            message_id,
            [
                _attachment("2", "application/octet-stream", "application/pdf"),
                _attachment("3", "text/csv", "text/csv"),
                _attachment("4", "text/plain", None),
            ],
            "parser-1",
        )
    code, out, _ = run(capsys, "messages", "show", str(message_id))
    assert code == 0
    assert "Attachments (3)" in out
    lines = out.splitlines()
    assert any(
        line.startswith("  2 ") and "application/octet-stream (detected application/pdf)" in line
        for line in lines
    )
    assert any(line.startswith("  3 ") and "text/csv " in line for line in lines)
    assert "detected text/csv" not in out  # the same as declared: said once
    assert not any(line.startswith("  4 ") and "detected" in line for line in lines)

    code, out, _ = run(capsys, "messages", "show", str(message_id), "--json")
    attachments = json.loads(out)["attachments"]
    assert [(a["part_path"], a["content_type"], a["detected_type"]) for a in attachments] == [
        ("2", "application/octet-stream", "application/pdf"),
        ("3", "text/csv", "text/csv"),
        ("4", "text/plain", None),
    ]


def _attachment(part_path: str, declared: str, detected: str | None) -> Attachment:
    return Attachment(
        part_path=part_path,
        content_type=declared,
        disposition="attachment",
        filename=f"file-{part_path}",
        size_bytes=10,
        sha256="e" * 64,
        object_key=f"attachments/x/{part_path}",
        detected_type=detected,
    )


def test_release_sends_a_quarantined_message_on(env, capsys):
    with open_app(env) as app:
        app.admin.add("acme", "Acme")
        held = _deliver(app, "acme", _raw("held@big.example"))
        other = _deliver(app, "acme", _raw("fine@big.example"))
        assert app.repository.claim(held, 60) is not None
        app.repository.quarantine(held, "DMARC fail for big.example")
    code, out, _ = run(capsys, "messages", "list", "--status", "quarantined", "--json")
    [row] = json.loads(out)
    assert row["quarantine_reason"] == "DMARC fail for big.example"
    code, out, err = run(capsys, "messages", "release", "held@big.example", str(other))
    assert code == 1
    assert f"released {held}" in out
    assert f"{other} is not QUARANTINED" in err
    with open_app(env) as app:
        row = app.repository.get(app.tenants.resolve("acme").id, held)
        assert row.status is MessageStatus.RECEIVED
        assert row.released_at is not None
        assert row.quarantine_reason == "DMARC fail for big.example"  # kept for the record
        assert app.huey.pending_count() >= 1


def test_sender_policy_administration(env, capsys):
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "tenants", "add", "acme")[0] == 0
    code, out, _ = run(capsys, "tenants", "policy", "acme")
    assert out.strip() == "tenant acme: sender policy monitor"
    code, out, err = run(capsys, "tenants", "senders", "add", "acme", "*@Big.Example")
    assert code == 0
    assert out.strip() == "added: *@big.example"
    assert "does not use the allow-list yet" in err
    assert run(capsys, "tenants", "senders", "add", "acme", "*@big.example")[1].startswith(
        "already listed"
    )
    code, _, err = run(capsys, "tenants", "senders", "add", "acme", "*")
    assert code == 1
    assert "invalid sender pattern" in err
    code, _, err = run(capsys, "tenants", "senders", "add", "nobody", "*@big.example")
    assert code == 1
    assert "no tenant" in err
    code, out, _ = run(capsys, "tenants", "policy", "acme", "allowlist")
    assert out.strip() == "tenant acme: sender policy allowlist"
    code, out, _ = run(capsys, "tenants", "senders", "list", "acme")
    assert out.splitlines() == ["tenant acme: sender policy allowlist", "  *@big.example"]
    code, out, _ = run(capsys, "tenants", "list")
    assert "allowlist" in out
    assert run(capsys, "tenants", "senders", "remove", "acme", "*@big.example")[0] == 0
    assert run(capsys, "tenants", "senders", "remove", "acme", "*@big.example")[0] == 1
    code, _, err = run(capsys, "tenants", "policy", "acme", "allowlist")
    assert "allow-list is empty" in err


def test_export_command_writes_the_tenant_only(env, capsys, tmp_path):
    with open_app(env) as app:
        app.admin.add("acme", "Acme")
        app.admin.add("beta", "Beta")
        mine = _deliver(app, "acme", _raw("mine@big.example"))
        app.repository.record_auth(mine, VERDICT)
        _deliver(app, "beta", _raw("theirs@big.example"))
    out_file = tmp_path / "orders.db"
    code, out, _ = run(capsys, "export", "--org", "acme", "--out", str(out_file))
    assert code == 0
    assert "exported 1 message(s)" in out
    with sqlite3.connect(out_file) as db:
        rows = db.execute("SELECT id, auth_dmarc FROM messages").fetchall()
    assert rows == [(str(mine), "fail")]
    code, _, err = run(capsys, "export", "--org", "acme", "--out", str(out_file))
    assert code == 1
    assert "exists" in err
    assert run(capsys, "export", "--org", "acme", "--out", str(out_file), "--force")[0] == 0
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, out, _ = run(
        capsys, "export", "--org", "acme", "--since", since, "--out", str(out_file), "--force"
    )
    assert "exported 0 message(s)" in out
