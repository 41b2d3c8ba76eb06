"""Per-tenant, per-kind policy for automated mail: extract it or hold it
(QUARANTINED with the reason). Pure; the defaults are also the database's
(migration 0004) for tenants with no row of their own."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ingest_core.model import AutomatedKind, AutomatedVerdict


class AutomatedAction(enum.StrEnum):
    EXTRACT = "extract"
    HOLD = "hold"


DEFAULT_ACTIONS: dict[AutomatedKind, AutomatedAction] = {
    AutomatedKind.AUTO_REPLY: AutomatedAction.HOLD,
    AutomatedKind.BOUNCE: AutomatedAction.HOLD,
    AutomatedKind.FEEDBACK_REPORT: AutomatedAction.HOLD,
    AutomatedKind.LIST: AutomatedAction.HOLD,
    # ERPs send real orders with Precedence: bulk: flagged, still extracted.
    AutomatedKind.BULK: AutomatedAction.EXTRACT,
}


@dataclass(frozen=True, slots=True)
class AutomatedPolicy:
    """A tenant's actions by kind; a kind not listed takes its default."""

    actions: tuple[tuple[AutomatedKind, AutomatedAction], ...] = field(default=())

    def action(self, kind: AutomatedKind) -> AutomatedAction:
        return dict(self.actions).get(kind, DEFAULT_ACTIONS[kind])

    def table(self) -> dict[AutomatedKind, AutomatedAction]:
        """Every kind with its action, in the order of ``AutomatedKind``."""
        return {kind: self.action(kind) for kind in AutomatedKind}


def hold_reason(policy: AutomatedPolicy, verdict: AutomatedVerdict) -> str | None:
    """Why the tenant's policy holds this message, or None to extract it."""
    if verdict.kind is None or policy.action(verdict.kind) is AutomatedAction.EXTRACT:
        return None
    kind = verdict.kind.value
    return f"automated mail, {kind} ({verdict.reason}); the tenant's policy holds {kind}"
