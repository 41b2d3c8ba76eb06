"""``ingest replay``: messages back to RECEIVED and re-enqueued for extraction,
named one by one (id, id prefix, Message-ID) or selected by ``--status`` and
``--org``; a selection says what it would do and needs ``--yes``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from lmtpd.cli.audit import record
from lmtpd.cli.messages import REFERENCE_HELP, STATUSES, resolve, unknown_tenant

if TYPE_CHECKING:
    import argparse
    import uuid

    from ingest_core import bootstrap


def add_parser(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="re-enqueue messages for extraction",
        description="Back to RECEIVED (attempts reset) and enqueued. Name messages, or"
        " select them with --status (and --org): a selection is listed first and"
        " replayed only with --yes.",
    )
    replay.add_argument("refs", metavar="ID", nargs="*", help=REFERENCE_HELP)
    replay.add_argument("--status", type=str.upper, choices=STATUSES, help="select by status")
    replay.add_argument("--org", help="select within this tenant (slug)")
    replay.add_argument("--yes", action="store_true", help="replay the selection")
    replay.add_argument("--dry-run", action="store_true", help="only say what would be replayed")


def run(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.refs and (args.status or args.org):
        print("replay takes IDs or --status/--org, not both", file=sys.stderr)
        return 2
    if not args.refs and args.status is None:
        print("replay needs an ID or --status (and optionally --org)", file=sys.stderr)
        return 2
    if args.refs:
        ids: list[uuid.UUID] = []
        for reference in args.refs:
            found = resolve(app, reference)
            if found is None:
                return 1
            ids.append(found)
        return _replay(
            app, ids, org_slug=None, scope={"ids": [str(i) for i in ids]}, dry=args.dry_run
        )
    if unknown_tenant(app, args.org):
        return 1
    ids = app.operator.select_ids(status=args.status, org_slug=args.org)
    where = f"status {args.status}" + (f", tenant {args.org}" if args.org else ", every tenant")
    if not ids:
        print(f"no message with {where}; nothing to replay")
        return 0
    if args.dry_run or not args.yes:
        print(f"would re-enqueue {len(ids)} message(s) with {where}:")
        for message_id in ids[:20]:
            print(f"  {message_id}")
        if len(ids) > 20:
            print(f"  … and {len(ids) - 20} more")
        if not args.dry_run:
            print("add --yes to replay them (or --dry-run to only list them)", file=sys.stderr)
            return 1
        return 0
    scope = {"status": args.status, "org": args.org}
    return _replay(app, ids, org_slug=args.org, scope=scope, dry=False)


def _replay(
    app: bootstrap.App,
    ids: list[uuid.UUID],
    *,
    org_slug: str | None,
    scope: dict[str, object],
    dry: bool,
) -> int:
    if dry:
        print(f"would re-enqueue {len(ids)} message(s):")
        for message_id in ids:
            print(f"  {message_id}")
        return 0
    replayed = app.replay(ids)
    record(app, "message.replay", org_slug=org_slug, scope=scope, count=len(replayed))
    print(f"re-enqueued {len(replayed)} of {len(ids)} message(s)")
    return 0 if len(replayed) == len(ids) else 1
