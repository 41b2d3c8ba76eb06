"""The sender step of extraction against fakes: verdicts stored, policy applied,
QUARANTINED instead of extracted, release, DNS failures retried first."""

from __future__ import annotations

import uuid

import pytest

from ingest_core.adapters.memory import (
    MemorySenderRules,
)
from ingest_core.bootstrap import extraction_config
from ingest_core.extraction import Outcome, extract_message
from ingest_core.model import MessageStatus
from ingest_core.sender import SenderCheck, SenderPolicy, SenderRules
from tests.core.test_extraction import _received


class _Dkim:
    def __init__(self, result: str) -> None:
        self.domain, self.selector, self.result = "customer.example", "s1", result


class _Auth:
    def __init__(self, dmarc: str, aligned: bool, *, spf: str = "pass") -> None:
        self.spf, self.dmarc, self.aligned = spf, dmarc, aligned
        self.dkim = (_Dkim("pass" if aligned else "fail"),)
        self.dmarc_policy, self.arc = "reject", "none"
        self.from_domain, self.from_address = "customer.example", "buyer@customer.example"
        self.summary = f"orders.example.com; dmarc={dmarc}"


class FakeVerifier:
    """Answers with a prepared verdict and records what it was asked."""

    def __init__(self, auth: _Auth) -> None:
        self.auth = auth
        self.calls: list[dict[str, object]] = []

    def verify(self, raw, *, envelope_from, client_address, client_helo):
        self.calls.append({"head": raw.read(5), "envelope_from": envelope_from})
        return self.auth


def _rules(org_id: uuid.UUID, policy: SenderPolicy, *patterns: str) -> MemorySenderRules:
    rules = MemorySenderRules()
    rules.rules[org_id] = SenderRules(policy, patterns)
    return rules


def _run(repo, store, settings, message_id, verifier, rules):
    return extract_message(
        message_id,
        repo=repo,
        store=store,
        config=extraction_config(settings),
        sender=SenderCheck(verifier, rules),
    )


def test_verdict_is_stored_and_monitor_extracts(repo, store, settings):
    message_id, org_id = _received(repo, store)
    verifier = FakeVerifier(_Auth("fail", aligned=False))
    result = _run(repo, store, settings, message_id, verifier, MemorySenderRules())
    assert result.outcome is Outcome.PROCESSED
    row = repo.get(org_id, message_id)
    assert row.auth.dmarc == "fail"
    assert row.auth.dkim == (("customer.example", "s1", "fail"),)
    assert verifier.calls == [{"head": b"From:", "envelope_from": "buyer@customer.example"}]


def test_failing_dmarc_policy_quarantines_without_extracting(repo, store, settings):
    message_id, org_id = _received(repo, store)
    verifier = FakeVerifier(_Auth("fail", aligned=False))
    result = _run(repo, store, settings, message_id, verifier, _rules(org_id, SenderPolicy.DMARC))
    assert result.outcome is Outcome.QUARANTINED
    row = repo.get(org_id, message_id)
    assert row.status is MessageStatus.QUARANTINED
    assert "DMARC fail for customer.example" in row.quarantine_reason
    assert repo.list_attachments(org_id, message_id) == []
    assert not any(key.startswith("attachments/") for key in store.objects)


def test_release_extracts_without_asking_the_policy_again(repo, store, settings):
    message_id, org_id = _received(repo, store)
    verifier = FakeVerifier(_Auth("fail", aligned=False))
    rules = _rules(org_id, SenderPolicy.DMARC)
    _run(repo, store, settings, message_id, verifier, rules)
    assert repo.release(message_id)
    assert not repo.release(message_id)  # no longer quarantined
    result = _run(repo, store, settings, message_id, verifier, rules)
    assert result.outcome is Outcome.PROCESSED
    assert len(verifier.calls) == 1  # the stored verdict was used
    row = repo.get(org_id, message_id)
    assert row.released_at is not None
    assert len(repo.list_attachments(org_id, message_id)) == 2


def test_replay_applies_the_current_policy_to_the_stored_verdict(repo, store, settings):
    message_id, org_id = _received(repo, store)
    verifier = FakeVerifier(_Auth("none", aligned=True))
    rules = _rules(org_id, SenderPolicy.ALLOWLIST, "*@elsewhere.example")
    assert _run(repo, store, settings, message_id, verifier, rules).outcome is Outcome.QUARANTINED
    rules.rules[org_id] = SenderRules(SenderPolicy.ALLOWLIST, ("*@customer.example",))
    assert repo.reset_for_replay(message_id)
    assert _run(repo, store, settings, message_id, verifier, rules).outcome is Outcome.PROCESSED
    assert len(verifier.calls) == 1


def test_dns_failure_retries_then_quarantines(repo, store, settings):
    message_id, org_id = _received(repo, store)
    verifier = FakeVerifier(_Auth("temperror", aligned=False, spf="temperror"))
    rules = _rules(org_id, SenderPolicy.DMARC)
    outcomes = []
    for _ in range(settings.extract_retries):
        try:
            outcomes.append(_run(repo, store, settings, message_id, verifier, rules).outcome)
        except Exception as exc:  # RetryLater: the task reschedules itself
            outcomes.append(type(exc).__name__)
    assert outcomes == ["RetryLater", "RetryLater", Outcome.QUARANTINED]
    assert len(verifier.calls) == 3  # a temporary verdict is computed again each time
    row = repo.get(org_id, message_id)
    assert row.status is MessageStatus.QUARANTINED
    assert "DNS failures on every attempt" in row.quarantine_reason


def test_dns_failure_that_recovers_extracts(repo, store, settings):
    message_id, org_id = _received(repo, store)
    verifier = FakeVerifier(_Auth("temperror", aligned=False))
    rules = _rules(org_id, SenderPolicy.DMARC)
    with pytest.raises(Exception, match="retried"):
        _run(repo, store, settings, message_id, verifier, rules)
    verifier.auth = _Auth("pass", aligned=True)
    assert _run(repo, store, settings, message_id, verifier, rules).outcome is Outcome.PROCESSED
    assert repo.get(org_id, message_id).auth.dmarc == "pass"


def test_policy_of_one_tenant_does_not_hold_another(repo, store, settings):
    strict_id, strict_org = _received(repo, store)
    lax_id, lax_org = _received(repo, store)
    verifier = FakeVerifier(_Auth("fail", aligned=False))
    rules = _rules(strict_org, SenderPolicy.DMARC)
    assert _run(repo, store, settings, strict_id, verifier, rules).outcome is Outcome.QUARANTINED
    assert _run(repo, store, settings, lax_id, verifier, rules).outcome is Outcome.PROCESSED
    assert repo.get(lax_org, lax_id).status is MessageStatus.PROCESSED
