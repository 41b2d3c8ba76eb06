"""Where the machine's CPU went during a load phase: the server (user and
system time), the Postgres server, the load generator (this process), and how
busy the whole machine was. On a machine where all four share the cores, a
server's rate is bounded by what the others leave it: this says how much."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.procs import cpu_times

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class Snapshot:
    server_user_s: float
    server_system_s: float
    postgres_s: float
    load_s: float
    machine_busy_s: float
    machine_total_s: float


def postmaster_pid(folder: Path) -> int | None:
    """The pid of the embedded Postgres in ``folder`` (the first line of postmaster.pid)."""
    try:
        return int((folder / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def snapshot(server_pid: int, postgres_pid: int | None) -> Snapshot:
    user, system = cpu_times(server_pid)
    postgres = sum(cpu_times(postgres_pid)) if postgres_pid is not None else 0.0
    own = resource.getrusage(resource.RUSAGE_SELF)
    busy, total = _machine()
    return Snapshot(user, system, postgres, own.ru_utime + own.ru_stime, busy, total)


def _machine() -> tuple[float, float]:
    """Busy and total CPU seconds of all cores since boot (/proc/stat; idle and
    iowait count as not busy)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    idle = fields[3] + fields[4]
    return (total - idle) / tick, total / tick


def per_message(before: Snapshot, after: Snapshot, accepted: int) -> dict[str, float | None]:
    """CPU milliseconds per accepted message by consumer, and the machine's busy share."""

    def ms(delta: float) -> float | None:
        return round(1000 * delta / accepted, 3) if accepted else None

    total = after.machine_total_s - before.machine_total_s
    busy = after.machine_busy_s - before.machine_busy_s
    return {
        "server_user_ms": ms(after.server_user_s - before.server_user_s),
        "server_system_ms": ms(after.server_system_s - before.server_system_s),
        "postgres_ms": ms(after.postgres_s - before.postgres_s),
        "load_generator_ms": ms(after.load_s - before.load_s),
        "machine_ms": ms(busy),
        "machine_busy_pct": round(100 * busy / total, 1) if total > 0 else None,
    }
