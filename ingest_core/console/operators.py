"""Console operators: a name and an argon2id password hash (argon2-cffi).

``ingest operators add`` creates one; the console's sign-in calls
:meth:`Operators.authenticate`. A name that does not exist costs one hash
verification all the same, so timing does not tell names apart. A hash made with
weaker parameters than today's is replaced at the next successful sign-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ingest_core.errors import IngestError

if TYPE_CHECKING:
    from datetime import datetime

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 hashes any length; a megabyte "password" is a denial of service


class OperatorError(IngestError):
    """A name or password that cannot be used, or a name already taken."""


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    name: str
    password_hash: str
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None


class OperatorRepository(Protocol):
    def insert(self, name: str, password_hash: str) -> bool:
        """False when the name is taken. Raises StoreUnavailable."""
        ...

    def find(self, name: str) -> OperatorRecord | None: ...

    def list(self) -> list[OperatorRecord]: ...

    def signed_in(self, name: str, new_hash: str | None) -> None:
        """Record a sign-in (and a rehashed password)."""
        ...

    def set_disabled(self, name: str, disabled: bool) -> bool:
        """False when there is no such operator."""
        ...


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise OperatorError(
            f"operator name {name!r}: 1-64 characters, lower-case letters, digits and . _ -,"
            " starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise OperatorError(f"a console password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise OperatorError(f"a console password has at most {MAX_PASSWORD} characters")
    return password


class Operators:
    def __init__(
        self, repository: OperatorRepository, hasher: PasswordHasher | None = None
    ) -> None:
        self.repository = repository
        self.hasher = hasher or PasswordHasher()
        self._dummy = self.hasher.hash("no such operator: compared all the same")

    def add(self, name: str, password: str) -> None:
        """Raises OperatorError for a bad name or password, or a name in use."""
        digest = self.hasher.hash(check_password(password))
        if not self.repository.insert(check_name(name), digest):
            raise OperatorError(f"operator {name!r} exists already")

    def list(self) -> list[OperatorRecord]:
        return self.repository.list()

    def set_disabled(self, name: str, disabled: bool) -> bool:
        return self.repository.set_disabled(name, disabled)

    def authenticate(self, name: str, password: str) -> str | None:
        """The operator's name when the password is theirs and they are not
        disabled, else None."""
        if len(password) > MAX_PASSWORD or not NAME.fullmatch(name):
            return None
        record = self.repository.find(name)
        stored = record.password_hash if record is not None else self._dummy
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if record is None or record.disabled_at is not None:
            return None
        new_hash = None
        if self.hasher.check_needs_rehash(stored):
            new_hash = self.hasher.hash(password)
        self.repository.signed_in(name, new_hash)
        return record.name
