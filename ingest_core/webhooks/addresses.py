"""Which endpoint URLs we send to (server-side request forgery, docs/events.md).

A URL is resolved once, through our resolver; every address it resolves to
must be public (not loopback, private, link-local, CGNAT, multicast, reserved,
or an IPv4-mapped form of one: the cloud metadata addresses are link-local or
private), and the request then connects to the address that was checked, so a
second lookup cannot rebind the name. ``allow_private`` (development, tests)
lets any address through; ``require_https`` refuses plain ``http``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ingest_core.errors import DnsTemporaryError, IngestError

if TYPE_CHECKING:
    from collections.abc import Callable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeEndpoint(IngestError):
    """An endpoint URL we refuse to send to; the text says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: the URL's parts and the address checked for it."""

    scheme: str
    host: str
    port: int
    path: str  # with the query
    address: str


def refusal(address: Address) -> str | None:
    """Why ``address`` is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        mapped = refusal(address.ipv4_mapped)
        return f"IPv4-mapped {mapped}" if mapped else None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address in ipaddress.ip_network("100.64.0.0/10"):
        return "a CGNAT address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "not a unicast address"
    if address.is_private or not address.is_global:
        return "a private address"
    return None


def check_url(url: str, *, require_https: bool) -> tuple[str, str, int, str]:
    """The URL's scheme, host, port and path, or UnsafeEndpoint."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeEndpoint(f"{url!r} is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeEndpoint(f"{url!r}: only http and https URLs are sent to")
    if require_https and scheme != "https":
        raise UnsafeEndpoint(f"{url!r}: https is required in production")
    if not parts.hostname:
        raise UnsafeEndpoint(f"{url!r} names no host")
    if parts.username or parts.password:
        raise UnsafeEndpoint(f"{url!r}: credentials in the URL are refused")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def resolve(
    url: str,
    *,
    lookup: Callable[[str], list[str]],
    allow_private: bool,
    require_https: bool,
) -> Target:
    """The target of ``url`` with the one address to connect to. Raises
    UnsafeEndpoint when the URL or any address it resolves to is refused, or the
    name does not resolve."""
    scheme, host, port, path = check_url(url, require_https=require_https)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            found = [ipaddress.ip_address(text) for text in lookup(host)]
        except DnsTemporaryError as exc:
            raise UnsafeEndpoint(f"{host}: does not resolve now ({exc})") from None
        if not found:
            raise UnsafeEndpoint(f"{host}: resolves to no address")
    if not allow_private:
        for address in found:
            reason = refusal(address)
            if reason is not None:
                raise UnsafeEndpoint(
                    f"{host} resolves to {address}, {reason}; endpoints must be public"
                    " (INGEST_WEBHOOK_ALLOW_PRIVATE=true allows it in development)"
                )
    return Target(scheme, host, port, path, str(found[0]))
