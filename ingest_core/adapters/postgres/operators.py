"""``OperatorRepository`` on ``console_operator`` (migration 0014)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest_core.adapters.postgres.common import database_errors
from ingest_core.console.operators import OperatorRecord

if TYPE_CHECKING:
    from ingest_core.adapters.postgres.common import Pool

_COLUMNS = "name, password_hash, created_at, last_login_at, disabled_at"


class PostgresOperators:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def insert(self, name: str, password_hash: str) -> bool:
        with database_errors("operator add"), self._pool.connection() as conn:
            cursor = conn.execute(
                "INSERT INTO console_operator (name, password_hash) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, password_hash),
            )
        return cursor.rowcount == 1

    def find(self, name: str) -> OperatorRecord | None:
        with database_errors("operator lookup"), self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM console_operator WHERE name = %s", (name,)
            ).fetchone()
        return OperatorRecord(*row) if row is not None else None

    def list(self) -> list[OperatorRecord]:
        with database_errors("operator listing"), self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM console_operator ORDER BY name").fetchall()
        return [OperatorRecord(*row) for row in rows]

    def signed_in(self, name: str, new_hash: str | None) -> None:
        with database_errors("operator sign-in"), self._pool.connection() as conn:
            conn.execute(
                "UPDATE console_operator SET last_login_at = now(),"
                " password_hash = coalesce(%s, password_hash) WHERE name = %s",
                (new_hash, name),
            )

    def set_disabled(self, name: str, disabled: bool) -> bool:
        with database_errors("operator change"), self._pool.connection() as conn:
            cursor = conn.execute(
                "UPDATE console_operator SET disabled_at = CASE WHEN %s THEN now() END"
                " WHERE name = %s",
                (disabled, name),
            )
        return cursor.rowcount == 1
