"""``ingest tenants retention``, ``purge``, ``erase``, ``holds`` and ``tenants
delete --erase`` in-process against the test Postgres and the local store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest_core.bootstrap import open_app
from ingest_core.settings import Settings
from tests.adapters.test_lifecycle_pg import World
from tests.server.test_cli import env, run  # noqa: F401  (the fixture)

if TYPE_CHECKING:
    from collections.abc import Callable


def with_world(action: Callable[[World], object]) -> object:
    with open_app(Settings.from_env()) as app:
        return action(World(app.pool, app.repository, app.admin, app.lifecycle, app.store))  # type: ignore[arg-type]


def audit_actions() -> list[tuple[str, str | None, dict[str, object], int]]:
    with open_app(Settings.from_env()) as app:
        return [(e.action, e.org_slug, dict(e.scope), e.count) for e in app.audit.events()[::-1]]


def test_retention_setting_and_purge(env, capsys, monkeypatch) -> None:  # noqa: F811
    assert run(capsys, "tenants", "add", "acme")[0] == 0
    assert run(capsys, "tenants", "add", "other")[0] == 0
    code, out, _ = run(capsys, "tenants", "retention", "acme")
    assert (code, out.strip()) == (
        0,
        "tenant acme: retention default: kept (INGEST_RETENTION_DAYS unset)",
    )
    assert run(capsys, "tenants", "retention", "acme", "30d")[0] == 0
    assert run(capsys, "tenants", "retention", "other", "off")[0] == 0
    code, _, err = run(capsys, "tenants", "retention", "acme", "ninety")
    assert code == 2
    assert "give Nd" in err
    assert run(capsys, "tenants", "retention", "nobody", "5d")[0] == 1
    assert "retention:       30d" in run(capsys, "tenants", "show", "acme")[1]

    def seed(world: World) -> None:
        acme = world.admin.list()[0].id
        other = next(t.id for t in world.admin.list() if t.slug == "other")
        world.message(acme, age_days=31, body=b"old", attachments=(b"pdf",))
        world.message(acme, age_days=29, body=b"young")
        world.message(other, age_days=400, body=b"kept")

    with_world(seed)
    monkeypatch.setenv("INGEST_RETENTION_DAYS", "1")  # other is off: unaffected
    code, out, _ = run(capsys, "purge", "--dry-run")
    assert code == 0
    assert "acme: 1 message(s), 6 bytes would be removed" in out
    assert with_world(lambda w: len(w.message_ids())) == 3
    code, out, _ = run(capsys, "purge")
    assert code == 0
    assert "removed 1 message(s), 1 attachment(s), 6 bytes; 2 object(s) deleted" in out
    assert with_world(lambda w: len(w.message_ids())) == 2
    with_world(World.nothing_dangles)
    assert run(capsys, "tenants", "retention", "acme", "default")[0] == 0
    assert ("tenant.retention", "acme", {"retention": "30d"}, 1) in audit_actions()
    assert ("retention.purge", "acme", {"messages": 1, "bytes": 6}, 1) in audit_actions()


def test_erase_by_sender_records_only_a_keyed_digest(env, capsys, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("INGEST_SECRET_KEY", "k" * 32)
    assert run(capsys, "tenants", "add", "acme")[0] == 0
    assert run(capsys, "tenants", "add", "other")[0] == 0

    def seed(world: World) -> None:
        slugs = {t.slug: t.id for t in world.admin.list()}
        world.message(slugs["acme"], age_days=0, body=b"a", sender="Buyer@Example.net")
        world.message(
            slugs["acme"],
            age_days=0,
            body=b"b",
            sender="x@else.example",
            from_header="x@else.example",
        )
        world.message(slugs["other"], age_days=0, body=b"a", sender="buyer@example.net")

    with_world(seed)
    code, out, _ = run(
        capsys, "erase", "--org", "acme", "--sender", "buyer@example.net", "--dry-run"
    )
    assert code == 0
    assert "would remove 1 message(s), 1 bytes" in out
    assert (
        run(capsys, "erase", "--org", "acme", "--sender", "buyer@example.net")[0] == 1
    )  # no --yes
    assert with_world(lambda w: len(w.message_ids())) == 3
    code, out, _ = run(capsys, "erase", "--org", "acme", "--sender", "BUYER@example.net", "--yes")
    assert code == 0
    assert "erased 1 message(s)" in out
    assert with_world(lambda w: len(w.message_ids())) == 2  # other's identical message stays
    with_world(World.nothing_dangles)
    [erased] = [a for a in audit_actions() if a[0] == "erase.sender"]
    assert "buyer" not in str(erased).lower()
    assert str(erased[2]["sender_hmac"]).startswith("hmac-sha256:")
    assert (erased[1], erased[3], erased[2]["bytes"]) == ("acme", 1, 1)


def test_a_hold_blocks_erasure_and_retention_and_says_why(env, capsys, monkeypatch) -> None:  # noqa: F811
    assert run(capsys, "tenants", "add", "acme")[0] == 0
    ids = with_world(
        lambda w: [w.message(w.admin.list()[0].id, age_days=50, body=body) for body in (b"x", b"y")]
    )
    assert isinstance(ids, list)
    code, out, _ = run(capsys, "holds", "add", "--message", str(ids[0]), "--reason", "case 2026-17")
    assert code == 0
    assert out.startswith("hold ")
    assert " on acme: message " in out
    message_hold = out.split()[1]
    code, out, _ = run(capsys, "holds", "list")
    assert "case 2026-17" in out
    code, out, _ = run(capsys, "erase", "--org", "acme", "--message", str(ids[0]), "--yes")
    assert code == 1
    assert "1 message(s) kept: under legal hold (case 2026-17)" in out
    monkeypatch.setenv("INGEST_RETENTION_DAYS", "10")
    assert run(capsys, "purge")[0] == 0
    assert with_world(lambda w: w.message_ids()) == {ids[0]}
    code, out, _ = run(capsys, "holds", "add", "--org", "acme", "--reason", "audit")
    assert code == 0
    tenant_hold = out.split()[1]
    code, _, err = run(capsys, "tenants", "delete", "acme", "--erase", "--yes")
    assert code == 1
    assert "under legal hold: case 2026-17; audit" in err
    assert run(capsys, "holds", "remove", message_hold)[0] == 0
    assert run(capsys, "holds", "remove", tenant_hold)[0] == 0
    assert run(capsys, "holds", "remove", tenant_hold)[0] == 1
    actions = [a[0] for a in audit_actions()]
    assert actions.count("hold.add") == 2
    assert "erase.refused" in actions
    assert "tenant.delete.refused" in actions
    code, out, _ = run(capsys, "tenants", "delete", "acme", "--erase", "--yes")
    assert code == 0
    assert "deleted tenant acme: 1 message(s)" in out
    assert "acme" not in run(capsys, "tenants", "list")[1]
    with_world(World.nothing_dangles)
