"""``ingest tokens`` in-process against the test Postgres, and token checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest_core.api import tokens as api_tokens
from ingest_core.bootstrap import open_app
from ingest_core.settings import Settings
from tests.server.test_cli import env, run  # noqa: F401  (the fixture)


def test_create_list_revoke(env, capsys, data_dir, pg_url) -> None:  # noqa: F811
    assert run(capsys, "tenants", "add", "acme")[0] == 0
    code, out, err = run(capsys, "tokens", "create", "acme", "--name", "orders app")
    assert code == 0
    token = out.strip()
    assert api_tokens.parse(token) is not None
    assert "shown only now" in err
    code, _, err = run(capsys, "tokens", "create", "acme", "--name", "orders app")
    assert code == 1
    assert "already has a live token named 'orders app'" in err
    assert run(capsys, "tokens", "create", "nobody", "--name", "x")[0] == 1
    assert run(capsys, "tokens", "create", "--admin", "--name", "provisioning")[0] == 0
    code, out, _ = run(capsys, "tokens", "list", "acme")
    assert code == 0
    assert "orders app" in out
    assert "last used never" in out
    assert "provisioning" not in out

    settings = Settings.from_env()
    with open_app(settings) as app:
        principal = app.tokens.authenticate(token)
        assert principal is not None
        assert principal.org_slug == "acme"
        assert not principal.admin
        [record] = app.tokens.list("acme")
        assert record.last_used_at is not None
        first_use = record.last_used_at
        app.tokens.authenticate(token)  # within the minute: no second write
        assert app.tokens.list("acme")[0].last_used_at == first_use
        wrong = token[:-1] + ("0" if token[-1] != "0" else "1")
        assert app.tokens.authenticate(wrong) is None
        assert app.tokens.authenticate("ing_" + "0" * 16 + "_" + "0" * 64) is None
        assert app.tokens.authenticate("Bearer nonsense") is None

    assert run(capsys, "tokens", "revoke", "acme", "orders app")[0] == 0
    assert run(capsys, "tokens", "revoke", "acme", "orders app")[0] == 1
    with open_app(settings) as app:
        assert app.tokens.authenticate(token) is None
    # the name is free again once revoked
    assert run(capsys, "tokens", "create", "acme", "--name", "orders app")[0] == 0
    code, out, _ = run(capsys, "tokens", "list", "--admin")
    assert "provisioning" in out
    with open_app(settings) as app:
        events = app.audit.events()
    tokens = [e for e in events[::-1] if e.action.startswith("token.")]
    assert [(e.action, e.org_slug, e.scope["name"], e.scope["admin"]) for e in tokens] == [
        ("token.create", "acme", "orders app", False),
        ("token.create", None, "provisioning", True),
        ("token.revoke", "acme", "orders app", False),
        ("token.create", "acme", "orders app", False),
    ]
    assert all(token.split("_")[2] not in str(e.scope) for e in events)


def test_last_used_is_written_at_most_once_a_minute() -> None:
    touched: list[str] = []
    secret = "a" * 64
    record = api_tokens.TokenRecord(
        "0123456789abcdef",
        "n",
        None,
        None,
        False,
        api_tokens.digest(secret),
        datetime.now(UTC),
        datetime.now(UTC),
        None,
    )

    class Repo:
        def find(self, token_id: str) -> api_tokens.TokenRecord:
            return record

        def touch(self, token_id: str) -> None:
            touched.append(token_id)

    tokens = api_tokens.Tokens(Repo())  # type: ignore[arg-type]
    token = f"ing_{record.token_id}_{secret}"
    assert tokens.authenticate(token) is not None
    assert touched == []
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert tokens.authenticate(token, now=later) is not None
    assert touched == [record.token_id]
