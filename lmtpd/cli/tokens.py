"""``ingest tokens …``: API tokens of a tenant (or, with ``--admin``, admin tokens)."""

from __future__ import annotations

import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any

from lmtpd.cli.audit import record

if TYPE_CHECKING:
    import argparse
    from datetime import datetime

    from ingest_core import bootstrap
    from ingest_core.api.tokens import TokenRecord


def add_parser(sub: Any) -> None:
    tokens = sub.add_parser("tokens", help="API tokens").add_subparsers(
        dest="tokens", required=True
    )
    create = tokens.add_parser("create", help="create a token and print it (once)")
    create.add_argument("slug", nargs="?", help="tenant slug (omit with --admin)")
    create.add_argument("--name", required=True, help="unique among the tenant's live tokens")
    create.add_argument("--admin", action="store_true", help="an admin token (provisioning)")
    listing = tokens.add_parser("list", help="name, created, last used")
    listing.add_argument("slug", nargs="?", help="tenant slug (omit with --admin)")
    listing.add_argument("--admin", action="store_true", help="the admin tokens")
    revoke = tokens.add_parser("revoke", help="revoke a token by its name")
    revoke.add_argument(
        "slug_or_name",
        nargs="+",
        metavar="SLUG NAME | --admin NAME",
        help="the tenant and the token's name (with --admin: the name)",
    )
    revoke.add_argument("--admin", action="store_true")


def run(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.tokens == "revoke":
        expected = 1 if args.admin else 2
        if len(args.slug_or_name) != expected:
            print("usage: ingest tokens revoke SLUG NAME | --admin NAME", file=sys.stderr)
            return 2
        slug = None if args.admin else args.slug_or_name[0]
        name = args.slug_or_name[-1]
    else:
        if (args.slug is None) != args.admin:
            print("give a tenant SLUG or --admin (not both)", file=sys.stderr)
            return 2
        slug, name = args.slug, getattr(args, "name", "")
    owner = f"tenant {slug}" if slug else "admin"
    if args.tokens == "create":
        issued = app.tokens.issue(slug, name)
        _audit(app, "token.create", issued.record)
        print(issued.token)
        print(
            f"created {owner} token {issued.record.name!r}; it is shown only now", file=sys.stderr
        )
        return 0
    if args.tokens == "list":
        for record in app.tokens.list(slug):
            state = "revoked " + _when(record.revoked_at) if record.revoked_at else "live"
            print(
                f"{record.name:24} created {_when(record.created_at)}"
                f"  last used {_when(record.last_used_at)}  {state}"
            )
        return 0
    revoked = app.tokens.revoke(slug, name)
    if revoked is None:
        print(f"{owner} has no live token named {name!r}", file=sys.stderr)
        return 1
    _audit(app, "token.revoke", revoked)
    print(f"revoked {owner} token {revoked.name!r}")
    return 0


def _audit(app: bootstrap.App, action: str, token: TokenRecord) -> None:
    """The token's name, id and kind; never its secret or hash."""
    scope = {"name": token.name, "token_id": token.token_id, "admin": token.admin}
    record(app, action, org_slug=token.org_slug, scope=scope, count=1)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"
