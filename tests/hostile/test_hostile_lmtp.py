"""Hostile LMTP peers against the real trio server (in-memory core).

Generated command sequences, SMTP-smuggling vectors, a megabyte command line,
ten thousand recipients, control characters and injection attempts in
addresses and XFORWARD. Slow peers and connection limits: test_hostile_slow_peers.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from lmtpd.server import INTERNAL_ERROR, LmtpServer, ServerConfig
from tests.hostile.conftest import ACME, DOMAIN, GLOBEX, MemoryCore, memory_core
from tests.server.rawclient import RawClient

if TYPE_CHECKING:
    from tests.hostile.conftest import ServeMemory

pytestmark = pytest.mark.timeout(60)

BODY = (
    b"Message-ID: <h-1@buyer.example>\r\nFrom: b@example.org\r\nSubject: PO\r\n\r\nOne crate.\r\n"
)
REPLY_LINE = re.compile(rb"[2-5][0-9][0-9][ -][\x20-\x7e]*")
ACCEPTED = re.compile(rb"250 2\.0\.0 ([0-9a-f-]{36}) (accepted|duplicate)")


def dot_stuff(data: bytes) -> bytes:
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


async def replies_until(client: RawClient, last_code: int) -> list[tuple[int, bytes]]:
    """Every reply (code, first line) up to and including one with ``last_code``."""
    seen: list[tuple[int, bytes]] = []
    with trio.fail_after(30):  # a hang guard: the expected reply never came
        while not seen or seen[-1][0] != last_code:
            code, lines = await client.reply()
            seen.append((code, lines[0]))
    return seen


# ------------------------------------------------------------ generated sessions

ADDRESSES = st.sampled_from(
    [ACME, GLOBEX, f"orders+gone@{DOMAIN}", f"orders+nobody@{DOMAIN}", "a\x00b@x",
     "orders+acme@elsewhere.example", "", "postmaster", f"ORDERS+ACME@{DOMAIN.upper()}",
     "ü@example.org"]
)  # fmt: skip
MAIL_PARAMS = st.sampled_from(
    ["", " SIZE=10", " SIZE=99999999999", " BODY=8BITMIME", " BODY=BINARYMIME", " SMTPUTF8", " X=1"]
)
FIXED_COMMANDS = st.sampled_from(
    [b"LHLO c\r\n", b"HELO c\r\n", b"EHLO c\r\n", b"DATA\r\n", b"RSET\r\n", b"NOOP\r\n",
     b"QUIT\r\n", b"VRFY x\r\n", b"HELP\r\n", b"\r\n", b"BDAT\r\n", b"BDAT x\r\n", b"DATA\n",
     b"\n.\n", b".\r\n", b"\r\n.\r\n", b"XFORWARD NAME=x ADDR=192.0.2.1 HELO=a+0D+0Ab\r\n",
     b"XFORWARD FOO=bar\r\n", b"LHLO " + b"x" * 300 + b"\r\n", BODY, b"MAIL FROM:<>\r\n"]
)  # fmt: skip
BODIES = st.one_of(st.just(BODY), st.binary(max_size=300).map(lambda b: BODY + b))


def _transaction(mail: bytes, rcpts: list[bytes], body: bytes, bdat: bool) -> bytes:
    end = (
        f"BDAT {len(body)} LAST\r\n".encode() + body
        if bdat
        else b"DATA\r\n" + dot_stuff(body) + b"\r\n.\r\n"
    )
    return mail + b"".join(rcpts) + end


TRANSACTIONS = st.builds(
    _transaction,
    st.builds(lambda a, p: f"MAIL FROM:<{a}>{p}\r\n".encode(), ADDRESSES, MAIL_PARAMS),
    st.lists(ADDRESSES.map(lambda a: f"RCPT TO:<{a}>\r\n".encode()), min_size=1, max_size=4),
    BODIES,
    st.booleans(),
)
COMMANDS = st.one_of(
    TRANSACTIONS,
    FIXED_COMMANDS,
    st.builds(lambda a, p: f"MAIL FROM:<{a}>{p}\r\n".encode(), ADDRESSES, MAIL_PARAMS),
    ADDRESSES.map(lambda a: f"RCPT TO:<{a}>\r\n".encode()),
    st.binary(max_size=120).map(lambda b: dot_stuff(b) + b"\r\n.\r\n"),
    st.builds(
        lambda data, last: f"BDAT {len(data)}{' LAST' if last else ''}\r\n".encode() + data,
        st.binary(max_size=80),
        st.booleans(),
    ),
    st.binary(max_size=40),
)


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def run_session(payload: bytes, chunk: int) -> tuple[bytes, MemoryCore]:
    """One connection over a memory stream: ``payload`` in ``chunk``-byte writes,
    then end of input; returns every byte the server sent."""
    core = memory_core()
    config = ServerConfig(
        hostname="lmtp.test", max_message_bytes=2000, max_recipients=3, max_line_length=200
    )
    server = LmtpServer(core.service, config)
    client, server_side = trio.testing.memory_stream_pair()
    received = bytearray()

    async def read_all() -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await client.receive_some(65536):
                received.extend(data)

    with trio.fail_after(60):  # a hang guard only
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle, server_side)
            nursery.start_soon(read_all)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                for start in range(0, len(payload), chunk):
                    await client.send_all(payload[start : start + chunk])
                await client.send_stream.aclose()
    return bytes(received), core


@given(program=st.lists(COMMANDS, max_size=25), chunk=st.integers(1, 512))
def test_generated_sessions_never_crash_and_store_only_what_they_acknowledge(
    program: list[bytes], chunk: int
) -> None:
    errors = ErrorLog()
    logger = logging.getLogger("ingest.lmtp")
    logger.addHandler(errors)
    try:
        received, core = trio.run(run_session, b"LHLO c\r\n" + b"".join(program), chunk)
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
    assert received.startswith(b"220 ")
    assert received.endswith(b"\r\n")
    lines = received[:-2].split(b"\r\n")
    assert all(REPLY_LINE.fullmatch(line) for line in lines), lines
    assert INTERNAL_ERROR.text.encode() not in received
    acknowledged = {m.group(1).decode() for line in lines if (m := ACCEPTED.fullmatch(line))}
    assert acknowledged == {str(row_id) for row_id in core.repo.rows}
    tenants = {core.tenants.tenants["acme"].id, core.tenants.tenants["globex"].id}
    for row in core.repo.rows.values():
        assert row.org_id in tenants
        assert len(core.store.objects[row.raw_object_key]) == row.size_bytes


# --------------------------------------------------------------------- smuggling

SMUGGLING_VECTORS = [
    b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n", b"\n..\n", b"\x00.\r\n",
    b"\r\n\x00.\r\n",
]  # fmt: skip


@pytest.mark.parametrize("vector", SMUGGLING_VECTORS)
async def test_smuggling_vectors_never_end_or_split_a_message(
    serve_memory: ServeMemory, vector: bytes
) -> None:
    h = await serve_memory()
    smuggled = (
        b"MAIL FROM:<evil@attacker.example>\r\n"
        + f"RCPT TO:<{GLOBEX}>\r\nDATA\r\nSubject: smuggled\r\n\r\nfree goods\r\n".encode()
    )
    content = BODY + b"hello" + vector + smuggled
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]
    await client.send(dot_stuff(content) + b".\r\nQUIT\r\n")
    assert await client.codes(2) == [250, 221]
    [row] = h.core.repo.rows.values()
    assert row.org_id == h.core.tenants.tenants["acme"].id
    assert h.core.store.objects[row.raw_object_key] == content


# ------------------------------------------------------------------------ limits


async def test_megabyte_command_line_is_refused_and_the_session_goes_on(
    serve_memory: ServeMemory,
) -> None:
    h = await serve_memory()
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(b"MAIL FROM:<" + b"a" * (1 << 20) + b"@example.org>\r\nNOOP\r\n")
    code, lines = await client.reply()
    assert (code, lines[0][4:9]) == (500, b"5.5.2")
    assert await client.code() == 250
    await client.send(f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode())
    assert await client.codes(3) == [250, 250, 354]


async def read_lines(client: RawClient, count: int) -> list[bytes]:
    """``count`` reply lines, read in bulk (RawClient.line is slow for 10,000)."""
    while client.buffer.count(b"\r\n") < count:
        chunk = await client.stream.receive_some(65536)
        assert chunk, "connection closed early"
        client.buffer += chunk
    data = bytes(client.buffer)
    end = 0
    for _ in range(count):
        end = data.index(b"\r\n", end) + 2
    del client.buffer[:end]
    return data[:end].split(b"\r\n")[:-1]


async def test_ten_thousand_recipients(serve_memory: ServeMemory) -> None:
    h = await serve_memory()  # the default limit: 1000 recipients
    client = await RawClient.connect(h.address)
    await client.hello()
    rcpts = b"".join(f"RCPT TO:<{(ACME, GLOBEX)[n % 2]}>\r\n".encode() for n in range(10_000))
    await client.send(b"MAIL FROM:<b@example.org>\r\n" + rcpts + b"DATA\r\n")
    lines = await read_lines(client, 10_002)
    assert lines[0].startswith(b"250 ")
    assert [line[:9] for line in lines[1:1001]] == [b"250 2.1.5"] * 1000
    assert [line[:9] for line in lines[1001:10_001]] == [b"452 4.5.3"] * 9000
    assert lines[10_001].startswith(b"354")
    await client.send(BODY + b".\r\n")
    finals = await read_lines(client, 1000)
    ids = [ACCEPTED.fullmatch(line).group(1) for line in finals]  # type: ignore[union-attr]
    assert len(set(ids[0::2])) == len(set(ids[1::2])) == 1  # one row per tenant
    assert ids[0] != ids[1]
    assert len(h.core.repo.rows) == 2


# ----------------------------------------------------------- injection attempts

RCPT_INJECTIONS = [
    f"RCPT TO:<{ACME}\x00>\r\n".encode(),
    f"RCPT TO:<orders+acme\x00@{DOMAIN}>\r\n".encode(),
    f"RCPT TO:<orders+acme\r\n@{DOMAIN}>\r\n".encode(),
    f"RCPT TO:<{ACME}>\rRCPT TO:<{GLOBEX}>\r\n".encode(),
    f"RCPT TO:<orders+acme%0D%0ABcc:evil@{DOMAIN}>\r\n".encode(),
    f'RCPT TO:<"orders+acme\\\r\\\nBcc: x"@{DOMAIN}>\r\n'.encode(),
    f"RCPT TO:<orders+acme\tBcc:x@{DOMAIN}>\r\n".encode(),
    f"RCPT TO:<{ACME}\r\nBcc: evil@attacker.example>\r\n".encode(),
    f"RCPT TO:<orders+acme@{DOMAIN}> NOTIFY=\x00\r\n".encode(),
]


@pytest.mark.parametrize("command", RCPT_INJECTIONS)
async def test_control_characters_in_recipients_never_deliver(
    serve_memory: ServeMemory, command: bytes
) -> None:
    h = await serve_memory()
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(b"MAIL FROM:<b@example.org>\r\n" + command + b"DATA\r\nQUIT\r\n")
    replies = await replies_until(client, 221)
    codes = [code for code, _ in replies]
    assert codes[0] == 250
    assert 354 not in codes
    assert codes.count(250) == 1, replies  # only MAIL FROM
    assert h.core.repo.rows == {}


async def test_a_line_with_a_bare_lf_is_one_refused_command(serve_memory: ServeMemory) -> None:
    """RFC 5321 §2.3.8: only CRLF ends a line. A peer (or a proxy in front) that
    sees one line must not have us see two: that is command-level smuggling."""
    h = await serve_memory()
    client = await RawClient.connect(h.address)
    await client.hello()
    line = f"RCPT TO:<{ACME}>\nRCPT TO:<{GLOBEX}>\r\n".encode()
    await client.send(b"MAIL FROM:<b@example.org>\r\n" + line + b"NOOP\r\n")
    replies = await replies_until(client, 250)  # MAIL
    replies += await replies_until(client, 250)  # the NOOP, unless the smuggled RCPT came first
    assert [code for code, _ in replies] == [250, 500, 250]
    assert replies[-1][1].startswith(b"250 2.0.0")  # that last 250 is the NOOP's


MAIL_INJECTIONS = [
    b"MAIL FROM:<a\x00@example.org>\r\n",
    b"MAIL FROM:<a\r@example.org>\r\n",
    b"MAIL FROM:<a\n@example.org>\r\n",
    b'MAIL FROM:<"a\r\nBcc: evil"@example.org>\r\n',
    b"MAIL FROM:<a@example.org> BODY=8BITMIME\x00\r\n",
]


@pytest.mark.parametrize("command", MAIL_INJECTIONS)
async def test_control_characters_in_senders_are_refused(
    serve_memory: ServeMemory, command: bytes
) -> None:
    h = await serve_memory()
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(command + f"RCPT TO:<{ACME}>\r\nDATA\r\nQUIT\r\n".encode())
    replies = await replies_until(client, 221)
    assert all(code >= 500 for code, _ in replies[:-1]), replies
    assert h.core.repo.rows == {}


async def test_xforward_values_cannot_inject_lines_into_rows(serve_memory: ServeMemory) -> None:
    h = await serve_memory()
    client = await RawClient.connect(h.address)
    await client.hello()
    await client.send(
        b"XFORWARD NAME=evil+0D+0ABcc:+20x ADDR=192.0.2.1 HELO=h+00+0Ax+1B[31m\r\n"
        b"XFORWARD IDENT=Q1+0D+0AReceived:+20forged\r\n"
        + f"MAIL FROM:<b@example.org>\r\nRCPT TO:<{ACME}>\r\nDATA\r\n".encode()
    )
    assert await client.codes(5) == [250, 250, 250, 250, 354]
    await client.send(BODY + b".\r\n")
    assert await client.code() == 250
    [row] = h.core.repo.rows.values()
    for value in (row.client_helo, row.postfix_queue_id, row.client_address):
        assert value is not None
        assert value.isprintable(), value
    assert h.core.store.objects[row.raw_object_key] == BODY  # nothing added to the raw bytes
