"""Postgres adapters (psycopg): messages, tenants, senders, operator queries,
health probes, the export reader, migrations, the embedded server and the
pool/error mapping they share. The names others use are re-exported here."""

from ingest_core.adapters.postgres.common import Pool, open_pool
from ingest_core.adapters.postgres.messages import PostgresMessageRepository
from ingest_core.adapters.postgres.migrate import migrate
from ingest_core.adapters.postgres.tenants import PostgresTenantDirectory, TenantAdmin
from ingest_core.errors import TenantError

__all__ = [
    "Pool",
    "PostgresMessageRepository",
    "PostgresTenantDirectory",
    "TenantAdmin",
    "TenantError",
    "migrate",
    "open_pool",
]
