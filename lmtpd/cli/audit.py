"""``ingest audit``: the operator actions recorded in ``audit_event``, and the
helper the other commands record theirs with."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any

from ingest_core.audit import AuditEvent
from ingest_core.errors import StoreUnavailable

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

    from ingest_core import bootstrap


def operator_name() -> str:
    """Who runs this command: the OS user (``LOGNAME``/``USER`` or the uid's name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def record(
    app: bootstrap.App,
    action: str,
    *,
    org_slug: str | None = None,
    scope: Mapping[str, object] | None = None,
    count: int = 0,
) -> None:
    """Write one audit event for what this command did; a database that fails
    now is reported, and the action (already done) stands."""
    event = AuditEvent(
        actor=operator_name(),
        action=action,
        org_slug=org_slug,
        scope=dict(scope or {}),
        count=count,
    )
    try:
        app.audit.record(event)
    except StoreUnavailable as exc:
        print(f"warning: {action} done, but not recorded in the audit log: {exc}", file=sys.stderr)


def add_parser(sub: Any) -> None:
    audit = sub.add_parser(
        "audit",
        help="operator actions: releases, replays, tenant and policy changes, exports",
        description="Newest first: when, who (the OS user), what, for which tenant, how many.",
    )
    audit.add_argument("--since", help="e.g. 2026-11-01, 2026-11-01T12:00Z, 24h, 7d")
    audit.add_argument("--org", help="only events of this tenant (slug)")
    audit.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    audit.add_argument("--json", action="store_true", help="JSON instead of a table")


_COLUMNS = (("AT (UTC)", 19), ("ACTOR", 12), ("ACTION", 22), ("TENANT", 14), ("COUNT", 5))


def run(app: bootstrap.App, args: argparse.Namespace) -> int:
    since = None
    if args.since:
        from lmtpd.cli.export import parse_since

        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"--since: {exc}", file=sys.stderr)
            return 2
    events = app.audit.events(since=since, org_slug=args.org, limit=args.limit)
    if args.json:
        rows = [
            {
                "at": event.at.isoformat() if event.at else None,
                "actor": event.actor,
                "action": event.action,
                "org_slug": event.org_slug,
                "scope": dict(event.scope),
                "count": event.count,
            }
            for event in events
        ]
        print(json.dumps(rows, indent=1))
        return 0
    print("  ".join(title.ljust(width) for title, width in _COLUMNS) + "  SCOPE")
    for event in events:
        at = event.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if event.at else "-"
        cells = (at, event.actor, event.action, event.org_slug or "-", str(event.count))
        scope = json.dumps(dict(event.scope), separators=(",", ":"), default=str)
        line = "  ".join(
            cell.ljust(width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True)
        )
        print(f"{line}  {scope}")
    print(f"({len(events)} event{'s' if len(events) != 1 else ''})")
    return 0
