"""The tenant API of a real `ingest serve` process, alone and under
``--processes 2`` (the supervisor serves it), and its TLS/production rule."""

from __future__ import annotations

import json
import ssl
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest

from ingest_core.bootstrap import open_app
from ingest_core.ports import Envelope
from ingest_core.settings import Settings
from ingest_core.spool import Spool
from tests.procs import DOMAIN, Child, free_port, ingest_env, run_ingest, wait_for
from tests.tls import self_signed

if TYPE_CHECKING:
    from pathlib import Path


def _get(url: str, token: str, **kwargs: object) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, **kwargs) as reply:  # type: ignore[arg-type]
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _provision(env: dict[str, str], data_dir: Path, pg_url: str) -> tuple[str, str]:
    """Tenant acme with one delivered message: (its token, the message id)."""
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    created = run_ingest(env, "tokens", "create", "acme", "--name", "app")
    assert created.returncode == 0, created.stderr
    settings = Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,))
    with open_app(settings) as app:
        decision = app.service.check_recipient(f"orders+acme@{DOMAIN}", False)
        raw = b"Message-ID: <api-proc@x>\r\nSubject: order\r\n\r\nship 10 widgets\r\n"
        [outcome] = app.service.accept(
            Envelope(mail_from="buyer@example.com", recipients=(decision,)), Spool.from_bytes(raw)
        )
    assert outcome.message_id is not None
    return created.stdout.strip(), str(outcome.message_id)


def _serve(env: dict[str, str], log_path: Path, *args: str) -> Child:
    argv = [sys.executable, "-m", "lmtpd.cli", "serve", "--no-milter", *args]
    child = Child(argv, env, log_path)
    child.start()
    return child


@pytest.mark.parametrize("processes", [1, 2])
def test_serve_answers_the_api(data_dir: Path, pg_url: str, processes: int) -> None:
    port = free_port()
    env = ingest_env(
        data_dir,
        pg_url,
        INGEST_LMTP_LISTEN=f"127.0.0.1:{free_port()}",
        INGEST_API_LISTEN=f"127.0.0.1:{port}",
    )
    token, message_id = _provision(env, data_dir, pg_url)
    child = _serve(env, data_dir / "serve.log", "--processes", str(processes))
    url = f"http://127.0.0.1:{port}/v1/messages"
    try:

        def answers() -> bool:
            child.check_alive("ingest serve")
            try:
                return _get(url, token)[0] == 200
            except OSError:
                return False

        wait_for(answers, "the tenant API to answer")
        status, body = _get(url, token)
        assert status == 200
        assert [m["id"] for m in json.loads(body)["messages"]] == [message_id]
        assert _get(url, "ing_nope")[0] == 401
    finally:
        child.stop()
    assert child.process is not None
    assert child.process.returncode == 0


def _production(env: dict[str, str], data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **env,
        "INGEST_ENV": "production",
        "INGEST_OBJECT_STORE_URL": f"file://{data_dir / 'objects'}",
        "INGEST_QUEUE_URL": f"sqlite:///{data_dir / 'queue.db'}",
        **extra,
    }


def test_production_refuses_a_public_api_without_tls(data_dir: Path, pg_url: str) -> None:
    env = _production(
        ingest_env(data_dir, pg_url, INGEST_LMTP_LISTEN=f"127.0.0.1:{free_port()}"),
        data_dir,
        INGEST_API_LISTEN=f"0.0.0.0:{free_port()}",
    )
    result = run_ingest(env, "serve", "--no-milter")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("configuration error: ")]
    assert "INGEST_API_LISTEN" in line
    assert "INGEST_API_TLS_CERT" in line
    assert "INGEST_API_TRUSTED_PROXIES" in line
    # a trusted proxy that terminates TLS is enough (a one-shot command checks the same rule)
    proxied = {**env, "INGEST_API_TRUSTED_PROXIES": "10.0.0.0/8"}
    assert run_ingest(proxied, "tenants", "list").returncode == 0
    half = {**env, "INGEST_API_TLS_CERT": str(data_dir / "cert.pem")}
    result = run_ingest(half, "tenants", "list")
    assert result.returncode == 2
    assert "set both" in result.stderr


def test_production_api_over_tls(data_dir: Path, pg_url: str) -> None:
    port = free_port()
    cert, key = self_signed(data_dir, "127.0.0.1", prefix="api-")
    env = _production(
        ingest_env(data_dir, pg_url, INGEST_LMTP_LISTEN=f"127.0.0.1:{free_port()}"),
        data_dir,
        INGEST_API_LISTEN=f"0.0.0.0:{port}",
        INGEST_API_TLS_CERT=str(cert),
        INGEST_API_TLS_KEY=str(key),
    )
    token, message_id = _provision(env, data_dir, pg_url)
    context = ssl.create_default_context(cafile=str(cert))
    child = _serve(env, data_dir / "serve.log")
    url = f"https://127.0.0.1:{port}/v1/messages"
    try:

        def answers() -> bool:
            child.check_alive("ingest serve")
            try:
                return _get(url, token, context=context)[0] == 200
            except OSError:
                return False

        wait_for(answers, "the tenant API to answer over TLS")
        status, body = _get(url, token, context=context)
        assert status == 200
        assert [m["id"] for m in json.loads(body)["messages"]] == [message_id]
        with pytest.raises(ConnectionError):  # plain HTTP on the TLS port is not served
            _get(f"http://127.0.0.1:{port}/v1/messages", token)
    finally:
        child.stop()
