"""deploy/postfix parses, its numbers agree with ingest's defaults, and its
recipient table agrees with ingest_core.addressing.

Needs Postfix's tools (postconf, postmap) but no running instance and no root.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import TYPE_CHECKING

import pytest
from e2e_harness import DEPLOY, PRODUCTION_DOMAIN, run, which

from ingest_core.addressing import DISABLED_TENANT, UNKNOWN_TENANT, Route, is_role_address, route
from ingest_core.settings import Settings
from lmtpd.protocol import _replies as replies

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

STOCK_MASTER_CF = """\
smtp      inet  n       -       y       -       -       smtpd
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
bounce    unix  -       -       y       -       0       bounce
defer     unix  -       -       y       -       0       bounce
smtp      unix  -       -       y       -       -       smtp
lmtp      unix  -       -       y       -       -       lmtp
"""


@pytest.fixture(scope="module")
def tools() -> None:
    missing = [c for c in ("postconf", "postmap") if which(c) is None]
    if missing:
        message = f"needs Postfix's {', '.join(missing)} (apt-get install postfix)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def config_dir(tools: None, tmp_path: Path) -> Path:
    """main.cf as shipped; master.cf = a stock one with the shipped smtp line swapped in."""
    (tmp_path / "main.cf").write_text((DEPLOY / "main.cf").read_text())
    stock = "".join(
        line for line in STOCK_MASTER_CF.splitlines(keepends=True) if " inet " not in line
    )
    (tmp_path / "master.cf").write_text(stock + (DEPLOY / "master.cf").read_text())
    return tmp_path


def postconf(config_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([which("postconf") or "postconf", "-c", str(config_dir), *args])


def parameter(config_dir: Path, name: str) -> str:
    """A value set in main.cf, as Postfix parsed it (`postconf -n`: fast, unlike
    `postconf -h`, which also works out every default)."""
    result = postconf(config_dir, "-n")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" =")
        if key == name:
            return value.strip()
    raise AssertionError(f"{name} is not set in deploy/postfix/main.cf")


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([smhdw]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


def test_main_and_master_cf_parse_without_warnings(config_dir: Path) -> None:
    result = postconf(config_dir, "-n")
    assert result.returncode == 0, result.stderr
    # postconf warns about every misspelt or unknown parameter
    assert result.stderr == ""
    services = postconf(config_dir, "-M", "smtp/inet")
    assert services.returncode == 0, services.stderr
    fields = services.stdout.split()
    assert fields[:2] == ["smtp", "inet"]
    assert fields[4] == "n"  # no chroot: smtpd resolves the milter's host name


def test_sizes_and_timeouts_fit_ingest_defaults(config_dir: Path) -> None:
    defaults = Settings()
    limit = int(parameter(config_dir, "message_size_limit"))
    assert limit <= defaults.max_message_bytes - (1 << 20)
    done = seconds(parameter(config_dir, "lmtp_data_done_timeout"))
    assert done >= 3 * defaults.store_timeout_s  # object, row and job, at least
    recipients = int(parameter(config_dir, "lmtp_destination_recipient_limit"))
    assert recipients <= defaults.max_recipients


def test_edge_settings(config_dir: Path) -> None:
    assert parameter(config_dir, "milter_default_action") == "tempfail"
    assert parameter(config_dir, "smtpd_milters") == "inet:ingest:8890"
    assert parameter(config_dir, "lmtp_send_xforward_command") == "yes"
    assert parameter(config_dir, "smtputf8_enable") == "yes"
    assert parameter(config_dir, "smtpd_tls_security_level") == "may"
    assert parameter(config_dir, "relay_domains") == PRODUCTION_DOMAIN
    relay = parameter(config_dir, "smtpd_relay_restrictions")
    assert relay == "reject_unauth_destination"
    assert "permit_mynetworks" not in relay


def lookup(table: str, keys: list[str]) -> dict[str, str]:
    """Batch `postmap -q -`: key → value for the keys the table matches."""
    result = subprocess.run(
        [which("postmap") or "postmap", "-q", "-", table],
        input="".join(f"{k}\n" for k in keys),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: nothing matched
    return dict(line.split("\t", 1) for line in result.stdout.splitlines())


ADDRESSES = [
    f"orders+acme@{PRODUCTION_DOMAIN}",
    f"ORDERS+Acme@{PRODUCTION_DOMAIN.upper()}",
    f"orders+a-b-c@{PRODUCTION_DOMAIN}",
    f"orders+{'a' * 63}@{PRODUCTION_DOMAIN}",
    f"orders+{'a' * 64}@{PRODUCTION_DOMAIN}",
    f"orders+-acme@{PRODUCTION_DOMAIN}",
    f"orders+ac.me@{PRODUCTION_DOMAIN}",
    f"orders+acme+x@{PRODUCTION_DOMAIN}",
    f"orders+@{PRODUCTION_DOMAIN}",
    f"orders@{PRODUCTION_DOMAIN}",
    f"sales+acme@{PRODUCTION_DOMAIN}",
    f"orders+\u212aiwi@{PRODUCTION_DOMAIN}",
    f"orders+acm\u00e9@{PRODUCTION_DOMAIN}",
    f"orders+acme@sub.{PRODUCTION_DOMAIN}",
    f"orders+acme@{PRODUCTION_DOMAIN}.evil.example",
    "orders+acme@elsewhere.example",
    f"postmaster@{PRODUCTION_DOMAIN}",
    f"Abuse@{PRODUCTION_DOMAIN}",
    f"hostmaster@{PRODUCTION_DOMAIN}",
]


def test_relay_recipient_table_matches_the_addressing_rules(tools: None) -> None:
    found = lookup(f"regexp:{DEPLOY / 'relay_recipients.regexp'}", ADDRESSES)
    domains = (PRODUCTION_DOMAIN,)
    for address in ADDRESSES:
        ours = isinstance(route(address, domains=domains, mailbox="orders"), Route)
        expected = ours or is_role_address(address, domains)
        assert (address in found) is expected, address


def test_transport_and_role_address_maps(tools: None) -> None:
    transport = lookup(f"texthash:{DEPLOY / 'transport'}", [PRODUCTION_DOMAIN])
    assert transport == {PRODUCTION_DOMAIN: "lmtp:inet:ingest:24"}
    roles = [f"postmaster@{PRODUCTION_DOMAIN}", f"abuse@{PRODUCTION_DOMAIN}"]
    virtual = lookup(f"texthash:{DEPLOY / 'virtual'}", roles)
    assert set(virtual) == set(roles)
    assert all(not target.endswith(PRODUCTION_DOMAIN) for target in virtual.values())


def test_the_lmtp_status_filter_defers_a_failed_lookup_of_ingest_only(config_dir: Path) -> None:
    assert parameter(config_dir, "lmtp_delivery_status_filter") == (
        "regexp:/etc/postfix/lmtp_status_filter"
    )
    table = f"regexp:{DEPLOY / 'lmtp_status_filter'}"
    lookup_failed = "5.4.4 unable to look up host ingest: Name or service not known"
    assert lookup(table, [lookup_failed]) == {lookup_failed: "4" + lookup_failed[1:]}
    # What ingest itself answers permanently stays permanent.
    permanent = [replies.TOO_BIG, replies.NO_VALID_RECIPIENTS, replies.BAD_SYNTAX]
    ours = [f"{r.enhanced} {r.text}" for r in [*permanent, UNKNOWN_TENANT, DISABLED_TENANT]]
    assert lookup(table, ours) == {}
