"""Fixtures for core tests.

``dns_stub``  function  a running stub DNS server (``tests.dnsstub.StubDns``) with
                        an empty zone; fill ``dns_stub.zone`` in the test. Point a
                        ``DnsResolver`` at ``dns_stub.nameserver``.
"""

from __future__ import annotations

import pytest

from tests.dnsstub import running_stub


@pytest.fixture
def dns_stub():
    with running_stub() as stub:
        yield stub
