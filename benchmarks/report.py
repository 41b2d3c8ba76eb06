"""The markdown table (ours vs baseline, ratio, targets) and the JSON record."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    ours: float | None
    baseline: float | None
    target: str = ""
    check: Callable[[float], bool] | None = None
    digits: int = 1


def dig(data: Result | None, *path: str) -> float | None:
    """``data[path[0]][path[1]]…`` or None anywhere along the way."""
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def error_count(server: Result | None) -> float | None:
    """Connection errors plus non-250 replies over every phase of one server."""
    if not server:
        return None
    total = 0
    for phase in server.values():
        if isinstance(phase, dict) and "errors" in phase:
            total += sum(phase["errors"].values()) + sum(phase["non_250"].values())
    return float(total)


def rows(results: Result) -> list[Row]:
    ours, base = results.get("ours"), results.get("baseline")
    ceiling = dig(results, "ceiling", "messages_per_s")
    ours_rate = dig(ours, "small", "messages_per_s")
    base_rate = dig(base, "small", "messages_per_s")
    conns = results["parameters"]["connections"]

    def both(*path: str) -> tuple[float | None, float | None]:
        return dig(ours, *path), dig(base, *path)

    def twice_baseline(value: float) -> bool:
        return base_rate is not None and value >= 2 * base_rate

    def near_ceiling(value: float) -> bool:
        return ceiling is not None and value >= 0.8 * ceiling

    table = [
        Row(f"small: accepted msg/s ({conns} conns)", ours_rate, base_rate, "≥ 2 x baseline",
            twice_baseline),
        Row(f"small: share of storage ceiling ({ceiling or '-'} msg/s)",
            _share(ours_rate, ceiling), _share(base_rate, ceiling), "≥ 80 %", lambda v: v >= 80),
        Row("small: server CPU per message (ms)", *both("small", "server_cpu_ms_per_msg"),
            digits=2),
        Row("small: accept latency p50 (ms)", *both("small", "accept_latency", "p50_ms")),
        Row("small: accept latency p95 (ms)", *both("small", "accept_latency", "p95_ms"),
            "< 100 ms", lambda v: v < 100),
        Row("small: accept latency p99 (ms)", *both("small", "accept_latency", "p99_ms")),
        Row("small, pipelined as Postfix sends: msg/s (ours only)",
            *both("pipelined", "messages_per_s")),
        Row("small, pipelined: accept latency p95 (ms)",
            *both("pipelined", "accept_latency", "p95_ms")),
        Row("mixed: accepted msg/s", *both("mixed", "messages_per_s")),
        Row("mixed: MB/s received", *both("mixed", "mb_per_s"), digits=2),
        Row("mixed: small p95 (ms)", *both("mixed", "accept_latency_by_kind", "small", "p95_ms")),
        Row("mixed: 200 KB PDF p95 (ms)",
            *both("mixed", "accept_latency_by_kind", "pdf", "p95_ms")),
        Row("accept → PROCESSED p50 (ms)", *both("e2e", "processed_latency", "p50_ms")),
        Row("accept → PROCESSED p95 (ms)", *both("e2e", "processed_latency", "p95_ms"),
            "< 1000 ms", lambda v: v < 1000),
        Row("RSS idle (MB)", *both("rss", "idle_mb")),
        Row("RSS peak receiving the large message (MB)", *both("rss", "peak_mb")),
        Row("RSS growth (MB)", *both("rss", "growth_mb"), "< 30 MB", lambda v: v < 30),
        Row("large message accept latency (ms)", *both("rss", "accept_ms"), digits=0),
        Row("errors + non-250 replies (all phases)", error_count(ours), error_count(base), "0",
            lambda v: v == 0, digits=0),
    ]  # fmt: skip
    return table


def _share(rate: float | None, ceiling: float | None) -> float | None:
    if rate is None or not ceiling:
        return None
    return 100.0 * rate / ceiling


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(results: Result) -> str:
    lines = [
        "| metric | ours | baseline | ours/baseline | target | ours vs target |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in rows(results):
        ratio = f"{row.ours / row.baseline:.2f}x" if row.ours is not None and row.baseline else "-"
        verdict = ""
        if row.check is not None:
            verdict = "-" if row.ours is None else ("pass" if row.check(row.ours) else "MISS")
        lines.append(
            f"| {row.label} | {_fmt(row.ours, row.digits)} | {_fmt(row.baseline, row.digits)}"
            f" | {ratio} | {row.target} | {verdict} |"
        )
    return "\n".join(lines)


def verdicts(results: Result) -> dict[str, str]:
    return {
        row.label: ("n/a" if row.ours is None else "pass" if row.check(row.ours) else "miss")
        for row in rows(results)
        if row.check is not None
    }


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def write_json(results: Result, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"bench-{stamp}.json"
    record = {**results, "machine": machine(), "targets": verdicts(results)}
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path
