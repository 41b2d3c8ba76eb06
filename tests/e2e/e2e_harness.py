"""A private Postfix instance and an `ingest serve` process for end-to-end tests.

Postfix's `main.cf` is the production fragment from `deploy/postfix/` with the
domain replaced and a short list of test overrides (queue in a temp folder,
loopback only, fixed ports, no TLS): the scenarios exercise the configuration we
ship, not a look-alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from benchmarks.postfix_instance import MASTER_CF
from tests.procs import Child, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "postfix"
PRODUCTION_DOMAIN = "orders.example.com"
DOMAIN = "orders.localhost"
REQUIRED_COMMANDS = ("postfix", "postconf", "postqueue", "swaks")
# Postfix tools live in /usr/sbin, which a non-root PATH often lacks.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])

T = TypeVar("T")


def which(command: str) -> str | None:
    return shutil.which(command, path=SEARCH_PATH)


def missing_commands() -> list[str]:
    return [c for c in REQUIRED_COMMANDS if which(c) is None]


def wait_for(what: str, probe: Callable[[], T | None], *, timeout_s: float = 60.0) -> T:
    """Poll ``probe`` until it returns something other than None.

    The timeout only bounds a hang; no scenario asserts on how long anything took.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, check=False, timeout=600, **kwargs
    )


# -- Postfix -----------------------------------------------------------------------------

# A private instance's master.cf: the one the bench's Postfix phase writes, with a
# plain smtpd line of our own (``{smtpd}``).
SMTPD_LINE = "{listen} inet n - n - - smtpd"


def production_files(domain: str) -> dict[str, str]:
    """The deploy/postfix files with our test domain in place of the example one."""
    names = ("main.cf", "lmtp_status_filter", "relay_recipients.regexp", "transport", "virtual")
    escaped = PRODUCTION_DOMAIN.replace(".", r"\.")
    return {
        name: (DEPLOY / name)
        .read_text()
        .replace(escaped, domain.replace(".", r"\."))
        .replace(PRODUCTION_DOMAIN, domain)
        for name in names
    }


@dataclass
class Postfix:
    root: Path
    lmtp_port: int
    milter_port: int
    domain: str = DOMAIN
    smtp_port: int = field(default_factory=free_port)
    # Where LMTP goes; None: this run's ingest on the loopback.
    lmtp_nexthop: str | None = None
    # A resolv.conf for Postfix's own mount namespace (needs root); None: the
    # machine's, which no scenario's lookups reach (they name addresses only).
    resolv_conf: Path | None = None

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def maillog(self) -> Path:
        return self.root / "maillog"

    def overrides(self) -> dict[str, str]:
        """Where the test instance differs from deploy/postfix/main.cf, and why."""
        conf = self.config_dir
        nexthop = self.lmtp_nexthop or f"127.0.0.1:{self.lmtp_port}"
        return {
            # its own queue, state and log, on loopback only
            "queue_directory": str(self.root / "spool"),
            "data_directory": str(self.root / "data"),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            "myhostname": "mx.e2e.localhost",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # the maps from deploy/, read from this folder
            "relay_recipient_maps": f"regexp:{conf}/relay_recipients.regexp",
            "virtual_alias_maps": f"texthash:{conf}/virtual",
            "lmtp_delivery_status_filter": f"regexp:{conf}/lmtp_status_filter",
            # ingest on this run's ports
            "transport_maps": f"inline:{{ {self.domain}=lmtp:inet:{nexthop} }}",
            "smtpd_milters": f"inet:127.0.0.1:{self.milter_port}",
            "lmtp_host_lookup": "native",
            # no certificates here
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
        }

    def write_config(self) -> None:
        conf = self.config_dir
        conf.mkdir(parents=True)
        for name, text in production_files(self.domain).items():
            (conf / name).write_text(text)
        smtpd = SMTPD_LINE.format(listen=f"127.0.0.1:{self.smtp_port}")
        (conf / "master.cf").write_text(MASTER_CF.format(smtpd=smtpd))
        settings = [f"{key}={value}" for key, value in self.overrides().items()]
        self._check(["postconf", "-c", str(conf), "-e", *settings])
        (self.root / "spool").mkdir()
        data = self.root / "data"
        data.mkdir()
        shutil.chown(data, "postfix", "postfix")

    def start(self) -> None:
        self.write_config()
        # Without a terminal Postfix reports start-up errors only to syslog; `script`
        # gives it one, so a failure shows up in the assertion message.
        command = f"postfix -c {self.config_dir} start"
        if self.resolv_conf is not None:
            bind = f"mount --bind {self.resolv_conf} /etc/resolv.conf"
            command = f"unshare --mount --propagation private sh -c '{bind} && exec {command}'"
        self._check(["script", "-qec", command, "/dev/null"])
        wait_for("Postfix smtpd to listen", self._smtp_listening, timeout_s=30)

    def stop(self) -> None:
        run(self._argv(["postfix", "-c", str(self.config_dir), "stop"]))

    def _smtp_listening(self) -> bool | None:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.smtp_port), timeout=5) as sock,
        ):
            return sock.recv(1024).startswith(b"220") or None
        return None

    def flush(self) -> None:
        self._check(["postqueue", "-c", str(self.config_dir), "-f"])

    def queue(self) -> list[dict[str, Any]]:
        """The queue as `postqueue -j` reports it (one JSON object per message)."""
        result = self._check(["postqueue", "-c", str(self.config_dir), "-j"])
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def delivery_status(self, queue_id: str) -> str | None:
        """The last `status=` Postfix logged for a queue id's LMTP delivery."""
        found = re.findall(rf"{queue_id}: to=<[^>]*>.* status=(\w+)", self.log())
        return found[-1] if found else None

    def wait_status(self, queue_id: str, status: str, *, timeout_s: float = 120) -> None:
        wait_for(
            f"{queue_id} status={status}",
            lambda: True if self.delivery_status(queue_id) == status else None,
            timeout_s=timeout_s,
        )

    def _argv(self, argv: list[str]) -> list[str]:
        return [which(argv[0]) or argv[0], *argv[1:]]

    def _check(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        result = run(self._argv(argv))
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stdout}{result.stderr}"
        return result


