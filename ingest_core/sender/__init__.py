"""Sender authentication and policy: ``verifier`` computes SPF/DKIM/DMARC verdicts
(with ``dkim``, ``dmarc`` and ``dns``), ``policy`` (pure) decides hold or pass,
``gate`` is the worker step that joins them to the repository.

One entrance for the rest of the code: import from ``ingest_core.sender``, not
from the modules behind it.
"""

from ingest_core.sender.dns import DnsResolver, parse_nameserver
from ingest_core.sender.gate import SenderCheck, check_sender
from ingest_core.sender.policy import (
    PASS,
    PolicyDecision,
    SenderPolicy,
    SenderRules,
    normalise_pattern,
)
from ingest_core.sender.verifier import DkimResult, DnsSenderVerifier, SenderAuth, build_verifier

__all__ = [
    "PASS",
    "DkimResult",
    "DnsResolver",
    "DnsSenderVerifier",
    "PolicyDecision",
    "SenderAuth",
    "SenderCheck",
    "SenderPolicy",
    "SenderRules",
    "build_verifier",
    "check_sender",
    "normalise_pattern",
    "parse_nameserver",
]
