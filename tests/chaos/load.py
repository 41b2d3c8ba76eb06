"""A load generator speaking LMTP over plain blocking sockets, and the record of
what every client was told.

Each message has its own Message-ID, so the database row of a message is found
by ``source_message_id`` whatever happened to the connection that carried it.
Workers move on after a failure (a reset, a 4xx); resending what was never
acknowledged is the test's job, as it is Postfix's in production.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.procs import DOMAIN, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

RECIPIENT = f"orders+acme@{DOMAIN}"
SENDER = "buyer@load.example"
IO_TIMEOUT_S = 120.0


@dataclass
class Attempt:
    started: float
    finished: float
    code: int | None  # None: the connection broke before a final reply
    text: str = ""

    @property
    def acked(self) -> bool:
        return self.code == 250

    @property
    def message_uuid(self) -> str | None:
        """The inbound_message id in ``250 2.0.0 <id> accepted|duplicate``."""
        words = self.text.split()
        return words[1] if self.acked and len(words) >= 2 else None


@dataclass
class Delivery:
    number: int
    message_id: str
    data: bytes
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acked(self) -> bool:
        return any(a.acked for a in self.attempts)

    @property
    def acked_ids(self) -> set[str]:
        return {a.message_uuid for a in self.attempts if a.message_uuid}


def make_message(tag: str, number: int, size: int) -> tuple[str, bytes]:
    """A message of about ``size`` bytes with lines that need dot-stuffing."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", tag)
    message_id = f"{slug}-{number}-{uuid.uuid4().hex[:12]}@load.example"
    head = (
        f"Message-ID: <{message_id}>\r\nFrom: Buyer <{SENDER}>\r\n"
        f"To: <{RECIPIENT}>\r\nSubject: order {number}\r\n\r\n"
    ).encode()
    lines = [b".leading dot line\r\n", b"..two dots\r\n"]
    seed = hashlib.sha256(message_id.encode()).hexdigest().encode()
    filler = seed * 2 + b"\r\n"  # 130 bytes a line
    lines.extend(itertools.repeat(filler, max(0, (size - len(head)) // len(filler))))
    return message_id, head + b"".join(lines)


def dot_stuff(data: bytes) -> bytes:
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


class LmtpClient:
    """A blocking LMTP client: one transaction at a time, no pipelining."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT_S)
        self.file = self.sock.makefile("rb")
        code, _ = self.reply()
        if code != 220:
            self.close()
            raise ConnectionError(f"greeting {code}")
        code, _ = self.command("LHLO load.example")
        if code != 250:
            self.close()
            raise ConnectionError(f"LHLO {code}")

    def reply(self) -> tuple[int, str]:
        while True:
            line = self.file.readline(65536)
            if not line.endswith(b"\r\n"):
                raise ConnectionError("connection closed before a complete reply")
            if line[3:4] != b"-":
                return int(line[:3]), line[4:].decode("ascii", "replace").strip()

    def command(self, text: str) -> tuple[int, str]:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def transaction(self, data: bytes, recipient: str = RECIPIENT) -> tuple[int, str]:
        """MAIL, RCPT, DATA for one recipient; the first refusal or the final reply."""
        code, text = self.command(f"MAIL FROM:<{SENDER}>")
        if code != 250:
            return code, text
        code, text = self.command(f"RCPT TO:<{recipient}>")
        if code != 250:
            self.command("RSET")
            return code, text
        code, text = self.command("DATA")
        if code != 354:
            return code, text
        self.sock.sendall(dot_stuff(data) + b".\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def deliver_once(port: int, delivery: Delivery) -> Attempt:
    """One attempt on a connection of its own (used for resends)."""
    started = time.monotonic()
    try:
        client = LmtpClient(port)
        try:
            code, text = client.transaction(delivery.data)
        finally:
            client.close()
    except OSError:
        code, text = None, ""
    attempt = Attempt(started, time.monotonic(), code, text)
    delivery.attempts.append(attempt)
    return attempt


class LoadGenerator:
    """``workers`` threads delivering new messages until stopped."""

    def __init__(
        self, port: int, tag: str, *, workers: int = 3, size_of: Callable[[int], int] | None = None
    ) -> None:
        self.port = port
        self.tag = tag
        self.size_of = size_of or (lambda n: 4096)
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"load-{i}", daemon=True)
            for i in range(workers)
        ]

    def __enter__(self) -> LoadGenerator:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=IO_TIMEOUT_S + 10)

    def attempts(self) -> list[Attempt]:
        with self._lock:
            return [a for d in self.deliveries for a in d.attempts]

    def acked_since(self, moment: float) -> int:
        return sum(1 for a in self.attempts() if a.acked and a.started >= moment)

    def finished_since(self, moment: float) -> int:
        return sum(1 for a in self.attempts() if a.started >= moment)

    def _work(self) -> None:
        client: LmtpClient | None = None
        while not self._stop.is_set():
            if client is None:
                try:
                    client = LmtpClient(self.port)
                except OSError:
                    time.sleep(0.02)  # the server is down: try again shortly
                    continue
            number = next(self._numbers)
            message_id, data = make_message(self.tag, number, self.size_of(number))
            delivery = Delivery(number, message_id, data)
            started = time.monotonic()
            try:
                code, text = client.transaction(data)
            except OSError:
                code, text = None, ""
            attempt = Attempt(started, time.monotonic(), code, text)
            with self._lock:
                delivery.attempts.append(attempt)
                self.deliveries.append(delivery)
            if code is None or code == 421:
                client.close()
                client = None
        if client is not None:
            client.close()


@dataclass
class Outage:
    """What happened around one fault injected under load."""

    load: LoadGenerator
    broken_at: float
    repairing_at: float

    @property
    def during(self) -> list[Attempt]:
        """Attempts that began after the fault and ended before the repair began."""
        return [
            a
            for a in self.load.attempts()
            if a.started >= self.broken_at and a.finished <= self.repairing_at
        ]


def outage_under_load(
    port: int,
    tag: str,
    *,
    break_it: Callable[[], None],
    repair_it: Callable[[], None],
    before: int = 10,
    during: int = 4,
    after: int = 10,
    workers: int = 3,
) -> Outage:
    """Deliver until ``before`` acknowledgements, break, wait for ``during``
    finished attempts, repair, deliver until ``after`` more acknowledgements."""
    with LoadGenerator(port, tag, workers=workers) as load:
        wait_for(lambda: load.acked_since(0) >= before, "acknowledgements before the fault")
        break_it()
        broken_at = time.monotonic()
        try:
            wait_for(lambda: load.finished_since(broken_at) >= during, "replies during the fault")
        finally:
            repairing_at = time.monotonic()
            repair_it()
        repaired_at = time.monotonic()
        wait_for(lambda: load.acked_since(repaired_at) >= after, "service after the repair")
    return Outage(load, broken_at, repairing_at)


def resend_unacknowledged(port: int, deliveries: list[Delivery]) -> list[Delivery]:
    """Resend, one by one, every message that never got a 250; each must get one now."""
    unacked = [d for d in deliveries if not d.acked]
    for delivery in unacked:
        attempt = deliver_once(port, delivery)
        if attempt.code != 250:
            raise AssertionError(f"resend of {delivery.message_id}: {attempt.code} {attempt.text}")
    return unacked
