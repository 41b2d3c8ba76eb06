"""Endpoint administration (``ingest endpoints …``): a URL is checked when it is
added, as it is again before every send; the secret is made here, shown once
and stored sealed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest_core.errors import IngestError
from ingest_core.events import EventType
from ingest_core.webhooks import addresses, signing

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ingest_core.webhooks.dispatcher import DispatchConfig
    from ingest_core.webhooks.model import Endpoint, WebhookStore
    from ingest_core.webhooks.secrets_box import SecretBox

ROTATION_OVERLAP_S = 24 * 3600.0  # the old secret signs beside the new one this long


class EndpointError(IngestError):
    """An endpoint request we refuse (unknown event type, unsafe URL)."""


class Endpoints:
    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox,
        config: DispatchConfig,
        lookup: Callable[[str], list[str]],
        *,
        production: bool = False,
    ) -> None:
        self.store = store
        self._box = box
        self._config = config
        self._lookup = lookup
        self._production = production

    def add(self, org_slug: str, url: str, event_types: Sequence[str] = ()) -> tuple[Endpoint, str]:
        """The new endpoint and its ``whsec_`` secret (not kept in clear anywhere).
        Raises EndpointError, UnknownTenant."""
        known = {t.value for t in EventType}
        unknown = [t for t in event_types if t not in known]
        if unknown:
            raise EndpointError(
                f"unknown event type {unknown[0]!r} — use one of {', '.join(sorted(known))}"
            )
        self._require_key()
        try:
            addresses.resolve(
                url,
                lookup=self._lookup,
                allow_private=self._config.allow_private,
                require_https=self._config.require_https,
            )
        except addresses.UnsafeEndpoint as exc:
            raise EndpointError(f"endpoint refused: {exc}") from None
        secret = signing.new_secret()
        endpoint = self.store.add_endpoint(
            org_slug, url, sorted(set(event_types)), self._box.seal(secret)
        )
        return endpoint, secret

    def rotate_secret(self, endpoint_id: str) -> tuple[Endpoint, str] | None:
        """A new secret; the old one keeps signing beside it for 24 h."""
        self._require_key()
        secret = signing.new_secret()
        endpoint = self.store.rotate_secret(endpoint_id, self._box.seal(secret), ROTATION_OVERLAP_S)
        return None if endpoint is None else (endpoint, secret)

    def _require_key(self) -> None:
        if self._production and not self._box.encrypts:
            raise EndpointError(
                "INGEST_SECRET_KEY is unset: production stores endpoint secrets only encrypted"
            )
