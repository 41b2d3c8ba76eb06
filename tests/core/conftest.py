"""Fixtures for core tests.

``repo``, ``store``  function  the in-memory MessageRepository and BlobStore fakes
``settings``         function  Settings with 3 extraction retries, spooling to tmp_path

``dns_stub``  function  a running stub DNS server (``tests.dnsstub.StubDns``) with
                        an empty zone; fill ``dns_stub.zone`` in the test. Point a
                        ``DnsResolver`` at ``dns_stub.nameserver``.
"""

from __future__ import annotations

import pytest

from ingest_core.adapters.memory import MemoryBlobStore, MemoryMessageRepository
from ingest_core.settings import Settings
from tests.dnsstub import running_stub


@pytest.fixture
def dns_stub():
    with running_stub() as stub:
        yield stub


@pytest.fixture
def repo():
    return MemoryMessageRepository()


@pytest.fixture
def store():
    return MemoryBlobStore()


@pytest.fixture
def settings(tmp_path):
    return Settings(extract_retries=3, spool_dir=tmp_path)
