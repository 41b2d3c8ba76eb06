"""Opening listeners for ``host:port``, ``[v6]:port`` or ``unix:/path``, and for
``fd:3,4``: listening sockets a parent process bound and passed down (the serving
processes of ``ingest serve --processes N`` accept on their supervisor's sockets)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket as stdlib_socket
import stat
from typing import TYPE_CHECKING

import trio

from ingest_core.settings import Network

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Network",
    "bound_address",
    "fd_listen",
    "format_address",
    "inherited_fds",
    "open_listeners",
    "parse_listen",
    "peer_allowed",
]


def parse_listen(spec: str) -> tuple[str, int] | str:
    """``("host", port)`` for TCP, or the path of a unix socket."""
    if spec.startswith("unix:"):
        path = spec[len("unix:") :]
        if not path:
            raise ValueError("unix: listen address needs a path")
        return path
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be host:port or unix:/path, not {spec!r}")
    host = host.strip("[]")
    if host:
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
    return host or "0.0.0.0", int(port)


def fd_listen(fds: Sequence[int]) -> str:
    """The listen spec of inherited descriptors: ``fd:3,4``."""
    return "fd:" + ",".join(str(fd) for fd in fds)


def inherited_fds(spec: str) -> tuple[int, ...] | None:
    """The descriptors of an ``fd:3,4`` spec, or None for any other spec."""
    if not spec.startswith("fd:"):
        return None
    parts = spec[len("fd:") :].split(",")
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"fd: listen spec needs descriptor numbers, not {spec!r}")
    return tuple(int(part) for part in parts)


async def open_listeners(spec: str) -> list[trio.SocketListener]:
    fds = inherited_fds(spec)
    if fds is not None:
        # The socket type and family are read from each descriptor; SocketListener
        # refuses one that is not listening.
        return [trio.SocketListener(trio.socket.socket(fileno=fd)) for fd in fds]
    target = parse_listen(spec)
    if isinstance(target, str):
        return [await _open_unix_listener(target)]
    host, port = target
    return await trio.open_tcp_listeners(port, host=host, backlog=1024)


async def _open_unix_listener(path: str) -> trio.SocketListener:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a stale socket from an earlier run
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        os.chmod(path, 0o660)
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


def bound_address(listeners: list[trio.SocketListener]) -> str:
    """``host:port`` (or ``unix:/path``) of the first listener, for logs and tests."""
    name = listeners[0].socket.getsockname()
    if isinstance(name, str):
        return f"unix:{name}"
    return format_address(name[0], name[1])


def format_address(host: str, port: int) -> str:
    """``host:port``, or ``[v6]:port`` for an IPv6 host: what ``parse_listen`` reads."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_allowed(peer: object, allow_from: Sequence[Network]) -> bool:
    """Unix-socket peers are trusted (file permissions guard them); TCP peers by CIDR."""
    if isinstance(peer, str | bytes):
        return True
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allow_from)
