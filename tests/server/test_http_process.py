"""`ingest serve` as a process: the HTTP endpoint answers, stops with the process on
SIGTERM (a port it cannot bind: tests/server/test_cli_startup.py); the JSON
log lines of one delivery carry conn, txn and the id of the 250 reply."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING

from tests.procs import REPO, free_port, ingest_env, run_ingest, wait_for

if TYPE_CHECKING:
    from pathlib import Path

DOMAIN = "orders.example.com"


def _start(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lmtpd.cli", "serve", "--no-milter"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(server: subprocess.Popen[bytes]) -> int:
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _deliver(port: int) -> str:
    with smtplib.LMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("buyer@example.org")
        assert client.rcpt(f"orders+nobody@{DOMAIN}")[0] == 550
        assert client.rcpt(f"orders+acme@{DOMAIN}")[0] == 250
        code, text = client.data(b"Message-ID: <p@b.example>\r\nSubject: x\r\n\r\nhi\r\n")
        assert code == 250
        return text.decode().split()[1]


def test_http_endpoint_serves_and_stops_on_sigterm(data_dir: Path, pg_url: str) -> None:
    lmtp_port, http_port = free_port(), free_port()
    env = ingest_env(
        data_dir,
        pg_url,
        INGEST_LMTP_LISTEN=f"127.0.0.1:{lmtp_port}",
        INGEST_HTTP_LISTEN=f"127.0.0.1:{http_port}",
    )
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    server = _start(env, data_dir / "serve.log")
    try:
        wait_for(lambda: _listening(http_port), "the HTTP endpoint")
        assert _http_get(http_port, "/healthz") == (200, b"ok\n")
        message_id = _deliver(lmtp_port)
        status, body = _http_get(http_port, "/metrics")
        assert status == 200
        assert (
            b'ingest_lmtp_recipients_total{outcome="accepted",reason="ok",tenant="acme"} 1.0'
            in body
        )
    finally:
        assert _stop(server) == 0
    assert not _listening(http_port)
    lines = [json.loads(line) for line in (data_dir / "serve.log").read_text().splitlines()]
    accepted = [line for line in lines if line.get("event") == "recipient outcome"]
    done = [line for line in lines if line.get("event") == "transaction done"]
    assert len(accepted) == len(done) == 1
    assert accepted[0]["message_id"] == done[0]["message_id"] == message_id
    assert accepted[0]["conn"] == done[0]["conn"]
    assert accepted[0]["txn"] == done[0]["txn"]
    # The refused recipient of the same transaction: one line, same conn and txn.
    [refused] = [line for line in lines if line.get("event") == "recipient refused"]
    assert (refused["conn"], refused["txn"]) == (done[0]["conn"], done[0]["txn"])
    assert (refused["code"], refused["reason"]) == (550, "unknown_tenant")
    assert refused["recipient"] == f"orders+nobody@{DOMAIN}"
