"""The Postfix phase of the benchmark harness: the null sink, the log reading, the
table, and one tiny run through a real private Postfix (skipped when Postfix is
not installed or we are not root). No assertion is about speed."""

from __future__ import annotations

import re
import smtplib
import subprocess
from pathlib import Path

import pytest

from benchmarks import postfix_phase, postfix_report
from benchmarks.postfix_phase import Maillog, Postfix

UNAVAILABLE = postfix_phase.unavailable()
RECIPIENT = "orders+bench@orders.localhost"


def test_null_sink_answers_every_recipient_and_pipelines(tmp_path: Path) -> None:
    sink = postfix_phase.start_sink(tmp_path, "test")
    try:
        with smtplib.LMTP(*sink.address) as client:
            code, _ = client.ehlo("test.localhost")
            assert code == 250
            assert {"pipelining", "xforward", "enhancedstatuscodes"} <= set(client.esmtp_features)
            assert client.docmd("XFORWARD", "NAME=client.example ADDR=192.0.2.1")[0] == 250
            client.mail("buyer@customer.example")
            assert client.rcpt(RECIPIENT)[0] == 250
            assert client.rcpt("orders+other@orders.localhost")[0] == 250
            code, _ = client.data(b"Subject: x\r\n\r\n..dot-stuffed\r\nbody\r\n")
            assert code == 250
            assert client.getreply()[0] == 250  # LMTP: one reply per recipient
            assert client.noop()[0] == 250
    finally:
        sink.stop()
    assert sink.process.returncode == 0


STAMP = "Dec 01 16:16:58 mx"


def test_maillog_counts_accepts_deliveries_and_delays() -> None:
    log = Maillog()
    active = "from=<b@c.example>, size=1800, nrcpt=1 (queue active)"
    relay = f"to=<{RECIPIENT}>, relay=127.0.0.1[127.0.0.1]:2424,"
    lines = [
        (10.0, f"{STAMP} postfix/qmgr[1]: AAA: {active}"),
        (10.5, f"{STAMP} postfix/qmgr[1]: BBB: {active}"),
        (10.6, f"{STAMP} postfix/qmgr[1]: CCC: {active}"),
        (11.0, f"{STAMP} postfix/lmtp[2]: AAA: {relay} delay=0.03,"
               " delays=0.01/0.01/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 x accepted)"),
        (12.0, f"{STAMP} postfix/lmtp[3]: BBB: {relay} conn_use=2, delay=1.5,"
               " delays=0.02/1.4/0/0.08, dsn=2.0.0,"
               " status=sent (250 2.0.0 duplicate, already accepted)"),
        (12.5, f"{STAMP} postfix/cleanup[4]: DDD: message-id=<1@x>"),
    ]  # fmt: skip
    for at, line in lines:
        log.feed(line, at)
    assert log.counts() == (3, 1)  # CCC has no status yet
    log.feed(
        f"{STAMP} postfix/lmtp[2]: CCC: {relay} conn_use=3, delay=2, delays=0.01/1.9/0/0.1,"
        " dsn=4.3.0, status=deferred (host 127.0.0.1[127.0.0.1] said: 451 4.3.0 Temporary problem)",
        13.0,
    )
    summary = log.summary()
    assert log.counts() == (3, 0)
    assert summary["accepted"] == 3
    assert summary["delivered"] == 2
    assert summary["statuses"] == {"sent": 2, "deferred": 1}
    assert summary["duplicates"] == 1
    assert summary["drain_s"] == 2.0  # first accept 10.0 → last sent 12.0
    assert summary["drained_per_s"] == 1.0
    assert summary["accept_window_s"] == 0.6
    assert summary["delay_s"] == {"p50": 0.03, "p95": 1.5, "max": 1.5}
    assert summary["delays_p95_s"]["in_qmgr"] == 1.4
    assert summary["reused_connections"] == 1


def _target(rate: float, p95: float, delivered: int = 100) -> dict[str, object]:
    return {
        "messages": 100, "accepted": 100, "delivered": delivered, "drained_per_s": rate,
        "accepted_per_s": 900.0, "delay_s": {"p50": p95 / 2, "p95": p95, "max": p95},
        "delays_p95_s": {"in_qmgr": p95, "transmit": 0.01}, "reused_connections": 99,
    }  # fmt: skip


