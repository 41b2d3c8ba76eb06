"""Recipient addressing: ``orders+{org_slug}@{domain}`` → slug (docs/contracts.md#lmtp).

One rule set for every channel: the milter at the SMTP edge and the LMTP server
both call :func:`route`. The tag must be ASCII *before* its case is folded:
Unicode case folding maps look-alikes onto ASCII (``"\\u212a".lower() == "k"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest_core.ports import Reason, Reply

if TYPE_CHECKING:
    from collections.abc import Sequence

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ROLE_MAILBOXES = frozenset({"postmaster", "abuse"})

UNKNOWN_DOMAIN = Reply(550, "5.1.2", "Recipient domain not handled here")
UNKNOWN_MAILBOX = Reply(550, "5.1.1", "No such mailbox")
UNKNOWN_TENANT = Reply(550, "5.1.1", "No such mailbox")
DISABLED_TENANT = Reply(550, "5.2.1", "Mailbox disabled")
DIRECTORY_UNAVAILABLE = Reply(451, "4.4.3", "Directory temporarily unavailable, try again later")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient ok")


@dataclass(frozen=True, slots=True)
class Route:
    """A syntactically valid tenant address."""

    mailbox: str
    slug: str
    domain: str


def split_address(address: str) -> tuple[str, str] | None:
    """``local@domain`` with a non-empty, unquoted local part, else None."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or local.startswith('"'):
        return None
    return local, domain


def normalise_domain(domain: str) -> str | None:
    """Lower-cased ASCII domain without a trailing dot; None for anything else."""
    if not domain.isascii():
        return None
    return domain.rstrip(".").lower()


def is_role_address(address: str, domains: Sequence[str]) -> bool:
    """``postmaster`` (bare, RFC 5321 §4.5.1) or ``postmaster@``/``abuse@`` one of our domains."""
    if address.isascii() and address.lower() == "postmaster":
        return True
    parts = split_address(address)
    if parts is None:
        return False
    local, domain = parts
    return (
        local.isascii()
        and local.lower() in ROLE_MAILBOXES
        and normalise_domain(domain) in {d.lower() for d in domains}
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A recipient refused by its address alone."""

    reply: Reply
    reason: Reason


_NO_MAILBOX = Refusal(UNKNOWN_MAILBOX, Reason.UNKNOWN_MAILBOX)


def route(address: str, *, domains: Sequence[str], mailbox: str) -> Route | Refusal:
    """Parse a recipient into a :class:`Route`, or the refusal for it."""
    parts = split_address(address)
    if parts is None:
        return _NO_MAILBOX
    local, raw_domain = parts
    domain = normalise_domain(raw_domain)
    if domain is None or domain not in {d.lower() for d in domains}:
        return Refusal(UNKNOWN_DOMAIN, Reason.WRONG_DOMAIN)
    if not local.isascii():
        return _NO_MAILBOX
    box, plus, tag = local.partition("+")
    if box.lower() != mailbox.lower() or not plus or "+" in tag:
        return _NO_MAILBOX
    slug = tag.lower()
    if not SLUG_PATTERN.fullmatch(slug):
        return _NO_MAILBOX
    return Route(mailbox=box.lower(), slug=slug, domain=domain)
