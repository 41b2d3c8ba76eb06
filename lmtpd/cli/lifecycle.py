"""``ingest purge``, ``ingest erase`` and ``ingest holds``: retention runs,
erasure by tenant, sender or message, and legal holds
(docs/operations.md#data-lifecycle). Every removal, and every removal a hold
refused, is recorded in the audit table; an erased address only as its HMAC."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ingest_core import lifecycle
from lmtpd.cli.audit import operator_name, record

if TYPE_CHECKING:
    import argparse
    import uuid

    from ingest_core import bootstrap


def add_parser(sub: Any) -> None:
    purge = sub.add_parser(
        "purge",
        help="remove messages past their tenant's retention once",
        description="What the worker's hourly ingest.purge does: messages past retention"
        " (tenants retention SLUG, else INGEST_RETENTION_DAYS), with their attachments,"
        " events and objects no other message uses; held messages stay.",
    )
    purge.add_argument("--dry-run", action="store_true", help="count, remove nothing")

    erase = sub.add_parser(
        "erase",
        help="remove a tenant's messages: from a sender, one message, or all",
        description="Removes the messages, attachments, events and deliveries and the"
        " objects no other message of the tenant uses. Held messages stay.",
    )
    erase.add_argument("--org", required=True, help="the tenant's slug")
    which = erase.add_mutually_exclusive_group(required=True)
    which.add_argument("--sender", help="envelope sender or From address (any case)")
    which.add_argument("--message", help="an id, a unique id prefix, or a Message-ID")
    which.add_argument("--all", action="store_true", help="every message of the tenant")
    erase.add_argument("--dry-run", action="store_true", help="print what would go")
    erase.add_argument("--yes", action="store_true", help="do it without asking")

    holds = sub.add_parser("holds", help="legal holds: held data is never removed").add_subparsers(
        dest="holds", required=True
    )
    add = holds.add_parser("add", help="hold a tenant's data, or one message")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--org", help="the tenant's slug: all its messages")
    target.add_argument("--message", help="one message (id, prefix or Message-ID)")
    add.add_argument("--reason", required=True, help="why (a case or ticket reference)")
    holds.add_parser("list", help="live holds").add_argument("--org", help="one tenant's")
    holds.add_parser("remove", help="end a hold").add_argument("id", type=int, help="its id")


def run_purge(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.dry_run:
        summary = app.lifecycle.expired_summary(app.settings.retention_days)
        for slug, (count, size) in summary.items():
            print(f"{slug}: {count} message(s), {size} bytes would be removed")
        total = sum(count for count, _ in summary.values())
        print(f"dry run: {total} message(s) past retention; nothing removed")
        return 0
    report = app.purge(actor=operator_name())
    _print_report("removed", report)
    return 0 if report.objects_failed == 0 else 1


def run_erase(app: bootstrap.App, args: argparse.Namespace) -> int:
    if app.lifecycle.retention(args.org) is None:
        print(f"no tenant {args.org}", file=sys.stderr)
        return 1
    message_id = None
    if args.message is not None:
        message_id = _message_of(app, args.org, args.message)
        if message_id is None:
            return 1
    selection = app.lifecycle.select(args.org, sender=args.sender, message_id=message_id)
    scope = _scope(app, args, message_id)
    if selection.held:
        reasons = "; ".join(selection.hold_reasons)
        print(f"{len(selection.held)} message(s) kept: under legal hold ({reasons})")
        if not args.dry_run:
            record(
                app,
                "erase.refused",
                org_slug=args.org,
                scope={**scope, "reason": "legal hold", "holds": list(selection.hold_reasons)},
                count=len(selection.held),
            )
    what = f"{len(selection.ids)} message(s), {selection.bytes} bytes"
    if args.dry_run:
        print(f"dry run: would remove {what} of tenant {args.org}")
        return 0
    if not selection.ids:
        print(f"nothing to remove for tenant {args.org}")
        return 0 if not selection.held else 1
    if not args.yes and not _confirm(f"remove {what} of tenant {args.org}?"):
        print("nothing removed (add --yes to skip the question)")
        return 1
    report = lifecycle.erase(
        app.lifecycle,
        app.store,
        selection.ids,
        batch=app.settings.purge_batch,
        refuse_s=app.settings.purge_grace_s,
    )
    record(
        app,
        f"erase.{scope['by']}",
        org_slug=args.org,
        scope={**scope, **_counts(report)},
        count=report.messages,
    )
    _print_report("erased", report)
    return 0 if report.objects_failed == 0 and not selection.held else 1


def run_holds(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.holds == "list":
        print(f"{'ID':>6} {'TENANT':24} {'MESSAGE':36} {'SINCE':20} {'BY':12} REASON")
        for hold in app.lifecycle.holds(args.org):
            target = str(hold.message_id) if hold.message_id else "(all its messages)"
            since = hold.created_at.strftime("%Y-%m-%d %H:%M")
            print(
                f"{hold.id:>6} {hold.org_slug:24} {target:36} {since:20} {hold.created_by:12}"
                f" {hold.reason}"
            )
        return 0
    if args.holds == "remove":
        removed = app.lifecycle.remove_hold(args.id, operator_name())
        if removed is None:
            print(f"no live hold {args.id}", file=sys.stderr)
            return 1
        scope = {"hold": removed.id, "message": str(removed.message_id or "") or None}
        record(app, "hold.remove", org_slug=removed.org_slug, scope=scope, count=1)
        print(f"hold {removed.id} on {removed.org_slug} removed")
        return 0
    slug, message_id = args.org, None
    if args.message is not None:
        candidates = app.operator.find_candidates(args.message)
        if len(candidates) != 1:
            print(_not_one(args.message, candidates), file=sys.stderr)
            return 1
        slug, message_id = candidates[0]["org_slug"], candidates[0]["id"]
    hold = app.lifecycle.add_hold(slug, message_id, args.reason, operator_name())
    scope = {"hold": hold.id, "message": str(message_id) if message_id else None}
    record(app, "hold.add", org_slug=slug, scope={**scope, "reason": args.reason}, count=1)
    target = f"message {message_id}" if message_id else "all its messages"
    print(f"hold {hold.id} on {slug}: {target} ({args.reason})")
    return 0


def _message_of(app: bootstrap.App, slug: str, reference: str) -> uuid.UUID | None:
    candidates = [c for c in app.operator.find_candidates(reference) if c["org_slug"] == slug]
    if len(candidates) != 1:
        print(_not_one(reference, candidates, slug), file=sys.stderr)
        return None
    found: uuid.UUID = candidates[0]["id"]
    return found


def _not_one(reference: str, candidates: list[dict[str, Any]], slug: str | None = None) -> str:
    where = f" of tenant {slug}" if slug else ""
    if not candidates:
        return f"no message{where} matches {reference!r}"
    listed = ", ".join(f"{c['id']} ({c['org_slug']})" for c in candidates)
    return f"{reference!r} matches {len(candidates)} messages{where}: {listed}"


def _scope(
    app: bootstrap.App, args: argparse.Namespace, message_id: uuid.UUID | None
) -> dict[str, Any]:
    """What the audit table records of the selection: never the address itself."""
    if args.sender is not None:
        digest = lifecycle.address_digest(args.sender, app.settings.secret_key)
        return {"by": "sender", "sender_hmac": digest or "not recorded (INGEST_SECRET_KEY unset)"}
    if message_id is not None:
        return {"by": "message", "message": str(message_id)}
    return {"by": "tenant"}


def _counts(report: lifecycle.PurgeReport) -> dict[str, int]:
    return {
        "messages": report.messages,
        "attachments": report.attachments,
        "bytes": report.bytes,
        "objects": report.objects,
        "objects_failed": report.objects_failed,
        "orphans": report.orphans,
    }


def _print_report(verb: str, report: lifecycle.PurgeReport) -> None:
    for slug, (count, size) in sorted(report.by_tenant.items()):
        print(f"{slug}: {count} message(s), {size} bytes")
    print(
        f"{verb} {report.messages} message(s), {report.attachments} attachment(s),"
        f" {report.bytes} bytes; {report.objects} object(s) deleted,"
        f" {report.objects_kept} kept (still used)"
    )
    if report.orphans:
        print(f"{report.orphans} object(s) left without a row by a crash deleted")
    if report.objects_failed:
        print(
            f"warning: {report.objects_failed} object(s) could not be deleted now;"
            " the next purge retries them",
            file=sys.stderr,
        )


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
