"""The provisioning endpoints over real sockets on the test Postgres: an admin
token creates a tenant, issues it a token that reads its messages, disables and
enables it, revokes the token; each change is audited; tenant tokens get 403."""

from __future__ import annotations

from tests.server.test_api import _auth, api  # noqa: F401  (the fixture)


async def test_provisioning_a_tenant(api) -> None:  # noqa: F811
    app, client = api
    admin = _auth(app.tokens.issue(None, "provisioning").token)
    created = await client.post(
        "/v1/admin/tenants", json={"slug": "initech", "name": "Initech"}, headers=admin
    )
    assert created.status_code == 201
    tenant = created.json()
    assert (tenant["slug"], tenant["name"], tenant["status"]) == ("initech", "Initech", "active")
    again = await client.post(
        "/v1/admin/tenants", json={"slug": "initech", "name": "x"}, headers=admin
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    for bad in ({"slug": "Not A Slug", "name": "x"}, {"slug": "ok"}, {"name": "x"}):
        assert (await client.post("/v1/admin/tenants", json=bad, headers=admin)).status_code == 400

    issued = await client.post(
        "/v1/admin/tenants/initech/tokens", json={"name": "orders app"}, headers=admin
    )
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert token.startswith("ing_")
    tenant_auth = _auth(token)
    assert (await client.get("/v1/messages", headers=tenant_auth)).status_code == 200
    duplicate = await client.post(
        "/v1/admin/tenants/initech/tokens", json={"name": "orders app"}, headers=admin
    )
    assert duplicate.status_code == 409
    for slug, body, status in (
        ("nobody", {"name": "x"}, 404),
        ("initech", {"name": "/bad"}, 400),
    ):
        reply = await client.post(f"/v1/admin/tenants/{slug}/tokens", json=body, headers=admin)
        assert reply.status_code == status

    disabled = await client.patch(
        "/v1/admin/tenants/initech", json={"status": "disabled"}, headers=admin
    )
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    assert (await client.get("/v1/messages", headers=tenant_auth)).status_code == 401
    enabled = await client.patch(
        "/v1/admin/tenants/initech", json={"status": "active"}, headers=admin
    )
    assert enabled.json()["status"] == "active"
    assert (await client.get("/v1/messages", headers=tenant_auth)).status_code == 200
    for body in ({"status": "gone"}, {}):
        reply = await client.patch("/v1/admin/tenants/initech", json=body, headers=admin)
        assert reply.status_code == 400
    missing = await client.patch(
        "/v1/admin/tenants/nobody", json={"status": "active"}, headers=admin
    )
    assert missing.status_code == 404

    revoked = await client.delete("/v1/admin/tenants/initech/tokens/orders app", headers=admin)
    assert revoked.status_code == 204
    assert (await client.get("/v1/messages", headers=tenant_auth)).status_code == 401
    for path in ("/v1/admin/tenants/initech/tokens/orders app", "/v1/admin/tenants/x/tokens/t"):
        assert (await client.delete(path, headers=admin)).status_code == 404

    events = [e for e in app.audit.events()[::-1] if e.org_slug == "initech"]
    assert [e.action for e in events] == [
        "tenant.add",
        "token.create",
        "tenant.disable",
        "tenant.enable",
        "token.revoke",
    ]
    assert all(e.actor.startswith("token provisioning (") for e in events)
    assert all(e.scope["via"] == "api" for e in events)
    assert token.split("_")[2] not in str([e.scope for e in events])


async def test_tenant_tokens_are_refused_on_admin_endpoints(api) -> None:  # noqa: F811
    app, client = api
    tenant = _auth(app.tokens.issue("acme", "t").token)
    admin = _auth(app.tokens.issue(None, "p").token)
    calls = (
        ("POST", "/v1/admin/tenants", {"slug": "evil", "name": "x"}),
        ("PATCH", "/v1/admin/tenants/globex", {"status": "disabled"}),
        ("POST", "/v1/admin/tenants/globex/tokens", {"name": "x"}),
        ("DELETE", "/v1/admin/tenants/acme/tokens/t", None),
    )
    for method, path, body in calls:
        reply = await client.request(method, path, json=body, headers=tenant)
        assert reply.status_code == 403, (method, path)
        assert reply.json()["detail"] == "This token may not use this endpoint."
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401
    assert (await client.get("/v1/messages", headers=admin)).status_code == 403
    assert [t.slug for t in app.admin.list()] == ["acme", "globex"]
    assert not app.audit.events()
