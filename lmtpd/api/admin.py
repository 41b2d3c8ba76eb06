"""Provisioning endpoints under ``/v1/admin`` (docs/api.md): tenants created and
disabled or enabled, tenant tokens issued and revoked, by the order product with
an admin token. Each change is written to the audit log with the token as actor.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers'
# annotations (and the request models) at run time.
import builtins
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field
from starlette.responses import Response

from ingest_core.addressing import SLUG_PATTERN
from ingest_core.api.tokens import Principal, Tokens, check_name
from ingest_core.audit import AuditEvent, AuditLog
from ingest_core.errors import TenantError, UnknownTenant
from ingest_core.model import Tenant, TenantStatus


class TenantProvisioning(Protocol):
    """What the endpoints change (``ingest_core.adapters.postgres.tenants.TenantAdmin``)."""

    def add(self, slug: str, name: str) -> Tenant: ...

    def list(self) -> builtins.list[Tenant]: ...

    def set_status(self, slug: str, status: TenantStatus) -> bool: ...


@dataclass(frozen=True, slots=True)
class AdminSources:
    tenants: TenantProvisioning
    tokens: Tokens
    audit: AuditLog


class NewTenant(BaseModel):
    slug: str = Field(pattern=f"^{SLUG_PATTERN.pattern}$", description="orders+SLUG@…")
    name: str = Field(min_length=1, max_length=200)


class TenantChange(BaseModel):
    status: Literal["active", "disabled"]


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class Refused(Exception):
    """The admin request answers ``status`` (a problem document)."""

    def __init__(self, status: int) -> None:
        self.status = status


Blocking = Callable[..., Awaitable[Any]]


def add_admin_routes(
    app: FastAPI,
    sources: AdminSources,
    principal: Callable[..., Awaitable[Principal]],
    blocking: Blocking,
) -> None:
    async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.admin:
            raise Refused(403)
        return who

    Admin = Annotated[Principal, Depends(admin)]

    async def audit(who: Principal, action: str, slug: str, scope: Mapping[str, object]) -> None:
        event = AuditEvent(who.actor, action, slug, {**scope, "via": "api"}, count=1)
        await blocking(sources.audit.record, event)

    async def find(slug: str) -> Tenant:
        tenants: list[Tenant] = await blocking(sources.tenants.list)
        found = next((t for t in tenants if t.slug == slug), None)
        if found is None:
            raise Refused(404)
        return found

    @app.post("/v1/admin/tenants", status_code=201, summary="Create a tenant")
    async def create_tenant(who: Admin, body: NewTenant) -> dict[str, Any]:
        try:
            tenant: Tenant = await blocking(sources.tenants.add, body.slug, body.name)
        except TenantError:
            raise Refused(409) from None  # the slug is taken (its shape was checked)
        await audit(who, "tenant.add", tenant.slug, {"name": tenant.name})
        return _tenant(tenant)

    @app.patch("/v1/admin/tenants/{slug}", summary="Disable or enable a tenant")
    async def change_tenant(who: Admin, slug: str, body: TenantChange) -> dict[str, Any]:
        status = TenantStatus(body.status)
        if not await blocking(sources.tenants.set_status, slug, status):
            raise Refused(404)
        verb = "enable" if status is TenantStatus.ACTIVE else "disable"
        await audit(who, f"tenant.{verb}", slug, {})
        return _tenant(await find(slug))

    @app.post("/v1/admin/tenants/{slug}/tokens", status_code=201, summary="Issue a tenant token")
    async def issue_token(who: Admin, slug: str, body: NewToken) -> dict[str, Any]:
        try:
            name = check_name(body.name)
        except TenantError:
            raise Refused(400) from None
        try:
            issued = await blocking(sources.tokens.issue, slug, name)
        except UnknownTenant:
            raise Refused(404) from None
        except TenantError:
            raise Refused(409) from None  # a live token has that name
        record = issued.record
        await audit(who, "token.create", slug, {"name": record.name, "token_id": record.token_id})
        return {
            "token": issued.token,
            "name": record.name,
            "token_id": record.token_id,
            "created_at": record.created_at.isoformat(),
        }

    @app.delete(
        "/v1/admin/tenants/{slug}/tokens/{name}",
        status_code=204,
        summary="Revoke a tenant token by its name",
    )
    async def revoke_token(who: Admin, slug: str, name: str) -> Response:
        await find(slug)
        revoked = await blocking(sources.tokens.revoke, slug, name)
        if revoked is None:
            raise Refused(404)
        scope = {"name": revoked.name, "token_id": revoked.token_id}
        await audit(who, "token.revoke", slug, scope)
        return Response(status_code=204)


def _tenant(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": str(tenant.id),
        "slug": tenant.slug,
        "name": tenant.name,
        "status": tenant.status.value,
    }
