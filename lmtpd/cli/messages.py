"""``ingest messages …``: what on-call reads. Cross-tenant operator commands."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest_core.model import MessageStatus

if TYPE_CHECKING:
    import argparse
    import uuid

    from ingest_core import bootstrap

STATUSES = tuple(status.value for status in MessageStatus)
REFERENCE_HELP = (
    "the id from the 250 reply / Postfix log (or 8+ of its first hex digits), or a Message-ID"
)


def add_parser(sub: Any) -> None:
    messages = sub.add_parser("messages", help="inspect stored messages").add_subparsers(
        dest="messages", required=True
    )
    listing = messages.add_parser("list", help="newest first, as a table")
    listing.add_argument("--org", help="tenant slug")
    listing.add_argument("--status", type=str.upper, choices=STATUSES, help="e.g. FAILED")
    listing.add_argument("--since", help="e.g. 2026-11-01, 2026-11-01T12:00Z, 24h, 7d")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.add_argument("--format", choices=("table", "json"), default="table", help="(old)")
    show = messages.add_parser("show", help="one message: envelope, verdicts, attachments")
    show.add_argument("ref", metavar="ID", help=REFERENCE_HELP)
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    messages.add_parser("raw", help="the stored bytes, to stdout").add_argument(
        "ref", metavar="ID", help=REFERENCE_HELP
    )
    release = messages.add_parser("release", help="send QUARANTINED messages on to extraction")
    release.add_argument("ids", metavar="ID", nargs="+", help=REFERENCE_HELP)
    attachments = messages.add_parser(
        "attachments",
        help="write a message's attachments to files",
        description="Each attachment (or only PART) as a file in DIR, named after its"
        " sanitised display name; never outside DIR, never over an existing file"
        " without --force.",
    )
    attachments.add_argument("ref", metavar="ID", help=REFERENCE_HELP)
    attachments.add_argument("part", metavar="PART", nargs="?", help="a part path from `show`")
    attachments.add_argument("--out", required=True, type=Path, help="the folder to write to")
    attachments.add_argument("--force", action="store_true", help="replace existing files")


def run(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.messages == "list":
        return _list(app, args)
    if args.messages == "release":
        return _release(app, args.ids)
    message_id = resolve(app, args.ref)
    if message_id is None:
        return 1
    if args.messages == "show":
        return _show(app, message_id, as_json=args.json)
    if args.messages == "attachments":
        from lmtpd.cli.attachments import write_attachments

        return write_attachments(app, message_id, args.part, args.out, force=args.force)
    key = app.operator.raw_object_key(message_id)
    if key is None:  # pragma: no cover - resolved a moment ago
        return 1
    with app.store.open(key) as source:
        while chunk := source.read(65536):
            sys.stdout.buffer.write(chunk)
    return 0


def resolve(app: bootstrap.App, reference: str) -> uuid.UUID | None:
    """The one message ``reference`` names (id, id prefix, Message-ID); else
    None, after saying so on stderr: nothing found, or the candidates with their
    tenant when it names several."""
    found = app.operator.find_candidates(reference)
    if len(found) == 1:
        message_id: uuid.UUID = found[0]["id"]
        return message_id
    if not found:
        print(f"no message {reference!r}", file=sys.stderr)
        return None
    more = "+" if len(found) >= 20 else ""
    print(f"{len(found)}{more} messages match {reference!r}; name one by id:", file=sys.stderr)
    for row in found:
        print(
            f"  {row['id']}  {row['org_slug']:14} {row['status']:11}"
            f" {_utc(row['received_at'])}  {_printable(row['source_message_id'] or '-')}",
            file=sys.stderr,
        )
    return None


def unknown_tenant(app: bootstrap.App, slug: str | None) -> bool:
    """True, after saying so, when ``slug`` names no tenant."""
    if slug is None or app.operator.tenant_exists(slug):
        return False
    print(f"no tenant {slug!r} (`ingest tenants list` shows them)", file=sys.stderr)
    return True


def _list(app: bootstrap.App, args: argparse.Namespace) -> int:
    since = None
    if args.since:
        from lmtpd.cli.export import parse_since

        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"--since: {exc}", file=sys.stderr)
            return 2
    if unknown_tenant(app, args.org):
        return 1
    rows = app.operator.list_messages(
        org_slug=args.org, status=args.status, limit=args.limit, since=since
    )
    if args.json or args.format == "json":
        print(json.dumps(rows, default=str, indent=1))
        return 0
    print(render_table(rows))
    if len(rows) == args.limit:
        print(f"(the newest {args.limit}; --limit N shows more)", file=sys.stderr)
    return 0


_COLUMNS = (
    ("ID", "id", 36),
    ("TENANT", "org_slug", 14),
    ("STATUS", "status", 11),
    ("ATT", "attachments", 3),
    ("DMARC", "auth_dmarc", 9),
    ("AUTOMATED", "automated_kind", 15),
    ("RECEIVED (UTC)", "received_at", 19),
    ("FROM", "from_header", 28),
    ("SUBJECT", "subject", 40),
)


def render_table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width columns; sender-controlled text is cut, never allowed to wrap."""
    lines = ["  ".join(title.ljust(width) for title, _, width in _COLUMNS).rstrip()]
    for row in rows:
        cells = [_cell(row.get(key), width) for _, key, width in _COLUMNS]
        lines.append("  ".join(cells).rstrip())
    lines.append(f"({len(rows)} message{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def _cell(value: object, width: int) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, datetime):
        text = _utc(value)  # the column title says UTC
    else:
        text = _printable(value)
    return (text[: width - 1] + "…" if len(text) > width else text).ljust(width)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _show(app: bootstrap.App, message_id: uuid.UUID, *, as_json: bool) -> int:
    detail = app.operator.show_message(message_id)
    if detail is None:  # pragma: no cover - resolved a moment ago
        return 1
    if as_json:
        print(json.dumps(detail, default=str, indent=1))
    else:
        print(render_detail(detail))
    return 0


_SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Message", (("id", "id"), ("tenant", "org_slug"), ("status", "status"),
                 ("attempts", "attempts"), ("received", "received_at"),
                 ("claimed", "claimed_at"), ("next retry", "retry_at"),
                 ("processed", "processed_at"),
                 ("released", "released_at"), ("last error", "last_error"),
                 ("quarantined because", "quarantine_reason"),
                 ("parser", "parser_version"))),
    ("Envelope", (("mail from", "envelope_from"), ("recipient", "envelope_recipient"),
                  ("client", "client_address"), ("helo", "client_helo"),
                  ("postfix queue id", "postfix_queue_id"))),
    ("Headers", (("message-id", "message_id_header"), ("from", "from_header"),
                 ("subject", "subject"), ("dedup key", "source_message_id"))),
    ("Sender authentication", (("summary", "auth_results"), ("spf", "auth_spf"),
                               ("dmarc", "auth_dmarc"), ("dmarc policy", "auth_dmarc_policy"),
                               ("from domain", "auth_from_domain"),
                               ("aligned", "auth_aligned"), ("arc", "auth_arc"),
                               ("checked", "auth_checked_at"))),
    ("Automated mail", (("kind", "automated_kind"), ("because", "automated_reason"),
                        ("classified", "automated_checked_at"),
                        ("bounced recipient", "bounce_original_recipient"),
                        ("bounce action", "bounce_action"), ("bounce status", "bounce_status"),
                        ("diagnostic", "bounce_diagnostic"))),
    ("Storage", (("raw object", "raw_object_key"), ("sha256", "sha256"),
                 ("size", "size_bytes"))),
)  # fmt: skip


