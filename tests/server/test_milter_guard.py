"""Guard for the undocumented purepythonmilter names lmtpd.milter relies on.

``lmtpd.milter._milter_backend`` serves the library's connection handler without
its ``start_server`` (which installs signal handlers). These tests fail loudly
when an upgrade moves or changes those names, before anything reaches Postfix.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import struct

import purepythonmilter
from purepythonmilter import Continue, PurePythonMilter, RcptTo

from lmtpd.milter import _milter_backend

VERIFIED_VERSIONS = {"0.0.1"}


def test_library_version_was_verified() -> None:
    assert purepythonmilter.__version__ in VERIFIED_VERSIONS, (
        f"purepythonmilter {purepythonmilter.__version__} is not the version "
        "lmtpd.milter._milter_backend was checked against: re-check the names it "
        "uses (PurePythonMilter._get_factory, MilterServer.handle_connection, "
        "MilterServer.shutdown), run these tests, then add the version here"
    )


def test_private_names_still_have_the_shapes_we_use() -> None:
    from purepythonmilter.server.milterserver import MilterServer

    assert callable(PurePythonMilter._get_factory)
    assert "app_factory" in inspect.signature(MilterServer).parameters
    handle = inspect.signature(MilterServer.handle_connection)
    assert list(handle.parameters) == ["self", "reader", "writer"]
    assert inspect.iscoroutinefunction(MilterServer.handle_connection)
    assert inspect.iscoroutinefunction(MilterServer.shutdown)
    assert list(inspect.signature(MilterServer.shutdown).parameters) == ["self"]


async def _rcpt_hook(command: RcptTo) -> Continue:
    return Continue()


def test_backend_answers_option_negotiation_under_plain_asyncio() -> None:
    """One negotiation through the backend, without trio: tells a library change
    apart from a trio-asyncio hosting problem."""

    async def exchange() -> bytes:
        backend = _milter_backend(PurePythonMilter(name="guard", hook_on_rcpt_to=_rcpt_hook))
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=theirs)
        await backend.handle_connection(reader, writer)
        client_reader, client_writer = await asyncio.open_connection(sock=ours)
        client_writer.write(struct.pack("!IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
        await client_writer.drain()
        (length,) = struct.unpack("!I", await client_reader.readexactly(4))
        reply = await client_reader.readexactly(length)
        await backend.shutdown()
        client_writer.close()
        return reply

    reply = asyncio.run(asyncio.wait_for(exchange(), 30))
    assert reply[:1] == b"O"
    version, _actions, protocol = struct.unpack("!III", reply[1:13])
    assert version == 6
    assert not protocol & 0x8  # RCPT is asked for (SMFIP_NORCPT clear)
