"""The console over real sockets: the real app (`serve_api`, which mounts it) on
the test Postgres and the local object store, driven with httpx — sign-in,
sessions, CSRF, the tenant token's read-only view, escaping, downloads and the
audited actions. The browser tests (test_console_browser.py) add what only a
browser shows: that nothing hostile runs."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from ingest_core.audit import AuditEvent
from ingest_core.bootstrap import open_app
from ingest_core.model import MessageStatus
from ingest_core.settings import Settings
from lmtpd.api import serve_api
from tests.console.mail import DOMAIN, PDF, deliver, failed, hostile, order, quarantined

if TYPE_CHECKING:
    from pathlib import Path

PASSWORD = "correct horse battery staple"
SECRET = "s" * 40


def _settings(data_dir: Path, pg_url: str, **changes: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,)).with_(
        log_format="console", api_listen="127.0.0.1:0", **changes
    )


@pytest.fixture
async def console(nursery, data_dir, pg_url):
    with open_app(_settings(data_dir, pg_url, console_secret=SECRET)) as app:
        for slug in ("acme", "globex"):
            app.admin.add(slug, slug.title())
        app.operators.add("olga", PASSWORD)
        address = await nursery.start(serve_api, app, app.settings)
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
            yield app, client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def _sign_in(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/console/sign-in")
    reply = await client.post("/console/sign-in", data={"csrf": _csrf(page.text), **fields})
    return reply


async def test_sign_in_session_cookie_and_headers(console) -> None:
    app, client = console
    reply = await client.get("/console/messages?status=FAILED")
    assert reply.status_code == 303
    assert (
        reply.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fmessages%3Fstatus%3DFAILED"
    )
    root = await client.get("/")
    assert root.headers.get("location") == "/console/", (root.status_code, root.text)
    page = await client.get("/console/sign-in")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    csrf = _csrf(page.text)
    # a wrong password, an unknown name, a missing CSRF token: no session
    for fields in (
        {"csrf": csrf, "name": "olga", "password": "wrong password!!"},
        {"csrf": csrf, "name": "nobody", "password": PASSWORD},
        {"csrf": "forged", "name": "olga", "password": PASSWORD},
    ):
        reply = await client.post("/console/sign-in", data=fields)
        assert reply.status_code in (400, 401), fields
        assert "ingest-console" not in reply.headers.get("set-cookie", "")
    reply = await client.post(
        "/console/sign-in",
        data={"csrf": csrf, "name": "olga", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert reply.status_code == 303
    assert reply.headers["location"] == "/console/messages"  # never another site
    cookie = next(
        c for c in reply.headers.get_list("set-cookie") if c.startswith("ingest-console=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie
    assert (await client.get("/console/messages")).status_code == 200
    # a tampered cookie is no session
    value = client.cookies["ingest-console"]
    client.cookies.set("ingest-console", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert (await client.get("/console/messages")).status_code == 303
    client.cookies.set("ingest-console", value)
    # a disabled operator's session ends at the next request
    app.operators.set_disabled("olga", True)
    assert (await client.get("/console/messages")).status_code == 303
    [row] = app.operators.list()
    assert row.last_login_at is not None


async def test_sign_out_needs_the_csrf_token(console) -> None:
    _, client = console
    await _sign_in(client, name="olga", password=PASSWORD)
    page = await client.get("/console/messages")
    assert (await client.post("/console/sign-out", data={"csrf": "nope"})).status_code == 400
    reply = await client.post("/console/sign-out", data={"csrf": _csrf(page.text)})
    assert reply.status_code == 303
    assert (await client.get("/console/messages")).status_code == 303


async def test_filters_paging_and_the_message_page(console) -> None:
    app, client = console
    ids = [deliver(app, "acme", order(f"Order {n}")) for n in range(55)]
    other = deliver(app, "globex", order("Globex order", sender="cfo@globex.example"))
    await _sign_in(client, name="olga", password=PASSWORD)
    first = await client.get("/console/messages")
    shown = re.findall(r'href="/console/messages/([0-9a-f-]{36})"', first.text)
    assert len(set(shown)) == 50
    older = re.search(r'href="(/console/messages\?[^"]*cursor=[^"]+)"', first.text)
    assert older
    second = await client.get(older.group(1).replace("&amp;", "&"))
    rest = set(re.findall(r'href="/console/messages/([0-9a-f-]{36})"', second.text))
    assert rest | set(shown) == {str(i) for i in [*ids, other]}
    assert not rest & set(shown)
    for query, expected in (
        ({"tenant": "globex"}, {other}),
        ({"sender": "CFO@globex"}, {other}),
        ({"subject": "order 7"}, {ids[7]}),
        ({"status": "PROCESSED", "tenant": "globex"}, {other}),
        ({"status": "FAILED"}, set()),
        ({"since": "1h", "tenant": "globex"}, {other}),
        ({"automated": "bounce"}, set()),
    ):
        page = await client.get("/console/messages", params=query)
        assert page.status_code == 200
        found = set(re.findall(r'href="/console/messages/([0-9a-f-]{36})"', page.text))
        assert found == {str(i) for i in expected}, query
    for bad in ({"status": "NOPE"}, {"since": "yesterday"}, {"cursor": "garbage!"}):
        assert (await client.get("/console/messages", params=bad)).status_code == 400
    page = (await client.get(f"/console/messages/{ids[3]}")).text
    assert "Please ship 10 widgets to dock 4." in page
    assert "order-4711.pdf" in page
    assert "application/pdf" in page
    assert "multipart/mixed" in page  # the part tree
    assert (await client.get(f"/console/messages/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/console/messages/not-an-id")).status_code == 404
    tenants = (await client.get("/console/tenants")).text
    assert "<svg" in tenants
    assert "55 / 55" in tenants
    assert "auto-reply, bounce, feedback-report, list" in tenants  # the default holds
    assert "1 / 1" in tenants


async def test_download_is_an_attachment_with_the_same_bytes(console) -> None:
    app, client = console
    message_id = deliver(app, "acme", order("pdf"))
    await _sign_in(client, name="olga", password=PASSWORD)
    page = (await client.get(f"/console/messages/{message_id}")).text
    [link] = re.findall(r'href="(/console/messages/[^"]+/attachments/[^"]+)"', page)
    reply = await client.get(link)
    assert reply.status_code == 200
    assert reply.content == PDF
    assert hashlib.sha256(reply.content).hexdigest() == hashlib.sha256(PDF).hexdigest()
    assert reply.headers["content-disposition"] == 'attachment; filename="order-4711.pdf"'
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["content-type"] == "application/octet-stream"
    raw = await client.get(f"/console/messages/{message_id}/raw")
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert b"Please ship 10 widgets" in raw.content


async def test_hostile_text_is_escaped(console) -> None:
    app, client = console
    message_id = deliver(app, "acme", hostile("http://127.0.0.1:9"))
    await _sign_in(client, name="olga", password=PASSWORD)
    for path in ("/console/messages", f"/console/messages/{message_id}"):
        page = (await client.get(path)).text
        assert not re.search(r"<(script|img|iframe|a href=.javascript)", page, re.IGNORECASE)
        assert "&lt;script&gt;alert(1);fetch(" in page  # the subject, shown as text
    page = (await client.get(f"/console/messages/{message_id}")).text
    assert "Totally an order" in page  # the HTML body as its text rendering
    assert 'src="http://127.0.0.1:9' not in page


async def test_release_and_replay_are_confirmed_posts_in_the_audit_log(console) -> None:
    app, client = console
    held = quarantined(app, "acme", order("held"))
    broken = failed(app, "acme", order("broken"))
    await _sign_in(client, name="olga", password=PASSWORD)
    queue = (await client.get("/console/quarantine")).text
    assert str(held) in queue
    assert str(broken) not in queue
    assert str(broken) in (await client.get("/console/failed")).text
    confirm = await client.get(f"/console/messages/{held}/release")
    assert confirm.status_code == 200
    assert 'method="post"' in confirm.text
    csrf = _csrf(confirm.text)
    # no token, a wrong token: nothing happens
    for data in ({}, {"csrf": "forged"}):
        assert (
            await client.post(f"/console/messages/{held}/release", data=data)
        ).status_code == 400
    org = app.tenants.resolve("acme").id
    assert app.repository.get(org, held).status is MessageStatus.QUARANTINED
    reply = await client.post(f"/console/messages/{held}/release", data={"csrf": csrf})
    assert reply.status_code == 303
    assert reply.headers["location"].endswith("?done=released")
    assert app.repository.get(org, held).status is MessageStatus.RECEIVED
    again = await client.post(f"/console/messages/{held}/release", data={"csrf": csrf})
    assert again.headers["location"].endswith("?done=not-released")
    # replay refuses what is not FAILED, then replays the FAILED one
    not_failed = await client.post(f"/console/messages/{held}/replay", data={"csrf": csrf})
    assert not_failed.headers["location"].endswith("?done=not-replayed")
    reply = await client.post(f"/console/messages/{broken}/replay", data={"csrf": csrf})
    assert reply.headers["location"].endswith("?done=replayed")
    assert app.repository.get(org, broken).status is MessageStatus.RECEIVED
    events = app.audit.events()
    assert [(e.action, e.actor, e.scope["ids"], e.scope["via"]) for e in events] == [
        ("message.replay", "console olga", [str(broken)], "console"),
        ("message.release", "console olga", [str(held)], "console"),
    ]
    page = (await client.get(f"/console/messages/{held}")).text
    assert "message.release" in page
    assert "console olga" in page


async def test_a_tenant_token_sees_only_its_tenant_and_changes_nothing(console) -> None:
    app, client = console
    mine = quarantined(app, "acme", order("mine"))
    theirs = deliver(app, "globex", order("theirs"))
    token = app.tokens.issue("acme", "support").token
    admin = app.tokens.issue(None, "root").token
    assert (await _sign_in(client, token=admin)).status_code == 401  # admin tokens: no console
    assert (await _sign_in(client, token="ing_nope")).status_code == 401
    assert (await _sign_in(client, token=token)).status_code == 303
    listing = (await client.get("/console/messages", params={"tenant": "globex"})).text
    assert str(mine) in listing
    assert str(theirs) not in listing
    assert "read-only" in listing
    assert (await client.get(f"/console/messages/{theirs}")).status_code == 404
    page = await client.get(f"/console/messages/{mine}")
    assert page.status_code == 200
    assert "Release…" not in page.text
    assert (await client.get(f"/console/messages/{mine}/release")).status_code == 403
    reply = await client.post(f"/console/messages/{mine}/release", data={"csrf": _csrf(page.text)})
    assert reply.status_code == 403
    org = app.tenants.resolve("acme").id
    assert app.repository.get(org, mine).status is MessageStatus.QUARANTINED
    tenants = (await client.get("/console/tenants")).text
    assert "acme" in tenants
    assert "globex" not in tenants
    app.tokens.revoke("acme", "support")
    assert (await client.get("/console/messages")).status_code == 303


async def test_failed_sign_ins_are_limited_per_address(console) -> None:
    _, client = console
    page = await client.get("/console/sign-in")
    csrf = _csrf(page.text)
    codes = []
    for _ in range(11):
        reply = await client.post(
            "/console/sign-in", data={"csrf": csrf, "name": "olga", "password": "x" * 12}
        )
        codes.append(reply.status_code)
    assert codes == [401] * 10 + [429]


async def test_production_without_the_secret_turns_only_the_console_off(
    nursery, data_dir, pg_url
) -> None:
    settings = _settings(data_dir, pg_url, env="production")
    with open_app(settings) as app:
        address = await nursery.start(serve_api, app, app.settings)
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
            reply = await client.get("/console/messages")
            assert reply.status_code == 503
            assert "INGEST_CONSOLE_SECRET" in reply.text
            assert (await client.get("/v1/messages")).status_code == 401  # the API serves on
    assert not (data_dir / "console-secret").exists()


async def test_production_cookie_is_secure_and_host_prefixed(nursery, data_dir, pg_url) -> None:
    settings = _settings(data_dir, pg_url, env="production", console_secret=SECRET)
    with open_app(settings) as app:
        app.operators.add("olga", PASSWORD)
        address = await nursery.start(serve_api, app, app.settings)
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
            page = await client.get("/console/sign-in")
            cookie = page.headers["set-cookie"]
            assert cookie.startswith("__Host-ingest-sign-in=")
            assert "Secure" in cookie
            value = cookie.split(";", 1)[0].split("=", 1)[1]
            reply = await client.post(
                "/console/sign-in",
                data={"csrf": _csrf(page.text), "name": "olga", "password": PASSWORD},
                headers={"Cookie": f"__Host-ingest-sign-in={value}"},
            )
            assert reply.status_code == 303
            session = next(
                c
                for c in reply.headers.get_list("set-cookie")
                if c.startswith("__Host-ingest-console=")
            )
            assert "Secure" in session
            assert "Path=/" in session
            assert "HttpOnly" in session


async def test_the_message_page_shows_verdicts_deliveries_and_cli_audit(console) -> None:
    app, client = console
    message_id = deliver(app, "acme", order("verdicts"))
    with app.pool.connection() as conn:
        conn.execute(
            "UPDATE inbound_message SET auth_spf = 'pass', auth_dmarc = 'fail',"
            " auth_dmarc_policy = 'reject', auth_from_domain = 'shop.example',"
            " auth_aligned = false, auth_results = 'spf=pass dmarc=fail',"
            """ auth_dkim = '[{"domain": "shop.example", "selector": "s1", "result": "fail"},"""
            """ {"domain": "esp.example"}]' WHERE id = %s""",
            (message_id,),
        )
        conn.execute(
            "INSERT INTO webhook_endpoint (id, org_id, url, secret)"
            " SELECT 'ep_0123456789abcdef', org_id, 'https://hooks.shop.example/in', 'x'"
            " FROM inbound_message WHERE id = %s",
            (message_id,),
        )
        conn.execute(
            "INSERT INTO webhook_delivery (event_id, endpoint_id, status, attempts, last_status)"
            " SELECT id, 'ep_0123456789abcdef', 'FAILED', 3, 500 FROM event"
            " WHERE message_id = %s AND type = 'message.processed'",
            (message_id,),
        )
    app.audit.record(AuditEvent("ops", "message.replay", "acme", {"ids": [str(message_id)]}, 1))
    await _sign_in(client, name="olga", password=PASSWORD)
    page = await client.get(f"/console/messages/{message_id}")
    assert page.status_code == 200
    text = page.text
    assert "fail d=shop.example s=s1" in text
    assert "— d=esp.example s=—" in text  # an entry without a result or selector
    assert "(p=reject)" in text
    assert "not aligned" in text
    assert "https://hooks.shop.example/in" in text
    assert "message.processed" in text
    assert "<strong>message.replay</strong> by ops</li>" in text
