"""DnsSenderVerifier end to end against the stub DNS server: SPF, DKIM, DMARC,
ARC, and hostile input that must turn into verdicts, never exceptions."""

from __future__ import annotations

import io
import json
import re

import dkim
import pytest

from ingest_core.sender import (
    DkimResult,
    DnsResolver,
    DnsSenderVerifier,
    SenderAuth,
    build_verifier,
)
from ingest_core.sender.dmarc import organizational_domain, parse_record
from ingest_core.settings import Settings
from tests.dnsstub import DkimKey, StubDns, dkim_sign, make_dkim_key, make_ed25519_key

AUTHSERV = "orders.example.net"
IP4, IP6 = "192.0.2.10", "2001:db8::10"
OTHER4, OTHER6 = "198.51.100.7", "2001:db8:ffff::7"

MESSAGE = (
    b"From: Buyer <buyer@example.com>\r\n"
    b"To: orders@orders.example.net\r\n"
    b"Subject: PO 1234\r\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <po-1234@example.com>\r\n"
    b"\r\n"
    b"Please ship 10 widgets.\r\n"
)


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return make_dkim_key()


@pytest.fixture(scope="module")
def other_key() -> DkimKey:
    return make_dkim_key()


@pytest.fixture
def stub(dns_stub: StubDns, key: DkimKey, other_key: DkimKey) -> StubDns:
    dns_stub.zone.update(
        {
            "example.com": {"TXT": [f"v=spf1 ip4:{IP4} ip6:{IP6} -all"]},
            "soft.example.com": {"TXT": [f"v=spf1 ip4:{IP4} ip6:{IP6} ~all"]},
            "nospf.example.com": {"A": [IP4]},
            "mail.example.com": {"TXT": [f"v=spf1 ip4:{IP4} -all"]},
            "esp.example.net": {"TXT": [f"v=spf1 ip4:{OTHER4} ip6:{OTHER6} -all"]},
            "sel._domainkey.example.com": {"TXT": [key.txt]},
            "esp._domainkey.esp.example.net": {"TXT": [other_key.txt]},
            "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; rua=mailto:d@example.com"]},
        }
    )
    return dns_stub


def make_verifier(stub: StubDns, **kwargs) -> DnsSenderVerifier:
    resolver = DnsResolver([stub.nameserver], timeout_s=kwargs.pop("timeout_s", 0.3))
    return DnsSenderVerifier(resolver, authserv_id=AUTHSERV, **kwargs)


def check(
    stub: StubDns,
    message: bytes = MESSAGE,
    *,
    envelope_from: str = "buyer@example.com",
    client: str | None = IP4,
    helo: str | None = "mail.example.com",
    verifier: DnsSenderVerifier | None = None,
) -> SenderAuth:
    verifier = verifier or make_verifier(stub)
    return verifier.verify(
        io.BytesIO(message), envelope_from=envelope_from, client_address=client, client_helo=helo
    )


def with_from(address: str, message: bytes = MESSAGE) -> bytes:
    return message.replace(b"Buyer <buyer@example.com>", address.encode())


def signed(key: DkimKey, message: bytes = MESSAGE, domain="example.com", selector="sel"):
    return dkim_sign(message, key, domain=domain, selector=selector)


# --- DKIM


def test_dkim_pass_aligned_dmarc_pass(stub, key):
    auth = check(stub, signed(key), envelope_from="bounce@esp.example.net", client=OTHER4)
    assert auth.dkim == (DkimResult("example.com", "sel", "pass"),)
    assert auth.spf == "pass"
    assert auth.spf_domain == "esp.example.net"
    assert auth.dmarc == "pass"
    assert auth.dmarc_policy == "reject"
    assert auth.aligned
    assert auth.from_domain == "example.com"
    assert auth.from_address == "buyer@example.com"
    assert auth.summary == (
        f"{AUTHSERV}; spf=pass smtp.mailfrom=esp.example.net;"
        " dkim=pass header.d=example.com header.s=sel;"
        " dmarc=pass (p=reject) header.from=example.com; arc=none"
    )


