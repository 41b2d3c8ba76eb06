"""The `ingest` command. Thin: parses arguments, builds the app, calls the core."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ingest_core.errors import ConfigError, IngestError
from ingest_core.logs import configure_logging
from ingest_core.settings import Settings
from ingest_core.telemetry import configure_tracing
from lmtpd.cli import messages as cli_messages
from lmtpd.cli import tenants as cli_tenants
from lmtpd.cli import tokens as cli_tokens

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
    serve.add_argument(
        "--processes",
        type=_process_count,
        help="LMTP serving processes, or auto (one per core); default INGEST_PROCESSES, 1",
    )

    worker = sub.add_parser("worker", help="the huey consumer (extraction)")
    worker.add_argument("-w", "--workers", type=int, default=2)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="apply pending migrations")

    cli_tenants.add_parser(sub)
    cli_messages.add_parser(sub)
    cli_tokens.add_parser(sub)

    export = sub.add_parser("export", help="one tenant's messages as a SQLite file")
    export.add_argument("--org", required=True, help="tenant slug")
    export.add_argument("--since", help="e.g. 2026-11-01, 2026-11-01T12:00Z, 24h, 7d")
    export.add_argument("--out", required=True, type=Path, help="the SQLite file to write")
    export.add_argument("--force", action="store_true", help="replace an existing file")

    replay = sub.add_parser("replay", help="re-enqueue messages for extraction")
    replay.add_argument("id", nargs="?", type=uuid.UUID)
    replay.add_argument("--status", help="e.g. FAILED")
    replay.add_argument("--org", help="tenant slug")

    sub.add_parser("sweep", help="re-enqueue stuck messages once")
    sub.add_parser("healthcheck", help="LMTP LHLO + NOOP against INGEST_LMTP_LISTEN")
    return parser


def _process_count(text: str) -> int:
    if text.strip().lower() == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a positive number or auto, not {text!r}")
    return int(text)


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
        from lmtpd.cli.healthcheck import check

        return check(settings)
    if args.command == "worker":
        from ingest_core.worker.consumer import run_consumer

        return run_consumer(workers=args.workers)
    try:
        return _with_app(args, settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _with_app(args: argparse.Namespace, settings: Settings) -> int:
    from ingest_core import bootstrap

    with bootstrap.open_app(settings) as app:
        if args.command == "serve":
            _serve(app, args, settings)
            return 0
        if args.command == "db":
            applied = app.migrate()
            print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
            return 0
        if args.command == "tenants":
            return cli_tenants.run(app, args)
        if args.command == "messages":
            return cli_messages.run(app, args)
        if args.command == "tokens":
            return cli_tokens.run(app, args)
        if args.command == "export":
            return _export(app, args)
        if args.command == "replay":
            return _replay(app, args)
        if args.command == "sweep":
            ids = app.sweep()
            print(f"re-enqueued {len(ids)} message(s)")
            removed = app.remove_stale_temp_files()
            print(f"removed {removed} stale temporary object file(s)")
            return 0
    return 2


def _serve(app: bootstrap.App, args: argparse.Namespace, settings: Settings) -> None:
    """One process, or with ``--processes N`` (N > 1) a supervisor and N serving
    processes (``lmtpd.cli.supervisor``). A listener that cannot be bound ends it
    with its ConfigError."""
    # Ignored outside trio.run: its signal receivers replace this while serving
    # and put it back after, so a late SIGTERM cannot cut the cleanup (pool,
    # embedded database) short. Children started while serving get the default.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _run_serve(app, args, settings)
    except BaseExceptionGroup as group:
        config_error = _config_error_in(group)
        if config_error is None:
            raise
        raise config_error from None


def _config_error_in(group: BaseExceptionGroup[BaseException]) -> ConfigError | None:
    for exc in group.exceptions:
        if isinstance(exc, ConfigError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _config_error_in(exc)
            if found is not None:
                return found
    return None


def _run_serve(app: bootstrap.App, args: argparse.Namespace, settings: Settings) -> None:
    import trio

    from ingest_core.effective import setup_summary

    setup = setup_summary(settings, app.database_url)
    processes = args.processes or settings.processes
    worker_env = app.child_environment() if args.with_worker else None
    if processes == 1:
        from lmtpd.cli.serve import run_services

        trio.run(
            lambda: run_services(
                settings,
                app.service,
                milter=not args.no_milter,
                worker_env=worker_env,
                probes=app,
                setup=setup,
            )
        )
        return
    from lmtpd.cli.supervisor import run_supervisor

    trio.run(
        lambda: run_supervisor(
            settings,
            processes,
            child_env=app.child_environment(),
            milter=not args.no_milter,
            worker_env=worker_env,
            probes=app,
            setup=setup,
        )
    )


def _export(app: bootstrap.App, args: argparse.Namespace) -> int:
    from lmtpd.cli.export import parse_since, progress_bar

    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"--since: {exc}", file=sys.stderr)
        return 2
    with progress_bar(label=f"exporting {args.org}") as progress:
        summary = app.export(
            org_slug=args.org,
            since=since,
            out=args.out,
            overwrite=args.force,
            progress=progress,
        )
    print(
        f"exported {summary.messages} message(s) and {summary.attachments} attachment(s)"
        f" of {args.org} to {summary.path}"
    )
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
