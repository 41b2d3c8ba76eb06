"""The seed design: the LMTP receiver as the original plan sketched it, standalone.

Nothing of ``ingest_core`` runs here. aiosmtpd's ``LMTP`` class on one asyncio
loop, with a handler that

- in ``handle_RCPT`` checks the recipient's tag (``orders+SLUG@domain``) against
  the tenants read once at start from Postgres (``550 5.1.1`` otherwise);
- in ``handle_DATA`` takes the sha256 of the content and its Message-ID header,
  writes the raw message content-addressed into one folder (temporary file,
  fsync, rename, folder fsync; in ``asyncio.to_thread``), then runs one
  ``INSERT ... ON CONFLICT DO NOTHING`` into ``inbound_message`` through
  psycopg's ``AsyncConnectionPool`` (4 to 20 connections, autocommit) and
  answers ``250 2.0.0 <id> accepted``.

No queue, no per-message log. aiosmtpd's LMTP sends one reply after the data
whatever the number of recipients, so one recipient per message (as the
aiosmtpd baseline does).

    python -m benchmarks.seed_design --port 2526 --database-url ... --objects FOLDER

Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.parser
import hashlib
import logging
import os
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("seed_design")

POOL_MIN, POOL_MAX = 4, 20
DATA_SIZE_LIMIT = 36_700_160  # INGEST_MAX_MESSAGE_BYTES' default
MAILBOX = "orders"

INSERT = """
INSERT INTO inbound_message (
    id, org_id, source, source_message_id, message_id_header, sha256, content_sha256,
    size_bytes, raw_object_key, envelope_from, envelope_recipient
) VALUES (%s, %s, 'EMAIL', %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""

NO_SUCH_MAILBOX = "550 5.1.1 No such mailbox"
ONE_RECIPIENT = "452 4.5.3 One recipient per message here"
TEMPORARY = "451 4.3.0 Temporary local problem, try again later"


@dataclass(frozen=True, slots=True)
class Config:
    domains: frozenset[str]
    objects: Path


def tenant_slug(address: str, domains: frozenset[str]) -> str | None:
    """The SLUG of ``orders+SLUG@domain`` (lower case) for one of ``domains``."""
    local, at, domain = address.rpartition("@")
    if not at or domain.rstrip(".").lower() not in domains:
        return None
    box, plus, tag = local.partition("+")
    if box.lower() != MAILBOX or not plus or not tag.isascii():
        return None
    return tag.lower()


def message_id(content: bytes) -> str | None:
    """The Message-ID header without its angle brackets; None if absent or odd."""
    head = content.split(b"\r\n\r\n", 1)[0]
    value = email.parser.BytesHeaderParser().parsebytes(head).get("Message-ID")
    if value is None:
        return None
    text = "".join(str(value).split()).removeprefix("<").removesuffix(">")
    return text if text and text.isascii() and text.isprintable() else None


def write_object(folder: Path, name: str, content: bytes) -> None:
    """``folder/name`` holds ``content`` durably: temp file, fsync, rename, folder fsync."""
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class SeedHandler:
    """aiosmtpd handler hooks: tenant check, then file + one row per message."""

    def __init__(self, config: Config, tenants: dict[str, uuid.UUID], pool: AsyncConnectionPool):
        self._config = config
        self._tenants = tenants
        self._pool = pool

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if envelope.rcpt_tos:
            return ONE_RECIPIENT
        slug = tenant_slug(address, self._config.domains)
        if slug is None or slug not in self._tenants:
            return NO_SUCH_MAILBOX
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recipient: str = envelope.rcpt_tos[0]
        slug = tenant_slug(recipient, self._config.domains)
        org_id = self._tenants.get(slug or "")
        if org_id is None:  # a recipient accepted by RCPT always has its tenant
            return TEMPORARY
        content: bytes = envelope.content
        digest = hashlib.sha256(content).hexdigest()
        header_id = message_id(content)
        key = f"{digest}.eml"
        row_id = uuid.uuid4()
        try:
            await asyncio.to_thread(write_object, self._config.objects, key, content)
            async with self._pool.connection() as conn:
                cursor = await conn.execute(
                    INSERT,
                    (
                        row_id, org_id, header_id or f"sha256:{digest}", header_id, digest,
                        digest, len(content), key, envelope.mail_from or "", recipient,
                    ),
                )  # fmt: skip
                inserted = cursor.rowcount
        except Exception:
            log.exception("accept failed")
            return TEMPORARY
        if inserted == 0:
            return "250 2.0.0 duplicate, already accepted"
        return f"250 2.0.0 {row_id} accepted"


async def load_tenants(pool: AsyncConnectionPool) -> dict[str, uuid.UUID]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT slug, id FROM organization WHERE status = 'active'")
        return {str(slug): org_id for slug, org_id in await cursor.fetchall()}


async def serve(port: int, database_url: str, config: Config, data_size_limit: int) -> None:
    config.objects.mkdir(parents=True, exist_ok=True)
    pool = AsyncConnectionPool(
        database_url,
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        kwargs={"autocommit": True},
        open=False,
        name="seed",
    )
    await pool.open(wait=True, timeout=30.0)
    try:
        handler = SeedHandler(config, await load_tenants(pool), pool)
        loop = asyncio.get_running_loop()

        def factory() -> LMTP:
            return LMTP(handler, hostname="127.0.0.1", data_size_limit=data_size_limit, loop=loop)

        server = await loop.create_server(factory, host="127.0.0.1", port=port)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(f"READY 127.0.0.1:{port}", flush=True)
        await stop.wait()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5.0)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("INGEST_DATABASE_URL"),
        help="conninfo of the migrated database (INGEST_DATABASE_URL)",
    )
    parser.add_argument("--objects", type=Path, required=True, help="folder for raw messages")
    parser.add_argument(
        "--domains",
        default=os.environ.get("INGEST_DOMAINS") or "orders.localhost",
        help="comma-separated recipient domains (INGEST_DOMAINS)",
    )
    parser.add_argument("--max-bytes", type=int, default=DATA_SIZE_LIMIT)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or INGEST_DATABASE_URL is required")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: INFO per command
    domains = frozenset(d.strip().rstrip(".").lower() for d in args.domains.split(",") if d.strip())
    config = Config(domains=domains, objects=args.objects.absolute())
    asyncio.run(serve(args.port, args.database_url, config, args.max_bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
