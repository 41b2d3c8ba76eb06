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
  connection taken from Postfix's connection cache).

    python -m benchmarks.postfix_phase -n 2000 -s 20   # the null sink alone
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.procs import REPO, BenchError, ServerProcess, cpu_seconds, free_port
from benchmarks.stats import percentile

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

DEPLOY = REPO / "deploy" / "postfix"
SHIPPED_DOMAIN = "orders.example.com"
DOMAIN = "orders.localhost"
TENANT = "bench"
RECIPIENT = f"orders+{TENANT}@{DOMAIN}"
SENDER = "buyer@customer.example"
MESSAGE_BYTES = 1500  # smtp-source's body (-l); headers add about 300 bytes
REQUIRED = ("postfix", "postconf", "postqueue", "smtp-source")
# Postfix's tools live in /usr/sbin, which a non-root PATH often lacks.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
SEND_LIMIT_S = 60.0  # smtp-source's whole burst
DRAIN_LIMIT_S = 60.0  # after the burst: the last deliveries

# Every daemon of a stock master.cf, chroot off (the queue folder is a temp
# folder without the copies of /etc a chroot needs), plus postlogd for maillog_file.
# The smtpd line comes from deploy/postfix/master.cf.
MASTER_CF = """\
{smtpd}
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def which(command: str) -> str | None:
    return shutil.which(command, path=SEARCH_PATH)


def unavailable() -> str | None:
    """Why the phase cannot run here, or None."""
    missing = [c for c in REQUIRED if which(c) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (Debian: apt-get install postfix)"
    if os.geteuid() != 0:
        return "Postfix's master process must be started as root"
    if not DEPLOY.joinpath("main.cf").is_file():
        return f"no {DEPLOY.relative_to(REPO)}/main.cf"
    return None


def shipped(name: str, domain: str = DOMAIN) -> str:
    """A deploy/postfix file with ``domain`` in place of the example domain."""
    escaped = SHIPPED_DOMAIN.replace(".", r"\.")
    text = (DEPLOY / name).read_text()
    return text.replace(escaped, domain.replace(".", r"\.")).replace(SHIPPED_DOMAIN, domain)


def smtpd_line(port: int) -> str:
    """deploy/postfix/master.cf's ``smtp inet`` line, listening on 127.0.0.1:``port``."""
    for line in (DEPLOY / "master.cf").read_text().splitlines():
        fields = line.split()
        if fields[:2] == ["smtp", "inet"]:
            return " ".join([f"127.0.0.1:{port}", *fields[1:]])
    raise BenchError("deploy/postfix/master.cf has no `smtp inet` line")


def transport(lmtp_port: int, domain: str = DOMAIN) -> str:
    """deploy/postfix/transport with the ingest host replaced by the target's port."""
    text = shipped("transport", domain)
    return re.sub(r"lmtp:inet:\S+", f"lmtp:inet:127.0.0.1:{lmtp_port}", text)


@dataclass(frozen=True, slots=True)
class Delivery:
    at: float
    delay_s: float
    delays_s: tuple[float, ...]
    status: str
    reused: bool
    reply: str


_ACTIVE = re.compile(
    r"postfix/qmgr\[\d+\]: (\w+): from=<[^>]*>, size=\d+, nrcpt=\d+ \(queue active"
)
_STATUS = re.compile(
    r"postfix/lmtp\[\d+\]: (\w+): to=<[^>]*>, .*?(conn_use=\d+, )?delay=([\d.]+), "
    r"delays=([\d./]+), dsn=[\d.]+, status=(\w+) \((.*)\)$"
)


