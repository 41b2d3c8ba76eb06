"""A private Postfix instance for the bench: its configuration, read from
``deploy/postfix/`` with the bench's overrides, and its master in the
foreground with the log on its stdout."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.procs import REPO, BenchError, descendants, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
from benchmarks.postfix_log import Maillog

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
            "lmtp_delivery_status_filter": f"regexp:{conf}/lmtp_status_filter",
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
        for name in ("lmtp_status_filter", "relay_recipients.regexp", "virtual"):
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
        processes = descendants(process.pid)  # postfix-script → master → daemons
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
