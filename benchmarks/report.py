"""The markdown table (ours vs the aiosmtpd baseline and vs the seed design,
ratios, targets), the Postfix phase's table (benchmarks.postfix_report) and the
JSON record."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from benchmarks import postfix_report, revision

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    ours: float | None
    baseline: float | None
    seed: float | None
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
    ours, base, seed = results.get("ours"), results.get("baseline"), results.get("seed")
    ceiling = dig(results, "ceiling", "messages_per_s")
    ours_rate = dig(ours, "small", "messages_per_s")
    base_rate = dig(base, "small", "messages_per_s")
    seed_rate = dig(seed, "small", "messages_per_s")
    conns = results["parameters"]["connections"]

    def each(*path: str) -> tuple[float | None, float | None, float | None]:
        return dig(ours, *path), dig(base, *path), dig(seed, *path)

    def twice_baseline(value: float) -> bool:
        return base_rate is not None and value >= 2 * base_rate

    def beats_seed(value: float) -> bool:
        return seed_rate is not None and value >= 1.5 * seed_rate

    def near_ceiling(value: float) -> bool:
        return ceiling is not None and value >= 0.8 * ceiling

    table = [
        Row(f"small: accepted msg/s ({conns} conns)", ours_rate, base_rate, seed_rate,
            "≥ 2 x baseline", twice_baseline),
        Row(f"small: rate against the seed design, msg/s ({conns} conns)", ours_rate,
            base_rate, seed_rate, "≥ 1.5 x seed", beats_seed),
        Row(f"small: share of storage ceiling ({ceiling or '-'} msg/s)",
            _share(ours_rate, ceiling), _share(base_rate, ceiling), _share(seed_rate, ceiling),
            "≥ 80 %", lambda v: v >= 80),
        Row("small: server CPU per message (ms)", *each("small", "server_cpu_ms_per_msg"),
            "≤ 1.0 ms", lambda v: v <= 1.0, digits=2),
        Row("small: … of it system time (ms)", *each("small", "cpu_budget", "server_system_ms"),
            digits=2),
        Row("small: Postgres CPU per message (ms)", *each("small", "cpu_budget", "postgres_ms"),
            digits=2),
        Row("small: load generator CPU per message (ms)",
            *each("small", "cpu_budget", "load_generator_ms"), digits=2),
        Row("small: machine CPU per message, all cores (ms)",
            *each("small", "cpu_budget", "machine_ms"), digits=2),
        Row("small: machine busy (% of all cores)",
            *each("small", "cpu_budget", "machine_busy_pct")),
        Row("small: accept latency p50 (ms)", *each("small", "accept_latency", "p50_ms")),
        Row("small: accept latency p95 (ms)", *each("small", "accept_latency", "p95_ms"),
            "< 100 ms", lambda v: v < 100),
        Row("small: accept latency p99 (ms)", *each("small", "accept_latency", "p99_ms")),
        Row("small, pipelined as Postfix sends: msg/s (ours only)",
            *each("pipelined", "messages_per_s")),
        Row("small, pipelined: accept latency p95 (ms)",
            *each("pipelined", "accept_latency", "p95_ms")),
        Row("mixed: accepted msg/s", *each("mixed", "messages_per_s")),
        Row("mixed: MB/s received", *each("mixed", "mb_per_s"), digits=2),
        Row("mixed: small p95 (ms)", *each("mixed", "accept_latency_by_kind", "small", "p95_ms")),
        Row("mixed: 200 KB PDF p95 (ms)",
            *each("mixed", "accept_latency_by_kind", "pdf", "p95_ms")),
        Row("accept → PROCESSED p50 (ms)", *each("e2e", "processed_latency", "p50_ms")),
        Row("accept → PROCESSED p95 (ms)", *each("e2e", "processed_latency", "p95_ms"),
            "< 1000 ms", lambda v: v < 1000),
        Row("RSS idle (MB)", *each("rss", "idle_mb")),
        Row("RSS peak receiving the large message (MB)", *each("rss", "peak_mb")),
        Row("RSS growth (MB)", *each("rss", "growth_mb"), "< 30 MB", lambda v: v < 30),
        Row("large message accept latency (ms)", *each("rss", "accept_ms"), digits=0),
        Row("errors + non-250 replies (all phases)", error_count(ours), error_count(base),
            error_count(seed), "0", lambda v: v == 0, digits=0),
    ]  # fmt: skip
    return table


def _share(rate: float | None, ceiling: float | None) -> float | None:
    if rate is None or not ceiling:
        return None
    return 100.0 * rate / ceiling


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(ours: float | None, other: float | None) -> float | None:
    """``ours / other``, None when either is missing or ``other`` is zero."""
    return ours / other if ours is not None and other else None


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(results: Result) -> str:
    lines = [
        "| metric | ours | baseline | ours/baseline | seed | ours/seed | target | ours vs target |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows(results):
        verdict = ""
        if row.check is not None:
            verdict = "-" if row.ours is None else ("pass" if row.check(row.ours) else "MISS")
        lines.append(
            f"| {row.label} | {_fmt(row.ours, row.digits)} | {_fmt(row.baseline, row.digits)}"
            f" | {_times(ratio(row.ours, row.baseline))} | {_fmt(row.seed, row.digits)}"
            f" | {_times(ratio(row.ours, row.seed))} | {row.target} | {verdict} |"
        )
    lines += _rounds(results)
    lines += _revision(results)
    lines += _processes(results)
    if "postfix" in results:
        lines += ["", postfix_report.markdown(results["postfix"])]
    return "\n".join(lines)


def _rounds(results: Result) -> list[str]:
    """Each server's msg/s in every round of the small phase (the table has medians)."""
    parts = []
    for name in ("ours", "ours2", "baseline", "seed", revision.NAME):
        server = results.get(name)
        rates = server.get("small_rounds") if isinstance(server, dict) else None
        if rates:
            parts.append(f"{name} {' / '.join(f'{rate:,.1f}' for rate in rates)}")
    return ["", f"Small phase, msg/s in each round: {'; '.join(parts)}."] if parts else []


