"""``ingest config [--json]``: the effective settings (secrets redacted) and
each dependency asked once, with its own error when it does not answer.

The JSON form is for scripts and keeps its shape: ``{"settings": {field:
{"variable", "value", "source"}}, "aws": {variable: value or null},
"checks": {"postgres"|"object_store"|"queue": {"ok": bool, "error": text or
null}}}``. Exit 0 when every dependency answered, else 1.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ingest_core.effective import aws_environment, effective_settings

if TYPE_CHECKING:
    import argparse

    from ingest_core.settings import Settings


def add_parser(sub: Any) -> None:
    config = sub.add_parser(
        "config",
        help="the effective settings and whether each dependency answers",
        description="Every INGEST_* setting with its value and source (secrets redacted),"
        " the AWS_* variables the S3 store reads, then Postgres, the object store and"
        " the queue, each asked once. Creates no database and no queue.",
    )
    config.add_argument("--json", action="store_true", help="JSON for scripts (stable shape)")
    config.add_argument("--no-check", action="store_true", help="only the settings")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from ingest_core.bootstrap import check_dependencies

    report: dict[str, Any] = {
        "settings": effective_settings(settings),
        "aws": aws_environment(),
        "checks": {},
    }
    if not args.no_check:
        report["checks"] = {
            name: {"ok": error is None, "error": error}
            for name, error in check_dependencies(settings).items()
        }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(render(report))
    return 0 if all(check["ok"] for check in report["checks"].values()) else 1


def render(report: dict[str, Any]) -> str:
    lines = ["Settings (source: environment or default)"]
    for item in report["settings"].values():
        value = item["value"]
        text = ",".join(value) if isinstance(value, list) else "-" if value is None else str(value)
        marker = "" if item["source"] == "default" else "  (set)"
        lines.append(f"  {item['variable']:32} {text}{marker}")
    aws = {name: value for name, value in report["aws"].items() if value is not None}
    if aws:
        lines.append("AWS (S3 object store)")
        lines.extend(f"  {name:32} {value}" for name, value in aws.items())
    if report["checks"]:
        lines.append("Dependencies")
        for name, check in report["checks"].items():
            lines.append(f"  {name:14} {'ok' if check['ok'] else 'FAILED: ' + check['error']}")
    return "\n".join(lines)
