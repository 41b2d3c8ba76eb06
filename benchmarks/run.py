"""`just bench`: our trio LMTP server against the aiosmtpd baseline (aiosmtpd over
our core) and the seed design (the plan's standalone aiosmtpd server), in one
run, on one embedded Postgres, plus the storage ceiling without any protocol.

Phases per server (each server is its own process, all of them up at once;
see docs/benchmarks.md and benchmarks/load_phases.py):
  rss     fresh process, a few warm-up messages, then one large message:
          VmHWM against the idle VmRSS
  small   N connections, small orders, closed loop: msg/s and accept latency,
          in rounds (each server once per round, alternating order; medians)
  mixed   N connections, small orders and 200 KB PDF attachments
  e2e     a paced load with `ingest worker` running: accept → PROCESSED
          (not for the seed design, which enqueues nothing)
Then the Postfix phase (benchmarks/postfix_phase.py; when postfix and smtp-source
are installed): a private Postfix drains a burst over LMTP into a null sink, the
seed design and ours. Then the ceiling: InboundService.accept from 100 threads on
pre-built spools. Then the tenant API (benchmarks/api_phase.py: metadata reads/s,
attachment MB/s), the events (benchmarks/events_phase.py: accept msg/s with an
endpoint subscribed, webhook events delivered/s) and the purge
(benchmarks/purge_phase.py: retention removing N stored messages).

    python -m benchmarks.run                    # a few minutes
    python -m benchmarks.run -c 100 -d 20 --large-mb 25 --e2e-rate 50
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import trio

from benchmarks import (
    api_phase,
    cpu_budget,
    events_phase,
    load_phases,
    options,
    postfix_phase,
    purge_phase,
    report,
    revision,
)
from benchmarks.environment import (
    TENANT,
    child_env,
    database,
    loopback_dns,
    settings_for,
)
from benchmarks.loadgen import LoadResult, Workload, run_load
from benchmarks.messages import parse_mix, templates
from benchmarks.procs import (
    REPO,
    SERVERS,
    WITHOUT_QUEUE,
    BenchError,
    Managed,
    ServerProcess,
    cpu_seconds,
    memory_of,
    reset_peak,
    start_profiler,
    start_worker,
)
from benchmarks.stats import summarise

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from benchmarks.messages import Template

RECIPIENT = f"orders+{TENANT}@orders.localhost"
MiB = 1024.0


class Harness:
    def __init__(self, args: argparse.Namespace, folder: Path, url: str, logs: Path) -> None:
        self.args = args
        self.folder = folder
        self.logs = logs
        self.url = url
        self.mix = parse_mix(args.mix)
        kinds = {"small", *self.mix} | ({"large"} if args.large_mb > 0 else set())
        self.built: dict[str, Template] = templates(args.large_mb or 1, kinds)
        self.postgres_pid = cpu_budget.postmaster_pid(folder / "pg")

    def env_for(self, queue: str) -> dict[str, str]:
        return child_env(self.folder, self.url, queue)

    def load(self, server: ServerProcess, **options: Any) -> LoadResult:
        options.setdefault("connections", self.args.connections)
        workload = Workload(target=server.address, recipient=RECIPIENT, **options)
        return trio.run(run_load, workload, self.built)

    def closed_loop(
        self,
        server: ServerProcess,
        mix: dict[str, float],
        duration: float,
        profile: str = "",
        **options: Any,
    ) -> dict[str, Any]:
        """Closed-loop load; also the server's CPU time per accepted message."""
        count = self.args.count
        profiler = None
        if profile and self.args.profile:
            output = self.logs / f"profile-{server.name}-{profile}.txt"
            profiler = start_profiler(server.pid, duration, output)
        cpu_before = cpu_seconds(server.pid)
        budget_before = cpu_budget.snapshot(server.pid, self.postgres_pid)
        result = self.load(
            server, mix=mix, count=count, duration_s=None if count else duration, **options
        )
        cpu = cpu_seconds(server.pid) - cpu_before
        budget_after = cpu_budget.snapshot(server.pid, self.postgres_pid)
        if profiler is not None:
            profiler.wait()
        summary = result.summary()
        accepted = len(result.accepted)
        summary["server_cpu_s"] = round(cpu, 2)
        summary["server_cpu_ms_per_msg"] = round(1000 * cpu / accepted, 3) if accepted else None
        summary["cpu_budget"] = cpu_budget.per_message(budget_before, budget_after, accepted)
        print(f"  {server.name}: {summary['messages_per_s']} msg/s", file=sys.stderr)
        return summary

    def rss(self, server: ServerProcess) -> dict[str, Any]:
        """Idle VmRSS, then the peak (VmHWM, reset first, and 2 ms samples of
        VmRSS) while one large message is received and accepted."""
        time.sleep(0.5)
        idle = memory_of(server.pid).rss_kib
        reset = reset_peak(server.pid)

        async def measure() -> tuple[LoadResult, int]:
            sampled = 0
            async with trio.open_nursery() as nursery:

                async def sample() -> None:
                    nonlocal sampled
                    while True:
                        sampled = max(sampled, memory_of(server.pid).rss_kib)
                        await trio.sleep(0.002)

                nursery.start_soon(sample)
                workload = Workload(
                    target=server.address, recipient=RECIPIENT, connections=1, count=1,
                    mix={"large": 1.0},
                )  # fmt: skip
                result = await run_load(workload, self.built)
                nursery.cancel_scope.cancel()
            return result, sampled

        result, sampled = trio.run(measure)
        peak = max(sampled, memory_of(server.pid).hwm_kib if reset else 0)
        summary = result.summary()
        return {
            "message_mb": round(len(self.built["large"].build("x@y")) / 1e6, 1),
            "idle_mb": round(idle / MiB, 1),
            "peak_mb": round(peak / MiB, 1),
            "growth_mb": round((peak - idle) / MiB, 1),
            "peak_from": "VmHWM after clear_refs" if reset else "VmRSS samples",
            "accept_ms": summary["accept_latency"]["p50_ms"],  # type: ignore[index]
            "errors": summary["errors"],
            "non_250": summary["non_250"],
        }

    def e2e(self, name: str) -> dict[str, Any]:
        """A paced load while the worker runs; accept → PROCESSED from the rows."""
        server = SERVERS[name](self.env_for("e2e"), self.logs, "e2e")
        try:
            self.wait_processed(self.load(server, connections=2, count=4), 30.0)  # prime
            result = self.load(
                server,
                connections=min(self.args.connections, 20),
                rate=self.args.e2e_rate,
                duration_s=self.args.e2e_duration,
                mix=self.mix,
            )
        finally:
            server.stop()
        latencies, unfinished = self.wait_processed(result, self.args.e2e_timeout)
        summary = result.summary()
        return {
            "rate": self.args.e2e_rate,
            "messages": summary["accepted"],
            "processed_latency": summarise(latencies),
            "not_processed": unfinished,
            "accept_latency": summary["accept_latency"],
            "errors": summary["errors"],
            "non_250": summary["non_250"],
        }

    def wait_processed(self, result: LoadResult, limit_s: float) -> tuple[list[float], int]:
        """processed_at - received_at of the accepted messages, waiting up to
        ``limit_s`` for them all; also how many were not PROCESSED by then."""
        ids = [s.header_id for s in result.accepted]
        deadline = time.monotonic() + limit_s
        query = (
            "SELECT EXTRACT(EPOCH FROM processed_at - received_at) FROM inbound_message"
            " WHERE source_message_id = ANY(%s) AND status = 'PROCESSED'"
        )
        with psycopg.connect(self.url, autocommit=True) as conn:
            while True:
                rows = conn.execute(query, (ids,)).fetchall()
                if len(rows) >= len(ids) or time.monotonic() > deadline:
                    return [float(r[0]) for r in rows], len(ids) - len(rows)
                time.sleep(0.2)

    def postfix(self, servers: list[str]) -> dict[str, Any]:
        """Postfix draining a burst into the null sink, then the seed design and ours
        (those of ``servers``), each in a new process on its own queue."""
        reason = postfix_phase.unavailable()
        if reason is not None:
            print(f"Postfix phase skipped: {reason}", file=sys.stderr)
            return {"skipped": reason}
        starters: dict[str, Callable[[], ServerProcess]] = {
            "sink": lambda: postfix_phase.start_sink(self.logs, "postfix")
        }
        env = self.env_for("postfix")
        for name in ("seed", "ours"):
            if name in servers:
                starters[name] = partial(SERVERS[name], env, self.logs, "postfix")
        args = self.args
        return postfix_phase.run_phase(
            starters, self.logs, args.postfix_count, args.postfix_sessions, RECIPIENT, args.keep,
            self.postgres_pid,
        )  # fmt: skip

    def ceiling(self) -> dict[str, Any]:
        argv = [
            sys.executable, "-m", "benchmarks.ceiling",
            "--threads", str(self.args.ceiling_threads),
            "--count", str(self.args.ceiling_count), "--mix", "small:1",
        ]  # fmt: skip
        with (self.logs / "ceiling.log").open("ab") as log:
            done = subprocess.run(
                argv,
                env={**_os_env(), **self.env_for("ceiling"), "PYTHONPATH": str(REPO)},
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=log,
                check=False,
            )
        if done.returncode != 0:
            raise BenchError(f"ceiling run failed; see {self.logs / 'ceiling.log'}")
        return dict(json.loads(done.stdout))


