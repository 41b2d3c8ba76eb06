"""``ingest messages …``: what on-call reads. Cross-tenant operator commands."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingest_core.model import MessageStatus

if TYPE_CHECKING:
    import argparse
    import uuid

    from ingest_core import bootstrap

_STATUSES = tuple(status.value for status in MessageStatus)


def add_parser(sub: Any) -> None:
    messages = sub.add_parser("messages", help="inspect stored messages").add_subparsers(
        dest="messages", required=True
    )
    listing = messages.add_parser("list", help="newest first")
    listing.add_argument("--org", help="tenant slug")
    listing.add_argument("--status", type=str.upper, choices=_STATUSES)
    listing.add_argument("--since", help="e.g. 2026-11-01, 2026-11-01T12:00Z, 24h, 7d")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.add_argument("--format", choices=("table", "json"), default="table", help="(old)")
    reference = "the id from the 250 reply / Postfix log, or a Message-ID"
    show = messages.add_parser("show", help="one message: envelope, verdicts, attachments")
    show.add_argument("ref", metavar="ID", help=reference)
    show.add_argument("--json", action="store_true")
    messages.add_parser("raw", help="the stored bytes, to stdout").add_argument(
        "ref", metavar="ID", help=reference
    )
    release = messages.add_parser("release", help="send QUARANTINED messages on to extraction")
    release.add_argument("ids", metavar="ID", nargs="+", help=reference)


def run(app: bootstrap.App, args: argparse.Namespace) -> int:
    if args.messages == "list":
        return _list(app, args)
    if args.messages == "release":
        return _release(app, args.ids)
    message_id = _resolve(app, args.ref)
    if message_id is None:
        return 1
    if args.messages == "show":
        return _show(app, message_id, as_json=args.json)
    key = app.operator.raw_object_key(message_id)
    if key is None:  # pragma: no cover - resolved a moment ago
        return 1
    with app.store.open(key) as source:
        while chunk := source.read(65536):
            sys.stdout.buffer.write(chunk)
    return 0


def _resolve(app: bootstrap.App, reference: str) -> uuid.UUID | None:
    found = app.operator.find_ids(reference)
    if len(found) == 1:
        return found[0]
    if not found:
        print(f"no message {reference!r}", file=sys.stderr)
        return None
    print(f"{len(found)} messages carry Message-ID {reference!r}; name one by id:", file=sys.stderr)
    for message_id in found:
        print(f"  {message_id}", file=sys.stderr)
    return None


def _list(app: bootstrap.App, args: argparse.Namespace) -> int:
    since = None
    if args.since:
        from lmtpd.cli.export import parse_since

        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"--since: {exc}", file=sys.stderr)
            return 2
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
                 ("claimed", "claimed_at"), ("processed", "processed_at"),
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
    failed = 0
    for reference in references:
        message_id = _resolve(app, reference)
        if message_id is None:
            failed += 1
            continue
        if not app.release(message_id):
            print(f"{message_id} is not QUARANTINED; nothing done", file=sys.stderr)
            failed += 1
            continue
        print(f"released {message_id}: queued for extraction")
    return 1 if failed else 0