def render_detail(detail: dict[str, Any]) -> str:
    lines: list[str] = []
    for title, fields in _SECTIONS:
        lines.append(title)
        for label, key in fields:
            value = detail.get(key)
            if value is None and key not in ("status", "id"):
                continue
            lines.append(f"  {label + ':':22}{_printable(value)}")
        if title == "Sender authentication":
            for entry in detail.get("auth_dkim") or ():
                lines.append(
                    f"  {'dkim:':22}{_printable(entry.get('result'))} "
                    f"d={_printable(entry.get('domain'))} s={_printable(entry.get('selector'))}"
                )
    attachments = detail.get("attachments") or []
    lines.append(f"Attachments ({len(attachments)})")
    if attachments:
        lines.append(f"  {'PART':8} {'TYPE':28} {'BYTES':>10}  NAME / OBJECT KEY")
    for item in attachments:
        lines.append(
            f"  {item['part_path']:8} {_type_text(item):28} "
            f"{item['size_bytes']:>10}  {_printable(item['filename'] or '-')}"
        )
        lines.append(f"  {'':8} {item['object_key']}")
    return "\n".join(lines)


def _type_text(item: dict[str, Any]) -> str:
    """The declared content type, and the one the bytes' magic numbers gave when
    that differs: ``application/octet-stream (detected application/pdf)``."""
    declared = _printable(item["content_type"])
    detected = item.get("detected_type")
    if detected is None or detected == item["content_type"]:
        return declared
    return f"{declared} (detected {_printable(detected)})"


def _printable(value: object) -> str:
    if isinstance(value, datetime):
        return _utc(value) + " UTC"
    return "".join(ch if ch.isprintable() else " " for ch in str(value))


def _release(app: bootstrap.App, references: list[str]) -> int:
    from lmtpd.cli.audit import record

    failed = 0
    for reference in references:
        message_id = resolve(app, reference)
        if message_id is None:
            failed += 1
            continue
        if not app.release(message_id):
            print(f"{message_id} is not QUARANTINED; nothing done", file=sys.stderr)
            failed += 1
            continue
        detail = app.operator.show_message(message_id) or {}
        record(
            app,
            "message.release",
            org_slug=detail.get("org_slug"),
            scope={"ids": [str(message_id)]},
            count=1,
        )
        print(f"released {message_id}: queued for extraction")
    return 1 if failed else 0
