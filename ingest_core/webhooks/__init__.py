"""Signed webhooks to the order product (docs/events.md), per Standard Webhooks:
endpoints per tenant, the dispatcher that sends the outbox's deliveries, the
signing, the retry schedule and the address checks."""

from ingest_core.webhooks.addresses import Target, UnsafeEndpoint, resolve
from ingest_core.webhooks.dispatcher import DispatchConfig, Dispatcher
from ingest_core.webhooks.endpoints import ROTATION_OVERLAP_S, EndpointError, Endpoints
from ingest_core.webhooks.model import (
    AttemptResult,
    DeliveryRow,
    DeliveryStatus,
    DueDelivery,
    Endpoint,
    WebhookStore,
)
from ingest_core.webhooks.secrets_box import SecretBox

__all__ = [
    "ROTATION_OVERLAP_S",
    "AttemptResult",
    "DeliveryRow",
    "DeliveryStatus",
    "DispatchConfig",
    "Dispatcher",
    "DueDelivery",
    "Endpoint",
    "EndpointError",
    "Endpoints",
    "SecretBox",
    "Target",
    "UnsafeEndpoint",
    "WebhookStore",
    "resolve",
]