# -- swaks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    exit_code: int
    transcript: str

    @property
    def queue_id(self) -> str:
        found = re.search(r"<-  250 .*queued as ([0-9A-Za-z]+)", self.transcript)
        assert found, f"no queue id in:\n{self.transcript}"
        return found.group(1)

    def replies(self, code: str) -> list[str]:
        """Server replies starting with ``code`` (``"550"``, ``"4"``), as swaks shows them."""
        return re.findall(rf"^<[-*]+ *({code}\S* .*)$", self.transcript, re.MULTILINE)


def swaks(
    port: int,
    to: Sequence[str],
    *,
    message_id: str | None = None,
    attach: Path | None = None,
    data: Path | None = None,
    mail_from: str = "buyer@example.net",
) -> Sent:
    """Envelope sender and From header are both ``mail_from``."""
    argv = [
        which("swaks") or "swaks",
        "--server", "127.0.0.1",
        "--port", str(port),
        "--ehlo", "client.e2e.localhost",
        "--from", mail_from,
        "--to", ",".join(to),
        "--suppress-data",
        "--timeout", "120",
    ]  # fmt: skip
    if data is not None:
        argv += ["--data", f"@{data}"]
    else:
        argv += ["--header", "Subject: Purchase order"]
        if message_id is not None:
            argv += ["--header", f"Message-Id: <{message_id}>"]
        argv += ["--body", "Please find our order attached."]
    if attach is not None:
        argv += ["--attach-type", "application/pdf", "--attach-name", attach.name]
        argv += ["--attach", f"@{attach}"]
    result = run(argv)
    return Sent(result.returncode, result.stdout + result.stderr)


# -- ingest ---------------------------------------------------------------------------------


@dataclass
class Ingest:
    root: Path
    lmtp_port: int = field(default_factory=free_port)
    milter_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    domain: str = DOMAIN
    child: Child | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process if self.child is not None else None

    @property
    def data_dir(self) -> Path:
        return self.root / "ingest"

    @property
    def log_file(self) -> Path:
        return self.root / "ingest.log"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "INGEST_DATA_DIR": str(self.data_dir),
            "INGEST_LMTP_LISTEN": f"127.0.0.1:{self.lmtp_port}",
            "INGEST_MILTER_LISTEN": f"127.0.0.1:{self.milter_port}",
            "INGEST_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "INGEST_API_LISTEN": "off",
            "INGEST_DOMAINS": self.domain,
            "INGEST_LOG_FORMAT": "json",
            "INGEST_ENV": "development",
        }

    def cli(self, *args: str) -> str:
        result = run([sys.executable, "-m", "lmtpd.cli", *args], env=self.env(), cwd=REPO)
        assert result.returncode == 0, f"ingest {' '.join(args)}: {result.stderr}"
        return result.stdout

    def start(self) -> None:
        assert self.child is None
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        argv = [sys.executable, "-m", "lmtpd.cli", "serve", "--with-worker"]
        self.child = Child(argv, self.env(), self.log_file)
        self.child.start()
        wait_for("ingest to listen", lambda: self._ready(offset), timeout_s=120)

    def _ready(self, offset: int) -> bool | None:
        assert self.child is not None
        if not self.child.alive():
            raise AssertionError(f"ingest serve exited early:\n{self.log_tail()}")
        with self.log_file.open("rb") as log:
            log.seek(offset)
            return True if b"milter listening" in log.read() else None

    def stop(self) -> None:
        if self.child is None:
            return
        self.child.stop(timeout_s=90)
        self.child = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def messages(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(
            self.cli("messages", "list", "--format", "json", "--limit", "10000")
        )
        return rows

    def rows_for(self, message_id: str) -> list[dict[str, Any]]:
        return [r for r in self.messages() if r["source_message_id"] == message_id]

    def metrics(self) -> str:
        """The Prometheus text of ingest serve's HTTP endpoint."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as reply:
            text: str = reply.read().decode()
        return text

    def show(self, row_id: str) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(self.cli("messages", "show", row_id, "--json"))
        return shown

    def wait_processed(
        self, message_id: str, count: int = 1, *, timeout_s: float = 120
    ) -> list[dict[str, Any]]:
        def probe() -> list[dict[str, Any]] | None:
            rows = self.rows_for(message_id)
            done = [r for r in rows if r["status"] == "PROCESSED"]
            return rows if len(done) >= count else None

        return wait_for(f"{count} processed row(s) for {message_id}", probe, timeout_s=timeout_s)

    def wait_status(
        self, message_id: str, status: str, *, timeout_s: float = 120
    ) -> dict[str, Any]:
        """The one row for ``message_id`` once it has ``status``."""

        def probe() -> dict[str, Any] | None:
            rows = [r for r in self.rows_for(message_id) if r["status"] == status]
            return rows[0] if rows else None

        return wait_for(f"{message_id} to be {status}", probe, timeout_s=timeout_s)

    @contextlib.contextmanager
    def storage_broken(self) -> Iterator[None]:
        """Object writes fail (the folder is replaced by a file) until the block ends."""
        away = self.objects_dir.with_name("objects.away")
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.objects_dir.rename(away)
        self.objects_dir.write_bytes(b"")
        try:
            yield
        finally:
            self.objects_dir.unlink()
            away.rename(self.objects_dir)
