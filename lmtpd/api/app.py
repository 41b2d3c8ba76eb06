"""The tenant API (docs/api.md): a FastAPI app on hypercorn's trio worker.

Handlers run in the trio process; database and object-store calls are blocking
and go through ``trio.to_thread`` on the API's own limiter. Bodies of raw
messages and attachments are streamed chunk by chunk (memory stays flat in the
object's size), with ``Range`` through the reader's ``seek``.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers'
# annotations at run time, and some name objects local to build_api.
import ipaddress
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, BinaryIO

import trio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry, Counter
from starlette.exceptions import HTTPException
from starlette.responses import Response, StreamingResponse

from ingest_core.api.reads import MAX_PAGE, BadCursor, MessageQuery, Position
from ingest_core.api.tokens import Principal, Tokens
from ingest_core.errors import IngestError, ObjectNotFound, Unavailable
from ingest_core.model import AutomatedKind, MessageStatus
from ingest_core.ports import BlobStore, TenantReads
from ingest_core.settings import Network
from lmtpd.api.admin import AdminSources, Refused, add_admin_routes
from lmtpd.api.failures import RecentFailures
from lmtpd.api.parts import Unsatisfiable, content_disposition, parse_range, problem

log = logging.getLogger("ingest.api")
CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ApiConfig:
    public_url: str
    trusted_proxies: tuple[Network, ...] = ()
    failures_per_minute: int = 20  # failed authentications per client address
    worker_threads: int = 16


class _Problem(Exception):
    def __init__(self, status: int, **headers: str) -> None:
        self.status, self.headers = status, headers


def client_address(request: Request, trusted: Sequence[Network]) -> str:
    """The peer, or the hop a trusted proxy appended to ``X-Forwarded-For``."""
    peer = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and any(address in network for network in trusted):
        hop = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return peer
    return peer


def build_api(
    tokens: Tokens,
    reads: TenantReads,
    store: BlobStore,
    config: ApiConfig,
    registry: CollectorRegistry | None = None,
    admin: AdminSources | None = None,
) -> FastAPI:
    """The tenant endpoints, and with ``admin`` the provisioning ones."""
    limiter = trio.CapacityLimiter(config.worker_threads)
    failures = RecentFailures(config.failures_per_minute)
    auth_failures = Counter(
        "ingest_api_auth_failures",
        "Tenant API requests refused for authentication: missing, invalid or limited.",
        ["reason"],
        registry=registry,
    )
    base = config.public_url.rstrip("/")

    async def blocking(call: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(call, *args, limiter=limiter)

    async def principal(request: Request) -> Principal:
        address = client_address(request, config.trusted_proxies)
        if failures.blocked(address):
            auth_failures.labels("rate_limited").inc()
            raise _Problem(429, **{"Retry-After": "60"})
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found: Principal | None = None
        if scheme.lower() == "bearer" and token:
            found = await blocking(tokens.authenticate, token.strip())
        if found is None:
            failures.add(address)
            auth_failures.labels("missing" if not token else "invalid").inc()
            raise _Problem(401, **{"WWW-Authenticate": 'Bearer realm="ingest"'})
        return found

    async def tenant(who: Annotated[Principal, Depends(principal)]) -> uuid.UUID:
        if who.org_id is None:
            raise _Problem(403)
        return who.org_id

    Tenant = Annotated[uuid.UUID, Depends(tenant)]

    app = FastAPI(
        title="order-ingest tenant API",
        version="1",
        description="Messages received for a tenant, their raw bytes and attachments;"
        " tenants and their tokens provisioned with an admin token.",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(_Problem)
    async def _on_problem(request: Request, exc: _Problem) -> Response:
        return problem(exc.status, **exc.headers)

    @app.exception_handler(Refused)
    async def _on_refused(request: Request, exc: Refused) -> Response:
        return problem(exc.status)

    @app.exception_handler(HTTPException)
    async def _on_http(request: Request, exc: HTTPException) -> Response:
        status = exc.status_code if exc.status_code in (404, 405) else 400
        return problem(status)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request: Request, exc: RequestValidationError) -> Response:
        return problem(400)

    @app.exception_handler(Unavailable)
    async def _on_unavailable(request: Request, exc: Unavailable) -> Response:
        log.warning("api dependency unavailable", extra={"cause": exc.cause})
        return problem(503, **{"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _on_error(request: Request, exc: Exception) -> Response:
        log.error("api request failed", exc_info=exc)
        return problem(500)

    def message_id(text: str) -> uuid.UUID:
        try:
            return uuid.UUID(text)
        except ValueError:
            raise _Problem(404) from None  # exactly like a missing one

    def attachment_json(message: uuid.UUID, row: Any) -> dict[str, Any]:
        url = f"{base}/v1/messages/{message}/attachments/{row.attachment_id}"
        return {**row.fields, "download_url": url}

    @app.get("/v1/messages", summary="List messages, newest first")
    async def list_messages(
        org: Tenant,
        status: Annotated[MessageStatus | None, Query()] = None,
        since: Annotated[datetime | None, Query()] = None,
        until: Annotated[datetime | None, Query()] = None,
        automated: Annotated[str | None, Query(description="a kind, any or none")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        kinds = {kind.value for kind in AutomatedKind} | {"any", "none"}
        if automated is not None and automated not in kinds:
            raise _Problem(400)
        if any(t is not None and t.tzinfo is None for t in (since, until)):
            raise _Problem(400)
        try:
            after = Position.decode(cursor) if cursor else None
        except BadCursor:
            raise _Problem(400) from None
        query = MessageQuery(
            org, status.value if status else None, since, until, automated, limit, after
        )
        rows = await blocking(reads.messages, replace(query, limit=limit + 1))
        page, more = rows[:limit], len(rows) > limit
        next_cursor = Position(page[-1].received_at, page[-1].message_id).encode() if more else None
        items = [{**row.fields, "url": f"{base}/v1/messages/{row.message_id}"} for row in page]
        return {"messages": items, "next_cursor": next_cursor}

    @app.get("/v1/messages/{message}", summary="One message and its attachments")
    async def get_message(org: Tenant, message: str) -> dict[str, Any]:
        mid = message_id(message)
        row = await blocking(reads.message, org, mid)
        if row is None:
            raise _Problem(404)
        attachments = await blocking(reads.attachments, org, mid)
        return {
            **row.fields,
            "raw_url": f"{base}/v1/messages/{mid}/raw",
            "attachments": [attachment_json(mid, a) for a in attachments],
        }

    @app.get(
        "/v1/messages/{message}/body",
        summary="The message's text and HTML bodies",
        responses={409: {"description": "Not extracted yet"}},
    )
    async def get_body(org: Tenant, message: str) -> dict[str, Any]:
        mid = message_id(message)
        body = await blocking(reads.body, org, mid)
        if body is None:
            if await blocking(reads.message, org, mid) is None:
                raise _Problem(404)
            raise _Problem(409)  # not extracted yet (or before bodies were kept)
        return {
            "id": str(mid),
            "text": body.text,
            "html": body.html,
            "text_from_html": body.text_from_html,
            "reply": body.reply,
            "quoted": body.quoted,
            "truncated": body.truncated,
        }

    async def download(
        request: Request, key: str, sha256: str, size: int, media_type: str, disposition: str
    ) -> Response:
        headers = {
            "ETag": f'"{sha256}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": disposition,
            "Cache-Control": "private, no-cache",
        }
        try:
            span = parse_range(request.headers.get("range"), size)
        except Unsatisfiable:
            return problem(416, **{"Content-Range": f"bytes */{size}"})
        if_range = request.headers.get("if-range")
        if span is not None and if_range is not None and if_range != headers["ETag"]:
            span = None
        first, last = span if span is not None else (0, size - 1)
        length = last - first + 1 if size else 0
        status = 206 if span is not None else 200
        if span is not None:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(b"", status, headers=headers, media_type=media_type)
        reader: BinaryIO = await blocking(store.open, key)
        if first:
            await blocking(reader.seek, first)
        return StreamingResponse(
            stream_object(reader, length, blocking), status, headers=headers, media_type=media_type
        )

    raw_path = "/v1/messages/{message}/raw"

    # GET and HEAD registered apart: one route with both gives both one operation id.
    @app.head(raw_path, summary="Raw message: headers only", operation_id="head_raw")
    @app.get(raw_path, summary="Raw message", operation_id="get_raw")
    async def get_raw(org: Tenant, message: str, request: Request) -> Response:
        row = await blocking(reads.message, org, message_id(message))
        if row is None:
            raise _Problem(404)
        disposition = content_disposition(f"{row.message_id}.eml", "message.eml")
        return await download(
            request, row.raw_object_key, row.sha256, row.size_bytes, "message/rfc822", disposition
        )

    attachment_path = "/v1/messages/{message}/attachments/{attachment}"

    @app.head(
        attachment_path, summary="One attachment: headers only", operation_id="head_attachment"
    )
    @app.get(attachment_path, summary="One attachment's bytes", operation_id="get_attachment")
    async def get_attachment(
        org: Tenant, message: str, attachment: str, request: Request
    ) -> Response:
        row = await blocking(reads.attachment, org, message_id(message), message_id(attachment))
        if row is None:
            raise _Problem(404)
        disposition = content_disposition(row.filename, "attachment")
        return await download(
            request,
            row.object_key,
            row.sha256,
            row.size_bytes,
            "application/octet-stream",
            disposition,
        )

    if admin is not None:
        add_admin_routes(app, admin, principal, blocking)
    return app


async def stream_object(
    reader: BinaryIO, length: int, blocking: Callable[..., Any]
) -> AsyncIterator[bytes]:
    try:
        remaining = length
        while remaining > 0:
            chunk = await blocking(reader.read, min(CHUNK, remaining))
            if not chunk:
                raise ObjectNotFound("object shorter than its recorded size")
            remaining -= len(chunk)
            yield chunk
    except IngestError:
        log.error("api download broke off")
        raise
    finally:
        with trio.CancelScope(shield=True):
            await blocking(reader.close)
