"""The worker step: classify the stored message, record the verdict on its row,
and say whether the tenant's policy holds it. Classified again on every
attempt (and replay), so a better classifier applies to old rows as well."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest_core.automated.classify import classify
from ingest_core.automated.policy import hold_reason

if TYPE_CHECKING:
    from pathlib import Path

    from ingest_core.mime import MimeLimits
    from ingest_core.model import StoredMessage
    from ingest_core.ports import AutomatedPolicySource, MessageRepository

log = logging.getLogger("ingest.automated")


@dataclass(frozen=True, slots=True)
class AutomatedCheck:
    policies: AutomatedPolicySource


def check_automated(
    row: StoredMessage,
    raw: Path,
    check: AutomatedCheck,
    repo: MessageRepository,
    limits: MimeLimits,
) -> str | None:
    """The hold reason, or None. Raises StoreUnavailable (database)."""
    with raw.open("rb") as source:
        verdict = classify(source, row.envelope_from, limits)
    repo.record_automated(row.id, verdict)
    if verdict.kind is None:
        return None
    reason = hold_reason(check.policies.policy_for(row.org_id), verdict)
    log.info(
        "automated mail",
        extra={
            "message_id": str(row.id),
            "org_id": str(row.org_id),
            "kind": verdict.kind.value,
            "reason": verdict.reason,
            "hold": reason is not None,
            "released": row.released_at is not None,
        },
    )
    return reason