def test_ed25519_signature_alone_and_beside_rsa(stub, key):
    """RFC 8463: senders sign with Ed25519, often next to an RSA signature."""
    ed = make_ed25519_key()
    stub.zone["ed._domainkey.example.com"] = {"TXT": [ed.txt]}
    only = check(stub, signed(ed, selector="ed"), client=OTHER4)
    assert only.dkim == (DkimResult("example.com", "ed", "pass"),)
    assert only.dmarc == "pass"
    both = signed(ed, signed(key), selector="ed")
    assert [(d.selector, d.result) for d in check(stub, both).dkim] == [
        ("ed", "pass"),
        ("sel", "pass"),
    ]
    tampered = signed(ed, selector="ed").replace(b"10 widgets", b"90 widgets")
    assert [d.result for d in check(stub, tampered, client=OTHER4).dkim] == ["fail"]


def test_dkim_fails_when_body_altered_after_signing(stub, key):
    message = signed(key).replace(b"10 widgets", b"90 widgets")
    auth = check(stub, message, envelope_from="bounce@esp.example.net", client=OTHER4)
    assert [d.result for d in auth.dkim] == ["fail"]
    assert auth.dkim[0].reason == "body hash mismatch"
    assert auth.dmarc == "fail"
    assert not auth.aligned


def test_dkim_fails_when_signed_header_altered(stub, key):
    message = signed(key).replace(b"PO 1234", b"PO 9999")
    assert [d.result for d in check(stub, message).dkim] == ["fail"]


def test_no_signature_no_dkim_results(stub):
    auth = check(stub)
    assert auth.dkim == ()
    assert "dkim=none" in auth.summary


def test_two_signatures_in_header_order(stub, key, other_key):
    once = signed(key)
    twice = signed(other_key, once, domain="esp.example.net", selector="esp")
    auth = check(stub, twice, envelope_from="bounce@esp.example.net", client=OTHER4)
    assert auth.dkim == (
        DkimResult("esp.example.net", "esp", "pass"),
        DkimResult("example.com", "sel", "pass"),
    )
    assert auth.dmarc == "pass"


def test_unaligned_dkim_pass_is_not_dmarc_pass(stub, other_key):
    message = signed(other_key, domain="esp.example.net", selector="esp")
    auth = check(stub, message, envelope_from="bounce@esp.example.net", client=OTHER4)
    assert [d.result for d in auth.dkim] == ["pass"]
    assert auth.dmarc == "fail"
    assert not auth.aligned


def test_dkim_missing_key_is_permerror(stub, key):
    del stub.zone["sel._domainkey.example.com"]
    assert [d.result for d in check(stub, signed(key)).dkim] == ["permerror"]


def test_dkim_broken_key_record_is_permerror(stub, key):
    stub.zone["sel._domainkey.example.com"] = {"TXT": ["v=DKIM1; k=rsa; p=notbase64!!"]}
    assert [d.result for d in check(stub, signed(key)).dkim] == ["permerror"]


def test_dkim_key_lookup_timeout_is_temperror(stub, key):
    stub.timeout_names.add("sel._domainkey.example.com")
    auth = check(stub, signed(key), envelope_from="bounce@esp.example.net", client=OTHER4)
    assert [d.result for d in auth.dkim] == ["temperror"]
    assert auth.dmarc == "temperror"  # the aligned signature could not be checked


def test_dkim_malformed_signature_is_permerror(stub):
    message = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel\r\n" + MESSAGE
    assert check(stub, message).dkim == (DkimResult("example.com", "sel", "permerror"),)


def test_too_many_signatures_are_capped(stub, key):
    message = signed(key)
    for _ in range(14):
        message = signed(key, message)
    auth = check(stub, message)
    assert len(auth.dkim) == 10
    assert {d.result for d in auth.dkim} == {"pass"}
    assert any("5 more DKIM signatures" in r for r in auth.reasons)


def test_message_over_max_bytes_gets_neutral_dkim(stub, key):
    auth = check(stub, signed(key), verifier=make_verifier(stub, max_bytes=100))
    assert auth.dkim == (DkimResult("example.com", "sel", "neutral"),)
    assert auth.spf == "pass"
    assert auth.dmarc == "pass"  # by aligned SPF


# --- SPF


