"""The first extraction step: sender authentication and the tenant's policy.

Done in the worker, not before the 250: the verdicts need DNS (SPF alone may take
ten lookups), the message is stored whatever they say, and a slow or failing
resolver must never turn into a 451 for a message we could have kept. DKIM and
SPF are judged minutes after receipt at most, well inside key-rotation times.

The verdict is computed once and stored on the row; a replay re-applies the
tenant's current policy to the stored verdict (so adding a sender to the
allow-list and replaying lets a held message through). Only a verdict that a
DNS failure took part in is computed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest_core.sender.policy import PASS, evaluate, verdict_from

if TYPE_CHECKING:
    from pathlib import Path

    from ingest_core.model import StoredMessage
    from ingest_core.ports import MessageRepository, SenderRulesSource, SenderVerifier
    from ingest_core.sender.policy import PolicyDecision

log = logging.getLogger("ingest.sender")


@dataclass(frozen=True, slots=True)
class SenderCheck:
    verifier: SenderVerifier
    rules: SenderRulesSource


def check_sender(
    row: StoredMessage, raw: Path, check: SenderCheck, repo: MessageRepository
) -> PolicyDecision:
    """What the tenant's policy makes of the stored (or, if none or temporary, a
    freshly computed and now stored) verdict. Raises StoreUnavailable (database)."""
    verdict = row.auth
    if verdict is None or verdict.temporary:
        with raw.open("rb") as source:
            auth = check.verifier.verify(
                source,
                envelope_from=row.envelope_from,
                client_address=row.client_address,
                client_helo=row.client_helo,
            )
        verdict = verdict_from(auth)
        repo.record_auth(row.id, verdict)
    decision = evaluate(check.rules.rules_for(row.org_id), verdict)
    if decision.hold and row.released_at is not None:
        decision = PASS
    log.info(
        "sender verdict",
        extra={
            "message_id": str(row.id),
            "org_id": str(row.org_id),
            "spf": verdict.spf,
            "dkim": [result for *_, result in verdict.dkim],
            "dmarc": verdict.dmarc,
            "aligned": verdict.aligned,
            "from_domain": verdict.from_domain,
            "hold": decision.hold,
            "released": row.released_at is not None,
        },
    )
    return decision
