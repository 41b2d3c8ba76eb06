"""Tenant routing under attack, end to end: raw LMTP → trio server → the real
Postgres tenant directory → rows.

Tenants: acme, globex, kiwi (active) and gone (disabled). Every address gets
its documented reply (docs/contracts.md#lmtp): unknown domain 550 5.1.2;
unknown mailbox, tag or tenant 550 5.1.1; disabled tenant 550 5.2.1; non-ASCII
without SMTPUTF8 553 5.6.7; malformed 501 5.1.3. An accepted address is stored under exactly
the tenant its ASCII tag names, never another.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from tests.hostile.conftest import DOMAIN
from tests.server.rawclient import RawClient

if TYPE_CHECKING:
    from ingest_core.bootstrap import App
    from tests.hostile.conftest import ServeApp

pytestmark = pytest.mark.timeout(60)

OK = (250, "2.1.5")
UNKNOWN = (550, "5.1.1")
FOREIGN_DOMAIN = (550, "5.1.2")
DISABLED = (550, "5.2.1")
NEEDS_UTF8 = (553, "5.6.7")
MALFORMED = (501, "5.1.3")

KELVIN = "\u212a"  # folds to "k"
CYRILLIC_A = "\u0430"  # looks like "a"
FULLWIDTH_DOMAIN = DOMAIN.replace("o", "\uff4f", 1)  # NFKC folds it back to DOMAIN

# (address, SMTPUTF8 on MAIL, expected reply, tenant it must land in)
CASES: list[tuple[str, bool, tuple[int, str], str | None]] = [
    (f"orders+acme@{DOMAIN}", False, OK, "acme"),
    (f"orders+ACME@{DOMAIN}", False, OK, "acme"),
    (f"ORDERS+Acme@{DOMAIN.upper()}", False, OK, "acme"),
    (f"orders+kiwi@{DOMAIN}", False, OK, "kiwi"),
    (f"orders+acme+x@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+acme+globex@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+globex+acme@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+ac%6De@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+%61cme@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+acme%40{DOMAIN}@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+acme%globex@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+acme/../globex@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+..%2Facme@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+.acme@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+acme.@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+a..cme@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+acme-@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+{'a' * 64}@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+{KELVIN}iwi@{DOMAIN}", False, NEEDS_UTF8, None),
    (f"orders+{KELVIN}iwi@{DOMAIN}", True, UNKNOWN, None),
    (f"orders+{CYRILLIC_A}cme@{DOMAIN}", False, NEEDS_UTF8, None),
    (f"orders+{CYRILLIC_A}cme@{DOMAIN}", True, UNKNOWN, None),
    (f"orders+\uff41\uff43\uff4d\uff45@{DOMAIN}", True, UNKNOWN, None),  # fullwidth
    (f"orders+acme\u200b@{DOMAIN}", True, MALFORMED, None),  # zero-width space
    (f"{KELVIN}orders+acme@{DOMAIN}", True, UNKNOWN, None),
    (f'"orders+acme"@{DOMAIN}', False, UNKNOWN, None),
    (f'"orders+acme@{DOMAIN}"@{DOMAIN}', False, UNKNOWN, None),
    (f'"orders+globex"@{DOMAIN}', True, UNKNOWN, None),
    ("orders+acme@elsewhere.example", False, FOREIGN_DOMAIN, None),
    (f"orders+acme@{DOMAIN}.elsewhere.example", False, FOREIGN_DOMAIN, None),
    (f"orders+acme@sub.{DOMAIN}", False, FOREIGN_DOMAIN, None),
    (f"orders+acme@{DOMAIN}.", False, MALFORMED, None),
    (f"orders+acme@{DOMAIN}\u3002", True, FOREIGN_DOMAIN, None),  # ideographic full stop
    (f"@elsewhere.example:orders+acme@{DOMAIN}", False, UNKNOWN, None),  # source route
    ("orders+acme@[127.0.0.1]", False, FOREIGN_DOMAIN, None),
    (f"orders+acme@{FULLWIDTH_DOMAIN}", False, NEEDS_UTF8, None),
    (f"orders+acme@{FULLWIDTH_DOMAIN}", True, FOREIGN_DOMAIN, None),
    (f"orders+gone@{DOMAIN}", False, DISABLED, None),
    (f"orders+GONE@{DOMAIN}", False, DISABLED, None),
    (f"orders+nobody@{DOMAIN}", False, UNKNOWN, None),
    (f"orders@{DOMAIN}", False, UNKNOWN, None),
    (f"orders+@{DOMAIN}", False, UNKNOWN, None),
    (f"sales+acme@{DOMAIN}", False, UNKNOWN, None),
    (f"orders-acme@{DOMAIN}", False, UNKNOWN, None),
    (f"acme@{DOMAIN}", False, UNKNOWN, None),
]


def label(case: tuple[str, bool, tuple[int, str], str | None]) -> str:
    address, utf8, _, _ = case
    return address.encode("unicode_escape").decode() + (" SMTPUTF8" if utf8 else "")


async def rcpt(client: RawClient, address: str, smtputf8: bool) -> tuple[int, str]:
    param = " SMTPUTF8" if smtputf8 else ""
    await client.send(f"MAIL FROM:<b@example.org>{param}\r\n".encode())
    assert await client.code() == 250
    await client.send(f"RCPT TO:<{address}>\r\n".encode())
    code, lines = await client.reply()
    return code, lines[0][4:9].decode()


async def test_hostile_recipients_get_their_documented_codes_and_land_nowhere_else(
    pg_app: App, serve_app: ServeApp
) -> None:
    address = await serve_app(pg_app)
    client = await RawClient.connect(address)
    await client.hello()
    tenants = {t.id: t.slug for t in pg_app.admin.list()}
    mismatches = []
    for case in CASES:
        recipient, smtputf8, expected, tenant = case
        got = await rcpt(client, recipient, smtputf8)
        if got != expected:
            mismatches.append((label(case), got, expected))
        if got[0] != 250:
            await client.send(b"RSET\r\n")
            assert await client.code() == 250
            continue
        body = f"Message-ID: <{uuid.uuid4()}@buyer.example>\r\nSubject: x\r\n\r\norder\r\n"
        await client.send(b"DATA\r\n")
        assert await client.code() == 354
        await client.send(body.encode() + b".\r\n")
        code, lines = await client.reply()
        assert code == 250, label(case)
        row = pg_app.operator.show_message(uuid.UUID(lines[0].split()[2].decode()))
        assert row is not None
        assert (tenants[row["org_id"]], row["envelope_recipient"]) == (tenant, recipient)
    assert mismatches == [], "\n".join(map(str, mismatches))
    stored = pg_app.operator.list_messages(org_slug=None, status=None, limit=100)
    expected_rows = sorted(t for _, _, _, t in CASES if t is not None)
    assert sorted(row["org_slug"] for row in stored) == expected_rows
