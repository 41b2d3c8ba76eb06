"""``ingest endpoints …``, ``ingest deliveries …`` and ``ingest events show``:
a tenant's webhook endpoints, the delivery log and one event (docs/events.md)."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any

from ingest_core.events import EventType
from ingest_core.webhooks import DeliveryStatus, EndpointError
from lmtpd.cli.audit import record
from lmtpd.cli.export import parse_since

if TYPE_CHECKING:
    import argparse
    from datetime import datetime

    from ingest_core import bootstrap
    from ingest_core.webhooks import Endpoint

_TYPES = [t.value for t in EventType]


def add_parser(sub: Any) -> None:
    endpoints = sub.add_parser("endpoints", help="webhook endpoints of a tenant").add_subparsers(
        dest="endpoints", required=True
    )
    add = endpoints.add_parser("add", help="add an endpoint and print its secret (once)")
    add.add_argument("slug", help="tenant slug")
    add.add_argument("url", help="https://… that receives the events")
    add.add_argument(
        "--event", action="append", choices=_TYPES, default=[], help="only this type (repeat)"
    )
    listing = endpoints.add_parser("list", help="endpoints, their events and state")
    listing.add_argument("slug", nargs="?", help="tenant slug (default: every tenant)")
    for name, text in (
        ("disable", "stop sending to an endpoint (deliveries wait)"),
        ("enable", "send to it again"),
        ("remove", "delete an endpoint and its delivery log"),
        ("rotate-secret", "a new secret; the old one signs beside it for 24 h"),
    ):
        endpoints.add_parser(name, help=text).add_argument("endpoint", help="ep_… id")

    deliveries = sub.add_parser("deliveries", help="the webhook delivery log").add_subparsers(
        dest="deliveries", required=True
    )
    dlist = deliveries.add_parser("list", help="newest first")
    dlist.add_argument("--org", help="tenant slug")
    dlist.add_argument("--status", choices=[s.value for s in DeliveryStatus])
    dlist.add_argument("--endpoint", help="ep_… id")
    dlist.add_argument("--limit", type=int, default=100)
    retry = deliveries.add_parser("retry", help="send a delivery (or an endpoint's) again now")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="delivery id")
    which.add_argument("--endpoint", help="every undelivered delivery of this endpoint")
    which.add_argument("--since", help="every undelivered one since: 2026-11-01, 24h, 7d")

    events = sub.add_parser("events", help="outbox events").add_subparsers(
        dest="events", required=True
    )
    events.add_parser("show", help="one event's payload").add_argument("event", help="evt_… id")


def run(app: bootstrap.App, args: argparse.Namespace) -> int:
    try:
        if args.command == "endpoints":
            return _endpoints(app, args)
        if args.command == "deliveries":
            return _deliveries(app, args)
        return _event(app, args)
    except EndpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _endpoints(app: bootstrap.App, args: argparse.Namespace) -> int:
    endpoints = app.endpoints()
    if args.endpoints == "add":
        endpoint, issued = endpoints.add(args.slug, args.url, args.event)
        _audit(app, "endpoint.add", endpoint)
        print(issued)
        print(
            f"added endpoint {endpoint.id} for {endpoint.org_slug}: {endpoint.url}"
            f" ({_types(endpoint)}); the secret is shown only now",
            file=sys.stderr,
        )
        return 0
    if args.endpoints == "list":
        print(f"{'ID':19}  {'TENANT':16}  {'STATE':40}  {'EVENTS':24}  URL")
        for endpoint in endpoints.store.endpoints(args.slug):
            print(
                f"{endpoint.id:19}  {endpoint.org_slug:16}  {_state(endpoint):40}"
                f"  {_types(endpoint):24}  {endpoint.url}"
            )
        return 0
    changed: Endpoint | None
    secret: str | None = None
    if args.endpoints == "disable":
        changed = endpoints.store.set_disabled(args.endpoint, "disabled by an operator")
    elif args.endpoints == "enable":
        changed = endpoints.store.set_disabled(args.endpoint, None)
    elif args.endpoints == "remove":
        changed = endpoints.store.remove_endpoint(args.endpoint)
    else:
        rotated = endpoints.rotate_secret(args.endpoint)
        changed, secret = rotated if rotated is not None else (None, None)
    if changed is None:
        print(f"no endpoint {args.endpoint!r} (ingest endpoints list)", file=sys.stderr)
        return 1
    _audit(app, f"endpoint.{args.endpoints}", changed)
    if secret is not None:
        print(secret)
        print(
            f"rotated the secret of {changed.id}; the old one signs beside it until"
            f" {_when(changed.previous_until)}",
            file=sys.stderr,
        )
    else:
        print(f"{args.endpoints}d endpoint {changed.id} ({changed.url})")
    return 0


def _deliveries(app: bootstrap.App, args: argparse.Namespace) -> int:
    store = app.endpoints().store
    if args.deliveries == "retry":
        try:
            since = parse_since(args.since) if args.since else None
        except ValueError as exc:
            print(f"error: --since: {exc}", file=sys.stderr)
            return 2
        count = store.retry(delivery_id=args.id, endpoint_id=args.endpoint, since=since)
        record(
            app,
            "delivery.retry",
            scope={"delivery_id": args.id, "endpoint_id": args.endpoint, "since": args.since},
            count=count,
        )
        print(f"{count} delivery(ies) due again now")
        return 0 if count else 1
    rows = store.deliveries(
        org_slug=args.org,
        status=DeliveryStatus(args.status) if args.status else None,
        endpoint_id=args.endpoint,
        limit=args.limit,
    )
    print(
        f"{'ID':>8}  {'CREATED':20}  {'TENANT':16}  {'TYPE':20}  {'ENDPOINT':19}  {'STATUS':9}"
        f"  {'TRIES':>5}  {'NEXT TRY':20}  LAST"
    )
    for row in rows:
        last = " ".join(str(x) for x in (row.last_status, row.last_error) if x is not None)
        print(
            f"{row.id:>8}  {_when(row.created_at):20}  {row.org_slug:16}  {row.event_type:20}"
            f"  {row.endpoint_id:19}  {row.status.value:9}  {row.attempts:>5}"
            f"  {_when(row.next_attempt_at) if row.next_attempt_at else '-':20}  {last or '-'}"
        )
    return 0


def _event(app: bootstrap.App, args: argparse.Namespace) -> int:
    found = app.endpoints().store.event(args.event)
    if found is None:
        print(f"no event {args.event!r}", file=sys.stderr)
        return 1
    print(json.dumps(json.loads(found[2]), indent=2, ensure_ascii=False))
    return 0


def _audit(app: bootstrap.App, action: str, endpoint: Endpoint) -> None:
    """The endpoint's id, URL and events; never its secret."""
    scope = {"endpoint_id": endpoint.id, "url": endpoint.url, "events": list(endpoint.event_types)}
    record(app, action, org_slug=endpoint.org_slug, scope=scope, count=1)


def _types(endpoint: Endpoint) -> str:
    return ",".join(endpoint.event_types) or "all"


def _state(endpoint: Endpoint) -> str:
    if endpoint.disabled_at is not None:
        return f"disabled {_when(endpoint.disabled_at)}: {endpoint.disabled_reason or ''}"[:40]
    if endpoint.last_success_at is None:
        return "enabled, nothing delivered yet"
    return f"enabled, delivered {_when(endpoint.last_success_at)}"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"