def test_report_marks_the_postfix_targets_against_the_sink() -> None:
    phase = {
        "messages": 100,
        "sessions": 2,
        "sink": _target(1000.0, 0.5),
        "seed": _target(500.0, 1.9),
        "ours": _target(920.0, 1.0),
    }
    verdicts = postfix_report.verdicts(phase)
    assert verdicts["postfix: drained msg/s (first accept → last delivery)"] == "pass"
    assert verdicts["postfix: delay p95 (s, Postfix's delay=)"] == "pass"  # 0.5 + 0.5
    assert verdicts["postfix: not delivered (refused, deferred, bounced)"] == "pass"
    table = postfix_report.markdown(phase)
    assert "| 1,000.0 | 500.0 | 50 % | 920.0 | 92 % | ≥ 90 % of the sink | pass |" in table
    assert "| 0.50 | 1.90 | +1.40 s | 1.00 | +0.50 s | ≤ sink + 0.5 s | pass |" in table
    phase["ours"] = _target(880.0, 1.2, delivered=99)
    verdicts = postfix_report.verdicts(phase)
    assert set(verdicts.values()) == {"miss"}
    [rate] = [r for r in postfix_report.comparison(phase) if r["metric"].startswith("drained")]
    assert rate["ours vs sink (%)"] == 88.0
    assert rate["seed vs sink (%)"] == 50.0
    only_sink = {"messages": 100, "sessions": 2, "sink": _target(1000.0, 0.5)}
    assert set(postfix_report.verdicts(only_sink).values()) == {"n/a"}
    assert "skipped: no postfix" in postfix_report.markdown({"skipped": "no postfix"})


def _shipped(name: str) -> str:
    found = re.search(rf"^{name}\s*=\s*(\S+)", (postfix_phase.DEPLOY / "main.cf").read_text(), re.M)
    assert found, name
    return found.group(1)


@pytest.mark.skipif(postfix_phase.which("postconf") is None, reason="postconf not installed")
def test_config_keeps_the_shipped_delivery_settings(tmp_path: Path) -> None:
    postfix = Postfix(tmp_path / "pf", lmtp_port=2999, log_copy=tmp_path / "log")
    postfix.root.mkdir()
    if UNAVAILABLE is not None:  # not root: no chown of data_directory, no Postfix user
        pytest.skip(UNAVAILABLE)
    postfix.write_config()

    def value(name: str) -> str:
        argv = [postfix_phase.which("postconf") or "postconf", "-c", str(postfix.config_dir)]
        done = subprocess.run([*argv, "-h", name], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    for name in (
        "lmtp_destination_concurrency_limit",
        "lmtp_destination_recipient_limit",
        "lmtp_send_xforward_command",
        "lmtp_data_done_timeout",
        "message_size_limit",
    ):
        assert value(name) == _shipped(name), name  # fmt: skip
    assert value("relay_domains") == "orders.localhost"
    assert value("smtpd_milters") == ""
    assert value("inet_interfaces") == "loopback-only"
    transport = (postfix.config_dir / "transport").read_text()
    assert "orders.localhost    lmtp:inet:127.0.0.1:2999" in transport
    assert f"127.0.0.1:{postfix.smtp_port} inet" in (postfix.config_dir / "master.cf").read_text()


def _postfix_processes() -> list[str]:
    """Running (not zombie) processes of a benchmark Postfix instance."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if b"MAIL_CONFIG=" in environ and b"ingest-bench-postfix-" in environ and state != "Z":
            found.append(proc.name)
    return found


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"Postfix phase unavailable: {UNAVAILABLE}")
def test_postfix_phase_drains_a_tiny_burst_into_the_null_sink(tmp_path: Path) -> None:
    results = postfix_phase.run_phase(
        {"sink": lambda: postfix_phase.start_sink(tmp_path, "postfix")}, tmp_path, 20, 2
    )
    sink = results["sink"]
    assert sink["accepted"] == sink["delivered"] == 20
    assert sink["statuses"] == {"sent": 20}
    assert sink["smtp_source_exit"] == 0
    assert sink["left_in_queue"] == 0
    assert sink["drained_per_s"] > 0
    assert 0 <= sink["delay_s"]["p50"] <= sink["delay_s"]["p95"] <= sink["delay_s"]["max"]
    # how many deliveries reused a cached LMTP connection is Postfix's timing, not
    # ours: with 20 messages on a loaded machine it can be none
    assert 0 <= sink["reused_connections"] <= 100
    assert (tmp_path / "postfix-sink.maillog.gz").stat().st_size > 0
    assert _postfix_processes() == []
    table = postfix_report.markdown(results)
    assert "20 messages over 2 SMTP sessions" in table
    assert "| drained msg/s (first accept → last delivery) |" in table
