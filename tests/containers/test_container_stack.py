"""The images and the stack under podman: an order through the Postfix container to
PROCESSED, the milter's refusal across containers, and a SIGKILL of the ingest
container during a burst that loses nothing acknowledged. See conftest.py for the
topology; run with `just containers`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import smtplib
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
from container_stack import DOMAIN, NETWORK, PREFIX, SENDER_DOMAIN, Stack
from podman_cli import bridge_address, podman, wait_until

from lmtpd.cli.sample import SAMPLE_PDF

if TYPE_CHECKING:
    from pathlib import Path

# The module's first test also waits for the stack to come up.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

TO = f"orders+acme@{DOMAIN}"
SENDER = f"buyer@{SENDER_DOMAIN}"


def _rows(stack: Stack) -> list[dict[str, object]]:
    rows = stack.ingest_cli("messages", "list", "--org", "acme", "--limit", "1000")
    assert isinstance(rows, list)
    return rows


def _row_for(stack: Stack, message_id: str) -> dict[str, object] | None:
    found = [r for r in _rows(stack) if message_id.strip("<>") in str(r["source_message_id"])]
    assert len(found) <= 1, f"{len(found)} rows for {message_id}"
    return found[0] if found else None


def _processed(stack: Stack, message_id: str) -> dict[str, object] | None:
    row = _row_for(stack, message_id)
    return row if row is not None and row["status"] == "PROCESSED" else None


def test_the_ingest_image_runs_as_non_root_without_build_tools(stack: Stack) -> None:
    probe = "id -u; for c in gcc cc make pip pip3; do command -v $c || true; done"
    result = podman("run", "--rm", "--read-only", stack.images["ingest"], "sh", "-c", probe)
    assert result.stdout.split() == ["10001"], result.stdout


def test_an_order_sent_with_swaks_reaches_processed_with_its_attachment(
    stack: Stack, tmp_path: Path
) -> None:
    pdf = tmp_path / "PO-4711.pdf"
    pdf.write_bytes(SAMPLE_PDF)
    message_id = f"<po-4711-{uuid.uuid4().hex[:8]}@{SENDER_DOMAIN}>"
    # fmt: off
    sent = subprocess.run(
        [
            "swaks", "--server", "127.0.0.1", "--port", str(stack.smtp_port),
            "--ehlo", f"mail.{SENDER_DOMAIN}", "--from", SENDER, "--to", TO,
            "--header", "Subject: Purchase order 4711", "--header", f"Message-Id: {message_id}",
            "--body", "Please find our order attached.",
            "--attach-type", "application/pdf", "--attach-name", pdf.name, "--attach", f"@{pdf}",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )
    # fmt: on
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert re.search(r"<-  250 .*queued as", sent.stdout), sent.stdout

    wait_until(lambda: _processed(stack, message_id) is not None, "the order to be PROCESSED", 90)
    row = _row_for(stack, message_id)
    assert row is not None
    detail = stack.ingest.exec_json("ingest", "messages", "show", str(row["id"]), "--json")
    assert isinstance(detail, dict)
    assert detail["status"] == "PROCESSED"
    assert detail["envelope_recipient"] == TO
    assert detail["postfix_queue_id"]  # XFORWARD from the Postfix container
    names = [(a["filename"], a["size_bytes"]) for a in detail["attachments"]]
    assert (pdf.name, len(SAMPLE_PDF)) in names, detail["attachments"]
    # The sender check asked the stub (and only the stub answers this domain's SPF).
    assert detail["auth_spf"] == "pass", detail
    assert stack.dns.query_count(SENDER_DOMAIN, "TXT") >= 1


def test_an_unknown_tenant_is_refused_at_rcpt_by_the_milter(stack: Stack) -> None:
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as client:
        client.ehlo(f"mail.{SENDER_DOMAIN}")
        client.mail(SENDER)
        code, reply = client.rcpt(f"orders+nobody@{DOMAIN}")
    assert code == 550, reply


@dataclass
class Burst:
    """Orders sent to the Postfix container from a few threads, a connection each,
    until told to stop; which ones Postfix acknowledged (250 after DATA)."""

    port: int
    accepted: list[str] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, thread: int, most: int = 200) -> None:
        for i in range(most):
            if self.stop.is_set():
                return
            message_id = f"<burst-{thread}-{i}-{uuid.uuid4().hex[:8]}@{SENDER_DOMAIN}>"
            message = EmailMessage()
            message["From"], message["To"] = SENDER, TO
            message["Subject"], message["Message-ID"] = f"Order {thread}-{i}", message_id
            message.set_content("Order attached.")
            message.add_attachment(
                SAMPLE_PDF, maintype="application", subtype="pdf", filename=f"PO-{thread}-{i}.pdf"
            )
            # Deliveries that take a while, so that the kill can meet one.
            message.add_attachment(
                os.urandom(512 * 1024),
                maintype="application",
                subtype="octet-stream",
                filename=f"scan-{thread}-{i}.bin",
            )
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                    client.send_message(message, SENDER, [TO])
            except smtplib.SMTPResponseException as exc:
                self._refused(message_id, exc.smtp_code)
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                self._refused(message_id, next(iter(exc.recipients.values()))[0])
                continue
            with self.lock:
                self.accepted.append(message_id)
            time.sleep(0.02)

    def _refused(self, message_id: str, code: int) -> None:
        with self.lock:
            self.refused.append((message_id, code))
        time.sleep(0.2)


def _postfix_delivered(stack: Stack) -> list[str]:
    """Our ids in the Postfix container's `status=sent (250 2.0.0 <id> accepted)`."""
    return re.findall(r"status=sent \(250 2\.0\.0 <?([0-9a-f-]{36})>? ", stack.postfix.logs())


