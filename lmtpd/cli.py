"""The `ingest` command. Thin: parses arguments, builds the app, calls the core."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from typing import TYPE_CHECKING

from ingest_core.errors import ConfigError, IngestError
from ingest_core.logs import configure_logging
from ingest_core.settings import Settings
from ingest_core.telemetry import configure_tracing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest_core import bootstrap

log = logging.getLogger("ingest.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingest", description="order-ingest inbound mail")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="LMTP server + milter (+ worker)")
    serve.add_argument("--with-worker", action="store_true", help="also run `ingest worker`")
    serve.add_argument("--no-milter", action="store_true", help="do not start the milter")

    worker = sub.add_parser("worker", help="the huey consumer (extraction)")
    worker.add_argument("-w", "--workers", type=int, default=2)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="apply pending migrations")

    tenants = sub.add_parser("tenants").add_subparsers(dest="tenants", required=True)
    add = tenants.add_parser("add")
    add.add_argument("slug")
    add.add_argument("--name")
    add.add_argument("--if-missing", action="store_true", help="no error if it exists")
    tenants.add_parser("list")
    for verb in ("disable", "enable"):
        tenants.add_parser(verb).add_argument("slug")

    messages = sub.add_parser("messages").add_subparsers(dest="messages", required=True)
    listing = messages.add_parser("list")
    listing.add_argument("--org", help="tenant slug")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    messages.add_parser("show").add_argument("id", type=uuid.UUID)
    messages.add_parser("raw").add_argument("id", type=uuid.UUID)

    replay = sub.add_parser("replay", help="re-enqueue messages for extraction")
    replay.add_argument("id", nargs="?", type=uuid.UUID)
    replay.add_argument("--status", help="e.g. FAILED")
    replay.add_argument("--org", help="tenant slug")

    sub.add_parser("sweep", help="re-enqueue stuck messages once")
    sub.add_parser("healthcheck", help="LMTP LHLO + NOOP against INGEST_LMTP_LISTEN")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    configure_tracing(f"order-ingest-{args.command}")
    if args.command == "healthcheck":
        from lmtpd.healthcheck import check

        return check(settings)
    if args.command == "worker":
        from ingest_core.tasks import run_consumer

        return run_consumer(workers=args.workers)
    try:
        return _with_app(args, settings)
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _with_app(args: argparse.Namespace, settings: Settings) -> int:
    from ingest_core import bootstrap

    with bootstrap.open_app(settings) as app:
        if args.command == "serve":
            import trio

            from lmtpd.serve import run_services

            worker_env = app.child_environment() if args.with_worker else None
            trio.run(
                lambda: run_services(
                    settings, app.service, milter=not args.no_milter, worker_env=worker_env
                )
            )
            return 0
        if args.command == "db":
            applied = app.migrate()
            print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
            return 0
        if args.command == "tenants":
            return _tenants(app, args)
        if args.command == "messages":
            return _messages(app, args)
        if args.command == "replay":
            return _replay(app, args)
        if args.command == "sweep":
            ids = app.sweep()
            print(f"re-enqueued {len(ids)} message(s)")
            removed = app.remove_stale_temp_files()
            print(f"removed {removed} stale temporary object file(s)")
            return 0
    return 2


def _tenants(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.tenants == "add":
        existing = {t.slug for t in app.admin.list()}
        if args.slug in existing and args.if_missing:
            print(f"tenant {args.slug} exists")
            return 0
        tenant = app.admin.add(args.slug, args.name or args.slug)
        print(f"added tenant {tenant.slug} ({tenant.id})")
        return 0
    if args.tenants == "list":
        for tenant in app.admin.list():
            print(f"{tenant.slug:24} {tenant.status.value:9} {tenant.id}  {tenant.name}")
        return 0
    from ingest_core.model import TenantStatus

    status = TenantStatus.DISABLED if args.tenants == "disable" else TenantStatus.ACTIVE
    if not app.admin.set_status(args.slug, status):
        print(f"no tenant {args.slug}", file=sys.stderr)
        return 1
    print(f"tenant {args.slug} {status.value}")
    return 0


def _messages(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.messages == "list":
        rows = app.operator.list_messages(org_slug=args.org, status=args.status, limit=args.limit)
        if args.format == "json":
            print(json.dumps(rows, default=str, indent=1))
        else:
            for row in rows:
                print(
                    f"{row['id']}  {row['org_slug']:16} {row['status']:10} "
                    f"{row['attachments']:3} att  {row['received_at']:%Y-%m-%d %H:%M:%S}  "
                    f"{(row['subject'] or '')[:50]}"
                )
        return 0
    if args.messages == "show":
        detail = app.operator.show_message(args.id)
        if detail is None:
            print(f"no message {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(detail, default=str, indent=1))
        return 0
    key = app.operator.raw_object_key(args.id)
    if key is None:
        print(f"no message {args.id}", file=sys.stderr)
        return 1
    with app.store.open(key) as source:
        while chunk := source.read(65536):
            sys.stdout.buffer.write(chunk)
    return 0


def _replay(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.id is None and args.status is None:
        print("replay needs an ID or --status (and optionally --org)", file=sys.stderr)
        return 2
    ids = (
        [args.id]
        if args.id is not None
        else app.operator.select_ids(status=args.status, org_slug=args.org)
    )
    replayed = app.replay(ids)
    print(f"re-enqueued {len(replayed)} of {len(ids)} message(s)")
    return 0 if len(replayed) == len(ids) else 1


if __name__ == "__main__":
    sys.exit(main())
