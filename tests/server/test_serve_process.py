"""`ingest serve` as a process: SIGTERM lets an in-flight transaction finish, then exits 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from tests.procs import REPO, free_port, ingest_env, run_ingest, wait_for


def _reply(reader) -> bytes:
    while True:
        line = reader.readline()
        if line[3:4] != b"-":
            return line


def test_sigterm_finishes_the_transaction_in_flight_and_exits_zero(data_dir, pg_url) -> None:
    port = free_port()
    env = ingest_env(data_dir, pg_url, INGEST_LMTP_LISTEN=f"127.0.0.1:{port}")
    assert run_ingest(env, "tenants", "add", "acme").returncode == 0
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "lmtpd.cli", "serve", "--no-milter"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_for(listening, "ingest serve listening")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            reader = sock.makefile("rb")
            assert _reply(reader).startswith(b"220")
            sock.sendall(b"LHLO t\r\n")
            assert _reply(reader).startswith(b"250")
            sock.sendall(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<orders+acme@orders.example.com>\r\n")
            sock.sendall(b"DATA\r\n")
            assert [_reply(reader)[:3] for _ in range(3)] == [b"250", b"250", b"354"]
            sock.sendall(b"Subject: in flight\r\n\r\nhalf")
            server.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the server is shutting down while the data is incomplete
            assert server.poll() is None
            sock.sendall(b" and the rest\r\n.\r\n")
            assert _reply(reader).startswith(b"250 2.0.0")
            # the session is idle now: the server says goodbye instead of waiting
            assert _reply(reader).startswith(b"421 4.3.0")
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
