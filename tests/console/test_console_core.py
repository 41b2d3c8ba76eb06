"""The console's core pieces: operators and their argon2id hashes (on the test
Postgres), the session key, the MIME part tree, and the parsing of what a
browser sends (where to go after sign-in, ``since``)."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st

from ingest_core.adapters.postgres.operators import PostgresOperators
from ingest_core.bodies import MessageBody
from ingest_core.console.operators import OperatorError, Operators
from ingest_core.console.parts import PartNode, part_tree
from ingest_core.console.secret import console_secret
from ingest_core.errors import ConfigError
from ingest_core.mime import MimeLimits, build_manifest
from ingest_core.settings import Settings
from lmtpd.api.console import views
from lmtpd.api.console.base import environment
from lmtpd.api.console.sessions import Session
from tests.console import browser
from tests.console.mail import order
from tests.procs import ingest_env

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


def test_operators_add_authenticate_disable(pg_pool) -> None:
    operators = Operators(PostgresOperators(pg_pool))
    operators.add("olga", PASSWORD)
    for name, password in (("olga", PASSWORD), ("Bad Name", PASSWORD), ("ok", "short")):
        with pytest.raises(OperatorError):
            operators.add(name, password)
    assert operators.authenticate("olga", PASSWORD) == "olga"
    assert operators.authenticate("olga", PASSWORD + "x") is None
    assert operators.authenticate("nobody", PASSWORD) is None
    assert operators.authenticate("olga", "x" * 5000) is None  # never hashed
    [record] = operators.list()
    assert record.password_hash.startswith("$argon2id$")
    assert PASSWORD not in record.password_hash
    assert record.last_login_at is not None
    assert operators.set_disabled("olga", True)
    assert operators.authenticate("olga", PASSWORD) is None
    assert operators.set_disabled("olga", False)
    assert operators.authenticate("olga", PASSWORD) == "olga"
    assert not operators.set_disabled("nobody", True)


def test_a_weaker_hash_is_replaced_at_sign_in(pg_pool) -> None:
    repository = PostgresOperators(pg_pool)
    Operators(repository, PasswordHasher(time_cost=1, memory_cost=8192)).add("olga", PASSWORD)
    weak = repository.find("olga").password_hash
    assert "m=8192" in weak
    assert Operators(repository).authenticate("olga", PASSWORD) == "olga"
    strong = repository.find("olga").password_hash
    assert strong != weak
    assert "m=8192" not in strong
    assert Operators(repository).authenticate("olga", PASSWORD) == "olga"


def test_cli_operators(data_dir, pg_url) -> None:
    env = ingest_env(data_dir, pg_url)

    def ingest(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lmtpd.cli", "operators", *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    added = ingest("add", "olga", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    again = ingest("add", "olga", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 1
    assert "exists already" in again.stderr
    short = ingest("add", "ivan", "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert "at least 12" in short.stderr
    no_tty = ingest("add", "ivan")
    assert no_tty.returncode == 1
    assert "--password-stdin" in no_tty.stderr
    assert ingest("disable", "olga").returncode == 0
    listing = ingest("list")
    assert listing.stdout.startswith("olga")
    assert "disabled" in listing.stdout
    assert ingest("enable", "nobody").returncode == 1
    audit = subprocess.run(
        [sys.executable, "-m", "lmtpd.cli", "audit", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "operator.add" in audit.stdout
    assert "operator.disable" in audit.stdout


def test_console_secret_made_once_in_development_required_in_production(data_dir) -> None:
    settings = Settings(data_dir=data_dir)
    made = console_secret(settings)
    assert len(made) >= 32
    assert console_secret(settings) == made
    assert (data_dir / "console-secret").stat().st_mode & 0o777 == 0o600
    assert console_secret(settings.with_(console_secret="k" * 32)) == "k" * 32
    with pytest.raises(ConfigError, match="at least 32"):
        console_secret(settings.with_(console_secret="short"))
    with pytest.raises(ConfigError, match="INGEST_CONSOLE_SECRET"):
        console_secret(settings.with_(env="production"))


def _attached(inner: bytes) -> bytes:
    return (
        b"Subject: fwd\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n'
        b"--o\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--o\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--o--\r\n"
    )


def test_part_tree_numbers_parts_as_extraction_does() -> None:
    raw = _attached(order("inner"))
    limits = MimeLimits()
    tree = part_tree(io.BytesIO(raw), limits)
    assert tree is not None
    rows = [(p.depth, p.path, p.content_type, p.filename) for p in tree]
    assert rows == [
        (0, "", "multipart/mixed", None),
        (1, "1", "text/plain", None),
        (1, "2", "message/rfc822", None),
        (2, "2.1", "text/plain", None),
        (2, "2.2", "application/pdf", "order-4711.pdf"),
    ]
    manifest = build_manifest(io.BytesIO(raw), limits)
    paths = {entry.part_path for entry in manifest.entries}
    assert paths <= {path for _, path, _, _ in rows}
    assert "2.2" in paths
    deep = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n) for n in range(50)
    )
    assert part_tree(io.BytesIO(deep), MimeLimits(max_depth=5)) is None
    assert part_tree(io.BytesIO(deep), MimeLimits(max_depth=60)) is not None


@given(st.text(max_size=80))
def test_after_sign_in_the_browser_goes_only_to_a_console_path(target: str) -> None:
    where = views.safe_next(target)
    assert where.startswith("/console/")
    assert not where.startswith("//")
    assert "\\" not in where


def test_since() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert views.parse_since("24h", now) == now - timedelta(hours=24)
    assert views.parse_since(" 7d ", now) == now - timedelta(days=7)
    assert views.parse_since("30m", now) == now - timedelta(minutes=30)
    assert views.parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert views.parse_since("2026-11-01T10:00Z", now) == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert views.parse_since("", now) is None
    for bad in ("yesterday", "7w", "-1d"):
        with pytest.raises(ValueError):  # noqa: PT011 - datetime's own message
            views.parse_since(bad, now)


def test_the_browser_gate_skips_or_fails_without_chromium(monkeypatch) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setattr(browser, "CHROMEDRIVER", Path(__file__))  # present: chromium alone missing
    monkeypatch.delenv("INGEST_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium absent"):
        browser.require_browser()
    monkeypatch.setenv("INGEST_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="INGEST_REQUIRE_BROWSER=1"):
        browser.require_browser()


def test_ingest_config_never_shows_the_console_secret(data_dir, pg_url) -> None:
    secret = "c" * 40
    env = ingest_env(data_dir, pg_url, INGEST_CONSOLE_SECRET=secret)
    shown = subprocess.run(
        [sys.executable, "-m", "lmtpd.cli", "config", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert secret not in shown.stdout + shown.stderr
    assert '"console_secret"' in shown.stdout


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, tuple(sorted(name for name, _ in attrs))))


def _message_page(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """The elements and attribute names of a message page whose every sender
    field is ``text``."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    detail = {
        "id": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
        "org_slug": "acme",
        "status": "QUARANTINED",
        "received_at": now,
        "processed_at": None,
        "released_at": None,
        "size_bytes": 10,
        "attempts": 1,
        "last_error": text,
        "quarantine_reason": text,
    }
    for field in ("subject", "from_header", "envelope_from", "envelope_recipient",
                  "client_address", "client_helo", "postfix_queue_id", "message_id_header",
                  "source_message_id", "auth_results", "auth_spf", "auth_dmarc",
                  "auth_dmarc_policy", "auth_from_domain", "auth_arc", "automated_kind",
                  "automated_reason"):  # fmt: skip
        detail[field] = text
    detail["auth_aligned"] = True
    detail["auth_dkim"] = [{"domain": text, "selector": text, "result": text}]
    detail["attachments"] = [
        {"id": "a", "part_path": "2", "filename": text, "content_type": text,
         "detected_content_type": text, "size_bytes": 1, "sha256": "f" * 64}
    ]  # fmt: skip
    detail["events"] = [{"id": "evt_1", "type": "message.received", "created_at": now}]
    detail["deliveries"] = [
        {"type": "message.received", "url": text, "status": "FAILED", "attempts": 1,
         "last_status": 500, "last_error": text, "delivered_at": None}
    ]  # fmt: skip
    detail["audit"] = [
        {"at": now, "actor": text, "action": "message.release", "scope": {"via": text}}
    ]
    detail["body"] = MessageBody(text, text, text_from_html=True)
    tree = [PartNode(0, "", text, text, text, 1)]
    session = Session("operator", "olga", "csrf")
    html = (
        environment()
        .get_template("message.html")
        .render(session=session, path="/console/messages/x", m=detail, tree=tree, done=None)
    )
    parser = _Tags()
    parser.feed(html)
    return parser.seen


@given(st.text(alphabet=st.sampled_from("<>\"'&=/ ax:;()\u202e\n`"), min_size=1, max_size=40))
def test_sender_text_adds_no_element_or_attribute_to_a_page(text: str) -> None:
    assert _message_page(text) == _message_page("plain")
