"""Tenant routing rules: every hostile variant gets the documented code."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest_core.addressing import (
    SLUG_PATTERN,
    UNKNOWN_DOMAIN,
    UNKNOWN_MAILBOX,
    Refusal,
    Route,
    is_role_address,
    route,
)
from ingest_core.ports import Reason

DOMAINS = ("orders.example.com", "orders.example.net")


def r(address: str) -> Route | object:
    routed = route(address, domains=DOMAINS, mailbox="orders")
    return routed.reply if isinstance(routed, Refusal) else routed


@pytest.mark.parametrize(
    ("address", "slug"),
    [
        ("orders+acme@orders.example.com", "acme"),
        ("orders+ACME@orders.example.com", "acme"),
        ("ORDERS+acme@ORDERS.EXAMPLE.COM", "acme"),
        ("orders+acme@orders.example.net.", "acme"),
        ("orders+a-1@orders.example.com", "a-1"),
        ("orders+" + "a" * 63 + "@orders.example.com", "a" * 63),
    ],
)
def test_valid_addresses_route_to_their_slug(address: str, slug: str) -> None:
    routed = r(address)
    assert isinstance(routed, Route)
    assert routed.slug == slug


@pytest.mark.parametrize(
    ("address", "reply"),
    [
        ("orders+acme@evil.example.com", UNKNOWN_DOMAIN),
        ("orders+acme@orders.example.com.evil", UNKNOWN_DOMAIN),
        ("orders+acme@ordérs.example.com", UNKNOWN_DOMAIN),
        ("orders@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+acme+x@orders.example.com", UNKNOWN_MAILBOX),
        ("sales+acme@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+%61cme@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+../acme@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+acme/..@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+.acme@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+-acme@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+acme_x@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+\u212aiwi@orders.example.com", UNKNOWN_MAILBOX),  # Kelvin sign folds to k
        ("orders+acm\u0435@orders.example.com", UNKNOWN_MAILBOX),  # Cyrillic e
        ("orders+\uff41cme@orders.example.com", UNKNOWN_MAILBOX),  # fullwidth a
        ('"orders+acme"@orders.example.com', UNKNOWN_MAILBOX),
        ("orders+acme\r\n@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+acme\x00@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+acme\nBcc: x@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+" + "a" * 64 + "@orders.example.com", UNKNOWN_MAILBOX),
        ("orders+acme", UNKNOWN_MAILBOX),
        ("", UNKNOWN_MAILBOX),
        ("@orders.example.com", UNKNOWN_MAILBOX),
    ],
)
def test_hostile_addresses_get_the_documented_code(address: str, reply: object) -> None:
    assert r(address) == reply


def test_kelvin_sign_would_fold_to_ascii_which_is_why_we_check_first() -> None:
    assert "\u212aiwi".lower() == "kiwi"
    assert r("orders+\u212aiwi@orders.example.com") == UNKNOWN_MAILBOX


@pytest.mark.parametrize(
    ("address", "role"),
    [
        ("postmaster@orders.example.com", True),
        ("PostMaster@Orders.Example.Com", True),
        ("abuse@orders.example.net", True),
        ("postmaster", True),
        ("postmaster@elsewhere.example", False),
        ("orders+postmaster@orders.example.com", False),
        ("hostmaster@orders.example.com", False),
    ],
)
def test_role_addresses(address: str, role: bool) -> None:
    assert is_role_address(address, DOMAINS) is role


@given(st.text(max_size=80))
def test_any_routed_slug_is_a_valid_ascii_slug(tag: str) -> None:
    routed = r(f"orders+{tag}@orders.example.com")
    if isinstance(routed, Route):
        assert routed.slug.isascii()
        assert SLUG_PATTERN.fullmatch(routed.slug)
        assert routed.slug == tag.lower()
        assert tag.isascii()


@given(st.text(min_size=1, max_size=40), st.sampled_from(DOMAINS))
def test_other_mailboxes_never_route(local: str, domain: str) -> None:
    if local.lower().startswith("orders+"):
        return
    assert not isinstance(r(f"{local}@{domain}"), Route)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("orders+acme@evil.example.com", Reason.WRONG_DOMAIN),
        ("sales+acme@orders.example.com", Reason.UNKNOWN_MAILBOX),
        ("orders+\u212aiwi@orders.example.com", Reason.UNKNOWN_MAILBOX),
    ],
)
def test_a_refusal_carries_its_reason(address: str, reason: Reason) -> None:
    routed = route(address, domains=DOMAINS, mailbox="orders")
    assert isinstance(routed, Refusal)
    assert routed.reason is reason
