"""Standard Webhooks signatures (https://www.standardwebhooks.com/): the
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers, the
last ``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` with each live
secret (two during a rotation), separated by spaces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh ``whsec_`` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of the message with ``secret``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secrets_: list[str], event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one request, signed with every secret in ``secrets_``."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, event_id, timestamp, body) for secret in secrets_
        ),
    }
