"""The console's read-only pages: messages (filters, paging), one message, its
downloads, tenants, and the quarantine and FAILED queues."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, BinaryIO

from starlette.responses import RedirectResponse, Response, StreamingResponse

from ingest_core.api.reads import BadCursor, Position
from ingest_core.console.reads import PAGE, MessageFilter, parse_id
from ingest_core.errors import IngestError
from ingest_core.model import AutomatedKind
from lmtpd.api.app import stream_object
from lmtpd.api.console import views
from lmtpd.api.parts import content_disposition

if TYPE_CHECKING:
    from starlette.requests import Request

    from lmtpd.api.console.base import ConsoleBase
    from lmtpd.api.console.sessions import Session

log = logging.getLogger("ingest.console")
AUTOMATED = ("any", "none", *(kind.value for kind in AutomatedKind))
FILTERS = ("tenant", "status", "automated", "sender", "subject", "since")


class Pages:
    def __init__(self, base: ConsoleBase) -> None:
        self.base = base

    async def messages(self, request: Request) -> Response:
        return await self._listing(request, "messages.html", None)

    async def quarantine(self, request: Request) -> Response:
        return await self._listing(request, "queue.html", "QUARANTINED")

    async def failed(self, request: Request) -> Response:
        return await self._listing(request, "queue.html", "FAILED")

    async def _listing(self, request: Request, template: str, status: str | None) -> Response:
        base = self.base
        session = await base.session(request)
        if session is None:
            return base.to_sign_in(request)
        params = {name: request.query_params.get(name, "").strip()[:200] for name in FILTERS}
        if not session.operator:
            params["tenant"] = session.org_slug or ""
        if status is not None:
            params["status"] = status
        try:
            query = self._filter(params, request.query_params.get("cursor"))
        except ValueError:
            return base.error(request, 400, session)
        rows: list[dict[str, Any]] = await base.blocking(
            base.console.reads.messages, replace(query, limit=query.limit + 1)
        )
        page, more = rows[: query.limit], len(rows) > query.limit
        cursor = Position(page[-1]["received_at"], page[-1]["id"]).encode() if more else None
        slugs = await base.blocking(base.console.reads.tenant_slugs) if session.operator else []
        shown = {k: v for k, v in params.items() if k != "status" or status is None}
        return base.render(
            request,
            template,
            session,
            rows=page,
            params=params,
            next_query=views.query(shown, cursor=cursor) if cursor else None,
            first_query=views.query(shown) if request.query_params.get("cursor") else None,
            slugs=slugs,
            statuses=views.STATUSES,
            automated_kinds=AUTOMATED,
            queue=status,
            done=_done(request),
        )

    @staticmethod
    def _filter(params: dict[str, str], cursor: str | None) -> MessageFilter:
        """Raises ValueError for a value out of range."""
        status = params["status"].upper() or None
        if status is not None and status not in views.STATUSES:
            raise ValueError(status)
        automated = params["automated"] or None
        if automated is not None and automated not in AUTOMATED:
            raise ValueError(automated)
        try:
            after = Position.decode(cursor) if cursor else None
        except BadCursor as exc:
            raise ValueError("cursor") from exc
        return MessageFilter(
            org_slug=params["tenant"] or None,
            status=status,
            automated=automated,
            sender=params["sender"] or None,
            subject=params["subject"] or None,
            since=views.parse_since(params["since"]),
            limit=PAGE,
            after=after,
        )

    async def message(self, request: Request) -> Response:
        base = self.base
        session = await base.session(request)
        if session is None:
            return base.to_sign_in(request)
        detail = await self._detail(request, session)
        if detail is None:
            return base.error(request, 404, session)
        tree = None
        try:
            tree = await base.blocking(
                base.console.part_tree, detail["raw_object_key"], detail["size_bytes"]
            )
        except IngestError:
            log.warning("console part tree unavailable", extra={"message_id": str(detail["id"])})
        return base.render(
            request, "message.html", session, m=detail, tree=tree, done=_done(request)
        )

    async def _detail(self, request: Request, session: Session) -> dict[str, Any] | None:
        message_id = parse_id(request.path_params["message"])
        if message_id is None:
            return None
        detail: dict[str, Any] | None = await self.base.blocking(
            self.base.console.reads.message, message_id, session.org_slug
        )
        return detail

    async def attachment(self, request: Request) -> Response:
        base = self.base
        session = await base.session(request)
        if session is None:
            return base.to_sign_in(request)
        message_id = parse_id(request.path_params["message"])
        attachment_id = parse_id(request.path_params["attachment"])
        if message_id is None or attachment_id is None:
            return base.error(request, 404, session)
        row = await base.blocking(
            base.console.reads.attachment, message_id, attachment_id, session.org_slug
        )
        if row is None:
            return base.error(request, 404, session)
        disposition = content_disposition(row["filename"], "attachment")
        return await self._download(row["object_key"], row["size_bytes"], disposition)

    async def raw(self, request: Request) -> Response:
        base = self.base
        session = await base.session(request)
        if session is None:
            return base.to_sign_in(request)
        detail = await self._detail(request, session)
        if detail is None:
            return base.error(request, 404, session)
        disposition = content_disposition(f"{detail['id']}.eml", "message.eml")
        return await self._download(detail["raw_object_key"], detail["size_bytes"], disposition)

    async def _download(self, key: str, length: int, disposition: str) -> Response:
        headers = {
            "Content-Disposition": disposition,
            "Content-Length": str(length),
            "X-Content-Type-Options": "nosniff",
        }
        reader: BinaryIO = await self.base.blocking(self.base.console.store.open, key)
        return StreamingResponse(
            stream_object(reader, length, self.base.blocking),
            200,
            headers=headers,
            media_type="application/octet-stream",
        )

    async def tenants(self, request: Request) -> Response:
        base = self.base
        session = await base.session(request)
        if session is None:
            return base.to_sign_in(request)
        rows = await base.blocking(base.console.reads.tenants, session.org_slug)
        for row in rows:
            row["bars"] = views.chart(row["counts"])
        return base.render(
            request, "tenants.html", session, rows=rows, chart_width=views.CHART_WIDTH
        )

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"{views.PREFIX}/messages", 303)


def _done(request: Request) -> str | None:
    done = request.query_params.get("done")
    return done if done in ("released", "replayed", "not-released", "not-replayed") else None