@pytest.mark.parametrize(
    ("envelope_from", "client", "expected"),
    [
        ("buyer@example.com", IP4, "pass"),
        ("buyer@example.com", IP6, "pass"),
        ("buyer@example.com", OTHER4, "fail"),
        ("buyer@example.com", OTHER6, "fail"),
        ("buyer@soft.example.com", OTHER4, "softfail"),
        ("buyer@soft.example.com", OTHER6, "softfail"),
        ("buyer@nospf.example.com", IP4, "none"),
        ("buyer@nospf.example.com", IP6, "none"),
        ("buyer@slow.example.com", IP4, "temperror"),
        ("buyer@slow.example.com", IP6, "temperror"),
        ("buyer@example.com", f"IPv6:{IP6}", "pass"),  # Postfix XFORWARD spelling
    ],
)
def test_spf(stub, envelope_from, client, expected):
    stub.timeout_names.add("slow.example.com")
    auth = check(stub, envelope_from=envelope_from, client=client)
    assert auth.spf == expected
    assert auth.spf_domain == envelope_from.partition("@")[2]
    assert f"spf={expected}" in auth.summary


def test_spf_servfail_is_temperror(stub):
    stub.servfail_names.add("example.com")
    assert check(stub).spf == "temperror"


def test_spf_malformed_record_is_permerror(stub):
    stub.zone["example.com"]["TXT"] = ["v=spf1 ip4:not-an-address -all"]
    assert check(stub).spf == "permerror"


def test_spf_uses_helo_for_null_sender(stub):
    auth = check(stub, envelope_from="<>", helo="mail.example.com")
    assert (auth.spf, auth.spf_domain, auth.spf_identity) == ("pass", "mail.example.com", "helo")
    assert "smtp.helo=mail.example.com" in auth.summary


def test_spf_without_client_address_is_none(stub):
    auth = check(stub, client=None)
    assert auth.spf == "none"
    assert "no client address" in auth.summary
    assert stub.query_count("example.com", "TXT") == 0


def test_aligned_spf_pass_gives_dmarc_pass(stub):
    auth = check(stub)
    assert (auth.spf, auth.dmarc, auth.aligned) == ("pass", "pass", True)


# --- DMARC


def test_dmarc_fail_reports_reject(stub):
    auth = check(stub, envelope_from="bounce@esp.example.net", client=OTHER4)
    assert auth.spf == "pass"
    assert (auth.dmarc, auth.dmarc_policy, auth.aligned) == ("fail", "reject", False)
    assert "dmarc=fail (p=reject) header.from=example.com" in auth.summary


def test_relaxed_alignment_passes_subdomain(stub, key):
    stub.zone["_dmarc.example.com"]["TXT"] = ["v=DMARC1; p=quarantine; sp=reject; adkim=r"]
    message = signed(key, with_from("<buyer@mail.example.com>"))
    auth = check(stub, message, envelope_from="bounce@esp.example.net", client=OTHER4)
    assert auth.from_domain == "mail.example.com"
    assert (auth.dmarc, auth.dmarc_policy) == ("pass", "reject")  # sp= for a subdomain
    assert stub.query_count("_dmarc.mail.example.com", "TXT") == 1
    assert stub.query_count("_dmarc.example.com", "TXT") == 1


def test_strict_dkim_alignment_fails_subdomain(stub, key):
    stub.zone["_dmarc.example.com"]["TXT"] = ["v=DMARC1; p=reject; adkim=s"]
    message = signed(key, with_from("<buyer@mail.example.com>"))
    auth = check(stub, message, envelope_from="bounce@esp.example.net", client=OTHER4)
    assert [d.result for d in auth.dkim] == ["pass"]
    assert (auth.dmarc, auth.dmarc_policy, auth.aligned) == ("fail", "reject", False)


def test_strict_spf_alignment(stub):
    stub.zone["_dmarc.example.com"]["TXT"] = ["v=DMARC1; p=reject; aspf=s"]
    message = with_from("<buyer@example.com>")
    relaxed_ok = check(stub, message, envelope_from="bounce@mail.example.com")
    assert (relaxed_ok.spf, relaxed_ok.dmarc) == ("pass", "fail")
    stub.zone["_dmarc.example.com"]["TXT"] = ["v=DMARC1; p=reject"]
    relaxed = check(stub, message, envelope_from="bounce@mail.example.com")
    assert relaxed.dmarc == "pass"


