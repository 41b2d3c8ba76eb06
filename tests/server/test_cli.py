"""The `ingest` command in-process, against the test Postgres."""

from __future__ import annotations

import json

import pytest

from lmtpd.cli import main


@pytest.fixture
def env(monkeypatch, data_dir, pg_url):
    monkeypatch.setenv("INGEST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("INGEST_DATABASE_URL", pg_url)
    monkeypatch.setenv("INGEST_DOMAINS", "orders.example.com")
    monkeypatch.setenv("INGEST_LOG_FORMAT", "console")
    for name in ("INGEST_ENV", "INGEST_OBJECT_STORE_URL", "INGEST_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_tenant_administration(env, capsys) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    code, out, _ = run(capsys, "tenants", "add", "acme", "--name", "Acme Corp")
    assert code == 0
    assert out.startswith("added tenant acme")
    assert run(capsys, "tenants", "add", "acme", "--if-missing")[0] == 0
    code, _, err = run(capsys, "tenants", "add", "acme")
    assert code == 1
    assert "acme" in err
    assert run(capsys, "tenants", "disable", "acme")[0] == 0
    code, out, _ = run(capsys, "tenants", "list")
    assert "acme" in out
    assert "disabled" in out
    assert run(capsys, "tenants", "enable", "nobody")[0] == 1
    code, _, err = run(capsys, "tenants", "add", "Bad_Slug")
    assert code == 1


def test_messages_raw_and_replay(env, capsys, data_dir, pg_url) -> None:
    from ingest_core.bootstrap import open_app
    from ingest_core.ports import Envelope
    from ingest_core.settings import Settings
    from ingest_core.spool import Spool

    raw = b"Message-ID: <cli-1@x>\r\nSubject: via cli\r\n\r\nbody\r\n"
    settings = Settings(data_dir=data_dir, database_url=pg_url, domains=("orders.example.com",))
    with open_app(settings) as app:
        app.admin.add("acme", "Acme")
        decision = app.service.check_recipient("orders+acme@orders.example.com", False)
        [outcome] = app.service.accept(
            Envelope(mail_from="a@b", recipients=(decision,)), Spool.from_bytes(raw)
        )
    code, out, _ = run(capsys, "messages", "list", "--format", "json")
    [row] = json.loads(out)
    assert row["id"] == str(outcome.message_id)
    assert row["subject"] == "via cli"
    assert row["status"] == "RECEIVED"

    code = main(["messages", "raw", str(outcome.message_id)])
    assert code == 0
    assert capsys.readouterr().out  # the bytes went to stdout's buffer
    assert run(capsys, "replay")[0] == 2  # needs an id or --status
    code, out, _ = run(capsys, "replay", "--status", "received", "--org", "acme", "--yes")
    assert code == 0
    assert out.startswith("re-enqueued 1 of 1")
    code, out, _ = run(capsys, "messages", "show", str(outcome.message_id), "--json")
    assert json.loads(out)["org_slug"] == "acme"


def test_production_refuses_embedded_defaults(monkeypatch, capsys) -> None:
    monkeypatch.setenv("INGEST_ENV", "production")
    for name in ("INGEST_DATABASE_URL", "INGEST_OBJECT_STORE_URL", "INGEST_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capsys, "tenants", "list")
    assert code == 2
    assert "INGEST_DATABASE_URL" in err
