"""The load phases (rss, small, mixed, pipelined) with every server up at once.

The machines we measure on drift: the same server gave 780 and 1,120 msg/s
minutes apart, and one server measured after another carries that drift into
their ratio. So the small phase runs in rounds, each server once per round, the
order reversed every other round (ours, seed, seed, ours, …); each server's
figure is its median round, and the ratios compare medians. The servers wait
idle while another is measured.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

from benchmarks.procs import SERVERS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from benchmarks.procs import ServerProcess
    from benchmarks.run import Harness

    Starter = Callable[[dict[str, str], Path, str], ServerProcess]


def run(
    harness: Harness,
    names: Sequence[str],
    rounds: int,
    starters: Mapping[str, Starter] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each server's phases: ``rss``, ``small`` (its median round, with the errors
    of all rounds), ``small_rounds`` (msg/s of each round), ``mixed``, and for
    ours ``pipelined``. ``starters``: servers beyond those the bench knows
    (procs.SERVERS), by name."""
    args = harness.args
    results: dict[str, dict[str, Any]] = {name: {} for name in names}
    running: dict[str, ServerProcess] = {}
    try:
        for name in names:
            start = (starters or {}).get(name) or SERVERS[name]
            running[name] = start(harness.env_for("load"), harness.logs, "load")
            harness.load(running[name], connections=5, count=20)  # pool, threads, imports
        if args.large_mb > 0:
            for name in names:
                results[name]["rss"] = harness.rss(running[name])
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for index in range(max(1, rounds)):
            print(f"small phase, round {index + 1} of {max(1, rounds)}", file=sys.stderr)
            for name in names if index % 2 == 0 else list(reversed(names)):
                profile = "small" if index == 0 else ""
                summary = harness.closed_loop(running[name], {"small": 1.0}, args.duration, profile)
                samples[name].append(summary)
        for name in names:
            results[name]["small"] = median_round(samples[name])
            results[name]["small_rounds"] = [s["messages_per_s"] for s in samples[name]]
        for name in names:
            if args.mixed_duration > 0:
                results[name]["mixed"] = harness.closed_loop(
                    running[name], harness.mix, args.mixed_duration
                )
            if name == "ours" and args.pipelined_duration > 0:
                # Postfix pipelines MAIL/RCPT/DATA over LMTP; aiosmtpd offers no PIPELINING.
                results[name]["pipelined"] = harness.closed_loop(
                    running[name], {"small": 1.0}, args.pipelined_duration, pipeline=True
                )
    finally:
        for server in running.values():
            server.stop()
    return results


def median_round(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate (the lower of the middle two for an even
    count), its errors and non-250 replies replaced by those of all rounds."""
    ordered = sorted(summaries, key=lambda s: float(s["messages_per_s"] or 0))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    for key in ("errors", "non_250"):
        total: Counter[str] = Counter()
        for summary in summaries:
            total.update(summary.get(key, {}))
        chosen[key] = dict(total)
    return chosen