def test_record_at_the_from_domain_wins(stub):
    stub.zone["_dmarc.mail.example.com"] = {"TXT": ["v=DMARC1; p=none"]}
    auth = check(stub, with_from("<b@mail.example.com>"), envelope_from="x@esp.example.net")
    assert (auth.dmarc, auth.dmarc_policy) == ("fail", "none")
    assert stub.query_count("_dmarc.example.com") == 0


def test_no_dmarc_record_is_none_but_alignment_is_reported(stub):
    del stub.zone["_dmarc.example.com"]
    auth = check(stub)
    assert (auth.dmarc, auth.dmarc_policy, auth.aligned) == ("none", None, True)
    assert "dmarc=none header.from=example.com" in auth.summary


def test_dmarc_lookup_timeout_is_temperror(stub):
    stub.timeout_names.add("_dmarc.example.com")
    assert check(stub).dmarc == "temperror"


def test_malformed_dmarc_record_is_permerror(stub):
    stub.zone["_dmarc.example.com"]["TXT"] = ["v=DMARC1; p=bogus"]
    assert check(stub).dmarc == "permerror"


def test_two_dmarc_records_are_permerror(stub):
    stub.zone["_dmarc.example.com"]["TXT"] = ["v=DMARC1; p=none", "v=DMARC1; p=reject"]
    assert check(stub).dmarc == "permerror"


@pytest.mark.parametrize(
    "from_lines",
    [
        b"From: a@example.com, b@example.org\r\n",
        b"From: a@example.com\r\nFrom: b@example.org\r\n",
        b"",
        b"From: undisclosed\r\n",
    ],
)
def test_no_single_from_address(stub, from_lines):
    message = MESSAGE.replace(b"From: Buyer <buyer@example.com>\r\n", from_lines)
    auth = check(stub, message)
    assert (auth.from_domain, auth.from_address, auth.aligned) == (None, None, False)
    assert auth.dmarc == "permerror"
    assert auth.spf == "pass"


def test_parse_record_and_org_domain():
    record = parse_record("v=DMARC1; p=quarantine; sp=none; adkim=s; pct=50")
    assert (record.policy, record.subdomain_policy, record.strict_dkim, record.pct) == (
        "quarantine",
        "none",
        True,
        50,
    )
    assert parse_record("v=DMARC1; rua=mailto:x@example.com").policy == "none"
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organizational_domain("mail.example.com") == "example.com"
    assert organizational_domain("co.uk") == "co.uk"


# --- ARC


def arc_sealed(key: DkimKey, message: bytes) -> bytes:
    with_results = (
        b"Authentication-Results: relay.example.com; spf=pass smtp.mailfrom=example.com\r\n"
        + message
    )
    headers = dkim.arc_sign(
        with_results, b"sel", b"example.com", key.private_pem, b"relay.example.com"
    )
    assert headers, "dkimpy produced no ARC set"
    return b"".join(headers) + with_results


def test_arc_chain_pass(stub, key):
    auth = check(stub, arc_sealed(key, MESSAGE))
    assert auth.arc == "pass"
    assert auth.summary.endswith("arc=pass")


def test_arc_chain_broken(stub, key):
    message = arc_sealed(key, MESSAGE).replace(b"10 widgets", b"99 widgets")
    assert check(stub, message).arc == "fail"


# --- hostile input, cache, budget, JSON


