"""An https endpoint: the request connects to the checked address, while TLS
verifies the certificate against the URL's host name (which is never looked up
again)."""

from __future__ import annotations

import ssl

import pytest

from ingest_core.webhooks import resolve
from ingest_core.webhooks.sender import post
from tests.events.receiver import Receiver
from tests.tls import self_signed


@pytest.fixture
def tls_receiver(tmp_path):
    cert, key = self_signed(tmp_path, "hooks.test")
    receiving = Receiver()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    receiving.use_tls(server_context)
    yield receiving, ssl.create_default_context(cafile=str(cert))
    receiving.close()


def test_https_goes_to_the_checked_address_and_verifies_the_name(tls_receiver) -> None:
    receiver, client_context = tls_receiver
    url = f"https://hooks.test:{receiver.port}/in"
    target = resolve(url, lookup=lambda host: ["127.0.0.1"], allow_private=True,
                     require_https=True)  # fmt: skip
    answer = post(target, {"webhook-id": "evt_x"}, b"{}", timeout_s=5, context=client_context)
    assert answer.status == 204, answer.error
    assert receiver.requests[0].headers["host"] == f"hooks.test:{receiver.port}"


def test_a_certificate_for_another_name_is_refused(tls_receiver) -> None:
    receiver, client_context = tls_receiver
    url = f"https://other.test:{receiver.port}/in"
    target = resolve(url, lookup=lambda host: ["127.0.0.1"], allow_private=True,
                     require_https=True)  # fmt: skip
    answer = post(target, {}, b"{}", timeout_s=5, context=client_context)
    assert answer.status is None
    assert answer.error.startswith("TLS")
    assert receiver.requests == []
