"""``ingest tenants …``: tenants, their sender policy and allow-listed senders,
and their automated-mail policy."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ingest_core.automated import AutomatedAction
from ingest_core.model import AutomatedKind, TenantStatus
from ingest_core.sender import SenderPolicy
from lmtpd.cli.audit import record

if TYPE_CHECKING:
    import argparse

    from ingest_core import bootstrap


def add_parser(sub: Any) -> None:
    tenants = sub.add_parser("tenants", help="tenants and their sender policy").add_subparsers(
        dest="tenants", required=True
    )
    slug_help = "the tenant's slug (orders+SLUG@…)"
    add = tenants.add_parser("add", help="add a tenant")
    add.add_argument("slug", help="lower-case letters, digits and -: orders+SLUG@…")
    add.add_argument("--name", help="display name (default: the slug)")
    add.add_argument("--if-missing", action="store_true", help="no error if it exists")
    tenants.add_parser("list", help="every tenant, its status and sender policy")
    for verb, what in (("disable", "refuse its mail (550)"), ("enable", "accept its mail again")):
        tenants.add_parser(verb, help=what).add_argument("slug", help=slug_help)
    policy = tenants.add_parser(
        "policy", help="show or set the sender policy (monitor, dmarc, allowlist)"
    )
    policy.add_argument("slug", help=slug_help)
    policy.add_argument(
        "policy", nargs="?", choices=[p.value for p in SenderPolicy], help="the new policy"
    )
    tenants.add_parser("show", help="status, sender policy, automated-mail policy").add_argument(
        "slug", help=slug_help
    )
    automated = tenants.add_parser(
        "automated", help="show or set what happens to automated mail of a kind (extract, hold)"
    )
    automated.add_argument("slug", help=slug_help)
    automated.add_argument(
        "kind", nargs="?", choices=[k.value for k in AutomatedKind], help="the kind to set"
    )
    automated.add_argument(
        "action", nargs="?", choices=[a.value for a in AutomatedAction], help="what to do with it"
    )
    retention = tenants.add_parser(
        "retention", help="show or set how long its mail is kept (90d, off, default)"
    )
    retention.add_argument("slug", help=slug_help)
    retention.add_argument(
        "value", nargs="?", help="Nd: N days; off: never removed; default: INGEST_RETENTION_DAYS"
    )
    delete = tenants.add_parser(
        "delete", help="offboard a tenant: erase its messages, then its tokens and endpoints"
    )
    delete.add_argument("slug", help=slug_help)
    delete.add_argument("--erase", action="store_true", help="required: its data goes too")
    delete.add_argument("--yes", action="store_true", help="do it without asking")
    senders = tenants.add_parser("senders", help="allow-listed senders").add_subparsers(
        dest="senders", required=True
    )
    senders.add_parser("list", help="a tenant's allow-listed senders").add_argument(
        "slug", help=slug_help
    )
    for verb in ("add", "remove"):
        parser = senders.add_parser(verb, help=f"{verb} an allow-listed sender")
        parser.add_argument("slug", help=slug_help)
        parser.add_argument("pattern", help="buyer@example.com, '*@example.com', '*@*.example.com'")


def run(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.tenants == "add":
        existing = {t.slug for t in app.admin.list()}
        if args.slug in existing and args.if_missing:
            print(f"tenant {args.slug} exists")
            return 0
        tenant = app.admin.add(args.slug, args.name or args.slug)
        record(app, "tenant.add", org_slug=tenant.slug, scope={"name": tenant.name}, count=1)
        print(f"added tenant {tenant.slug} ({tenant.id})")
        return 0
    if args.tenants == "list":
        print(f"{'SLUG':24} {'STATUS':9} {'POLICY':9} {'ID':36}  NAME")
        for tenant in app.admin.list():
            policy = app.senders.rules(tenant.slug).policy
            print(
                f"{tenant.slug:24} {tenant.status.value:9} {policy.value:9} {tenant.id}"
                f"  {tenant.name}"
            )
        return 0
    if args.tenants == "policy":
        return _policy(app, args)
    if args.tenants == "senders":
        return _senders(app, args)
    if args.tenants == "show":
        return _show(app, args.slug)
    if args.tenants == "automated":
        return _automated(app, args)
    if args.tenants == "retention":
        return _retention(app, args)
    if args.tenants == "delete":
        return _delete(app, args)
    status = TenantStatus.DISABLED if args.tenants == "disable" else TenantStatus.ACTIVE
    if not app.admin.set_status(args.slug, status):
        print(f"no tenant {args.slug}", file=sys.stderr)
        return 1
    record(app, f"tenant.{args.tenants}", org_slug=args.slug, count=1)
    print(f"tenant {args.slug} {status.value}")
    return 0


def _policy(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.policy is not None:
        app.senders.set_policy(args.slug, SenderPolicy(args.policy))
        record(app, "tenant.policy", org_slug=args.slug, scope={"policy": args.policy}, count=1)
    rules = app.senders.rules(args.slug)
    print(f"tenant {args.slug}: sender policy {rules.policy.value}")
    if rules.policy is SenderPolicy.ALLOWLIST and not rules.patterns:
        print(
            "warning: the allow-list is empty, so every message will be QUARANTINED;"
            f" add senders with `ingest tenants senders add {args.slug} PATTERN`",
            file=sys.stderr,
        )
    return 0


def _show(app: bootstrap.App, slug: str) -> int:
    tenant = next((t for t in app.admin.list() if t.slug == slug), None)
    if tenant is None:
        print(f"no tenant {slug}", file=sys.stderr)
        return 1
    rules = app.senders.rules(slug)
    print(f"tenant {tenant.slug} ({tenant.id}): {tenant.name}")
    print(f"  status:          {tenant.status.value}")
    print(f"  sender policy:   {rules.policy.value} ({len(rules.patterns)} allow-listed senders)")
    print(f"  retention:       {_retention_text(app, slug)}")
    print("  automated mail:")
    _print_automated(app, slug)
    return 0


def _retention_text(app: bootstrap.App, slug: str) -> str:
    days, off = app.lifecycle.retention(slug) or (None, False)
    if off:
        return "off (kept until erased)"
    if days is not None:
        return f"{days}d"
    default = app.settings.retention_days
    kept = f"{default}d" if default else "kept (INGEST_RETENTION_DAYS unset)"
    return f"default: {kept}"


def _retention(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.value is not None:
        value = args.value.strip().lower()
        days: int | None = None
        if value not in ("off", "default"):
            digits = value.removesuffix("d")
            if not digits.isdigit() or int(digits) < 1:
                print(
                    f"retention {args.value!r}: give Nd (days, e.g. 90d), off or default",
                    file=sys.stderr,
                )
                return 2
            days = int(digits)
        if not app.lifecycle.set_retention(args.slug, days, off=value == "off"):
            print(f"no tenant {args.slug}", file=sys.stderr)
            return 1
        scope = {"retention": value if days is None else f"{days}d"}
        record(app, "tenant.retention", org_slug=args.slug, scope=scope, count=1)
    elif app.lifecycle.retention(args.slug) is None:
        print(f"no tenant {args.slug}", file=sys.stderr)
        return 1
    print(f"tenant {args.slug}: retention {_retention_text(app, args.slug)}")
    return 0


def _delete(app: bootstrap.App, args: argparse.Namespace) -> int:
    """Erase everything of the tenant, then the tenant row and every row naming it."""
    from ingest_core import lifecycle

    if not args.erase:
        print(f"tenants delete removes all of {args.slug}'s data: add --erase", file=sys.stderr)
        return 2
    if app.lifecycle.retention(args.slug) is None:
        print(f"no tenant {args.slug}", file=sys.stderr)
        return 1
    holds = app.lifecycle.tenant_held(args.slug)
    if holds:
        print(f"tenant {args.slug} is under legal hold: {'; '.join(holds)}", file=sys.stderr)
        refused = {"reason": "legal hold", "holds": holds}
        record(app, "tenant.delete.refused", org_slug=args.slug, scope=refused)
        return 1
    selection = app.lifecycle.select(args.slug)
    question = f"delete tenant {args.slug} and {len(selection.ids)} message(s)? [y/N] "
    if not args.yes and not (sys.stdin.isatty() and input(question).strip().lower() == "y"):
        print("nothing removed (add --yes to skip the question)")
        return 1
    report = lifecycle.erase(
        app.lifecycle,
        app.store,
        selection.ids,
        batch=app.settings.purge_batch,
        refuse_s=app.settings.purge_grace_s,
    )
    rows = app.lifecycle.delete_tenant(args.slug)
    scope: dict[str, object] = {
        "messages": report.messages,
        "bytes": report.bytes,
        "objects": report.objects,
        "rows": rows,
    }
    record(app, "tenant.delete", org_slug=args.slug, scope=scope, count=report.messages)
    named = ", ".join(f"{count} {table}" for table, count in sorted(rows.items())) or "none"
    print(
        f"deleted tenant {args.slug}: {report.messages} message(s), {report.bytes} bytes,"
        f" {report.objects} object(s); other rows: {named}"
    )
    return 0


def _automated(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.kind is not None and args.action is None:
        print("give both KIND and extract|hold, or neither to show the policy", file=sys.stderr)
        return 2
    if args.kind is not None:
        app.automated.set_action(args.slug, AutomatedKind(args.kind), AutomatedAction(args.action))
        scope = {"kind": args.kind, "action": args.action}
        record(app, "tenant.automated", org_slug=args.slug, scope=scope, count=1)
        print(f"tenant {args.slug}: {args.kind} → {args.action}")
        return 0
    print(f"tenant {args.slug}: automated mail")
    _print_automated(app, args.slug)
    return 0


def _print_automated(app: bootstrap.App, slug: str) -> None:
    for kind, action in app.automated.policy(slug).table().items():
        print(f"    {kind.value:16} {action.value}")


def _senders(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.senders == "list":
        rules = app.senders.rules(args.slug)
        print(f"tenant {args.slug}: sender policy {rules.policy.value}")
        for pattern in rules.patterns:
            print(f"  {pattern}")
        if not rules.patterns:
            print("  (no allow-listed senders)")
        return 0
    if args.senders == "add":
        added = app.senders.add(args.slug, args.pattern)
        pattern = args.pattern.strip().lower()
        record(
            app,
            "tenant.senders.add",
            org_slug=args.slug,
            scope={"pattern": pattern},
            count=int(added),
        )
        print(f"{'added' if added else 'already listed'}: {args.pattern.strip().lower()}")
        if app.senders.rules(args.slug).policy is not SenderPolicy.ALLOWLIST:
            print(
                f"note: tenant {args.slug} does not use the allow-list yet;"
                f" `ingest tenants policy {args.slug} allowlist` turns it on",
                file=sys.stderr,
            )
        return 0
    if not app.senders.remove(args.slug, args.pattern):
        print(f"tenant {args.slug} has no sender {args.pattern!r}", file=sys.stderr)
        return 1
    pattern = args.pattern.strip().lower()
    record(app, "tenant.senders.remove", org_slug=args.slug, scope={"pattern": pattern}, count=1)
    print(f"removed: {args.pattern.strip().lower()}")
    return 0
