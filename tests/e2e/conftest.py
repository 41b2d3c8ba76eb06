"""Fixtures for the end-to-end tier: a private Postfix instance in front of a real
`ingest serve --with-worker` (embedded Postgres, object folder, SQLite queue).

Run with ``pytest -m e2e tests/e2e`` (or ``just e2e``). Needs root (Postfix's
master runs as root) plus the postfix and swaks packages, which are installed with
apt when missing and running as root. Without them the tier is skipped, except
under CI=true, where a missing prerequisite is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2e_harness import Ingest, Postfix, missing_commands

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass
class Stack:
    ingest: Ingest
    postfix: Postfix

    @property
    def smtp_port(self) -> int:
        return self.postfix.smtp_port


def _unavailable(reason: str) -> None:
    message = f"e2e prerequisites missing: {reason} (run scripts/e2e.sh as root)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _install_packages() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "--no-install-recommends", "postfix", "swaks"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        subprocess.run(argv, env=env, capture_output=True, check=False)


@pytest.fixture(scope="session")
def e2e_prerequisites() -> None:
    if os.geteuid() != 0:
        _unavailable("a private Postfix instance needs root")
    missing = missing_commands()
    if missing and shutil.which("apt-get"):
        _install_packages()
        missing = missing_commands()
    if missing:
        _unavailable("commands not found: " + ", ".join(missing))


@pytest.fixture(scope="session")
def e2e_root(e2e_prerequisites: None) -> Iterator[Path]:
    # Not pytest's tmp_path: that folder is private to root (0700), and Postfix's
    # daemons and embedded Postgres run as their own users.
    root = Path(tempfile.mkdtemp(prefix="ingest-e2e-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(e2e_root: Path) -> Iterator[Stack]:
    ingest = Ingest(e2e_root)
    ingest.cli("db", "upgrade")
    for slug in ("acme", "globex", "sleepy"):
        ingest.cli("tenants", "add", slug)
    ingest.cli("tenants", "disable", "sleepy")
    postfix = Postfix(e2e_root, lmtp_port=ingest.lmtp_port, milter_port=ingest.milter_port)
    try:
        ingest.start()
        postfix.start()
        yield Stack(ingest, postfix)
    finally:
        postfix.stop()
        ingest.stop()


@pytest.fixture
def running(stack: Stack) -> Iterator[Stack]:
    """The stack with ingest up and nothing left in Postfix's queue afterwards."""
    if stack.ingest.process is None:
        stack.ingest.start()
    yield stack
    if stack.ingest.process is None:
        stack.ingest.start()
    leftover = stack.postfix.queue()
    if leftover:
        stack.postfix.flush()
    assert not leftover, f"messages left in Postfix's queue: {leftover}"
