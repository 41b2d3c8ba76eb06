"""API tokens: ``ing_<token id>_<secret>``.

The token id is public (it names the row); the secret is stored only as its
SHA-256 and compared in constant time. A token belongs to one tenant, or is an
admin token (no tenant; the provisioning endpoints). ``last_used`` is written at
most once a minute per token, so authenticated reads are not writes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ingest_core.errors import TenantError

if TYPE_CHECKING:
    import uuid

    from ingest_core.ports import TokenRepository

PREFIX = "ing"
_TOKEN = re.compile(r"ing_([0-9a-f]{16})_([0-9a-f]{64})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}")
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token (no secret): what ``list`` shows and authentication reads."""

    token_id: str
    name: str
    org_id: uuid.UUID | None  # None: an admin token
    org_slug: str | None
    tenant_active: bool
    secret_sha256: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def admin(self) -> bool:
        return self.org_id is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: one tenant, or the administrator."""

    token_id: str
    org_id: uuid.UUID | None
    org_slug: str | None
    name: str = ""

    @property
    def admin(self) -> bool:
        return self.org_id is None

    @property
    def actor(self) -> str:
        """Who did it, for the audit log."""
        return f"token {self.name} ({self.token_id})"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    record: TokenRecord
    token: str  # shown once


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token, else None."""
    match = _TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise TenantError(
            "a token name is 1-64 characters: letters, digits, space and . _ : -,"
            " starting with a letter or digit"
        )
    return name


class Tokens:
    """Issue, list, revoke and check tokens over a :class:`TokenRepository`."""

    def __init__(self, repository: TokenRepository) -> None:
        self.repository = repository

    def issue(self, org_slug: str | None, name: str) -> IssuedToken:
        """A new token for tenant ``org_slug`` (None: an admin token). Raises
        TenantError for an unknown tenant or a name already in use."""
        token_id, secret = secrets.token_hex(8), secrets.token_hex(32)
        record = self.repository.insert(token_id, org_slug, check_name(name), digest(secret))
        return IssuedToken(record, f"{PREFIX}_{token_id}_{secret}")

    def list(self, org_slug: str | None) -> list[TokenRecord]:
        return self.repository.list(org_slug)

    def revoke(self, org_slug: str | None, name: str) -> TokenRecord | None:
        """The revoked token, or None when no live token has that name."""
        return self.repository.revoke(org_slug, name.strip())

    def authenticate(self, token: str, now: datetime | None = None) -> Principal | None:
        """The principal of a valid, live token of an active tenant, else None."""
        parsed = parse(token)
        if parsed is None:
            return None
        token_id, secret = parsed
        record = self.repository.find(token_id)
        # Compared even for a missing row, so a wrong id costs the same as a wrong secret.
        stored = record.secret_sha256 if record is not None else "0" * 64
        if not hmac.compare_digest(stored, digest(secret)) or record is None:
            return None
        if record.revoked_at is not None or (not record.admin and not record.tenant_active):
            return None
        now = now or datetime.now(UTC)
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_EVERY:
            self.repository.touch(token_id)
        return Principal(record.token_id, record.org_id, record.org_slug, record.name)
