"""The Postfix phase's table: each LMTP target against the null sink, with the
targets for ours (drained rate ≥ 90 % of the sink's, p95 delay ≤ the sink's + 0.5 s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

Result = dict[str, Any]
TARGETS = ("sink", "seed", "ours")
SHARE_TARGET = 90.0  # % of the sink's drained rate
DELAY_MARGIN_S = 0.5  # over the sink's p95 delay


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    values: dict[str, float | None]
    against_sink: str = ""  # "share" (% of the sink) or "delta" (seconds over it)
    target: str = ""
    check: Callable[[float, float], bool] | None = None  # (ours, sink) → met
    digits: int = 1


def _get(target: Result | None, *path: str) -> float | None:
    value: Any = target
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _undelivered(target: Result | None) -> float | None:
    if not isinstance(target, dict) or "accepted" not in target:
        return None
    refused = target["messages"] - target["accepted"]
    return float(refused + target["accepted"] - target["delivered"])


def _reused(target: Result | None) -> float | None:
    delivered, reused = _get(target, "delivered"), _get(target, "reused_connections")
    return 100.0 * reused / delivered if delivered and reused is not None else None


def rows(phase: Result) -> list[Row]:
    def each(*path: str) -> dict[str, float | None]:
        return {name: _get(phase.get(name), *path) for name in TARGETS}

    def by(function: Callable[[Result | None], float | None]) -> dict[str, float | None]:
        return {name: function(phase.get(name)) for name in TARGETS}

    return [
        Row("drained msg/s (first accept → last delivery)", each("drained_per_s"), "share",
            f"≥ {SHARE_TARGET:.0f} % of the sink", lambda v, s: 100 * v / s >= SHARE_TARGET),
        Row("delay p95 (s, Postfix's delay=)", each("delay_s", "p95"), "delta",
            f"≤ sink + {DELAY_MARGIN_S} s", lambda v, s: v <= s + DELAY_MARGIN_S, digits=2),
        Row("delay p50 (s)", each("delay_s", "p50"), "delta", digits=2),
        Row("delay p95 waiting in the queue manager (s)", each("delays_p95_s", "in_qmgr"),
            "delta", digits=2),
        Row("delay p95 LMTP transmission (s)", each("delays_p95_s", "transmit"), "delta",
            digits=2),
        Row("Postfix accepted msg/s (smtp-source → smtpd)", each("accepted_per_s"), "share"),
        Row("machine busy during the burst (% of all cores)", each("machine_busy_pct")),
        Row("machine CPU per delivered message (ms)", each("machine_cpu_ms_per_msg"), digits=2),
        Row("… the target's (ms)", each("target_cpu_ms_per_msg"), digits=2),
        Row("… Postgres's (ms)", each("postgres_cpu_ms_per_msg"), digits=2),
        Row("deliveries over a reused LMTP connection (%)", by(_reused), digits=0),
        Row("not delivered (refused, deferred, bounced)", by(_undelivered), target="0",
            check=lambda v, s: v == 0, digits=0),
    ]  # fmt: skip


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def against(row: Row, name: str) -> float | None:
    """A target's figure against the sink's: % of it, or seconds over it."""
    value, sink = row.values.get(name), row.values.get("sink")
    if value is None or sink is None:
        return None
    if row.against_sink == "share":
        return 100.0 * value / sink if sink else None
    return value - sink if row.against_sink == "delta" else None


def _against_text(row: Row, name: str) -> str:
    value = against(row, name)
    if value is None:
        return "-" if row.against_sink else ""
    return f"{value:.0f} %" if row.against_sink == "share" else f"{value:+.2f} s"


def verdict(row: Row) -> str | None:
    """pass/miss of ours against the row's target; n/a without the figures."""
    if row.check is None:
        return None
    ours, sink = row.values.get("ours"), row.values.get("sink")
    if ours is None or sink is None or (row.against_sink == "share" and not sink):
        return "n/a"
    return "pass" if row.check(ours, sink) else "miss"


def markdown(phase: Result) -> str:
    if "skipped" in phase:
        return f"Postfix phase skipped: {phase['skipped']}"
    lines = [
        f"Postfix → LMTP: {phase['messages']} messages over {phase['sessions']} SMTP sessions"
        " (smtp-source), a fresh private Postfix with deploy/postfix's delivery settings per"
        " target",
        "",
        "| metric | null sink | seed | seed vs sink | ours | ours vs sink | target"
        " | ours vs target |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows(phase):
        shown = {"pass": "pass", "miss": "MISS", "n/a": "-", None: ""}[verdict(row)]
        v = row.values
        lines.append(
            f"| {row.label} | {_fmt(v['sink'], row.digits)} | {_fmt(v['seed'], row.digits)}"
            f" | {_against_text(row, 'seed')} | {_fmt(v['ours'], row.digits)}"
            f" | {_against_text(row, 'ours')} | {row.target} | {shown} |"
        )
    return "\n".join(lines)


def verdicts(phase: Result) -> dict[str, str]:
    if "skipped" in phase:
        return {}
    found = {f"postfix: {row.label}": verdict(row) for row in rows(phase)}
    return {label: result for label, result in found.items() if result is not None}


def comparison(phase: Result) -> list[dict[str, Any]]:
    """The table's rows for the JSON record, with each target against the sink."""
    if "skipped" in phase:
        return []

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    out = []
    for row in rows(phase):
        entry: dict[str, Any] = {"metric": row.label}
        entry.update({name: rounded(value) for name, value in row.values.items()})
        if row.against_sink:
            unit = "%" if row.against_sink == "share" else "+s"
            for name in ("seed", "ours"):
                entry[f"{name} vs sink ({unit})"] = rounded(against(row, name))
        out.append(entry)
    return out
