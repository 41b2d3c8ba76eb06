"""The tenant API over real sockets: the real app on the test Postgres and the
local object store (S3 through moto for the streamed download)."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from ingest_core.bootstrap import open_app
from ingest_core.settings import Settings
from lmtpd.api import serve_api

if TYPE_CHECKING:
    from pathlib import Path


def _settings(data_dir: Path, pg_url: str, **changes: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=pg_url, domains=("orders.example.com",)).with_(
        log_format="console", api_listen="127.0.0.1:0", api_public_url="https://api.test", **changes
    )


def _message(app, slug: str, body: bytes, attachment: tuple[str, bytes] | None = None):
    """A stored message row (and attachment) of tenant ``slug``: ids."""
    tenant = app.tenants.resolve(slug)
    sha = hashlib.sha256(body).hexdigest()
    key = f"raw/{tenant.id}/{sha}.eml"
    app.store.put_file(key, io.BytesIO(body), len(body))
    with app.pool.connection() as conn:
        mid = conn.execute(
            "INSERT INTO inbound_message (org_id, source_message_id, sha256, size_bytes,"
            " raw_object_key, envelope_from, content_sha256, envelope_recipient, subject)"
            " VALUES (%s, %s, %s, %s, %s, 'b@x.example', %s, 'orders+a@o.example', 's')"
            " RETURNING id",
            (tenant.id, uuid.uuid4().hex, sha, len(body), key, sha),
        ).fetchone()[0]
        aid = None
        if attachment is not None:
            name, data = attachment
            asha = hashlib.sha256(data).hexdigest()
            akey = f"attachments/{tenant.id}/{asha}"
            app.store.put_file(akey, io.BytesIO(data), len(data))
            aid = conn.execute(
                "INSERT INTO inbound_attachment (inbound_message_id, org_id, part_path,"
                " filename, content_type, size_bytes, sha256, object_key)"
                " VALUES (%s, %s, '2', %s, 'application/pdf', %s, %s, %s) RETURNING id",
                (mid, tenant.id, name, len(data), asha, akey),
            ).fetchone()[0]
    return mid, aid


@pytest.fixture
async def api(nursery, data_dir, pg_url):
    with open_app(_settings(data_dir, pg_url)) as app:
        for slug in ("acme", "globex"):
            app.admin.add(slug, slug)
        address = await nursery.start(serve_api, app, app.settings)
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
            yield app, client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_messages_pages_details_and_cross_tenant_404s(api) -> None:
    app, client = api
    acme = _auth(app.tokens.issue("acme", "t").token)
    globex = _auth(app.tokens.issue("globex", "t").token)
    ids = [_message(app, "acme", f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())[0] for i in range(5)]
    mid, aid = _message(app, "acme", b"Subject: pdf\r\n\r\nx\r\n", ("order.pdf", b"%PDF-1.4 x"))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        reply = await client.get("/v1/messages", params=params, headers=acme)
        assert reply.status_code == 200
        page = reply.json()
        seen += [m["id"] for m in page["messages"]]
        _message(app, "acme", uuid.uuid4().bytes)  # a concurrent insert: never in later pages
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == sorted(str(i) for i in [*ids, mid])
    assert len(seen) == len(set(seen)) == 6
    detail = (await client.get(f"/v1/messages/{mid}", headers=acme)).json()
    [attachment] = detail["attachments"]
    assert attachment["download_url"] == f"https://api.test/v1/messages/{mid}/attachments/{aid}"
    assert detail["raw_url"].startswith("https://api.test/")
    other_mid, other_aid = _message(app, "acme", b"Subject: o\r\n\r\no\r\n", ("o.pdf", b"o"))
    for path in (
        f"/v1/messages/{mid}",
        f"/v1/messages/{mid}/raw",
        f"/v1/messages/{mid}/attachments/{aid}",
        f"/v1/messages/{uuid.uuid4()}",
        "/v1/messages/not-a-uuid",
    ):
        for headers in (globex,):
            reply = await client.get(path, headers=headers)
            assert reply.status_code == 404, path
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["detail"] == "No such resource for this token."
    # an attachment of another message of the same tenant
    assert (
        await client.get(f"/v1/messages/{mid}/attachments/{other_aid}", headers=acme)
    ).status_code == 404
    assert (
        await client.get(f"/v1/messages/{other_mid}/attachments/{aid}", headers=acme)
    ).status_code == 404
    assert (await client.get("/v1/messages", headers=globex)).json()["messages"] == []


async def test_bad_cursor_filters_and_auth(api) -> None:
    app, client = api
    issued = app.tokens.issue("acme", "t")
    acme = _auth(issued.token)
    for params in (
        {"cursor": "garbage!"},
        {"cursor": "Zm9v"},
        {"limit": 0},
        {"limit": 101},
        {"status": "NOPE"},
        {"automated": "spam"},
        {"since": "2026-01-01T00:00:00"},
    ):
        reply = await client.get("/v1/messages", params=params, headers=acme)
        assert reply.status_code == 400, params
        assert "select" not in reply.text.lower()
    for params in ({"automated": "none"}, {"automated": "bounce"}, {"status": "RECEIVED"}):
        assert (await client.get("/v1/messages", params=params, headers=acme)).status_code == 200
    assert (await client.get("/v1/messages")).status_code == 401
    app.tokens.revoke("acme", "t")
    reply = await client.get("/v1/messages", headers=acme)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    admin = _auth(app.tokens.issue(None, "admin").token)
    assert (await client.get("/v1/messages", headers=admin)).status_code == 403


async def test_failed_auth_is_rate_limited_per_address(api) -> None:
    app, client = api
    for _ in range(20):
        assert (await client.get("/v1/messages", headers=_auth("nope"))).status_code == 401
    good = _auth(app.tokens.issue("acme", "t").token)
    reply = await client.get("/v1/messages", headers=good)
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "60"
    # X-Forwarded-For from an untrusted peer does not change the address
    spoofed = {**good, "X-Forwarded-For": "203.0.113.9"}
    assert (await client.get("/v1/messages", headers=spoofed)).status_code == 429


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", 'attachment; filename="passwd"'),
        (
            'a"b;c\r\nX-Evil: 1.pdf',
            'attachment; filename="a_b_cX-Evil_ 1.pdf";'
            " filename*=UTF-8''a%22b%3BcX-Evil%3A%201.pdf",
        ),
        ("café.pdf", "attachment; filename=\"cafe.pdf\"; filename*=UTF-8''caf%C3%A9.pdf"),
        ("", 'attachment; filename="attachment"'),
    ],
)
async def test_hostile_filenames_range_and_head(api, name: str, expected: str) -> None:
    app, client = api
    acme = _auth(app.tokens.issue("acme", "t").token)
    data = bytes(range(256)) * 4
    mid, aid = _message(app, "acme", b"Subject: a\r\n\r\na\r\n", (name, data))
    url = f"/v1/messages/{mid}/attachments/{aid}"
    reply = await client.get(url, headers=acme)
    assert reply.status_code == 200
    assert reply.content == data
    assert reply.headers["content-disposition"] == expected
    assert reply.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    part = await client.get(url, headers={**acme, "Range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, data[10:20])
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = await client.get(url, headers={**acme, "Range": "bytes=-5"})
    assert tail.content == data[-5:]
    out = await client.get(url, headers={**acme, "Range": f"bytes={len(data)}-"})
    assert out.status_code == 416
    assert out.headers["content-range"] == f"bytes */{len(data)}"
    head = await client.head(url, headers=acme)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(data))
    raw = await client.get(f"/v1/messages/{mid}/raw", headers=acme)
    assert raw.headers["content-type"] == "message/rfc822"


async def test_a_30_mb_attachment_streams_from_s3_with_flat_memory(
    nursery, data_dir, pg_url, s3_bucket_url, moto_env, monkeypatch
) -> None:
    for name, value in moto_env.items():
        monkeypatch.setenv(name, value)
    settings = _settings(data_dir, pg_url, object_store_url=s3_bucket_url)
    with open_app(settings) as app:
        app.admin.add("acme", "acme")
        big = b"0123456789abcdef" * (30 * 1024 * 1024 // 16)
        mid, aid = _message(app, "acme", b"Subject: big\r\n\r\nx\r\n", ("big.bin", big))
        acme = _auth(app.tokens.issue("acme", "t").token)
        address = await nursery.start(serve_api, app, app.settings)
        digest = hashlib.sha256()
        tracemalloc.start()
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=60) as client:
            url = f"/v1/messages/{mid}/attachments/{aid}"
            async with client.stream("GET", url, headers=acme) as reply:
                assert reply.status_code == 200
                async for chunk in reply.aiter_bytes():
                    digest.update(chunk)
            ranged = await client.get(url, headers={**acme, "Range": "bytes=20000000-20000015"})
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert digest.hexdigest() == hashlib.sha256(big).hexdigest()
        assert ranged.content == big[20_000_000:20_000_016]
        print(f"peak traced memory while streaming 30 MiB: {peak / 1e6:.1f} MB")
        assert peak < 8 * 1024 * 1024


def test_openapi_documents_every_route() -> None:
    from starlette.routing import Route

    from lmtpd.api import AdminSources, ApiConfig, build_api

    admin = AdminSources(None, None, None)  # type: ignore[arg-type]
    config = ApiConfig(public_url="https://api.test")
    app = build_api(None, None, None, config, admin=admin)  # type: ignore[arg-type]
    paths = app.openapi()["paths"]
    assert {"/v1/admin/tenants", "/v1/admin/tenants/{slug}/tokens/{name}"} <= set(paths)
    assert set(paths["/v1/admin/tenants/{slug}"]) == {"patch"}
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    routes = [r for r in app.routes if isinstance(r, Route) and r.path.startswith("/v1/")]
    assert routes
    for route in routes:
        for method in route.methods or ():
            assert method.lower() in paths[route.path], (method, route.path)
            assert paths[route.path][method.lower()]["summary"]
