"""The Postfix phase: how fast a real Postfix drains a burst into each LMTP target.

For each target (the null sink, the seed design, ours) a private Postfix instance
is started with the delivery settings of ``deploy/postfix/`` (its ``main.cf``,
maps and smtpd line read and kept; test overrides: its own queue in a fresh
temporary folder, loopback only, smtpd on a free high port, no milter, no TLS,
the shipped transport pointed at the target's port). ``smtp-source`` sends N
small messages over S parallel SMTP sessions; the phase waits until Postfix has
delivered every accepted message over LMTP (or gives up), then stops Postfix and
the target.

The figures come from Postfix's log. Postfix stamps its lines to the second
only, so the master runs in the foreground (``postfix start-fg``) with
``maillog_file = /dev/stdout`` and the harness stamps each line as it arrives
on the pipe (to about a millisecond):

- **drained msg/s** = messages delivered (``status=sent``) / seconds from the
  first accept (qmgr's first ``(queue active)`` line: the first message queued
  and ready to deliver) to the last ``status=sent`` line;
- **delay** = Postfix's own ``delay=`` of each delivery (arrival in Postfix to the
  LMTP server's final reply), p50/p95/max; its ``delays=a/b/c/d`` split
  (before the queue manager / waiting in it / connection setup / transmission),
  p95 of each;
- **reused connections**: deliveries logged with ``conn_use=`` (an LMTP
  connection taken from Postfix's connection cache);
- **CPU**: how busy all cores were during the burst, and the CPU per delivered
  message of the whole machine, of the target and of Postgres (``/proc``): on a
  machine that Postfix and the target share, what the target spends is taken
  from Postfix.

    python -m benchmarks.postfix_phase -n 2000 -s 20   # the null sink alone
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import cpu_budget
from benchmarks.postfix_instance import (
    DEPLOY,
    DRAIN_LIMIT_S,
    MESSAGE_BYTES,
    RECIPIENT,
    SEND_LIMIT_S,
    SENDER,
    Postfix,
    running,
    unavailable,
    which,
)
from benchmarks.postfix_log import (
    Maillog,
)
from benchmarks.procs import REPO, BenchError, ServerProcess, cpu_seconds, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# What the harness and its tests take from here.
__all__ = ["DEPLOY", "Maillog", "Postfix", "run_phase", "start_sink", "unavailable", "which"]


# -- one burst ------------------------------------------------------------------------


def burst(postfix: Postfix, count: int, sessions: int, log_path: Path) -> dict[str, Any]:
    """smtp-source sends ``count`` messages over ``sessions`` sessions (each session
    keeps its connection, ``-d``); then wait until every accepted message has a
    delivery status. The summary of the log, plus smtp-source's exit and time."""
    argv = [
        which("smtp-source") or "smtp-source",
        "-d", "-s", str(sessions), "-m", str(count), "-l", str(MESSAGE_BYTES),
        "-M", "client.bench.localhost", "-f", SENDER, "-t", postfix.recipient,
        f"127.0.0.1:{postfix.smtp_port}",
    ]  # fmt: skip
    with log_path.open("ab") as output:
        started = time.monotonic()
        source = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        try:
            source.wait(timeout=SEND_LIMIT_S)
        except subprocess.TimeoutExpired:
            source.kill()
            source.wait()
        sent_s = time.monotonic() - started
    # smtp-source exits 0 only when Postfix accepted every message; otherwise wait
    # for what was accepted (its log lines may trail smtp-source by a moment).
    expected = count if source.returncode == 0 else None
    settled = time.monotonic() + 1.0
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while time.monotonic() < deadline:
        accepted, pending = postfix.log.counts()
        if not pending and (accepted >= count if expected else time.monotonic() > settled):
            break
        time.sleep(0.1)
    summary = postfix.log.summary()
    summary.update(
        messages=count,
        sessions=sessions,
        body_bytes=MESSAGE_BYTES,
        smtp_source_s=round(sent_s, 2),
        smtp_source_exit=source.returncode,
        left_in_queue=postfix.queue_size(),
    )
    return summary