def _revision(results: Result) -> list[str]:
    """Ours against ``--revision``'s (benchmarks/revision.py), small phase:
    medians and each round's ratio."""
    ours, then = results.get("ours"), results.get(revision.NAME)
    if not isinstance(ours, dict) or not isinstance(then, dict):
        return []
    at = results["parameters"].get("revision", revision.NAME)
    lines = _small_table(f"ours | at {at} | ours / then", ours, then, ratio_of=ratio)
    pairs = zip(ours.get("small_rounds", []), then.get("small_rounds", []), strict=False)
    ratios = [_times(ratio(x, y)) for x, y in pairs]
    if ratios:
        lines += ["", f"Ours against {at}, round by round: {', '.join(ratios)}."]
    return lines


def _processes(results: Result) -> list[str]:
    """Ours in one process against ``--processes 2``, small phase, same run."""
    one, two = results.get("ours"), results.get("ours2")
    if not isinstance(one, dict) or not isinstance(two, dict):
        return []
    return _small_table(
        "1 process | 2 processes | 2 / 1", one, two, ratio_of=lambda a, b: ratio(b, a)
    )


def _small_table(
    columns: str,
    left: dict[str, Any],
    right: dict[str, Any],
    *,
    ratio_of: Callable[[float | None, float | None], float | None],
) -> list[str]:
    """Two servers' small phase side by side: rate, CPU, p95, and their ratio."""
    rows = [("accepted msg/s", ("messages_per_s",), 1),
            ("server CPU per message (ms)", ("server_cpu_ms_per_msg",), 2),
            ("accept latency p95 (ms)", ("accept_latency", "p95_ms"), 1)]  # fmt: skip
    lines = ["", f"| small phase | {columns} |", "|---|---:|---:|---:|"]
    for label, key, digits in rows:
        a, b = _small(left, key), _small(right, key)
        shown = f"{_fmt(a, digits)} | {_fmt(b, digits)} | {_times(ratio_of(a, b))}"
        lines.append(f"| {label} | {shown} |")
    return lines


def _small(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result.get("small", {})
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def comparison(results: Result) -> list[dict[str, Any]]:
    """The table's rows for the JSON record: each figure and both ratios."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return [
        {
            "metric": row.label,
            "ours": rounded(row.ours),
            "baseline": rounded(row.baseline),
            "seed": rounded(row.seed),
            "ours/baseline": rounded(ratio(row.ours, row.baseline)),
            "ours/seed": rounded(ratio(row.ours, row.seed)),
        }
        for row in rows(results)
    ]


def verdicts(results: Result) -> dict[str, str]:
    found = {
        row.label: ("n/a" if row.ours is None else "pass" if row.check(row.ours) else "miss")
        for row in rows(results)
        if row.check is not None
    }
    if "postfix" in results:
        found.update(postfix_report.verdicts(results["postfix"]))
    return found


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
    record = {
        **results,
        "machine": machine(),
        "targets": verdicts(results),
        "comparison": comparison(results),
    }
    if "postfix" in results:
        record["postfix_comparison"] = postfix_report.comparison(results["postfix"])
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path
