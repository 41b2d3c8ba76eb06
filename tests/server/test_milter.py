"""The RCPT milter, driven over a real socket by a minimal milter-protocol client.

The client speaks the wire protocol as Postfix does (milter protocol version 6):
option negotiation, then only the commands the milter asked for, waiting for a
reply only where the milter did not opt out of replying.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import struct
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
import trio

from ingest_core.adapters.memory import (
    MemoryBlobStore,
    MemoryJobQueue,
    MemoryMessageRepository,
    MemoryTenantDirectory,
)
from ingest_core.addressing import is_role_address
from ingest_core.model import TenantStatus
from ingest_core.ports import RecipientDecision, Reply
from ingest_core.service import AcceptConfig, InboundService
from lmtpd.milter import (
    CHECK_UNAVAILABLE,
    RecipientCheck,
    RoleAddress,
    peer_allowed,
    serve_milter,
    verdict_for,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

DOMAINS = ("orders.localhost",)
LOCAL = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

# Protocol constants (Sendmail's mfdef.h, as Postfix uses them).
VERSION = 6
ALL_ACTIONS = 0x1FF
ALL_PROTOCOL = 0x1FFFFF
NOCONNECT, NOHELO, NOMAIL, NORCPT = 0x1, 0x2, 0x4, 0x8
NR_CONN, NR_HELO, NR_MAIL, NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000


@dataclass(frozen=True)
class MilterReply:
    kind: bytes
    data: bytes

    @property
    def text(self) -> str:
        return self.data.rstrip(b"\x00").decode()


class MilterClient:
    """Just enough of an MTA's side of the milter protocol for these tests."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._buffer = b""
        self.protocol = 0
        self.actions = 0

    async def send(self, command: bytes, data: bytes = b"") -> None:
        payload = command + data
        await self._stream.send_all(struct.pack("!I", len(payload)) + payload)

    async def receive(self) -> MilterReply:
        header = await self._read_exactly(4)
        (length,) = struct.unpack("!I", header)
        payload = await self._read_exactly(length)
        return MilterReply(payload[:1], payload[1:])

    async def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise EOFError("milter closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    async def negotiate(self) -> None:
        await self.send(b"O", struct.pack("!III", VERSION, ALL_ACTIONS, ALL_PROTOCOL))
        reply = await self.receive()
        assert reply.kind == b"O"
        version, self.actions, self.protocol = struct.unpack("!III", reply.data[:12])
        assert version == VERSION

    async def _step(self, skip: int, no_reply: int, command: bytes, data: bytes) -> MilterReply:
        if self.protocol & skip:
            return MilterReply(b"c", b"")  # the MTA does not even ask: implied continue
        await self.send(command, data)
        if self.protocol & no_reply:
            return MilterReply(b"c", b"")
        return await self.receive()

    async def connect(self) -> MilterReply:
        data = b"client.example\x00" + b"4" + struct.pack("!H", 40000) + b"192.0.2.10\x00"
        return await self._step(NOCONNECT, NR_CONN, b"C", data)

    async def helo(self) -> MilterReply:
        return await self._step(NOHELO, NR_HELO, b"H", b"client.example\x00")

    async def mail_from(self, sender: str) -> MilterReply:
        return await self._step(NOMAIL, NR_MAIL, b"M", f"<{sender}>\x00".encode())

    async def rcpt(self, recipient: str) -> MilterReply:
        data = f"<{recipient}>\x00".encode()
        return await self._step(NORCPT, NR_RCPT, b"R", data)

    async def transaction(self, *recipients: str) -> list[MilterReply]:
        """What Postfix sends for one SMTP session's envelope, up to the recipients."""
        assert (await self.connect()).kind == b"c"
        assert (await self.helo()).kind == b"c"
        assert (await self.mail_from("buyer@example.net")).kind == b"c"
        return [await self.rcpt(r) for r in recipients]


def memory_service() -> tuple[InboundService, MemoryTenantDirectory]:
    directory = MemoryTenantDirectory()
    directory.add("acme")
    directory.add("globex")
    directory.add("sleepy", TenantStatus.DISABLED)
    service = InboundService(
        config=AcceptConfig(domains=DOMAINS, mailbox="orders"),
        tenants=directory,
        store=MemoryBlobStore(),
        repository=MemoryMessageRepository(),
        queue=MemoryJobQueue(),
    )
    return service, directory


def service_check(service: InboundService) -> RecipientCheck:
    """What `ingest serve` passes: the port's check in a worker thread, trio limiter."""
    limiter = trio.CapacityLimiter(4)

    async def check(address: str) -> RecipientDecision:
        return await trio.to_thread.run_sync(
            service.check_recipient, address, True, limiter=limiter
        )

    return check


ROLE: RoleAddress = functools.partial(is_role_address, domains=DOMAINS)


class RunningMilter:
    """A served milter and the clients a test opened to it (closed at exit)."""

    def __init__(self, bound: str) -> None:
        self.bound = bound
        self.streams: list[trio.abc.Stream] = []

    async def client(self) -> MilterClient:
        stream = await open_stream(self.bound)
        self.streams.append(stream)
        client = MilterClient(stream)
        await client.negotiate()
        return client


@asynccontextmanager
async def running_milter(
    check: RecipientCheck,
    *,
    listen: str = "127.0.0.1:0",
    allow_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = LOCAL,
    role_address: RoleAddress = ROLE,
    check_timeout_s: float = 20.0,
) -> AsyncIterator[RunningMilter]:
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(
            functools.partial(
                serve_milter,
                listen,
                allow_from,
                check,
                role_address,
                check_timeout_s=check_timeout_s,
            )
        )
        milter = RunningMilter(bound)
        try:
            yield milter
        finally:
            for stream in milter.streams:
                await stream.aclose()
            nursery.cancel_scope.cancel()


async def open_stream(bound: str) -> trio.abc.Stream:
    if bound.startswith("unix:"):
        return await trio.open_unix_socket(bound[len("unix:") :])
    host, _, port = bound.rpartition(":")
    return await trio.open_tcp_stream(host.strip("[]"), int(port))


async def test_negotiation_asks_for_rcpt_only_and_offers_no_manipulation() -> None:
    service, _ = memory_service()
    async with running_milter(service_check(service)) as milter:
        client = await milter.client()
    assert not client.protocol & NORCPT
    assert not client.protocol & NR_RCPT
    for skipped in (NOCONNECT, NOHELO, NOMAIL):
        assert client.protocol & skipped
    assert client.actions & 0xFF == 0  # no header, body or recipient changes


@pytest.mark.parametrize(
    ("recipient", "kind", "text"),
    [
        ("orders+acme@orders.localhost", b"c", ""),
        ("ORDERS+Acme@Orders.Localhost", b"c", ""),
        ("orders+nope@orders.localhost", b"y", "550 5.1.1 No such mailbox"),
        ("orders@orders.localhost", b"y", "550 5.1.1 No such mailbox"),
        ("orders+sleepy@orders.localhost", b"y", "550 5.2.1 Mailbox disabled"),
        ("orders+acme@elsewhere.example", b"y", "550 5.1.2 Recipient domain not handled here"),
        ("postmaster@orders.localhost", b"c", ""),
        ("abuse@orders.localhost", b"c", ""),
        ("postmaster", b"c", ""),
    ],
)
async def test_rcpt_gets_the_lmtp_rules_verdict(recipient: str, kind: bytes, text: str) -> None:
    service, _ = memory_service()
    async with running_milter(service_check(service)) as milter:
        client = await milter.client()
        (reply,) = await client.transaction(recipient)
    assert (reply.kind, reply.text) == (kind, text)


async def test_role_addresses_pass_even_though_the_check_would_refuse_them() -> None:
    service, _ = memory_service()
    # The LMTP rule refuses role addresses (Postfix rewrites them before LMTP) ...
    assert not service.check_recipient("postmaster@orders.localhost", True).reply.positive
    asked: list[str] = []
    check = service_check(service)

    async def recording(address: str) -> RecipientDecision:
        asked.append(address)
        return await check(address)

    # ... the milter must let them through without asking.
    async with running_milter(recording) as milter:
        client = await milter.client()
        replies = await client.transaction("abuse@orders.localhost", "orders+acme@orders.localhost")
    assert [r.kind for r in replies] == [b"c", b"c"]
    assert asked == ["orders+acme@orders.localhost"]


async def test_mixed_recipients_in_one_session_each_get_their_own_verdict() -> None:
    service, _ = memory_service()
    async with running_milter(service_check(service)) as milter:
        client = await milter.client()
        replies = await client.transaction(
            "orders+acme@orders.localhost",
            "orders+nope@orders.localhost",
            "orders+globex@orders.localhost",
        )
        # Postfix aborts the milter transaction and starts the next one on the
        # same connection; the milter must keep answering.
        await client.send(b"A")
        (again,) = await client.transaction("orders+sleepy@orders.localhost")
    assert [r.kind for r in replies] == [b"c", b"y", b"c"]
    assert again.text == "550 5.2.1 Mailbox disabled"


async def test_directory_unreachable_is_a_temporary_failure() -> None:
    service, directory = memory_service()
    directory.unavailable = True
    async with running_milter(service_check(service)) as milter:
        client = await milter.client()
        (reply,) = await client.transaction("orders+acme@orders.localhost")
    assert reply.kind == b"y"
    assert reply.text.startswith("451 4.4.3 ")


async def test_a_failing_check_is_a_451_without_leaking_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(address: str) -> RecipientDecision:
        raise RuntimeError("secret-internal-detail")

    with caplog.at_level(logging.ERROR, logger="ingest.milter"):
        async with running_milter(broken) as milter:
            client = await milter.client()
            first = await client.transaction("orders+acme@orders.localhost")
            # the session survives the failure
            second = await client.rcpt("orders+globex@orders.localhost")
    for reply in (*first, second):
        assert reply.kind == b"y"
        assert reply.text.startswith("451 4.4.3 ")
        assert "secret" not in reply.text
    assert any("check failed" in r.getMessage() for r in caplog.records)


async def test_a_raising_role_check_is_a_451_too() -> None:
    service, _ = memory_service()

    def broken_role(address: str) -> bool:
        raise ValueError("boom")

    async with running_milter(service_check(service), role_address=broken_role) as milter:
        client = await milter.client()
        (reply,) = await client.transaction("orders+acme@orders.localhost")
    assert reply.text.startswith("451 4.4.3 ")


async def test_a_check_that_never_answers_is_cut_off_with_a_451() -> None:
    async def hangs(address: str) -> RecipientDecision:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with running_milter(hangs, check_timeout_s=0.05) as milter:
        client = await milter.client()
        (reply,) = await client.transaction("orders+acme@orders.localhost")
    assert reply.text.startswith("451 4.4.3 ")


async def test_peer_outside_the_allow_list_is_closed_before_any_milter_byte(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, _ = memory_service()
    only_elsewhere = (ipaddress.ip_network("192.0.2.0/24"),)
    with caplog.at_level(logging.WARNING, logger="ingest.milter"):
        async with running_milter(service_check(service), allow_from=only_elsewhere) as milter:
            stream = await open_stream(milter.bound)
            received = b""
            async with stream:
                try:
                    await stream.send_all(struct.pack("!I", 13) + b"O" + b"\x00" * 12)
                    while chunk := await stream.receive_some(65536):
                        received += chunk
                except trio.BrokenResourceError:
                    pass  # a reset is as good as a close: nothing was said
    assert received == b""
    assert any("peer not allowed" in r.getMessage() for r in caplog.records)


async def test_unix_socket_listener(tmp_path: Path) -> None:
    service, _ = memory_service()
    path = tmp_path / "milter.sock"
    # Unix peers have no address; the allow-list does not apply to them.
    async with running_milter(
        service_check(service), listen=f"unix:{path}", allow_from=()
    ) as milter:
        assert milter.bound == f"unix:{path}"
        client = await milter.client()
        (reply,) = await client.transaction("orders+nope@orders.localhost")
    assert reply.text == "550 5.1.1 No such mailbox"


async def test_shutdown_closes_open_sessions() -> None:
    service, _ = memory_service()
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(
            functools.partial(serve_milter, "127.0.0.1:0", LOCAL, service_check(service), ROLE)
        )
        stream = await open_stream(bound)
        client = MilterClient(stream)
        await client.negotiate()
        (reply,) = await client.transaction("orders+acme@orders.localhost")
        assert reply.kind == b"c"
        nursery.cancel_scope.cancel()
    # serve_milter returned; the open session was closed, not left dangling.
    async with stream:
        with pytest.raises((EOFError, trio.BrokenResourceError)):
            await client.rcpt("orders+acme@orders.localhost")


async def test_listen_on_a_taken_port_raises_oserror() -> None:
    service, _ = memory_service()
    check = service_check(service)
    async with running_milter(check) as milter, trio.open_nursery() as nursery:
        with pytest.raises(OSError, match="in use"):
            await nursery.start(functools.partial(serve_milter, milter.bound, LOCAL, check, ROLE))


@pytest.mark.parametrize(
    ("reply", "wire"),
    [
        (Reply(550, "5.1.1", "No such mailbox"), b"y550 5.1.1 No such mailbox\x00"),
        (Reply(451, "4.4.3", "Try later"), b"y451 4.4.3 Try later\x00"),
        (Reply(452, "4.5.3", "Too many recipients"), b"y452 4.5.3 Too many recipients\x00"),
        # an enhanced code of the wrong class or malformed is dropped, not passed on
        (Reply(550, "4.1.1", "Odd"), b"y550 Odd\x00"),
        (Reply(550, "5.x.1", "Odd"), b"y550 Odd\x00"),
        # CR/LF, NUL and % never reach the wire
        (Reply(550, "5.1.1", "a\r\nb\x00c 100%"), b"y550 5.1.1 a  b c 100\x00"),
        # a reply that is neither positive nor 4xx/5xx is a bug: fail temporarily
        (Reply(300, "3.0.0", "Huh"), b"y451 4.4.3 " + CHECK_UNAVAILABLE.text.encode() + b"\x00"),
        (Reply(250, "2.1.5", "Recipient ok"), b"c"),
    ],
)
def test_verdict_wire_format(reply: Reply, wire: bytes) -> None:
    assert bytes(verdict_for(reply).encode()) == wire


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        (("127.0.0.1", 5000), True),
        (("::1", 5000, 0, 0), True),
        (("::ffff:127.0.0.1", 5000, 0, 0), True),
        (("192.0.2.1", 5000), False),
        (("fe80::1%eth0", 5000, 0, 2), False),
        (("not-an-ip", 5000), False),
        ("", True),  # unix socket peer
        (None, False),  # an unknown peer is refused
    ],
)
def test_peer_allowed(peer: object, allowed: bool) -> None:
    assert peer_allowed(peer, LOCAL) is allowed
