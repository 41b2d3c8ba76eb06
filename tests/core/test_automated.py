"""Automated mail against fakes: the classifier over the corpus (expectations
written by tests/data/build_automated.py, not by the classifier), the policy,
and the worker step: held, extracted, released once and never held again."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingest_core.adapters.memory import MemoryAutomatedPolicies
from ingest_core.automated import (
    DEFAULT_ACTIONS,
    AutomatedAction,
    AutomatedCheck,
    AutomatedPolicy,
    classify,
    hold_reason,
)
from ingest_core.bootstrap import extraction_config
from ingest_core.extraction import Outcome, extract_message
from ingest_core.mime import MimeLimits
from ingest_core.model import AutomatedKind, AutomatedVerdict, MessageStatus
from tests.core.test_extraction import _received

DATA = Path(__file__).parent.parent / "data"
CORPUS = DATA / "automated"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def _classify(raw: bytes, envelope_from: str = "buyer@customer.example") -> AutomatedVerdict:
    return classify(io.BytesIO(raw), envelope_from, MimeLimits())


def test_the_committed_corpus_is_what_its_script_builds():
    subprocess.run(
        [sys.executable, str(DATA / "build_automated.py"), "--check"], check=True, cwd=DATA
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_corpus_message_gets_its_expected_kind_reason_and_bounce_fields(name):
    want = EXPECTED[name]
    verdict = _classify((CORPUS / f"{name}.eml").read_bytes(), want["envelope_from"])
    assert (verdict.kind.value if verdict.kind else None) == want["kind"]
    assert verdict.reason == want["reason"]
    bounce = verdict.bounce
    got = (
        None
        if bounce is None
        else {
            "original_recipient": bounce.original_recipient,
            "action": bounce.action,
            "status": bounce.status,
            "diagnostic": bounce.diagnostic,
        }
    )
    assert got == want["bounce"]


def test_no_ordinary_order_is_held_by_the_default_policy():
    ordinary = [name for name, want in EXPECTED.items() if want["ordinary"]]
    assert len(ordinary) >= 9
    held = [
        name
        for name in ordinary
        if hold_reason(
            AutomatedPolicy(),
            _classify((CORPUS / f"{name}.eml").read_bytes(), EXPECTED[name]["envelope_from"]),
        )
    ]
    assert held == []


@pytest.mark.parametrize(
    "subject",
    ["Automatic reply: PO 1", "Out of Office", "Undeliverable: PO 1", "Abwesenheitsnotiz",
     "Réponse automatique", "Mail delivery failed"],
)  # fmt: skip
def test_a_subject_alone_never_classifies(subject):
    raw = f"From: a@b.example\nSubject: {subject}\n\nbody\n".encode()
    assert _classify(raw).kind is None


def test_a_subject_chooses_between_kinds_for_the_null_sender():
    raw = b"From: a@b.example\nSubject: Undeliverable: PO 1\n\nbody\n"
    assert _classify(raw, "").kind is AutomatedKind.BOUNCE
    assert _classify(raw.replace(b"Undeliverable", b"Scanned"), "<>").kind is (
        AutomatedKind.AUTO_REPLY
    )


def test_bounce_fields_are_bounded_and_cleaned():
    diagnostic = "550 \x1b[31mno\u202e such user " + "x" * 2000
    raw = (
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nfailed\n--b\n"
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        "Final-Recipient: rfc822; a@b.example\nAction: FAILED\nStatus: 5.1.1 (unknown)\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n--b--\n"
    ).encode()
    verdict = _classify(raw, "")
    assert verdict.kind is AutomatedKind.BOUNCE
    assert verdict.bounce is not None
    assert verdict.bounce.action == "failed"
    assert verdict.bounce.status == "5.1.1"
    text = verdict.bounce.diagnostic or ""
    assert len(text) == 500
    assert text.startswith("550 [31mno such user x")
    assert "\x1b" not in text
    assert "\u202e" not in text


def test_a_report_without_its_report_part_is_not_a_bounce_by_its_label():
    raw = (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nhello\n--b--\n"
    )
    assert _classify(raw).kind is None


def test_policy_defaults_and_overrides():
    assert DEFAULT_ACTIONS[AutomatedKind.BULK] is AutomatedAction.EXTRACT
    assert {k for k, a in DEFAULT_ACTIONS.items() if a is AutomatedAction.HOLD} == {
        AutomatedKind.AUTO_REPLY,
        AutomatedKind.BOUNCE,
        AutomatedKind.FEEDBACK_REPORT,
        AutomatedKind.LIST,
    }
    policy = AutomatedPolicy(((AutomatedKind.LIST, AutomatedAction.EXTRACT),))
    assert policy.action(AutomatedKind.LIST) is AutomatedAction.EXTRACT
    assert policy.action(AutomatedKind.BOUNCE) is AutomatedAction.HOLD
    assert hold_reason(policy, AutomatedVerdict(AutomatedKind.LIST, "List-Id")) is None
    reason = hold_reason(policy, AutomatedVerdict(AutomatedKind.BOUNCE, "X-Failed-Recipients"))
    assert reason == (
        "automated mail, bounce (X-Failed-Recipients); the tenant's policy holds bounce"
    )


AUTO_REPLY = (
    b"From: anna@customer.example\nSubject: Automatic reply: PO\nAuto-Submitted: auto-replied\n"
    b"Content-Type: text/plain\n\nAway.\n"
)


def _extract(repo, store, settings, message_id, policies):
    return extract_message(
        message_id,
        repo=repo,
        store=store,
        config=extraction_config(settings),
        automated=AutomatedCheck(policies),
    )


def test_an_auto_reply_is_held_with_its_reason_and_recorded(repo, store, settings):
    message_id, org_id = _received(repo, store, AUTO_REPLY)
    result = _extract(repo, store, settings, message_id, MemoryAutomatedPolicies())
    assert result.outcome is Outcome.QUARANTINED
    row = repo.get(org_id, message_id)
    assert row.status is MessageStatus.QUARANTINED
    assert row.quarantine_reason == (
        "automated mail, auto-reply (Auto-Submitted: auto-replied);"
        " the tenant's policy holds auto-reply"
    )
    assert row.automated == AutomatedVerdict(
        AutomatedKind.AUTO_REPLY, "Auto-Submitted: auto-replied"
    )


def test_a_tenant_that_extracts_auto_replies_gets_them_processed(repo, store, settings):
    message_id, org_id = _received(repo, store, AUTO_REPLY)
    policies = MemoryAutomatedPolicies()
    policies.policies[org_id] = AutomatedPolicy(
        ((AutomatedKind.AUTO_REPLY, AutomatedAction.EXTRACT),)
    )
    assert _extract(repo, store, settings, message_id, policies).outcome is Outcome.PROCESSED
    assert repo.get(org_id, message_id).automated.kind is AutomatedKind.AUTO_REPLY


def test_a_released_message_is_never_held_again_not_even_on_replay(repo, store, settings):
    from ingest_core.adapters.memory import MemoryJobQueue
    from ingest_core.operations import release, replay

    message_id, org_id = _received(repo, store, AUTO_REPLY)
    policies = MemoryAutomatedPolicies()
    assert _extract(repo, store, settings, message_id, policies).outcome is Outcome.QUARANTINED
    queue = MemoryJobQueue()
    assert release(repo, queue, message_id)
    assert _extract(repo, store, settings, message_id, policies).outcome is Outcome.PROCESSED
    assert replay(repo, queue, [message_id]) == [message_id]
    assert _extract(repo, store, settings, message_id, policies).outcome is Outcome.PROCESSED
    row = repo.get(org_id, message_id)
    assert row.status is MessageStatus.PROCESSED
    assert row.automated.kind is AutomatedKind.AUTO_REPLY  # still recorded, no longer held
