"""Per-tenant sender policy: which messages are held back (QUARANTINED) instead
of being extracted. Pure functions over verdicts; no I/O.

Policies (``organization.sender_policy``):

* ``monitor`` — verdicts are recorded, nothing is held (the default);
* ``dmarc`` — the From domain must pass DMARC;
* ``allowlist`` — the From address must match one of the tenant's sender
  patterns *and* the From domain must be authenticated (an aligned SPF or DKIM
  pass). Matching the From text alone would let anyone who forges an allowed
  address through, which is the attack the policy exists to stop.

A verdict that a DNS failure took part in is *temporary*: the worker retries it
later instead of quarantining at once.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest_core.model import AuthVerdict

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ingest_core.sender.verifier import SenderAuth


class SenderPolicy(enum.StrEnum):
    MONITOR = "monitor"
    DMARC = "dmarc"
    ALLOWLIST = "allowlist"


@dataclass(frozen=True, slots=True)
class SenderRules:
    """A tenant's policy and its allow-listed sender patterns."""

    policy: SenderPolicy = SenderPolicy.MONITOR
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    hold: bool
    reason: str | None = None
    temporary: bool = False


PASS = PolicyDecision(hold=False)

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})+"
_LOCAL = r"[a-z0-9!#$%&'+/=?^_`{|}~.-]{1,64}"
_PATTERN = re.compile(rf"(?P<local>\*|{_LOCAL})@(?P<sub>\*\.)?(?P<domain>{_DOMAIN})")


class PatternError(ValueError):
    """A sender pattern that is not one of the accepted forms."""


def normalise_pattern(text: str) -> str:
    """``buyer@example.com``, ``*@example.com`` or ``*@*.example.com`` (any
    subdomain, not the domain itself), in lower case. Anything else is refused,
    so an operator cannot write a pattern that silently matches everyone."""
    pattern = text.strip().lower()
    if not pattern.isascii() or not _PATTERN.fullmatch(pattern):
        raise PatternError(
            f"invalid sender pattern {text!r}: use local@domain, *@domain or *@*.domain"
        )
    return pattern


def matches(pattern: str, address: str) -> bool:
    """Whether a lower-case address matches a normalised pattern."""
    found = _PATTERN.fullmatch(pattern)
    local, _, domain = address.rpartition("@")
    if found is None or not local:
        return False
    if found["local"] != "*" and found["local"] != local:
        return False
    if found["sub"]:
        return domain.endswith("." + found["domain"])
    return domain == found["domain"]


def allow_listed(patterns: Iterable[str], address: str | None) -> bool:
    return address is not None and any(matches(p, address) for p in patterns)


def evaluate(rules: SenderRules, verdict: AuthVerdict) -> PolicyDecision:
    """Hold the message or let it through, with the reason an operator reads."""
    if rules.policy is SenderPolicy.MONITOR:
        return PASS
    if rules.policy is SenderPolicy.DMARC:
        if verdict.dmarc == "pass":
            return PASS
        domain = verdict.from_domain or "(no single From domain)"
        return PolicyDecision(
            hold=True,
            reason=f"DMARC {verdict.dmarc} for {domain}; tenant requires DMARC pass",
            temporary=verdict.temporary,
        )
    if not allow_listed(rules.patterns, verdict.from_address):
        return PolicyDecision(hold=True, reason="From address is not on the tenant's allow-list")
    if verdict.aligned:
        return PASS
    return PolicyDecision(
        hold=True,
        reason=(
            f"From address is allow-listed but {verdict.from_domain} is not authenticated"
            " (no aligned SPF or DKIM pass)"
        ),
        temporary=verdict.temporary,
    )


def verdict_from(auth: SenderAuth) -> AuthVerdict:
    """The verifier's report (everything it found, for people and for the
    policy) as the verdict the repository stores with the message (what the
    policy and the operator views need, and whether DNS trouble took part)."""
    dkim = tuple((d.domain, d.selector, d.result) for d in auth.dkim)
    temporary = auth.dmarc == "temperror" or (
        not auth.aligned
        and (auth.spf == "temperror" or any(result == "temperror" for *_, result in dkim))
    )
    return AuthVerdict(
        spf=auth.spf,
        dkim=dkim,
        dmarc=auth.dmarc,
        dmarc_policy=auth.dmarc_policy,
        arc=auth.arc,
        from_domain=auth.from_domain,
        from_address=auth.from_address,
        aligned=auth.aligned,
        temporary=temporary,
        summary=auth.summary,
    )