def test_hostile_values_never_break_the_summary(stub):
    message = (
        b"DKIM-Signature: v=1; a=rsa-sha256; d=evil.example\x1b[31m;dmarc=pass; s=x\x00y;"
        b" h=from; bh=AAAA; b=AAAA\r\n"
        b"From: =?utf-8?q?Boss=0D=0AAuthentication-Results:_x?= <boss@example.com>\r\n"
        b"Subject: hi\r\n\r\nbody\r\n"
    )
    auth = check(stub, message, envelope_from="x\r\ny@exa\x00mple.com", helo="\x1b]0;evil\x07")
    assert auth.from_domain == "example.com"
    assert not re.search(r"[\x00-\x1f\x7f]", auth.summary)
    assert auth.summary.count("dmarc=") == 1
    assert all(not re.search(r"[\x00-\x1f]", d.domain + d.selector) for d in auth.dkim)


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\x00\xff" * 5000,
        b" leading continuation\r\nFrom: a@example.com\r\n\r\nx",
        b"From: a@example.com\r\nDKIM-Signature: ;;;===\r\n\r\n",
        b"From: a@example.com\r\nDKIM-Signature: d=\xff\xfe; s=\x80\r\n\r\n",
        b"From: a@example.com\r\nARC-Seal: i=999; cv=pass\r\n\r\n",
        b"Subject: " + b"x" * 600_000 + b"\r\nFrom: a@example.com\r\n\r\nbody",
        b"From: " + b"a" * 100_000 + b"@example.com\r\n\r\n",
        b"".join(b"X-H%d: v\r\n" % i for i in range(50_000)) + b"From: a@example.com\r\n\r\n",
        b'From: "unterminated <a@example.com\r\n\r\n',
    ],
)
def test_hostile_messages_never_raise(stub, message):
    auth = check(stub, message)
    assert auth.spf == "pass"
    assert auth.dmarc in {"pass", "fail", "none", "permerror"}
    json.dumps(auth.as_json())


def test_cache_spares_the_second_message(stub, key):
    verifier = make_verifier(stub)
    message = signed(key)
    first = check(stub, message, verifier=verifier)
    before = stub.query_count()
    second = check(stub, message, verifier=verifier)
    assert first == second
    assert stub.query_count() == before


def test_budget_bounds_a_message_full_of_timeouts(stub, key):
    stub.timeout_names.update({"example.com", "sel._domainkey.example.com", "_dmarc.example.com"})
    verifier = make_verifier(stub, timeout_s=0.3, budget_s=0.5)
    import time

    started = time.monotonic()
    auth = check(stub, signed(key), verifier=verifier)
    assert time.monotonic() - started < 2.0
    assert (auth.spf, auth.dkim[0].result, auth.dmarc) == ("temperror", "temperror", "temperror")


def test_as_json_round_trips(stub, key):
    data = check(stub, signed(key)).as_json()
    assert json.loads(json.dumps(data))["dkim"] == [
        {"domain": "example.com", "selector": "sel", "result": "pass"}
    ]


def test_build_verifier_from_settings(stub):
    settings = Settings(dns_servers=(stub.nameserver,), dns_timeout_s=0.5)
    verifier = build_verifier(settings)
    assert verifier.authserv_id == "orders.localhost"
    assert verifier.resolver.nameservers == (f"Do53:127.0.0.1@{stub.port}",)
    assert check(stub, verifier=verifier).spf == "pass"
    named = build_verifier(settings.with_(authserv_id="mx.example.net"))
    assert named.authserv_id == "mx.example.net"


def test_bare_lf_message_verifies_too(stub, key):
    message = signed(key, MESSAGE.replace(b"\r\n", b"\n"))
    assert b"\r\n" not in message.split(b"\n\n", 1)[1]
    assert [d.result for d in check(stub, message).dkim] == ["pass"]


def test_relaxed_body_signature_passes(stub, key):
    signature = dkim.sign(
        MESSAGE, b"sel", b"example.com", key.private_pem, canonicalize=(b"relaxed", b"relaxed")
    )
    message = signature + MESSAGE.replace(b"10 widgets", b"10   widgets")
    assert [d.result for d in check(stub, message).dkim] == ["pass"]


def test_threads_share_one_verifier(stub, key):
    from concurrent.futures import ThreadPoolExecutor

    verifier = make_verifier(stub, timeout_s=2.0)
    message = signed(key)
    cases = [(IP4, "pass"), (OTHER4, "fail"), (IP6, "pass"), (OTHER6, "fail")] * 10

    def run(case: tuple[str, str]) -> tuple[str, str]:
        auth = check(stub, message, client=case[0], verifier=verifier)
        return auth.spf, auth.dkim[0].result

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, cases))
    assert results == [(expected, "pass") for _, expected in cases]
