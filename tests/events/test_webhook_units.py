"""Signing, the retry schedule and the address checks, without a network."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from ingest_core.webhooks import SecretBox, UnsafeEndpoint, resolve, schedule, signing


def test_our_signature_verifies_with_the_reference_implementation() -> None:
    secret = signing.new_secret()
    body = b'{"type":"message.received"}'
    stamp = int(datetime.now(UTC).timestamp())
    headers = signing.headers([secret], "evt_" + "a" * 32, stamp, body)
    assert Webhook(secret).verify(body, headers) == {"type": "message.received"}
    assert headers["webhook-signature"].startswith("v1,")


def test_the_schedule_follows_the_specification_with_jitter() -> None:
    rng = random.Random(7)
    delays = [schedule.next_delay(n, rng=rng) for n in range(1, schedule.MAX_ATTEMPTS + 1)]
    assert delays[-1] is None
    for got, want in zip(delays[:-1], (5, 300, 1800, 7200, 18000, 36000, 36000), strict=True):
        assert want * 0.9 <= got <= want * 1.1
    assert schedule.next_delay(1, retry_after_s=600) == 600
    assert schedule.next_delay(1, retry_after_s=10**9) == schedule.MAX_RETRY_AFTER_S


def test_retry_after_as_seconds_or_a_date() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert schedule.parse_retry_after("30", now) == 30
    assert schedule.parse_retry_after("Tue, 01 Dec 2026 12:01:00 GMT", now) == 60
    assert schedule.parse_retry_after("soon", now) is None
    assert schedule.parse_retry_after(None, now) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.5.5", "private"),
        ("100.64.0.1", "CGNAT"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("0.0.0.0", "unicast"),
        ("224.0.0.1", "unicast"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(UnsafeEndpoint, match=reason):
        resolve("https://hooks.example.com/x", lookup=lambda _: [address],
                allow_private=False, require_https=False)  # fmt: skip


def test_one_bad_address_among_several_refuses_the_name() -> None:
    with pytest.raises(UnsafeEndpoint):
        resolve("https://h.example.com/", lookup=lambda _: ["93.184.216.34", "10.0.0.1"],
                allow_private=False, require_https=False)  # fmt: skip


def test_the_checked_address_is_the_one_connected_to() -> None:
    target = resolve(
        "https://hooks.example.com:8443/in?x=1",
        lookup=lambda _: ["93.184.216.34"],
        allow_private=False,
        require_https=True,
    )
    assert (target.host, target.port, target.path, target.address) == (
        "hooks.example.com", 8443, "/in?x=1", "93.184.216.34",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("http://hooks.example.com/", "https is required"),
        ("ftp://hooks.example.com/", "only http and https"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https:///nohost", "names no host"),
    ],
)
def test_urls_refused_before_any_lookup(url: str, text: str) -> None:
    with pytest.raises(UnsafeEndpoint, match=text):
        resolve(url, lookup=lambda _: ["93.184.216.34"], allow_private=False, require_https=True)


def test_secrets_are_sealed_with_the_key() -> None:
    box = SecretBox("k1")
    sealed = box.seal("whsec_abc")
    assert "whsec_abc" not in sealed
    assert box.open(sealed) == "whsec_abc"
    assert SecretBox(None).open(SecretBox(None).seal("whsec_x")) == "whsec_x"
    from ingest_core.errors import ConfigError

    with pytest.raises(ConfigError):
        SecretBox("k2").open(sealed)
    with pytest.raises(ConfigError):
        SecretBox(None).open(sealed)