@dataclass
class Maillog:
    """What the phase reads from Postfix's log. Postfix stamps its lines to the
    second only, so each line is stamped with the time it reached us instead (the
    log arrives on a pipe as postlogd writes it)."""

    accepted: dict[str, float] = field(default_factory=dict)  # queue id → first active
    outcomes: dict[str, Delivery] = field(default_factory=dict)  # queue id → last status
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, line: str, at: float) -> None:
        if (active := _ACTIVE.search(line)) is not None:
            with self.lock:
                self.accepted.setdefault(active.group(1), at)
        elif (status := _STATUS.search(line)) is not None:
            queue_id, reused, delay, delays, outcome, reply = status.groups()
            delivery = Delivery(
                at=at,
                delay_s=float(delay),
                delays_s=tuple(float(d) for d in delays.split("/")),
                status=outcome,
                reused=reused is not None,
                reply=reply,
            )
            with self.lock:
                self.outcomes[queue_id] = delivery

    def counts(self) -> tuple[int, int]:
        """Messages accepted, and accepted ones without a delivery status yet."""
        with self.lock:
            pending = sum(1 for queue_id in self.accepted if queue_id not in self.outcomes)
            return len(self.accepted), pending

    def summary(self) -> dict[str, Any]:
        with self.lock:
            accepted = list(self.accepted.values())
            outcomes = list(self.outcomes.values())
        sent = [d for d in outcomes if d.status == "sent"]
        statuses: dict[str, int] = {}
        for delivery in outcomes:
            statuses[delivery.status] = statuses.get(delivery.status, 0) + 1
        first = min(accepted, default=None)
        window = max(accepted) - first if first is not None else None
        drain = max(d.at for d in sent) - first if first is not None and sent else None
        delays = [d.delay_s for d in sent]
        return {
            "accepted": len(accepted),
            "delivered": len(sent),
            "statuses": statuses,
            "duplicates": sum(1 for d in sent if "duplicate" in d.reply),
            "accept_window_s": _round(window),
            "accepted_per_s": _rate(len(accepted), window),
            "drain_s": _round(drain),
            "drained_per_s": _rate(len(sent), drain),
            "delay_s": {
                "p50": _pct(delays, 0.50),
                "p95": _pct(delays, 0.95),
                "max": max(delays, default=None),
            },
            "delays_p95_s": {
                part: _pct([d.delays_s[i] for d in sent if len(d.delays_s) == 4], 0.95)
                for i, part in enumerate(("before_qmgr", "in_qmgr", "connect", "transmit"))
            },
            "reused_connections": sum(1 for d in sent if d.reused),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if count and seconds else None


def _pct(values: list[float], fraction: float) -> float | None:
    return percentile(values, fraction) if values else None


@dataclass
class Postfix:
    """A private Postfix instance under ``root`` relaying the recipient's domain to ``lmtp_port``,
    its master in the foreground (``postfix start-fg``) with the log on its stdout."""

    root: Path
    lmtp_port: int
    log_copy: Path
    recipient: str = RECIPIENT
    smtp_port: int = field(default_factory=free_port)
    log: Maillog = field(default_factory=Maillog)
    process: subprocess.Popen[bytes] | None = None
    _reader: threading.Thread | None = None

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def domain(self) -> str:
        return self.recipient.rpartition("@")[2]

    def overrides(self) -> dict[str, str]:
        """Where this instance differs from deploy/postfix/main.cf."""
        conf, root = self.config_dir, self.root
        return {
            # its own queue and state, on the loopback only; the log to the harness
            "queue_directory": str(root / "spool"),
            "data_directory": str(root / "data"),
            "maillog_file": "/dev/stdout",
            "maillog_file_prefixes": "/dev/stdout",
            "myhostname": "mx.bench.localhost",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # the shipped maps, read from this folder; the transport to the target
            "relay_recipient_maps": f"regexp:{conf}/relay_recipients.regexp",
            "virtual_alias_maps": f"texthash:{conf}/virtual",
            "transport_maps": f"texthash:{conf}/transport",
            "lmtp_host_lookup": "native",
            # no milter (the targets check tenants themselves), no certificates
            "smtpd_milters": "",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
        }

    def write_config(self) -> None:
        conf = self.config_dir
        conf.mkdir(parents=True)
        (conf / "main.cf").write_text(shipped("main.cf", self.domain))
        for name in ("relay_recipients.regexp", "virtual"):
            (conf / name).write_text(shipped(name, self.domain))
        (conf / "transport").write_text(transport(self.lmtp_port, self.domain))
        (conf / "master.cf").write_text(MASTER_CF.format(smtpd=smtpd_line(self.smtp_port)))
        settings = [f"{key}={value}" for key, value in self.overrides().items()]
        self._check(["postconf", "-c", str(conf), "-e", *settings])
        (self.root / "spool").mkdir()
        (self.root / "data").mkdir()
        shutil.chown(self.root / "data", "postfix", "postfix")

    def start(self) -> None:
        self.write_config()
        self.process = subprocess.Popen(
            self._argv(["postfix", "-c", str(self.config_dir), "start-fg"]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while not self._greets():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_copy.read_text(errors="replace")[-1500:]
                raise BenchError(f"Postfix did not start (see {self.log_copy}):\n{tail}")
            time.sleep(0.1)

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with self.log_copy.open("ab") as copy:
            for raw in process.stdout:
                at = time.time()
                self.log.feed(raw.decode(errors="replace").rstrip("\n"), at)
                copy.write(f"{at:.6f} ".encode() + raw)

    def stop(self) -> None:
        """``postfix stop``; wait for the master and every daemon under it; ``postfix
        abort``, then SIGKILL of those processes (by pid), if they do not exit."""
        process = self.process
        if process is None:
            return
        processes = _descendants(process.pid)  # postfix-script → master → daemons
        for how in ("stop", "abort"):
            if process.poll() is not None:
                break
            _run(self._argv(["postfix", "-c", str(self.config_dir), how]))
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
        deadline = time.monotonic() + 10
        while (alive := [p for p in processes if _running(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
        process.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)  # EOF once the last daemon is gone
        self.process = None

    def queue_size(self) -> int:
        done = self._check(["postqueue", "-c", str(self.config_dir), "-j"])
        return sum(1 for line in done.stdout.splitlines() if line.strip())

    def _greets(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.smtp_port), timeout=2) as conn,
        ):
            conn.settimeout(5)
            return conn.recv(64).startswith(b"220")
        return False

    def _argv(self, argv: list[str]) -> list[str]:
        return [which(argv[0]) or argv[0], *argv[1:]]

    def _check(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        done = _run(self._argv(argv))
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)}: {(done.stdout + done.stderr).strip()[-1500:]}")
        return done


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


@contextlib.contextmanager
def running(postfix: Postfix) -> Iterator[Postfix]:
    try:
        postfix.start()
        yield postfix
    finally:
        postfix.stop()


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
    sessions: int, recipient: str,
) -> dict[str, Any]:  # fmt: skip
    """One target: start it, a fresh Postfix (under ``root``) in front of it, the
    burst; stop both. Postfix's log, stamped, goes to ``logs`` (gzipped)."""
    log_copy = logs / f"postfix-{name}.maillog"
    server = start()
    try:
        postfix = Postfix(root, server.address[1], log_copy, recipient)
        cpu_before = cpu_seconds(server.pid)
        with running(postfix):
            result = burst(postfix, count, sessions, logs / f"smtp-source-{name}.log")
        cpu = cpu_seconds(server.pid) - cpu_before
        result["target_cpu_s"] = round(cpu, 2)
        delivered = result["delivered"]
        result["target_cpu_ms_per_msg"] = round(1000 * cpu / delivered, 3) if delivered else None
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
    recipient: str = RECIPIENT, keep: bool = False,
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
            results[name] = drain(name, start, root, logs, count, sessions, recipient)
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