def drain(
    name: str, start: Callable[[], ServerProcess], root: Path, logs: Path, count: int,
    sessions: int, recipient: str, postgres_pid: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One target: start it, a fresh Postfix (under ``root``) in front of it, the
    burst; stop both. Postfix's log, stamped, goes to ``logs`` (gzipped). Also
    the CPU per delivered message of the target, Postgres and the whole machine,
    and how busy the machine was during the burst."""
    log_copy = logs / f"postfix-{name}.maillog"
    server = start()
    try:
        postfix = Postfix(root, server.address[1], log_copy, recipient)
        cpu_before = cpu_seconds(server.pid)
        with running(postfix):
            before = cpu_budget.snapshot(server.pid, postgres_pid)
            result = burst(postfix, count, sessions, logs / f"smtp-source-{name}.log")
            after = cpu_budget.snapshot(server.pid, postgres_pid)
        cpu = cpu_seconds(server.pid) - cpu_before
        result["target_cpu_s"] = round(cpu, 2)
        delivered = result["delivered"]
        result["target_cpu_ms_per_msg"] = round(1000 * cpu / delivered, 3) if delivered else None
        budget = cpu_budget.per_message(before, after, delivered)
        if name != "sink":  # the sink stores nothing
            result["postgres_cpu_ms_per_msg"] = budget["postgres_ms"]
        # All cores: the target, Postgres, Postfix, smtp-source and this harness.
        result["machine_cpu_ms_per_msg"] = budget["machine_ms"]
        result["machine_busy_pct"] = budget["machine_busy_pct"]
    finally:
        server.stop()
        _gzip(log_copy)
    if server.process.returncode not in (0, -signal.SIGTERM):
        result["target_exit"] = server.process.returncode
    delay = result["delay_s"]["p95"]
    print(f"  postfix → {name}: {result['drained_per_s']} msg/s, p95 delay {delay} s",
          file=sys.stderr)  # fmt: skip
    return result


def _gzip(path: Path) -> None:
    if path.exists():
        with path.open("rb") as source, gzip.open(f"{path}.gz", "wb") as target:
            shutil.copyfileobj(source, target)
        path.unlink()


def start_sink(log_dir: Path, tag: str) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        "sink",
        [sys.executable, "-m", "benchmarks.null_lmtp", "--port", str(port)],
        {},
        log_dir / f"sink-{tag}.log",
        port,
    )


def run_phase(
    starters: Mapping[str, Callable[[], ServerProcess]], logs: Path, count: int, sessions: int,
    recipient: str = RECIPIENT, keep: bool = False, postgres_pid: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Each target in turn (the sink first), each behind its own Postfix in a fresh
    folder of a fresh temporary folder (removed unless ``keep``); results by target."""
    # Not under the caller's folders: Postfix opens data_directory's files as its own
    # user, so every folder above them must be open to it.
    top = Path(tempfile.mkdtemp(prefix="ingest-bench-postfix-"))
    top.chmod(0o711)
    results: dict[str, Any] = {"messages": count, "sessions": sessions}
    try:
        for name, start in starters.items():
            root = top / name
            root.mkdir(mode=0o755)
            results[name] = drain(name, start, root, logs, count, sessions, recipient, postgres_pid)
    finally:
        if not keep:
            shutil.rmtree(top, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """The phase against the null sink alone (the other targets need the database
    that ``benchmarks.run`` sets up)."""
    parser = argparse.ArgumentParser(prog="benchmarks.postfix_phase", description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument("-s", "--sessions", type=int, default=20)
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason is not None:
        print(f"Postfix phase skipped: {reason}", file=sys.stderr)
        return 0
    logs = args.results / f"logs-postfix-{time.strftime('%Y%m%dT%H%M%S')}"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        results = run_phase(
            {"sink": lambda: start_sink(logs, "postfix")}, logs, args.count, args.sessions
        )
    except BenchError as exc:
        print(f"Postfix phase failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
