"""Data lifecycle: retention per tenant, legal holds, erasure (docs/operations.md#data-lifecycle).

Order of work, so that a crash at any point leaves no row pointing at a
missing object:

1. rows go first: one transaction deletes a batch of messages, their
   attachment rows, their events and deliveries, writes a ``message.deleted``
   event for each (migration 0012; ids and the reason, nothing of the content)
   and records the object keys they referenced as removal candidates;
2. per key, under the key's advisory lock, a candidate becomes a removal
   marker only if no row references the key any more (else it is dropped);
   while the marker is young, the database refuses a new row referencing the
   key (a message that reused the object through a skipped put, or extraction
   that found it with ``exists()``, is retried later and writes it again);
3. the object is deleted, then the marker confirmed.

A run that dies anywhere leaves candidates or unconfirmed markers, never a row
without its object; the next run starts with them (marking again gives a fresh
refusal window and checks the references again). Every step is idempotent, so
a run that is killed and rerun converges.

Objects a crash left without a row (an accept that died between its put and its
insert, extraction between an attachment's put and the manifest) are found by
:func:`collect_orphans`, part of every purge run: it lists the store, and an
object last written longer ago than the grace period (``INGEST_PURGE_GRACE_S``)
that no row references goes through steps 2 and 3 like any other key, so the
same lock and marker keep it from racing an accept or an extraction that reuses
it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ingest_core.errors import StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest_core.ports import BlobStore

log = logging.getLogger("ingest.lifecycle")


@dataclass(frozen=True, slots=True)
class Removed:
    """What one delete of message rows took away: per tenant slug, messages,
    attachment rows and their bytes (raw size plus attachments); the keys they
    referenced, each with its tenant's id."""

    messages: int = 0
    attachments: int = 0
    bytes: int = 0
    keys: tuple[tuple[uuid.UUID, str], ...] = ()
    by_tenant: dict[str, tuple[int, int]] = field(default_factory=dict)  # slug -> (msgs, bytes)


@dataclass(frozen=True, slots=True)
class Selection:
    """Messages an erasure or a purge would remove, and those a hold keeps."""

    ids: tuple[uuid.UUID, ...]
    bytes: int
    held: tuple[uuid.UUID, ...] = ()
    hold_reasons: tuple[str, ...] = ()


class LifecycleStore(Protocol):
    """The database side of retention, holds and erasure."""

    def expired(self, default_days: int | None, limit: int) -> list[uuid.UUID]:
        """Up to ``limit`` messages past their tenant's retention, oldest first,
        none held and none being extracted."""
        ...

    def delete_messages(self, ids: Sequence[uuid.UUID], reason: str = "retention") -> Removed:
        """Delete those messages that no live hold covers, with their attachment
        rows and events, write a ``message.deleted`` event (``reason``: retention
        or erasure) for each, and record their keys as removal candidates, in
        one transaction."""
        ...

    def mark_for_removal(self, org_id: uuid.UUID, key: str, refuse_s: float) -> bool:
        """Under the key's lock: True (and a marker written) if no row references
        ``key``; False (and any marker dropped) if one does."""
        ...

    def confirm_removed(self, key: str) -> None: ...

    def unconfirmed(self, limit: int) -> list[tuple[uuid.UUID, str]]:
        """Candidates and markers a crashed run left without a confirmed delete."""
        ...

    def forget_removed(self) -> int:
        """Drop confirmed markers whose refusal window is over."""
        ...

    def unreferenced(self, keys: Sequence[str]) -> list[str]:
        """Those of ``keys`` that no row references and no removal has in hand
        (a hint read without locks: marking checks again under the key's lock)."""
        ...

    def record_run(self, messages: int, objects: int, size: int) -> None:
        """What this purge run removed, for /metrics (replaces the last run's)."""
        ...


@dataclass(frozen=True, slots=True)
class PurgeConfig:
    default_days: int | None
    batch: int = 500
    refuse_s: float = 900.0
    max_batches: int | None = None  # None: until nothing is left
    orphan_limit: int = 1000  # objects without rows removed per run at most


@dataclass
class PurgeReport:
    messages: int = 0
    attachments: int = 0
    bytes: int = 0
    objects: int = 0
    objects_kept: int = 0  # still referenced by another row of the tenant
    objects_failed: int = 0  # the store refused; the next run retries them
    orphans: int = 0  # objects a crash left without a row, removed
    by_tenant: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, removed: Removed) -> None:
        self.messages += removed.messages
        self.attachments += removed.attachments
        self.bytes += removed.bytes
        for slug, (count, size) in removed.by_tenant.items():
            before = self.by_tenant.get(slug, (0, 0))
            self.by_tenant[slug] = (before[0] + count, before[1] + size)


