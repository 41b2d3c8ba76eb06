"""Sender authentication through the whole chain: swaks → Postfix → milter → LMTP
(the client address arrives by XFORWARD) → worker (SPF, DKIM, DMARC against the
stub DNS server of the test session) → PROCESSED, or QUARANTINED and released.

Each test uses sender domains of its own: the worker caches DNS answers.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from e2e_harness import swaks

from tests.dnsstub import dkim_sign, make_dkim_key

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Stack

    from tests.dnsstub import StubDns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

STRICT = "orders+strict@orders.localhost"


@pytest.fixture
def strict(running: Stack) -> Stack:
    """A tenant whose sender policy requires DMARC pass."""
    if "strict" not in running.ingest.cli("tenants", "list"):
        running.ingest.cli("tenants", "add", "strict")
        running.ingest.cli("tenants", "policy", "strict", "dmarc")
    return running


def sender_domain(stub_dns: StubDns, spf_client: str) -> str:
    domain = f"d{uuid.uuid4().hex[:10]}.example"
    stub_dns.zone[domain] = {"TXT": [f"v=spf1 ip4:{spf_client} -all"]}
    stub_dns.zone[f"_dmarc.{domain}"] = {"TXT": ["v=DMARC1; p=reject"]}
    return domain


def test_a_sender_whose_spf_lists_the_client_passes(strict: Stack, stub_dns: StubDns) -> None:
    domain = sender_domain(stub_dns, "127.0.0.1")  # swaks connects from 127.0.0.1
    message_id = f"{uuid.uuid4()}@{domain}"
    sent = swaks(strict.smtp_port, [STRICT], message_id=message_id, mail_from=f"buyer@{domain}")
    assert sent.exit_code == 0, sent.transcript
    (row,) = strict.ingest.wait_processed(message_id)
    shown = strict.ingest.show(row["id"])
    assert shown["client_address"] == "127.0.0.1"  # from Postfix's XFORWARD
    assert (shown["auth_spf"], shown["auth_dmarc"]) == ("pass", "pass")
    assert f"spf=pass smtp.mailfrom={domain}" in shown["auth_results"]


def test_a_forged_sender_is_quarantined_and_released(strict: Stack, stub_dns: StubDns) -> None:
    domain = sender_domain(stub_dns, "192.0.2.1")  # not the client we send from
    message_id = f"{uuid.uuid4()}@{domain}"
    sent = swaks(strict.smtp_port, [STRICT], message_id=message_id, mail_from=f"ceo@{domain}")
    # Accepted (nothing is lost), held back from extraction.
    assert sent.exit_code == 0, sent.transcript
    strict.postfix.wait_status(sent.queue_id, "sent")
    row = strict.ingest.wait_status(message_id, "QUARANTINED")
    shown = strict.ingest.show(row["id"])
    assert (shown["auth_spf"], shown["auth_dmarc"]) == ("fail", "fail")
    assert f"DMARC fail for {domain}" in shown["quarantine_reason"]

    released = strict.ingest.cli("messages", "release", message_id)
    assert released.startswith(f"released {row['id']}")
    strict.ingest.wait_processed(message_id)


def test_a_dkim_signature_survives_postfix(
    strict: Stack, stub_dns: StubDns, e2e_root: Path
) -> None:
    """Signed by the sender, relayed by Postfix (which adds its Received field):
    the body and signed fields arrive intact, DKIM and DMARC pass although SPF
    does not list the client."""
    domain = sender_domain(stub_dns, "192.0.2.1")
    key = make_dkim_key()
    stub_dns.zone[f"s1._domainkey.{domain}"] = {"TXT": [key.txt]}
    message_id = f"{uuid.uuid4()}@{domain}"
    message = (
        f"From: Buyer <buyer@{domain}>\r\nTo: {STRICT}\r\nSubject: PO 4711\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n"
        "12 pallets, delivery Friday.\r\n"
    ).encode()
    signed = e2e_root / f"{uuid.uuid4().hex}.eml"
    signed.write_bytes(dkim_sign(message, key, domain=domain, selector="s1"))
    sent = swaks(strict.smtp_port, [STRICT], data=signed, mail_from=f"buyer@{domain}")
    assert sent.exit_code == 0, sent.transcript
    (row,) = strict.ingest.wait_processed(message_id)
    shown = strict.ingest.show(row["id"])
    assert shown["auth_dkim"] == [{"domain": domain, "selector": "s1", "result": "pass"}]
    assert (shown["auth_spf"], shown["auth_dmarc"]) == ("fail", "pass")
