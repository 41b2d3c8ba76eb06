"""Endpoint secrets at rest: Fernet (``cryptography``) with a key derived from
``INGEST_SECRET_KEY``. Without a key (development only) a secret is stored as
``plain:…``; a stored ``fernet:…`` secret needs the key that wrote it."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

from ingest_core.errors import ConfigError

_PLAIN = "plain:"
_FERNET = "fernet:"


class SecretBox:
    def __init__(self, secret_key: str | None) -> None:
        self._fernet: Fernet | None = None
        if secret_key:
            derived = hmac.new(
                secret_key.encode(), b"order-ingest webhook endpoint secrets", hashlib.sha256
            ).digest()
            self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        if self._fernet is None:
            return _PLAIN + secret
        return _FERNET + self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        if stored.startswith(_PLAIN):
            return stored.removeprefix(_PLAIN)
        if self._fernet is None:
            raise ConfigError("an endpoint secret is encrypted, and INGEST_SECRET_KEY is unset")
        try:
            return self._fernet.decrypt(stored.removeprefix(_FERNET).encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "an endpoint secret does not decrypt with INGEST_SECRET_KEY (another key wrote it)"
            ) from None