def purge(store: LifecycleStore, objects: BlobStore, config: PurgeConfig) -> PurgeReport:
    """Remove messages past retention in batches of ``config.batch``; each batch
    is its own transaction, so a run stopped anywhere loses nothing and the next
    run goes on from where it stopped."""
    report = PurgeReport()
    finish_unconfirmed(store, objects, config.refuse_s, report)
    batches = 0
    while config.max_batches is None or batches < config.max_batches:
        ids = store.expired(config.default_days, config.batch)
        if not ids:
            break
        remove_messages(store, objects, ids, config.refuse_s, report)
        batches += 1
    collect_orphans(store, objects, config.refuse_s, config.orphan_limit, report)
    store.forget_removed()
    store.record_run(report.messages, report.objects, report.bytes)
    log.info(
        "purge removed %d messages",
        report.messages,
        extra={"messages": report.messages, "bytes": report.bytes, "objects": report.objects},
    )
    return report


def erase(
    store: LifecycleStore,
    objects: BlobStore,
    ids: Sequence[uuid.UUID],
    *,
    batch: int,
    refuse_s: float,
) -> PurgeReport:
    """Remove the given messages (a selection without held ones) in batches;
    a message a hold covers by now stays (the delete checks again)."""
    report = PurgeReport()
    finish_unconfirmed(store, objects, refuse_s, report)
    for start in range(0, len(ids), batch):
        remove_messages(
            store, objects, ids[start : start + batch], refuse_s, report, reason="erasure"
        )
    return report


def remove_messages(
    store: LifecycleStore,
    objects: BlobStore,
    ids: Sequence[uuid.UUID],
    refuse_s: float,
    report: PurgeReport,
    *,
    reason: str = "retention",
) -> None:
    """Rows first, then each object that no row references any more."""
    removed = store.delete_messages(ids, reason)
    report.add(removed)
    for org_id, key in dict.fromkeys(removed.keys):
        remove_object(store, objects, org_id, key, refuse_s, report)


def remove_object(
    store: LifecycleStore,
    objects: BlobStore,
    org_id: uuid.UUID,
    key: str,
    refuse_s: float,
    report: PurgeReport,
) -> None:
    if not store.mark_for_removal(org_id, key, refuse_s):
        report.objects_kept += 1
        return
    try:
        objects.delete(key)
    except StoreUnavailable as exc:
        report.objects_failed += 1  # the marker stays: the next run finishes it
        log.warning("object removal failed; the next purge retries it", extra={"error": str(exc)})
        return
    store.confirm_removed(key)
    report.objects += 1


def finish_unconfirmed(
    store: LifecycleStore, objects: BlobStore, refuse_s: float, report: PurgeReport
) -> None:
    """Objects whose removal a crashed or refused run began: marked again (the
    references checked again, a fresh refusal window) and deleted."""
    for org_id, key in store.unconfirmed(10_000):
        remove_object(store, objects, org_id, key, refuse_s, report)


_ORPHAN_PREFIXES = ("raw/", "attachments/")
_CHECK_CHUNK = 500


def collect_orphans(
    store: LifecycleStore,
    objects: BlobStore,
    grace_s: float,
    limit: int,
    report: PurgeReport,
    *,
    now: float | None = None,
) -> None:
    """Remove up to ``limit`` objects (``raw/<org>/…``, ``attachments/<org>/…``)
    last written more than ``grace_s`` ago that no row references, each under
    its key's lock and marker (:func:`remove_object`)."""
    cutoff = (time.time() if now is None else now) - grace_s
    removed_before = report.objects
    stop_at = removed_before + limit
    for prefix in _ORPHAN_PREFIXES:
        chunk: list[tuple[uuid.UUID, str]] = []
        for key, modified in objects.list_keys(prefix):
            org_id = _org_of(key)
            if modified > cutoff or org_id is None:
                continue
            chunk.append((org_id, key))
            if len(chunk) >= _CHECK_CHUNK:
                _remove_orphans(store, objects, chunk, grace_s, report, stop_at)
                chunk = []
                if report.objects >= stop_at:
                    break
        if chunk and report.objects < stop_at:
            _remove_orphans(store, objects, chunk, grace_s, report, stop_at)
    report.orphans += report.objects - removed_before
    report.objects = removed_before


def _remove_orphans(
    store: LifecycleStore,
    objects: BlobStore,
    chunk: list[tuple[uuid.UUID, str]],
    refuse_s: float,
    report: PurgeReport,
    stop_at: int,
) -> None:
    org_of = {key: org_id for org_id, key in chunk}
    for key in store.unreferenced(list(org_of)):
        if report.objects >= stop_at:
            return
        kept = report.objects_kept
        remove_object(store, objects, org_of[key], key, refuse_s, report)
        report.objects_kept = kept  # a row that appeared meanwhile: not an orphan


def _org_of(key: str) -> uuid.UUID | None:
    parts = key.split("/")
    if len(parts) != 3:
        return None
    try:
        return uuid.UUID(parts[1])
    except ValueError:
        return None


def address_digest(address: str, secret_key: str | None) -> str | None:
    """What the audit table records of an erased address: an HMAC-SHA256 keyed
    by ``INGEST_SECRET_KEY`` (the same address gives the same digest, so an
    auditor holding the address can check it; the table alone does not reveal
    it). None without a key: an unkeyed hash of an address is easily reversed."""
    if not secret_key:
        return None
    normal = address.strip().lower().encode()
    return "hmac-sha256:" + hmac.new(secret_key.encode(), normal, hashlib.sha256).hexdigest()