def _os_env() -> dict[str, str]:
    return dict(os.environ)


def execute(args: argparse.Namespace, folder: Path, logs: Path) -> dict[str, Any]:
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        raise BenchError(f"unknown server(s): {', '.join(sorted(unknown))}")
    results: dict[str, Any] = {"parameters": {k: str(v) for k, v in vars(args).items()}}
    results["parameters"]["connections"] = args.connections
    with database(folder) as url:
        harness = Harness(args, folder, url, logs)
        loaded, starters = list(servers), {}
        if args.revision:  # ours as it was, beside ours, in the load phases only
            tree = revision.extract(args.revision, folder / "revision")
            loaded.append(revision.NAME)
            starters[revision.NAME] = revision.starter(tree)
        print(f"{', '.join(loaded)}: rss, small and mixed phases", file=sys.stderr)
        results.update(load_phases.run(harness, loaded, args.rounds, starters))
        queued = [name for name in servers if name not in WITHOUT_QUEUE]
        if args.e2e_duration > 0 and queued:
            worker: Managed = start_worker(harness.env_for("e2e"), logs, args.workers)
            try:
                for name in queued:
                    print(f"{name}: end-to-end phase", file=sys.stderr)
                    results[name]["e2e"] = harness.e2e(name)
            finally:
                worker.stop()
        if args.postfix_count > 0 and args.postfix_sessions > 0:
            print("Postfix phase", file=sys.stderr)
            results["postfix"] = harness.postfix(servers)
        if args.ceiling_count > 0:
            print("storage ceiling", file=sys.stderr)
            results["ceiling"] = harness.ceiling()
        if args.api_count > 0 and args.api_duration > 0:
            print("tenant API phase", file=sys.stderr)
            results["api"] = api_phase.run_phase(
                settings_for(folder, url, "api"),
                harness.env_for("api"),
                logs,
                count=args.api_count,
                clients=args.api_clients,
                duration=args.api_duration,
                attachment_kb=args.api_attachment_kb,
            )
        if args.events_count > 0:
            print("events phase", file=sys.stderr)
            results["events"] = events_phase.run_phase(
                settings_for(folder, url, "events"),
                harness.env_for("events"),
                logs,
                count=args.events_count,
                connections=args.connections,
                workers=args.workers,
            )
        if args.purge_count > 0:
            print("purge phase", file=sys.stderr)
            results["purge"] = purge_phase.run_phase(
                settings_for(folder, url, "purge"), args.purge_count
            )
    return results


def main(argv: list[str] | None = None) -> int:
    args = options.parser(__doc__.split("\n\n")[0]).parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    logs = args.results / f"logs-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        with loopback_dns():
            results = execute(args, folder, logs)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    results["wall_s"] = round(time.monotonic() - started, 1)
    print(report.markdown(results))
    if "api" in results:
        print("\n" + api_phase.markdown(results["api"]))
    if "events" in results:
        print("\n" + events_phase.markdown(results["events"]))
    if "purge" in results:
        print("\n" + purge_phase.markdown(results["purge"]))
    path = report.write_json(results, args.results)
    print(f"\nJSON: {path}\nserver logs: {logs}\nwall time: {results['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
