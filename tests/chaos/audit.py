"""What the clients were told, compared with what the database and the object
store hold. One ``Audit`` per scenario; its counts go into the summary table."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from tests.chaos.load import Delivery

ObjectReader = Callable[[str], bytes | None]
RecordScenario = Callable[["ScenarioResult"], None]


@dataclass(frozen=True)
class Row:
    id: str
    source_message_id: str
    raw_object_key: str
    sha256: str
    size_bytes: int
    status: str
    attempts: int


def fetch_rows(database_url: str) -> list[Row]:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT id::text, source_message_id, raw_object_key, sha256, size_bytes, status,"
            " attempts FROM inbound_message"
        ).fetchall()
    return [Row(*row) for row in rows]


def processed_events(database_url: str) -> dict[str, int]:
    """Per PROCESSED message, how many ``message.processed`` events it has (the
    outbox: at least one each, exactly one for a message processed once)."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT m.id::text, count(e.id) FROM inbound_message m"
            " LEFT JOIN event e ON e.message_id = m.id AND e.type = 'message.processed'"
            " WHERE m.status = 'PROCESSED' GROUP BY m.id"
        ).fetchall()
    return {message_id: int(count) for message_id, count in rows}


def local_reader(root: Path) -> ObjectReader:
    """Objects of a local object store, read straight from its folder."""

    def read(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.is_file() else None

    return read


def base_message_id(source_message_id: str) -> str:
    """A conflict row is stored as ``<id>#<hash prefix>``; it still counts for ``<id>``."""
    return source_message_id.split("#", 1)[0]


@dataclass
class Audit:
    sent: int = 0
    acknowledged: int = 0
    stored: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rows_without_object: list[str] = field(default_factory=list)
    wrong_ids: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        problems = (self.lost, self.duplicates, self.rows_without_object, self.wrong_ids)
        return not any(problems) and not self.strays

    def explain(self) -> str:
        return (
            f"lost={self.lost[:5]} duplicates={self.duplicates[:5]}"
            f" rows_without_object={self.rows_without_object[:5]}"
            f" wrong_ids={self.wrong_ids[:5]} strays={self.strays[:5]}"
        )


def audit(
    deliveries: Iterable[Delivery],
    rows: list[Row],
    read_object: ObjectReader,
    *,
    objects_expected_for: Callable[[Row], bool] = lambda row: True,
) -> Audit:
    """Every acknowledged message has exactly one row whose id is the one the
    client was given and whose object holds the very bytes sent; no message has
    two rows; no row (that should have one) points to a missing or altered object."""
    by_message: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_message[base_message_id(row.source_message_id)].append(row)
    result = Audit()
    known: set[str] = set()
    for delivery in deliveries:
        known.add(delivery.message_id)
        found = by_message.get(delivery.message_id, [])
        result.sent += 1
        result.acknowledged += delivery.acked
        result.stored += bool(found)
        if len(found) > 1:
            result.duplicates.append(delivery.message_id)
        if delivery.acked:
            _check_acknowledged(delivery, found, read_object, result)
    for row in rows:
        if base_message_id(row.source_message_id) not in known:
            result.strays.append(row.source_message_id)
        if objects_expected_for(row) and not _object_matches(row, read_object):
            result.rows_without_object.append(row.id)
    return result


def _check_acknowledged(
    delivery: Delivery, found: list[Row], read_object: ObjectReader, result: Audit
) -> None:
    if len(found) != 1 or read_object(found[0].raw_object_key) != delivery.data:
        result.lost.append(delivery.message_id)
        return
    if delivery.acked_ids != {found[0].id}:
        result.wrong_ids.append(delivery.message_id)


def _object_matches(row: Row, read_object: ObjectReader) -> bool:
    data = read_object(row.raw_object_key)
    return (
        data is not None
        and len(data) == row.size_bytes
        and hashlib.sha256(data).hexdigest() == row.sha256
    )


@dataclass(frozen=True)
class ScenarioResult:
    """One line of the chaos summary table."""

    scenario: str
    sent: int
    acknowledged: int
    stored: int
    lost: int
    duplicates: int
    note: str = ""

    @classmethod
    def of(cls, scenario: str, result: Audit, note: str = "") -> ScenarioResult:
        return cls(
            scenario,
            result.sent,
            result.acknowledged,
            result.stored,
            len(result.lost) + len(result.rows_without_object) + len(result.wrong_ids),
            len(result.duplicates),
            note,
        )
