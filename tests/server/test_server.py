"""The trio LMTP server over real sockets (TCP and unix), with the in-memory core."""

from __future__ import annotations

import hashlib
import os
import smtplib
import struct

import pytest
import trio

from lmtpd.session import Session
from tests.server.conftest import DOMAIN
from tests.server.rawclient import RawClient

ACME = f"orders+acme@{DOMAIN}"
GLOBEX = f"orders+globex@{DOMAIN}"
BODY = (
    b"Message-ID: <order-1@buyer.example>\r\n"
    b"From: buyer@example.org\r\nSubject: PO\r\n\r\nOne crate.\r\n"
)


def order(n: int = 1) -> bytes:
    return BODY.replace(b"order-1", f"order-{n}".encode())


def lmtp_send(host: str, port: int, recipients: list[str], data: bytes) -> list[tuple[int, bytes]]:
    """Deliver with Python's smtplib.LMTP: one reply per recipient after DATA."""
    with smtplib.LMTP(host, port, timeout=30) as client:
        client.ehlo()
        client.mail("buyer@example.org")
        accepted = [r for r in recipients if client.rcpt(r)[0] == 250]
        code, _ = client.docmd("DATA")
        assert code == 354
        client.send(data + b".\r\n")
        return [client.getreply() for _ in accepted]


async def test_smtplib_delivery_stores_the_exact_bytes(start_server) -> None:
    h = await start_server()
    host, port = h.host_port
    [(code, text)] = await trio.to_thread.run_sync(lmtp_send, host, port, [ACME], order())
    assert code == 250
    assert text.startswith(b"2.0.0 ")
    [row] = h.repo.rows.values()
    assert str(row.id).encode() in text
    assert h.store.objects[row.raw_object_key] == order()
    # the job is enqueued after the reply (the row is what keeps the message)
    with trio.fail_after(10):
        while not h.queue.jobs:  # noqa: ASYNC110 (a fake with no event to wait on)
            await trio.sleep(0.01)
    assert h.queue.jobs == [row.id]


async def test_two_recipients_get_their_own_replies(start_server) -> None:
    h = await start_server()
    h.store.failing_orgs.add(h.tenants.tenants["globex"].id)
    host, port = h.host_port
    replies = await trio.to_thread.run_sync(lmtp_send, host, port, [ACME, GLOBEX], order())
    assert [code for code, _ in replies] == [250, 451]
    assert replies[1][1].startswith(b"4.3.0")
    assert len(h.repo.rows) == 1


async def test_pipelined_transaction_replies_in_order(start_server) -> None:
    h = await start_server()
    client = await RawClient.connect(h.address)
    assert await client.code() == 220
    await client.send(
        b"LHLO c\r\nMAIL FROM:<b@example.org>\r\n"
        + f"RCPT TO:<{ACME}>\r\nRCPT TO:<orders+nobody@{DOMAIN}>\r\n".encode()
        + f"RCPT TO:<orders+gone@{DOMAIN}>\r\nRCPT TO:<{GLOBEX}>\r\nDATA\r\n".encode()
    )
    code, lines = await client.reply()
    assert code == 250
    assert any(b"PIPELINING" in line for line in lines)
    assert any(b"CHUNKING" in line for line in lines)
    assert await client.codes(6) == [250, 250, 550, 550, 250, 354]
    await client.send(order() + b".\r\nQUIT\r\n")
    assert await client.codes(3) == [250, 250, 221]
    assert len(h.repo.rows) == 2


async def test_bdat_chunks(start_server) -> None:
    h = await start_server()
    client = await RawClient.connect(h.address)
    await client.hello()
    data = order() + b"..leading dots stay\r\n.\r\n"
    first, rest = data[:10], data[10:]
    await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\n".encode())
    assert await client.codes(2) == [250, 250]
    await client.send(f"BDAT {len(first)}\r\n".encode() + first)
    assert await client.code() == 250
    await client.send(f"BDAT {len(rest)} LAST\r\n".encode() + rest)
    assert await client.code() == 250
    [row] = h.repo.rows.values()
    assert h.store.objects[row.raw_object_key] == data


