"""Listen specs: ``fd:`` descriptors of sockets another process bound."""

from __future__ import annotations

import os

import pytest
import trio

from lmtpd.listeners import bound_address, fd_listen, inherited_fds, open_listeners


async def test_an_inherited_descriptor_is_listened_on() -> None:
    bound = await open_listeners("127.0.0.1:0")
    address = bound_address(bound)
    copy = os.dup(bound[0].socket.fileno())  # what a child inherits
    inherited = await open_listeners(fd_listen([copy]))
    assert bound_address(inherited) == address
    async with trio.open_nursery() as nursery:

        async def connect() -> None:
            host, _, port = address.rpartition(":")
            await (await trio.open_tcp_stream(host, int(port))).aclose()

        nursery.start_soon(connect)
        await (await inherited[0].accept()).aclose()
    for listener in [*bound, *inherited]:
        await listener.aclose()


def test_fd_specs() -> None:
    assert inherited_fds("fd:3,4") == (3, 4)
    assert inherited_fds("127.0.0.1:24") is None
    assert inherited_fds("unix:/run/x") is None
    with pytest.raises(ValueError, match="descriptor"):
        inherited_fds("fd:three")
