"""End to end: swaks → private Postfix (deploy/postfix config) → milter → LMTP →
object folder + embedded Postgres + huey worker.

Every scenario checks what the sender saw (swaks' transcript and exit code), what
Postfix did (its log and queue) and what was stored (`ingest messages`).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from typing import TYPE_CHECKING

import pytest
from e2e_harness import Postfix, swaks

from tests.dnsstub import running_stub

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ACME = "orders+acme@orders.localhost"
GLOBEX = "orders+globex@orders.localhost"
NOBODY = "orders+nobody@orders.localhost"
SLEEPY = "orders+sleepy@orders.localhost"
# A loopback address of its own, so that port 53 there is free.
STUB_HOST = "127.0.0.153"

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def new_message_id() -> str:
    return f"{uuid.uuid4()}@buyer.example.net"


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def test_known_tenant_with_pdf_is_stored_and_processed(running: Stack, e2e_root: Path) -> None:
    message_id = new_message_id()
    pdf = write(e2e_root, "order-1.pdf", PDF)

    sent = swaks(running.smtp_port, [ACME], message_id=message_id, attach=pdf)

    assert sent.exit_code == 0, sent.transcript
    assert sent.replies("250 2.0.0 Ok: queued")
    running.postfix.wait_status(sent.queue_id, "sent")
    (row,) = running.ingest.wait_processed(message_id)
    assert row["org_slug"] == "acme"
    assert row["attachments"] == 1
    (attachment,) = running.ingest.show(row["id"])["attachments"]
    assert attachment["filename"] == "order-1.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert attachment["size_bytes"] == len(PDF)
    assert attachment["sha256"] == hashlib.sha256(PDF).hexdigest()
    # Postfix logged our reply, with the row's id in it.
    assert f"250 2.0.0 {row['id']}" in running.postfix.log()


def test_postfix_queue_id_reaches_the_row_through_xforward(running: Stack) -> None:
    message_id = new_message_id()

    sent = swaks(running.smtp_port, [ACME], message_id=message_id)

    assert sent.exit_code == 0, sent.transcript
    running.postfix.wait_status(sent.queue_id, "sent")
    (row,) = running.ingest.wait_processed(message_id)
    assert row["postfix_queue_id"] == sent.queue_id


@pytest.mark.parametrize(
    ("recipient", "reply", "series"),
    [
        (NOBODY, "550 5.1.1 No such mailbox", 'reason="unknown_tenant",tenant=""'),
        (SLEEPY, "550 5.2.1 Mailbox disabled", 'reason="tenant_disabled",tenant="sleepy"'),
    ],
)
def test_unknown_or_disabled_tenant_is_refused_at_rcpt_by_the_milter(
    running: Stack, recipient: str, reply: str, series: str
) -> None:
    message_id = new_message_id()

    sent = swaks(running.smtp_port, [recipient], message_id=message_id)

    assert sent.exit_code == 24, sent.transcript  # swaks: no RCPT accepted
    assert [r for r in sent.replies("550") if reply in r], sent.transcript
    # the milter refused it (Postfix's own recipient table would have let it pass)
    assert "milter-reject: RCPT from" in running.postfix.log()
    assert running.ingest.rows_for(message_id) == []
    # ... and counted it on ingest serve's /metrics
    assert f'ingest_milter_recipients_total{{outcome="rejected",{series}}}' in (
        running.ingest.metrics()
    )


def test_address_outside_the_relay_table_never_reaches_the_milter(running: Stack) -> None:
    sent = swaks(running.smtp_port, ["sales@orders.localhost"], message_id=new_message_id())

    assert sent.exit_code == 24, sent.transcript
    assert [r for r in sent.replies("550") if "relay recipient table" in r], sent.transcript


def test_two_known_and_one_unknown_recipient_give_two_rows(running: Stack) -> None:
    message_id = new_message_id()

    sent = swaks(running.smtp_port, [ACME, NOBODY, GLOBEX], message_id=message_id)

    assert sent.exit_code == 0, sent.transcript
    assert [r for r in sent.replies("550") if "5.1.1" in r], sent.transcript
    running.postfix.wait_status(sent.queue_id, "sent")
    rows = running.ingest.wait_processed(message_id, count=2)
    assert sorted(r["org_slug"] for r in rows) == ["acme", "globex"]


def test_the_same_message_twice_is_stored_once(running: Stack, e2e_root: Path) -> None:
    message_id = new_message_id()
    message = (
        f"From: Buyer <buyer@example.net>\r\n"
        f"To: {ACME}\r\n"
        f"Subject: Purchase order (resent)\r\n"
        f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{message_id}>\r\n"
        f"\r\n"
        f"Order 4711: 12 crates.\r\n"
    ).encode()
    data = write(e2e_root, "same.eml", message)

    first = swaks(running.smtp_port, [ACME], data=data)
    running.postfix.wait_status(first.queue_id, "sent")
    second = swaks(running.smtp_port, [ACME], data=data)
    running.postfix.wait_status(second.queue_id, "sent")

    assert first.queue_id != second.queue_id
    (row,) = running.ingest.wait_processed(message_id)
    # Postfix's second delivery was answered with the first row's id.
    log = running.postfix.log()
    assert f"250 2.0.0 {row['id']} accepted" in log
    assert f"250 2.0.0 {row['id']} duplicate" in log
    assert running.ingest.rows_for(message_id) == [row]


@pytest.mark.slow
def test_a_20_mb_attachment(running: Stack, e2e_root: Path) -> None:
    message_id = new_message_id()
    content = os.urandom(20 * 1024 * 1024)
    big = write(e2e_root, "scan.pdf", content)

    sent = swaks(running.smtp_port, [ACME], message_id=message_id, attach=big)

    assert sent.exit_code == 0, sent.transcript
    running.postfix.wait_status(sent.queue_id, "sent", timeout_s=300)
    (row,) = running.ingest.wait_processed(message_id, timeout_s=300)
    assert row["size_bytes"] > len(content)  # base64 and headers around it
    (attachment,) = running.ingest.show(row["id"])["attachments"]
    assert attachment["size_bytes"] == len(content)
    assert attachment["sha256"] == hashlib.sha256(content).hexdigest()


def test_ingest_down_is_a_temporary_failure_and_a_resend_works(running: Stack) -> None:
    message_id = new_message_id()
    running.ingest.stop()

    refused = swaks(running.smtp_port, [ACME], message_id=message_id)

    # Postfix cannot reach the milter when the session starts and answers per
    # milter_default_action = tempfail (at MAIL FROM): the sender's MTA retries.
    assert refused.exit_code != 0, refused.transcript
    assert [r for r in refused.replies("451") if "4.7.1" in r], refused.transcript
    assert not refused.replies("5"), refused.transcript
    assert running.postfix.queue() == []  # nothing was accepted

    running.ingest.start()
    resent = swaks(running.smtp_port, [ACME], message_id=message_id)

    assert resent.exit_code == 0, resent.transcript
    running.postfix.wait_status(resent.queue_id, "sent")
    (row,) = running.ingest.wait_processed(message_id)
    assert row["postfix_queue_id"] == resent.queue_id


def test_storage_failure_defers_in_postfix_and_delivers_once_after_recovery(
    running: Stack,
) -> None:
    message_id = new_message_id()
    with running.ingest.storage_broken():
        sent = swaks(running.smtp_port, [ACME], message_id=message_id)
        assert sent.exit_code == 0, sent.transcript  # Postfix took it: it is in its queue
        running.postfix.wait_status(sent.queue_id, "deferred")
        assert "451 4.3.0" in running.postfix.log()
        assert [m["queue_id"] for m in running.postfix.queue()] == [sent.queue_id]
        assert running.ingest.rows_for(message_id) == []

    running.postfix.flush()
    running.postfix.wait_status(sent.queue_id, "sent")
    (row,) = running.ingest.wait_processed(message_id)
    assert row["postfix_queue_id"] == sent.queue_id
    assert running.postfix.queue() == []


def test_a_name_lookup_of_ingest_that_fails_defers_instead_of_bouncing(
    running: Stack, e2e_root: Path
) -> None:
    """While the ingest container restarts its name is gone from the network's DNS;
    Postfix calls that 5.4.4 and would bounce the order (lmtp_status_filter).

    This Postfix resolves through a stub of ours that knows no names (NXDOMAIN for
    all), named by the resolv.conf of its own mount namespace: no lookup leaves the
    loopback."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a mount namespace and the stub on port 53")
    resolv_conf = e2e_root / "resolv-stub.conf"
    with running_stub({}, host=STUB_HOST, port=53) as stub:
        resolv_conf.write_text(f"nameserver {STUB_HOST}\noptions attempts:1 timeout:2\n")
        postfix = Postfix(
            e2e_root / "postfix-unresolvable",
            lmtp_port=running.ingest.lmtp_port,
            milter_port=running.ingest.milter_port,
            lmtp_nexthop="ingest.invalid:24",
            resolv_conf=resolv_conf,
        )
        postfix.start()
        try:
            sent = swaks(postfix.smtp_port, [ACME], message_id=new_message_id())
            assert sent.exit_code == 0, sent.transcript
            postfix.wait_status(sent.queue_id, "deferred")
            log = postfix.log()
            acme = re.escape(ACME)
            assert re.search(rf"{sent.queue_id}: to=<{acme}>.* dsn=4\.4\.4, ", log), log
            assert "unable to look up host ingest.invalid" in log
            assert "status=bounced" not in log
            assert [m["queue_id"] for m in postfix.queue()] == [sent.queue_id]
            assert stub.query_count("ingest.invalid") >= 1  # the stub was asked
        finally:
            postfix.stop()