async def test_smuggling_vectors_are_content(start_server) -> None:
    h = await start_server()
    client = await RawClient.connect(h.address)
    await client.hello()
    smuggled = (
        b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@x>\r\na\r\n.\nRCPT TO:<x>\r\nb\n.\r\nDATA\r\n"
    )
    await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]
    await client.send(smuggled + b".\r\n")
    assert await client.code() == 250
    [row] = h.repo.rows.values()
    assert h.store.objects[row.raw_object_key] == smuggled


async def test_fifty_megabyte_message_streams_to_a_spool_file(start_server, tmp_path) -> None:
    h = await start_server(max_message_bytes=60 * 2**20, spool_dir=tmp_path)
    chunk = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + chunk * (50 * 2**20 // len(chunk))
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(
        f"MAIL FROM:<b@example.org> SIZE={len(body)}\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode()
    )
    assert await client.codes(3) == [250, 250, 354]
    view = memoryview(body)
    for start in range(0, len(body), 1 << 20):
        await client.send(view[start : start + (1 << 20)])
    await client.send(b".\r\n")
    assert await client.code() == 250
    [row] = h.repo.rows.values()
    assert row.sha256 == hashlib.sha256(body).hexdigest()
    assert row.size_bytes == len(body)
    assert os.listdir(tmp_path) == []  # the spool file is gone after the reply


async def test_oversize_message_gets_552_and_nothing_stored(start_server) -> None:
    h = await start_server(max_message_bytes=1000)
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(b"MAIL FROM:<b@example.org> SIZE=5000\r\n")
    assert await client.code() == 552
    await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]
    await client.send(b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n.\r\nNOOP\r\n")
    code, lines = await client.reply()
    assert (code, lines[0][4:9]) == (552, b"5.3.4")
    assert await client.code() == 250  # the session goes on
    assert h.repo.rows == {}


async def test_unix_socket_listener(start_server, tmp_path) -> None:
    path = tmp_path / "lmtp.sock"
    h = await start_server(listen=f"unix:{path}")
    assert h.address == f"unix:{path}"
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(f"MAIL FROM:<>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]
    await client.send(order() + b".\r\n")
    assert await client.code() == 250


async def test_hundred_concurrent_connections_all_succeed(start_server) -> None:
    h = await start_server()
    codes: list[int] = []

    async def deliver(n: int) -> None:
        client = await RawClient.connect(h.address)
        await client.hello()
        await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
        assert await client.codes(3) == [250, 250, 354]
        await client.send(order(n) + b".\r\nQUIT\r\n")
        codes.append(await client.code())
        await client.aclose()

    async with trio.open_nursery() as nursery:
        for n in range(100):
            nursery.start_soon(deliver, n)
    assert codes == [250] * 100
    assert len(h.repo.rows) == 100


async def test_peer_outside_allow_list_is_refused(start_server) -> None:
    import ipaddress

    h = await start_server(allow_from=(ipaddress.ip_network("192.0.2.0/24"),))
    client = await RawClient.connect(h.address)
    code, lines = await client.reply()
    assert (code, lines[0][4:9]) == (554, b"5.7.1")
    assert await client.closed()


async def test_connection_limit_gives_421_without_disturbing_others(start_server) -> None:
    h = await start_server(max_connections=2)
    first = await RawClient.connect(h.address)
    await first.hello()
    second = await RawClient.connect(h.address)
    await second.hello()
    third = await RawClient.connect(h.address)
    code, lines = await third.reply()
    assert (code, lines[0][4:9]) == (421, b"4.3.2")
    await first.send(b"NOOP\r\n")
    assert await first.code() == 250


async def test_command_timeout_gives_421(start_server, autojump_clock) -> None:
    h = await start_server(command_timeout_s=30)
    client = await RawClient.connect(h.address)
    await client.hello()
    await trio.sleep(31)
    code, lines = await client.reply()
    assert (code, lines[0][4:9]) == (421, b"4.4.2")
    assert await client.closed()


async def test_replies_to_a_slow_reader_stay_whole_and_in_order(
    start_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies go straight to the socket when it takes them; when it takes only
    part (a peer that reads slowly), the rest follows through the stream. The
    peer gets every reply whole, in order, none lost or cut into another."""
    sent_now: list[tuple[int, int]] = []  # (written at once, reply bytes)
    original = Session._send_now

    def recording(self: Session, out: bytes) -> int:
        written = original(self, out)
        sent_now.append((written, len(out)))
        return written

    monkeypatch.setattr(Session, "_send_now", recording)
    h = await start_server()
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(b"LHLO peer.example\r\n")
    assert await client.code() == 250
    count = 100_000
    received = bytearray(client.buffer)

    async def read_slowly() -> None:
        while received.count(b"\r\n") < count:
            chunk = await client.stream.receive_some(4096)
            assert chunk, "closed early"
            received.extend(chunk)
            await trio.sleep(0.0005)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_slowly)
            await client.send(b"NOOP\r\n" * count)
    lines = bytes(received).split(b"\r\n")
    assert lines[-1] == b""
    assert len(lines) - 1 == count
    assert set(lines[:-1]) == {lines[0]}
    assert lines[0].startswith(b"250 ")
    assert any(written < size for written, size in sent_now)  # the stream finished some


async def test_slow_data_hits_the_data_timeout(start_server, autojump_clock) -> None:
    h = await start_server(data_timeout_s=10, command_timeout_s=1000)
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(f"MAIL FROM:<>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]
    for byte in b"Subject: slow":
        await client.send(bytes([byte]))
        await trio.sleep(5)  # a byte every five seconds keeps it alive...
    await trio.sleep(11)  # ...until the gap exceeds the idle limit
    assert await client.code() == 421
    assert h.repo.rows == {}


async def test_graceful_shutdown_finishes_in_flight_and_refuses_idle(start_server) -> None:
    h = await start_server()
    idle = await RawClient.connect(h.address)
    await idle.hello()
    busy = await RawClient.connect(h.address)
    await busy.hello()
    await busy.send(f"MAIL FROM:<>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await busy.codes(3) == [250, 250, 354]
    h.server.shutdown()
    assert await idle.code() == 421
    await busy.send(order() + b".\r\n")
    assert await busy.code() == 250
    assert len(h.repo.rows) == 1


async def test_accept_loop_survives_running_out_of_descriptors(
    start_server, nursery, autojump_clock
) -> None:
    import errno
    import functools

    import trio.testing

    h = await start_server()
    client_side, server_side = trio.testing.memory_stream_pair()

    class ExhaustedListener(trio.abc.Listener):
        calls = 0

        async def aclose(self):
            pass

        async def accept(self):
            self.calls += 1
            if self.calls <= 2:
                raise OSError(errno.EMFILE, "Too many open files")
            if self.calls == 3:
                return server_side
            await trio.sleep_forever()

    listener = ExhaustedListener()
    # the server serves its listeners with trio.serve_listeners and its own handler
    nursery.start_soon(
        functools.partial(
            trio.serve_listeners, h.server.handle, [listener], handler_nursery=nursery
        )
    )
    client = RawClient(client_side)
    assert await client.code() == 220
    assert listener.calls >= 3


async def test_a_peer_sending_garbage_is_cut_off_after_twenty_errors(start_server) -> None:
    h = await start_server()
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(b"GARBAGE\r\n" * 25)
    assert await client.codes(20) == [500] * 20
    code, lines = await client.reply()
    assert (code, lines[0][4:9]) == (421, b"4.7.0")
    assert await client.closed()


async def test_a_peer_resetting_mid_session_ends_it_quietly(start_server, caplog) -> None:
    """A reset arrives as a failed read of the socket's descriptor: that session
    ends without an error line and the server goes on serving."""
    h = await start_server()
    host, port = h.host_port
    for stage in (b"", b"MAIL FROM:<a@b.example>\r\nRCPT TO:<" + ACME.encode() + b">\r\nDATA\r\n"):
        sock = trio.socket.socket()
        await sock.connect((host, port))
        client = RawClient(trio.SocketStream(sock))
        await client.hello()
        if stage:
            await client.send(stage)
            assert await client.codes(3) == [250, 250, 354]
            await client.send(b"Subject: half\r\n\r\nhalf a mess")
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # linger 0: a reset instead of a FIN
    [(code, _)] = await trio.to_thread.run_sync(lmtp_send, host, port, [ACME], order())
    assert code == 250
    assert len(h.repo.rows) == 1  # the half message was not stored
    assert not [r for r in caplog.records if r.levelno >= 40], caplog.text
