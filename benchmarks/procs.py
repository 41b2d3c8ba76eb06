"""Server and worker processes for the harness, and their memory as the kernel
reports it (``/proc/<pid>/status``: VmRSS now, VmHWM the peak)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
START_LIMIT_S = 60.0


class BenchError(Exception):
    """The harness could not set up or run a phase."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Memory:
    rss_kib: int
    hwm_kib: int


def memory_of(pid: int) -> Memory:
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return Memory(rss_kib=fields["VmRSS"], hwm_kib=fields["VmHWM"])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of every thread of ``pid`` and of its
    live descendants (``serve --processes N``'s serving children)."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds so far of ``pid``'s threads and its live descendants."""
    user = system = 0
    for member in _tree(pid):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def _tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, from /proc/<pid>/task/*/children."""
    found: list[int] = []
    queue = [pid]
    while queue:
        current = queue.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                children = [int(child) for child in task.read_text().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` value 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as control:
            control.write("5")
    except OSError:
        return False
    return True


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.settimeout(5)
            return conn.recv(64).startswith(b"220")
    except OSError:
        return False


class Managed:
    """A child process with its output in a log file; stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def memory(self) -> Memory:
        return memory_of(self.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class ServerProcess(Managed):
    """An LMTP server on 127.0.0.1:``port``, ready once it greets."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, port: int):
        super().__init__(name, argv, env, log_path)
        self.address = ("127.0.0.1", port)
        self._wait_ready(port)

    def _wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + START_LIMIT_S
        while not _greets(port):
            if not self.alive():
                raise BenchError(f"{self.name} exited during startup; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"{self.name} did not greet within {START_LIMIT_S} s")
            time.sleep(0.1)


def start_ours(
    env: dict[str, str], log_dir: Path, tag: str, *, processes: int = 1,
    tree: Path | None = None, name: str | None = None,
) -> ServerProcess:  # fmt: skip
    """``ingest serve --no-milter``: the deployable server, without milter or worker
    (``processes`` > 1: ``--processes N``, its CPU counted over all of them).
    ``tree``: a folder with other ``lmtpd`` and ``ingest_core`` packages to run
    instead of this checkout's (an earlier revision; benchmarks/revision.py)."""
    port = free_port()
    name = name or ("ours" if processes == 1 else f"ours{processes}")
    serve = ["serve", "--no-milter", "--processes", str(processes)]
    if tree is None:
        argv = [sys.executable, "-m", "lmtpd.cli", *serve]
    else:  # ahead of the working folder on sys.path, which holds ours
        run = (
            f"import runpy, sys; sys.path.insert(0, {str(tree)!r}); sys.argv[0] = 'ingest'; "
            "runpy.run_module('lmtpd.cli', run_name='__main__')"
        )
        argv = [sys.executable, "-c", run, *serve]
    return ServerProcess(
        name,
        argv,
        {
            # no fixed ports: a busy port is fatal to `ingest serve`, and the bench
            # measures LMTP only (the HTTP endpoint and the API are off)
            "INGEST_HTTP_LISTEN": "off",
            "INGEST_API_LISTEN": "off",
            **env,
            "INGEST_LMTP_LISTEN": f"127.0.0.1:{port}",
        },
        log_dir / f"{name}-{tag}.log",
        port,
    )


def start_baseline(env: dict[str, str], log_dir: Path, tag: str) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        "baseline",
        [sys.executable, "-m", "benchmarks.baseline_server", "--port", str(port)],
        env,
        log_dir / f"baseline-{tag}.log",
        port,
    )


def start_seed(env: dict[str, str], log_dir: Path, tag: str) -> ServerProcess:
    """The seed design (benchmarks/seed_design.py) on the same database, with its
    own object folder and no queue."""
    port = free_port()
    objects = Path(env["INGEST_DATA_DIR"]) / "seed-objects"
    return ServerProcess(
        "seed",
        [sys.executable, "-m", "benchmarks.seed_design", "--port", str(port),
         "--objects", str(objects)],
        env,
        log_dir / f"seed-{tag}.log",
        port,
    )  # fmt: skip


SERVERS = {
    "ours": start_ours,
    "ours2": partial(start_ours, processes=2),
    "baseline": start_baseline,
    "seed": start_seed,
}
# Servers that enqueue nothing: the end-to-end phase (accept → PROCESSED) skips them.
WITHOUT_QUEUE = frozenset({"seed"})


def start_profiler(pid: int, duration_s: float, output: Path) -> subprocess.Popen[bytes] | None:
    """py-spy (if installed) sampling ``pid`` for ``duration_s`` into collapsed
    stacks (one ``frame;frame;… count`` line per stack); None without py-spy."""
    binary = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if binary is None:
        return None
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(duration_s))),
         "--rate", "200", "--format", "raw", "--nonblocking", "--gil", "--output", str(output)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_worker(env: dict[str, str], log_dir: Path, workers: int) -> Managed:
    return Managed(
        "worker",
        [sys.executable, "-m", "lmtpd.cli", "worker", "-w", str(workers)],
        env,
        log_dir / "worker.log",
    )
