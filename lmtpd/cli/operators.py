"""``ingest operators …``: who may sign in to the web console (docs/console.md)."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any

from ingest_core.console.operators import OperatorError, check_password
from lmtpd.cli.audit import record

if TYPE_CHECKING:
    import argparse

    from ingest_core import bootstrap


def add_parser(sub: Any) -> None:
    operators = sub.add_parser("operators", help="web console sign-ins").add_subparsers(
        dest="operators", required=True
    )
    add = operators.add_parser(
        "add",
        help="a new operator; asks for the password",
        description="Asks for the password twice on a terminal; with --password-stdin"
        " reads it as one line from standard input.",
    )
    add.add_argument("name", help="lower-case letters, digits and . _ -")
    add.add_argument("--password-stdin", action="store_true", help="read one line from stdin")
    operators.add_parser("list", help="names, created, last sign-in")
    for verb in ("disable", "enable"):
        operators.add_parser(verb, help=f"{verb} an operator's sign-in").add_argument(
            "name", help="the operator's name"
        )


def run(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.operators == "list":
        for operator in app.operators.list():
            last = operator.last_login_at
            seen = last.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if last else "never"
            state = "disabled" if operator.disabled_at else "active"
            created = operator.created_at.astimezone(UTC).strftime("%Y-%m-%d")
            print(f"{operator.name:24} {state:9} created {created}  last sign-in {seen}")
        return 0
    if args.operators in ("disable", "enable"):
        if not app.operators.set_disabled(args.name, args.operators == "disable"):
            print(f"no operator {args.name!r}", file=sys.stderr)
            return 1
        record(app, f"operator.{args.operators}", scope={"name": args.name}, count=1)
        print(f"{args.operators}d operator {args.name}")
        return 0
    try:
        password = _password(args.password_stdin)
        app.operators.add(args.name, password)
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record(app, "operator.add", scope={"name": args.name}, count=1)
    print(f"added operator {args.name}: sign in at the console, /console/ on the API listener")
    return 0


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return check_password(line.removesuffix("\n").removesuffix("\r"))
    if not sys.stdin.isatty():
        raise OperatorError("no terminal to ask for the password on: use --password-stdin")
    first = check_password(getpass.getpass("password: "))
    if getpass.getpass("again: ") != first:
        raise OperatorError("the two passwords differ")
    return first
