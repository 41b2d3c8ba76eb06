"""Hostile LMTP peers that play with time and connection slots: slowloris under
trio's autojump clock (virtual time, no real sleeps), and more connections
than the limit."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest
import trio

from tests.hostile.conftest import ACME
from tests.hostile.test_hostile_lmtp import BODY
from tests.server.rawclient import RawClient

if TYPE_CHECKING:
    from trio.testing import MockClock

    from tests.hostile.conftest import ServeMemory

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------------- slowloris


async def test_command_line_trickled_a_byte_at_a_time_hits_the_timeout(
    serve_memory: ServeMemory, autojump_clock: MockClock
) -> None:
    h = await serve_memory(command_timeout_s=30)
    client = await RawClient.connect(h.address)
    await client.hello()
    started = trio.current_time()
    await client.send(b"MAIL FROM:<")
    with trio.move_on_after(600):  # virtual seconds: twenty times the limit
        with contextlib.suppress(trio.BrokenResourceError):
            while not client.buffer:
                await client.send(b"a")
                await trio.sleep(5)
                with trio.move_on_after(0):
                    client.buffer += await client.stream.receive_some(65536)
    assert trio.current_time() - started <= 40
    with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError):
        while chunk := await client.stream.receive_some(65536):  # what came before the close
            client.buffer += chunk
    assert client.buffer.startswith(b"421 4.4.2")


async def test_idle_peer_between_commands_hits_the_timeout(
    serve_memory: ServeMemory, autojump_clock: MockClock
) -> None:
    h = await serve_memory(command_timeout_s=30)
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(b"MAIL FROM:<b@example.org>\r\n")
    assert await client.code() == 250
    started = trio.current_time()
    code, lines = await client.reply()
    assert (code, lines[0][4:9]) == (421, b"4.4.2")
    assert 30 <= trio.current_time() - started <= 31
    assert await client.closed()
    assert h.server.active == 0


async def test_data_gap_longer_than_the_idle_limit_is_cut_off(
    serve_memory: ServeMemory, autojump_clock: MockClock
) -> None:
    h = await serve_memory(data_timeout_s=20, command_timeout_s=1000)
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]
    await client.send(BODY[:20])
    code, lines = await client.reply()
    assert (code, lines[0][4:9]) == (421, b"4.4.2")
    assert h.core.repo.rows == {}


# -------------------------------------------------------------------- connections


async def test_connections_over_the_limit_get_421_and_the_others_finish(
    serve_memory: ServeMemory,
) -> None:
    h = await serve_memory(max_connections=4)
    bodies = [BODY.replace(b"h-1@", f"h-{n}@".encode()) for n in range(4)]
    busy = []
    for body in bodies:
        client = await RawClient.connect(h.address)
        await client.hello()
        await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
        assert await client.codes(3) == [250, 250, 354]
        await client.send(body[:10])  # mid-message
        busy.append(client)

    refused: list[tuple[int, bytes, bool]] = []

    async def intruder() -> None:
        client = await RawClient.connect(h.address)
        code, lines = await client.reply()
        refused.append((code, lines[0][4:9], await client.closed()))

    async with trio.open_nursery() as nursery:
        for _ in range(12):
            nursery.start_soon(intruder)
    assert refused == [(421, b"4.3.2", True)] * 12

    for body, client in zip(bodies, busy, strict=True):
        await client.send(body[10:] + b".\r\nQUIT\r\n")
        assert await client.codes(2) == [250, 221]
    assert len(h.core.repo.rows) == 4
    late = await RawClient.connect(h.address)
    assert await late.code() == 220  # the slots came back
