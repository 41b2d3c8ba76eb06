"""The `ingest` command as a process against real Postgres, as a person uses it:
one-line configuration errors (exit 2, no traceback), `ingest config`, help and
version, ids by prefix and ambiguity, replay's selection, the audit table,
attachments out of the store (folder and S3), and `./dev send`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from ingest_core.bootstrap import open_app
from ingest_core.model import Attachment
from ingest_core.ports import Envelope
from ingest_core.settings import Settings
from ingest_core.spool import Spool
from tests.procs import DOMAIN, REPO, IngestServer, ingest_env, run_ingest
from tests.server.test_cli_startup import assert_one_line_config_error

if TYPE_CHECKING:
    import uuid
    from pathlib import Path


@pytest.fixture
def env(data_dir: Path, pg_url: str) -> dict[str, str]:
    return ingest_env(data_dir, pg_url)


def _settings(data_dir: Path, pg_url: str, **extra: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,), **extra)  # type: ignore[arg-type]


def _deliver(app, slug: str, message_id: str) -> uuid.UUID:
    raw = f"From: b@big.example\r\nMessage-ID: <{message_id}>\r\nSubject: PO\r\n\r\nx\r\n"
    decision = app.service.check_recipient(f"orders+{slug}@{DOMAIN}", False)
    [outcome] = app.service.accept(
        Envelope(mail_from="b@big.example", recipients=(decision,)), Spool.from_bytes(raw.encode())
    )
    return outcome.message_id


# ------------------------------------------------------------ configuration


@pytest.mark.parametrize("value", ["Production", "PRODUCTION"])
def test_ingest_env_is_read_in_any_case(env: dict[str, str], value: str) -> None:
    result = run_ingest({**env, "INGEST_ENV": value}, "tenants", "list")
    assert_one_line_config_error(result, "INGEST_OBJECT_STORE_URL", "production")


@pytest.mark.parametrize("value", ["prod", "staging", "dev"])
def test_an_unknown_ingest_env_is_refused(env: dict[str, str], value: str) -> None:
    result = run_ingest({**env, "INGEST_ENV": value}, "tenants", "list")
    assert_one_line_config_error(result, "INGEST_ENV", repr(value), "development or production")


@pytest.mark.parametrize(
    ("url", "needle"),
    [("not-a-url", "'not-a-url'"), ("mysql://root:hunter2@db/orders", "mysql://root:***@db")],
)
def test_an_invalid_database_url_is_one_line(env: dict[str, str], url: str, needle: str) -> None:
    result = run_ingest({**env, "INGEST_DATABASE_URL": url}, "tenants", "list")
    assert_one_line_config_error(result, "INGEST_DATABASE_URL", needle)
    assert "hunter2" not in result.stderr


def test_a_data_dir_that_is_a_file(env: dict[str, str], data_dir: Path) -> None:
    (data_dir / "file").write_text("x")
    result = run_ingest({**env, "INGEST_DATA_DIR": str(data_dir / "file")}, "db", "upgrade")
    assert_one_line_config_error(result, "INGEST_DATA_DIR", str(data_dir / "file"), "not a folder")


def test_a_data_dir_that_cannot_be_created(env: dict[str, str], data_dir: Path) -> None:
    (data_dir / "file").write_text("x")
    target = data_dir / "file" / "var"
    result = run_ingest({**env, "INGEST_DATA_DIR": str(target)}, "tenants", "list")
    assert_one_line_config_error(result, "INGEST_DATA_DIR", "file")


def test_an_embedded_postgres_that_cannot_start_names_its_log(
    env: dict[str, str], data_dir: Path
) -> None:
    embedded = {k: v for k, v in env.items() if k != "INGEST_DATABASE_URL"}
    pg = data_dir / "pg"
    pg.mkdir()
    (pg / "PG_VERSION").write_text("1\n")  # a data folder no server can use
    result = run_ingest(embedded, "db", "upgrade")
    assert_one_line_config_error(result, "INGEST_DATA_DIR", str(pg), "did not start")
    assert "log" in result.stderr


def test_only_db_upgrade_creates_the_embedded_database(env: dict[str, str], data_dir: Path) -> None:
    embedded = {k: v for k, v in env.items() if k not in ("INGEST_DATABASE_URL", "INGEST_DATA_DIR")}
    result = subprocess.run(
        [sys.executable, "-m", "lmtpd.cli", "tenants", "add", "acme"],
        env=embedded,
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_one_line_config_error(result, str(data_dir / "var" / "pg"), "INGEST_DATA_DIR is unset")
    assert "ingest db upgrade" in result.stderr
    assert not (data_dir / "var" / "pg").exists()


def test_a_database_without_schema_says_so(env: dict[str, str], pg_empty_database_url: str) -> None:
    result = run_ingest({**env, "INGEST_DATABASE_URL": pg_empty_database_url}, "tenants", "list")
    assert_one_line_config_error(result, "has no schema", "ingest db upgrade")


def test_config_shows_the_settings_redacted_and_checks_each_dependency(
    env: dict[str, str], closed_port: int
) -> None:
    url = f"postgresql://ingest:s3cret@127.0.0.1:{closed_port}/ingest"
    secrets = {"AWS_SECRET_ACCESS_KEY": "topsecret", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"}
    result = run_ingest({**env, **secrets, "INGEST_DATABASE_URL": url}, "config", "--json")
    assert result.returncode == 1  # postgres did not answer
    assert "s3cret" not in result.stdout
    assert "topsecret" not in result.stdout
    report = json.loads(result.stdout)
    database = report["settings"]["database_url"]
    assert database == {
        "variable": "INGEST_DATABASE_URL",
        "value": f"postgresql://ingest:***@127.0.0.1:{closed_port}/ingest",
        "source": "environment",
    }
    assert report["settings"]["max_recipients"]["source"] == "default"
    assert report["aws"]["AWS_SECRET_ACCESS_KEY"] == "***"
    assert report["aws"]["AWS_ACCESS_KEY_ID"] == "AKIDEXAMPLE"
    postgres = report["checks"]["postgres"]
    assert postgres["ok"] is False
    assert "connection refused" in postgres["error"].lower()
    assert report["checks"]["object_store"] == {"ok": True, "error": None}
    text = run_ingest({**env, "INGEST_DATABASE_URL": url}, "config")
    assert "INGEST_DATABASE_URL" in text.stdout
    assert "postgres       FAILED" in text.stdout


def test_config_passes_on_a_working_setup(env: dict[str, str]) -> None:
    assert run_ingest(env, "db", "upgrade").returncode == 0
    assert run_ingest(env, "sweep").returncode == 0  # opens the queue: its file exists
    result = run_ingest(env, "config", "--json")
    assert result.returncode == 0, result.stdout
    assert all(check["ok"] for check in json.loads(result.stdout)["checks"].values())


# ------------------------------------------------------------ help, version


def test_version_and_help(env: dict[str, str]) -> None:
    version = run_ingest(env, "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("ingest ")
    helptext = run_ingest(env, "--help").stdout
    assert "INGEST_DATA_DIR" in helptext
    assert "docs/configuration.md" in helptext


def test_every_subcommand_and_positional_has_help() -> None:
    import argparse

    from lmtpd.cli import _parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, child in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name}")
                    walk(child, f"{path} {name}")
            elif not action.option_strings and not action.help:
                missing.append(f"{path} <{action.dest}>")

    walk(_parser(), "ingest")
    assert missing == []


# ------------------------------------------------------------ ids, replay, audit


def test_ids_by_prefix_and_ambiguity_lists_the_tenants(
    env: dict[str, str], data_dir: Path, pg_url: str
) -> None:
    with open_app(_settings(data_dir, pg_url)) as app:
        app.admin.add("acme", "Acme")
        app.admin.add("beta", "Beta")
        first = _deliver(app, "acme", "po-1@big.example")
        _deliver(app, "acme", "shared@big.example")
        _deliver(app, "beta", "shared@big.example")
    shown = run_ingest(env, "messages", "show", str(first)[:8])
    assert shown.returncode == 0, shown.stderr
    assert str(first) in shown.stdout
    short = run_ingest(env, "messages", "show", str(first)[:7])
    assert short.returncode == 1  # too short to be a prefix, and no such Message-ID
    ambiguous = run_ingest(env, "messages", "show", "shared@big.example")
    assert ambiguous.returncode == 1
    assert "2 messages match" in ambiguous.stderr
    assert "acme" in ambiguous.stderr
    assert "beta" in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr
    nope = run_ingest(env, "messages", "list", "--org", "nope")
    assert nope.returncode == 1
    assert "no tenant 'nope'" in nope.stderr


def test_replay_takes_a_message_id_validates_status_and_asks_before_bulk(
    env: dict[str, str], data_dir: Path, pg_url: str
) -> None:
    with open_app(_settings(data_dir, pg_url)) as app:
        app.admin.add("acme", "Acme")
        one = _deliver(app, "acme", "po-9@big.example")
        _deliver(app, "acme", "po-10@big.example")
    by_mid = run_ingest(env, "replay", "<po-9@big.example>")
    assert by_mid.returncode == 0, by_mid.stderr
    assert by_mid.stdout.startswith("re-enqueued 1 of 1")
    bogus = run_ingest(env, "replay", "--status", "bogus")
    assert bogus.returncode == 2
    assert "invalid choice" in bogus.stderr
    asked = run_ingest(env, "replay", "--status", "received", "--org", "acme")
    assert asked.returncode == 1
    assert "would re-enqueue 2 message(s)" in asked.stdout
    assert "--yes" in asked.stderr
    dry = run_ingest(env, "replay", "--status", "received", "--dry-run")
    assert dry.returncode == 0
    assert str(one) in dry.stdout
    done = run_ingest(env, "replay", "--status", "received", "--org", "acme", "--yes")
    assert done.returncode == 0
    assert done.stdout.startswith("re-enqueued 2 of 2")
    nope = run_ingest(env, "replay", "--status", "failed", "--org", "nope", "--yes")
    assert nope.returncode == 1
    assert "no tenant 'nope'" in nope.stderr

    audit = run_ingest(env, "audit", "--org", "acme", "--json")
    assert audit.returncode == 0
    [event] = json.loads(audit.stdout)  # the Message-ID replay named no tenant
    assert event["action"] == "message.replay"
    assert event["count"] == 2
    assert event["scope"] == {"status": "RECEIVED", "org": "acme"}
    assert event["actor"]
    everything = json.loads(run_ingest(env, "audit", "--json").stdout)
    assert [e["action"] for e in everything] == ["message.replay", "message.replay"]


def test_operator_actions_are_audited(env: dict[str, str], data_dir: Path, pg_url: str) -> None:
    for args in (
        ("tenants", "add", "acme"),
        ("tenants", "policy", "acme", "dmarc"),
        ("tenants", "senders", "add", "acme", "*@big.example"),
        ("tenants", "automated", "acme", "bulk", "hold"),
        ("tenants", "disable", "acme"),
        ("export", "--org", "acme", "--out", str(data_dir / "acme.db")),
    ):
        assert run_ingest(env, *args).returncode == 0, args
    result = run_ingest(env, "audit", "--since", "1h")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["AT", "(UTC)", "ACTOR", "ACTION"]
    actions = [line.split()[3] for line in lines[1:-1]]
    assert actions == [
        "export",
        "tenant.disable",
        "tenant.automated",
        "tenant.senders.add",
        "tenant.policy",
        "tenant.add",
    ]
    assert lines[-1] == "(6 events)"
    assert run_ingest(env, "audit", "--org", "other", "--json").stdout.strip() == "[]"


def test_release_is_audited(env: dict[str, str], data_dir: Path, pg_url: str) -> None:
    with open_app(_settings(data_dir, pg_url)) as app:
        app.admin.add("acme", "Acme")
        held = _deliver(app, "acme", "held@big.example")
        assert app.repository.claim(held, 60) is not None
        app.repository.quarantine(held, "DMARC fail")
    result = run_ingest(env, "messages", "release", str(held)[:12])
    assert result.returncode == 0, result.stderr
    [event] = json.loads(run_ingest(env, "audit", "--json").stdout)
    assert (event["action"], event["org_slug"], event["scope"]) == (
        "message.release",
        "acme",
        {"ids": [str(held)]},
    )


def test_tenants_list_has_a_header(env: dict[str, str]) -> None:
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    lines = run_ingest(env, "tenants", "list").stdout.splitlines()
    assert lines[0].split() == ["SLUG", "STATUS", "POLICY", "ID", "NAME"]
    assert lines[1].startswith("acme ")


# ------------------------------------------------------------ attachments


def _with_attachments(settings: Settings) -> uuid.UUID:
    with open_app(settings) as app:
        app.admin.add("acme", "Acme")
        message_id = _deliver(app, "acme", "att@big.example")
        items = []
        for part, name, body in (
            ("2", "PO-1.pdf", b"%PDF-1.4 one"),
            ("3", "../../etc/passwd", b"not a passwd"),
            ("4", None, b"nameless"),
            ("5", "PO-1.pdf", b"%PDF-1.4 two"),
        ):
            key = f"attachments/{message_id}/{part}"
            app.store.put(key, Spool.from_bytes(body))
            items.append(
                Attachment(
                    part_path=part,
                    content_type="application/pdf",
                    disposition="attachment",
                    filename=name,
                    size_bytes=len(body),
                    sha256="e" * 64,
                    object_key=key,
                )
            )
        assert app.repository.claim(message_id, 60) is not None
        app.repository.finish(message_id, items, "parser-1")
    return message_id


def _check_attachments(env: dict[str, str], message_id: uuid.UUID, out: Path) -> None:
    shown = run_ingest(env, "messages", "show", str(message_id))
    assert "PART" in shown.stdout
    assert "NAME / OBJECT KEY" in shown.stdout
    result = run_ingest(env, "messages", "attachments", str(message_id), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "2-PO-1.pdf",
        "5-PO-1.pdf",
        "_.._etc_passwd",
        "part-4",
    ]
    assert (out / "2-PO-1.pdf").read_bytes() == b"%PDF-1.4 one"
    assert (out / "part-4").read_bytes() == b"nameless"
    again = run_ingest(env, "messages", "attachments", str(message_id), "5", "--out", str(out))
    assert again.returncode == 1
    assert "--force" in again.stderr
    forced = run_ingest(
        env, "messages", "attachments", str(message_id), "5", "--out", str(out), "--force"
    )
    assert forced.returncode == 0
    assert (out / "5-PO-1.pdf").read_bytes() == b"%PDF-1.4 two"
    missing = run_ingest(env, "messages", "attachments", str(message_id), "9", "--out", str(out))
    assert missing.returncode == 1
    assert "no part '9'" in missing.stderr


def test_attachments_from_the_folder_store(
    env: dict[str, str], data_dir: Path, pg_url: str
) -> None:
    message_id = _with_attachments(_settings(data_dir, pg_url))
    _check_attachments(env, message_id, data_dir / "out")


def test_attachments_from_s3(
    env: dict[str, str],
    data_dir: Path,
    pg_url: str,
    s3_bucket_url: str,
    moto_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in moto_env.items():
        monkeypatch.setenv(name, value)
    message_id = _with_attachments(_settings(data_dir, pg_url, object_store_url=s3_bucket_url))
    s3_env = {**env, **moto_env, "INGEST_OBJECT_STORE_URL": s3_bucket_url}
    _check_attachments(s3_env, message_id, data_dir / "out")
    assert not (data_dir / "objects").exists() or not any((data_dir / "objects").rglob("*-*"))


# ------------------------------------------------------------ ./dev send


def _send(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lmtpd.cli.sample", *args],
        env={k: v for k, v in os.environ.items() if not k.startswith("INGEST_")},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_send_prints_the_replies_and_fails_on_refusal(env: dict[str, str], data_dir: Path) -> None:
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    server = IngestServer({**env, "INGEST_HTTP_LISTEN": "off"}, data_dir / "serve.log")
    server.start()
    try:
        target = f"127.0.0.1:{server.port}"
        accepted = _send("--server", target, "--to", f"orders+acme@{DOMAIN}")
        assert accepted.returncode == 0, accepted.stderr
        assert accepted.stdout.splitlines()[-1].startswith("250 2.0.0 ")
        refused = _send("--server", target, "--to", f"orders+nobody@{DOMAIN}")
        assert refused.returncode == 1
        assert "550 5.1.1" in refused.stdout
    finally:
        server.stop()
    assert _send("--help").returncode == 0
    down = _send("--server", target)
    assert down.returncode == 1
    assert "cannot deliver" in down.stderr