def _queue_empty(stack: Stack) -> bool:
    return stack.postfix.exec("postqueue", "-j").stdout.strip() == ""


def _delivering(stack: Stack) -> bool:
    """A message in Postfix's active queue: a delivery to ingest under way."""
    lines = stack.postfix.exec("postqueue", "-j").stdout.splitlines()
    return any(json.loads(line).get("queue_name") == "active" for line in lines if line.strip())


def _unfinished(stack: Stack) -> str:
    """What a failure report needs: the rows not PROCESSED, and what the database's
    sessions are doing (a lock wait, a transaction left open)."""
    queries = [
        "SELECT source_message_id, status, attempts, claimed_at, retry_at, received_at, last_error"
        " FROM inbound_message WHERE status <> 'PROCESSED' ORDER BY received_at",
        "SELECT pid, application_name, client_addr, state, wait_event_type, wait_event,"
        " now() - xact_start AS in_transaction, left(query, 100) AS query"
        " FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    ]
    out = []
    for query in queries:
        result = podman(
            "exec", f"{PREFIX}-db", "psql", "-h", "/var/run/postgresql", "-U", "ingest",
            "-d", "ingest", "-c", query, check=False,
        )  # fmt: skip
        out.append(result.stdout + result.stderr)
    return "\n".join(out)


def test_a_sigkill_of_ingest_during_a_burst_loses_nothing_acknowledged(stack: Stack) -> None:
    delivered_before = len(_postfix_delivered(stack))
    burst = Burst(stack.smtp_port)
    threads = [threading.Thread(target=burst.send, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: len(_postfix_delivered(stack)) >= delivered_before + 10,
            "ten burst messages delivered to ingest",
            60,
        )
        # Aim the kill at a delivery in progress (its LMTP transaction may be cut
        # before or after our commit); if none is seen soon, kill all the same.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: _delivering(stack), "a delivery under way", 20)
        gateway_mac = bridge_address(NETWORK)
        stack.ingest.kill()
        acknowledged_at_kill = len(burst.accepted)
        # The senders go on against the dead ingest until some have been refused.
        wait_until(lambda: len(burst.refused) >= 3, "sends refused while ingest is down", 60)
    finally:
        burst.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert stack.ingest.state()["Status"] == "exited"
    stack.ingest.start()
    stack.ingest.wait_healthy()
    # The gateway kept its MAC while ingest left the bridge and joined it again, so
    # the worker's traffic to the doubles went on (podman_cli.pin_bridge_address).
    assert bridge_address(NETWORK) == gateway_mac
    stack.postfix.exec("postqueue", "-f")
    wait_until(lambda: _queue_empty(stack), "the Postfix queue to drain", 120)

    def statuses() -> list[object]:
        rows = {str(r["source_message_id"]): r["status"] for r in _rows(stack)}
        return [rows.get(m.strip("<>")) for m in burst.accepted]

    wait_until(lambda: None not in statuses(), "every acknowledged message to be stored", 60)
    # A message whose 250 went out before the kill but whose extraction job did not
    # reach the queue waits in RECEIVED for the sweep (the rows are the truth; the
    # stack's INGEST_SWEEP_AGE_S is 5 s). Run it as an operator would.
    left_received = statuses().count("RECEIVED")

    def processed_after_a_sweep() -> bool:
        if set(statuses()) == {"PROCESSED"}:
            return True
        stack.ingest.exec("ingest", "sweep")
        return False

    # 240 s: a message whose extraction met a dependency's hiccup right after the
    # kill waits for its retries (30 s, then 60 s, then 120 s later).
    try:
        wait_until(
            processed_after_a_sweep, "every acknowledged message to be PROCESSED", 240, every_s=5
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_unfinished(stack)}") from None
    rows = _rows(stack)
    stored = [str(r["source_message_id"]) for r in rows]
    burst_rows = [s for s in stored if s.startswith("burst-")]
    # Nothing Postfix acknowledged is missing, none is stored twice, nothing else came.
    assert sorted(burst_rows) == sorted(m.strip("<>") for m in burst.accepted)
    # Every 250 ingest gave Postfix names a row (ids from Postfix's log).
    ids = {str(r["id"]) for r in rows}
    delivered = set(_postfix_delivered(stack))
    assert len(delivered) > delivered_before
    assert delivered <= ids
    # Sends that met the dead milter were refused with a 4xx (the sender's MTA
    # would retry): Postfix accepted nothing unchecked.
    assert all(400 <= code < 500 for _, code in burst.refused), burst.refused
    deferred = stack.postfix.logs().count("status=deferred")
    retries = stack.worker.logs().count('"outcome": "retry"')
    print(
        f"burst: {len(burst.accepted)} acknowledged by Postfix ({acknowledged_at_kill} before"
        f" the SIGKILL), {len(burst.refused)} refused with 4xx while ingest was down,"
        f" {deferred} deliveries deferred and retried; {len(burst_rows)} stored once each"
        f" ({left_received} RECEIVED until the sweep), all PROCESSED after"
        f" {retries} extraction retries"
    )
