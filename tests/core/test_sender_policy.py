"""Sender policy: pattern syntax and matching, and the hold/pass table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest_core.model import AuthVerdict
from ingest_core.sender.policy import (
    PatternError,
    SenderPolicy,
    SenderRules,
    evaluate,
    matches,
    normalise_pattern,
    verdict_from,
)


def _verdict(**changes) -> AuthVerdict:
    fields = {
        "spf": "pass",
        "dkim": (("big.example", "s1", "pass"),),
        "dmarc": "pass",
        "dmarc_policy": "reject",
        "arc": "none",
        "from_domain": "big.example",
        "from_address": "buyer@big.example",
        "aligned": True,
        "temporary": False,
        "summary": "mx; spf=pass",
    }
    fields.update(changes)
    return AuthVerdict(**fields)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Buyer@Big.Example", "buyer@big.example"),
        (" *@big.example ", "*@big.example"),
        ("*@*.big.example", "*@*.big.example"),
        ("first.last+po@sub.big.example", "first.last+po@sub.big.example"),
    ],
)
def test_patterns_are_normalised(text, expected):
    assert normalise_pattern(text) == expected


@pytest.mark.parametrize(
    "text",
    ["*", "*@*", "@big.example", "buyer@", "a@b", "b*@big.example", "*@big*.example",
     "buyer@big.example,x@y.example", "buyer@-big.example", "bü@big.example", "a b@big.example",
     "*@*.*.example", "buyer@@big.example"],
)  # fmt: skip
def test_patterns_that_would_match_too_much_or_nothing_are_refused(text):
    with pytest.raises(PatternError):
        normalise_pattern(text)


@pytest.mark.parametrize(
    ("pattern", "address", "expected"),
    [
        ("*@big.example", "anyone@big.example", True),
        ("*@big.example", "anyone@sub.big.example", False),
        ("*@big.example", "anyone@notbig.example", False),
        ("*@*.big.example", "anyone@sub.big.example", True),
        ("*@*.big.example", "anyone@big.example", False),
        ("*@*.big.example", "anyone@evilbig.example", False),
        ("buyer@big.example", "buyer@big.example", True),
        ("buyer@big.example", "buyer2@big.example", False),
        ("buyer@big.example", "@big.example", False),
    ],
)
def test_matching(pattern, address, expected):
    assert matches(pattern, address) is expected


@given(st.emails())
def test_a_domain_pattern_matches_exactly_its_domain(address):
    address = address.lower()
    if not address.isascii():
        return
    domain = address.rpartition("@")[2]
    try:
        pattern = normalise_pattern(f"*@{domain}")
    except PatternError:
        return
    assert matches(pattern, address)
    assert not matches(pattern, address + "x")
    assert not matches(pattern, f"x@evil{domain}")


def test_monitor_never_holds():
    verdict = _verdict(dmarc="fail", aligned=False, from_address="x@forged.example")
    assert not evaluate(SenderRules(SenderPolicy.MONITOR), verdict).hold


@pytest.mark.parametrize("dmarc", ["fail", "none", "permerror", "temperror"])
def test_dmarc_policy_holds_anything_but_pass(dmarc):
    decision = evaluate(SenderRules(SenderPolicy.DMARC), _verdict(dmarc=dmarc))
    assert decision.hold
    assert dmarc in (decision.reason or "")
    assert evaluate(SenderRules(SenderPolicy.DMARC), _verdict()).hold is False


def test_allowlist_needs_a_listed_and_authenticated_sender():
    rules = SenderRules(SenderPolicy.ALLOWLIST, ("*@big.example",))
    assert not evaluate(rules, _verdict()).hold
    assert not evaluate(rules, _verdict(dmarc="none", dmarc_policy=None)).hold  # aligned, no record
    forged = evaluate(rules, _verdict(aligned=False, dmarc="fail"))
    assert forged.hold
    assert "not authenticated" in (forged.reason or "")
    stranger = evaluate(
        rules, _verdict(from_address="x@other.example", from_domain="other.example")
    )
    assert stranger.hold
    assert "allow-list" in (stranger.reason or "")
    assert evaluate(rules, _verdict(from_address=None)).hold  # several or no From addresses
    assert evaluate(SenderRules(SenderPolicy.ALLOWLIST), _verdict()).hold  # empty list


def test_a_dns_failure_makes_the_hold_temporary():
    rules = SenderRules(SenderPolicy.ALLOWLIST, ("*@big.example",))
    assert evaluate(rules, _verdict(aligned=False, temporary=True)).temporary
    assert not evaluate(rules, _verdict(aligned=False)).temporary
    # Not on the list: no DNS answer could change that.
    other = _verdict(from_address="x@other.example", temporary=True)
    assert not evaluate(rules, other).temporary


class _Dkim:
    def __init__(self, result: str) -> None:
        self.domain, self.selector, self.result = "big.example", "s1", result


class _Auth:
    def __init__(self, *, spf="pass", dkim=("pass",), dmarc="pass", aligned=True) -> None:
        self.spf, self.dmarc, self.aligned = spf, dmarc, aligned
        self.dkim = tuple(_Dkim(r) for r in dkim)
        self.dmarc_policy, self.arc, self.summary = "reject", "none", "mx; dmarc=pass"
        self.from_domain, self.from_address = "big.example", "buyer@big.example"


def test_verdict_from_marks_dns_failures_that_matter():
    assert not verdict_from(_Auth()).temporary
    assert verdict_from(_Auth(dmarc="temperror")).temporary
    assert verdict_from(
        _Auth(spf="temperror", dkim=("fail",), dmarc="fail", aligned=False)
    ).temporary
    assert verdict_from(_Auth(dkim=("temperror",), dmarc="fail", aligned=False)).temporary
    # An aligned pass decided it; the failed lookup elsewhere cannot change the outcome.
    assert not verdict_from(_Auth(spf="temperror")).temporary
    assert verdict_from(_Auth()).dkim == (("big.example", "s1", "pass"),)
