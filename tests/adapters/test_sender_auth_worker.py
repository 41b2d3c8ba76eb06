"""Sender authentication end to end through the worker: real Postgres, the local
object store, SQLite huey, real DKIM signatures and a stub DNS server.

Quarantine and release: a forged purchase order is stored (nothing is lost) but
held as QUARANTINED, never extracted, until an operator releases it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest_core.bootstrap import App, open_app
from ingest_core.model import MessageStatus
from ingest_core.ports import Envelope
from ingest_core.sender import SenderPolicy
from ingest_core.settings import Settings
from ingest_core.spool import Spool
from tests.dnsstub import DkimKey, dkim_sign, make_dkim_key, running_stub

DOMAIN = "orders.example.com"
GOOD_CLIENT = "192.0.2.10"
FORGER = "203.0.113.66"


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return make_dkim_key()


@pytest.fixture
def app(data_dir: Path, pg_url: str, key: DkimKey) -> Iterator[App]:
    zone = {
        "big.example": {"TXT": [f"v=spf1 ip4:{GOOD_CLIENT} -all"]},
        "_dmarc.big.example": {"TXT": ["v=DMARC1; p=reject; adkim=r; aspf=r"]},
        "sel._domainkey.big.example": {"TXT": [key.txt]},
        "small.example": {"TXT": ["v=spf1 -all"]},
    }
    with running_stub(zone) as stub:
        settings = Settings(
            data_dir=data_dir,
            database_url=pg_url,
            domains=(DOMAIN,),
            dns_servers=(stub.nameserver,),
            dns_timeout_s=0.5,
        )
        with open_app(settings) as app:
            app.admin.add("acme", "Acme")
            yield app


def order(sender: str = "buyer@big.example") -> bytes:
    message = EmailMessage()
    message["From"] = f"Buyer <{sender}>"
    message["To"] = f"orders+acme@{DOMAIN}"
    message["Subject"] = "PO 4711"
    message["Message-ID"] = f"<{uuid.uuid4()}@big.example>"
    message.set_content("Please ship.\n")
    message.add_attachment(b"%PDF-1.4 po", maintype="application", subtype="pdf", filename="po.pdf")
    return message.as_bytes().replace(b"\n", b"\r\n")


def signed(key: DkimKey, data: bytes | None = None) -> bytes:
    return dkim_sign(order() if data is None else data, key, domain="big.example", selector="sel")


def deliver(app: App, data: bytes, client: str, mail_from: str = "buyer@big.example") -> uuid.UUID:
    decision = app.service.check_recipient(f"orders+acme@{DOMAIN}", False)
    envelope = Envelope(
        mail_from=mail_from,
        recipients=(decision,),
        xforward={"ADDR": client, "HELO": "mx.big.example"},
    )
    [outcome] = app.service.accept(envelope, Spool.from_bytes(data))
    assert outcome.message_id is not None
    return outcome.message_id


def run_queued(app: App) -> None:
    while (task := app.huey.dequeue()) is not None:
        app.huey.execute(task)


def row(app: App, message_id: uuid.UUID) -> dict:
    detail = app.operator.show_message(message_id)
    assert detail is not None
    return detail


def test_genuine_order_passes_and_forged_one_is_quarantined_then_released(app, key):
    app.senders.set_policy("acme", SenderPolicy.DMARC)
    genuine = deliver(app, signed(key), GOOD_CLIENT)
    forged = deliver(app, order(), FORGER)
    run_queued(app)

    good = row(app, genuine)
    assert good["status"] == "PROCESSED"
    assert (good["auth_spf"], good["auth_dmarc"], good["auth_dmarc_policy"]) == (
        "pass",
        "pass",
        "reject",
    )
    assert good["auth_dkim"] == [{"domain": "big.example", "selector": "sel", "result": "pass"}]
    assert "dmarc=pass" in good["auth_results"]
    assert len(good["attachments"]) == 1

    held = row(app, forged)
    assert held["status"] == MessageStatus.QUARANTINED
    assert (held["auth_spf"], held["auth_dmarc"], held["auth_dkim"]) == ("fail", "fail", [])
    assert "DMARC fail for big.example" in held["quarantine_reason"]
    assert held["attachments"] == []

    assert app.release(forged)
    run_queued(app)
    released = row(app, forged)
    assert released["status"] == "PROCESSED"
    assert released["released_at"] is not None
    assert len(released["attachments"]) == 1


def test_altered_after_signing_fails_dkim(app, key):
    app.senders.set_policy("acme", SenderPolicy.DMARC)
    tampered = signed(key).replace(b"Please ship.", b"Please ship 900 pallets.")
    # The forger relays through a host the SPF record does not list.
    message_id = deliver(app, tampered, FORGER)
    run_queued(app)
    detail = row(app, message_id)
    assert detail["auth_dkim"] == [{"domain": "big.example", "selector": "sel", "result": "fail"}]
    assert detail["status"] == "QUARANTINED"


def test_allow_list_needs_an_authenticated_listed_sender(app, key):
    app.senders.set_policy("acme", SenderPolicy.ALLOWLIST)
    app.senders.add("acme", "*@big.example")
    listed = deliver(app, signed(key), GOOD_CLIENT)
    forged_listed = deliver(app, order(), FORGER)
    stranger = deliver(
        app, order("someone@small.example"), GOOD_CLIENT, mail_from="someone@small.example"
    )
    run_queued(app)
    assert row(app, listed)["status"] == "PROCESSED"
    assert "not authenticated" in row(app, forged_listed)["quarantine_reason"]
    assert "allow-list" in row(app, stranger)["quarantine_reason"]
    assert row(app, stranger)["auth_spf"] == "fail"


def test_monitor_records_verdicts_and_holds_nothing(app, key):
    unsigned = deliver(app, order(), FORGER)
    run_queued(app)
    detail = row(app, unsigned)
    assert detail["status"] == "PROCESSED"
    assert detail["auth_dmarc"] == "fail"
    assert detail["auth_checked_at"] is not None


def test_verdict_counts_for_metrics(app, key):
    deliver(app, signed(key), GOOD_CLIENT)
    deliver(app, order(), FORGER)
    deliver(app, order(), FORGER)
    run_queued(app)
    assert app.verdict_counts() == {
        ("acme", "spf", "pass"): 1,
        ("acme", "spf", "fail"): 2,
        ("acme", "dmarc", "pass"): 1,
        ("acme", "dmarc", "fail"): 2,
    }
