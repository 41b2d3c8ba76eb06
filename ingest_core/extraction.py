"""The extraction use case the worker runs for one message id.

claim → copy the raw object to a local spool file → classify automated mail
and check the sender (either may hold the message: QUARANTINED, unless it was
released once) → parse with limits →
store each attachment content-addressed, one at a time, and decode the text
and HTML bodies (:mod:`ingest_core.bodies`) → record them and mark PROCESSED. Errors split in two:

* permanent (a manifest limit, a message broken beyond repair, the raw object
  missing): FAILED at once, retrying cannot help;
* transient (store or database unavailable, anything unexpected): back to
  RECEIVED and ``RetryLater`` for the task to reschedule, until ``attempts``
  (the database column, counted by each claim) reaches the retry limit.

A row that keeps getting reclaimed without ever finishing (a worker killed by
every attempt) is given up once its attempts exceed the limit.

The use case sees only its own :class:`ExtractionConfig`, which bootstrap builds
from the settings. The sweep that re-enqueues rows left behind is
:func:`ingest_core.operations.sweep`.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import trace

from ingest_core.automated import AutomatedCheck, check_automated
from ingest_core.bodies import extract_body
from ingest_core.errors import (
    IngestError,
    ObjectNotFound,
    RetryLater,
    StoreUnavailable,
    Unavailable,
)
from ingest_core.mime import ManifestError, iter_attachments, parse_message
from ingest_core.sender import PASS, PolicyDecision, SenderCheck, check_sender

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable, Iterator, Sequence

    from ingest_core.bodies import MessageBody
    from ingest_core.mime import MimeLimits
    from ingest_core.model import Attachment, StoredMessage
    from ingest_core.ports import BlobStore, MessageRepository

PARSER_VERSION = "mime-3"  # mime-3: the text and HTML bodies are stored too
COPY_CHUNK = 1 << 20
RETRY_BASE_S = 30.0
RETRY_CAP_S = 3600.0

log = logging.getLogger("ingest.extraction")
tracer = trace.get_tracer(__name__)


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    SKIPPED = "skipped"  # not claimable: done, failed, or another worker holds it
    FAILED = "failed"
    RETRY = "retry"
    QUARANTINED = "quarantined"  # held back by the tenant's sender or automated-mail policy


@dataclass(frozen=True, slots=True)
class ExtractionConfig:
    """What extraction needs of the settings."""

    limits: MimeLimits
    retries: int  # a row is FAILED once its attempts reach this
    claim_lease_s: float  # a PROCESSING claim older than this may be taken over
    spool_dir: Path | None  # where the raw copy and decoded parts go; None: system temp


@dataclass(frozen=True, slots=True)
class ExtractionResult:
    message_id: uuid.UUID
    outcome: Outcome
    org_id: uuid.UUID | None = None
    attempts: int = 0
    attachments: tuple[Attachment, ...] = ()
    error: str | None = None
    defects: tuple[str, ...] = ()


def retry_delay(
    attempts: int, *, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S
) -> float:
    """Exponential backoff: base, twice base, four times base … at most ``cap_s``."""
    exponent = min(max(attempts, 1) - 1, 32)
    return float(min(cap_s, base_s * 2**exponent))


def extract_message(
    message_id: uuid.UUID,
    *,
    repo: MessageRepository,
    store: BlobStore,
    config: ExtractionConfig,
    sender: SenderCheck | None = None,
    automated: AutomatedCheck | None = None,
    clock: Callable[[], float] = time.perf_counter,
    links: Sequence[trace.Link] = (),
) -> ExtractionResult:
    """Extract one message. Raises RetryLater when the task should run again.
    ``sender`` is the sender-authentication step, ``automated`` the automated-mail
    classification and policy (none: not checked);
    ``links`` point at the accept span that enqueued the job."""
    started = clock()
    with tracer.start_as_current_span("extract", links=links) as span:
        span.set_attribute("ingest.message_id", str(message_id))
        result = _run(message_id, repo, store, config, sender, automated)
        duration_ms = round((clock() - started) * 1000, 3)
        _report(span, result, duration_ms)
    if result.outcome is Outcome.RETRY:
        raise RetryLater(
            message_id,
            result.attempts,
            result.error or "temporary failure",
            delay_s=retry_delay(result.attempts),
        )
    return result


def _run(
    message_id: uuid.UUID,
    repo: MessageRepository,
    store: BlobStore,
    config: ExtractionConfig,
    sender: SenderCheck | None,
    automated: AutomatedCheck | None,
) -> ExtractionResult:
    try:
        row = repo.claim(message_id, config.claim_lease_s)
    except StoreUnavailable as exc:
        return ExtractionResult(message_id, Outcome.RETRY, error=f"claim failed: {exc}")
    if row is None:
        return ExtractionResult(message_id, Outcome.SKIPPED)
    if row.attempts > config.retries:
        return _fail(repo, row, f"gave up after {row.attempts - 1} attempts", final=True)
    try:
        with _spooled(row, store, config.spool_dir) as (workdir, raw):
            held = None
            if automated is not None:
                held = check_automated(row, raw, automated, repo, config.limits)
            decision = PASS if held is None else PolicyDecision(hold=True, reason=held)
            if sender is not None:
                decision = _both(check_sender(row, raw, sender, repo), decision)
            # One release flag for every check: a released message is never held again.
            if decision.hold and row.released_at is None:
                return _hold(repo, row, decision, config.retries)
            attachments, body, defects = _extract(row, workdir, raw, store, config.limits)
        repo.finish(row.id, attachments, PARSER_VERSION, body)
    except (ManifestError, ObjectNotFound) as exc:
        return _fail(repo, row, _describe(exc), final=True)
    except StoreUnavailable as exc:
        return _fail(repo, row, _describe(exc), final=row.attempts >= config.retries)
    except Exception as exc:
        log.warning("unexpected extraction error", extra=_where(row, exc))
        return _fail(repo, row, _describe(exc), final=row.attempts >= config.retries)
    return ExtractionResult(
        row.id, Outcome.PROCESSED, row.org_id, row.attempts, tuple(attachments), None, defects
    )


@contextlib.contextmanager
def _spooled(
    row: StoredMessage, store: BlobStore, spool_dir: Path | None
) -> Iterator[tuple[Path, Path]]:
    """A private work folder holding a local copy of the raw message."""
    with tempfile.TemporaryDirectory(prefix="extract-", dir=spool_dir) as tmp:
        workdir = Path(tmp)
        raw = workdir / "raw.eml"
        with store.open(row.raw_object_key) as source, raw.open("wb") as target:
            shutil.copyfileobj(source, target, COPY_CHUNK)
        yield workdir, raw


def _extract(
    row: StoredMessage, workdir: Path, raw: Path, store: BlobStore, limits: MimeLimits
) -> tuple[list[Attachment], MessageBody, tuple[str, ...]]:
    with raw.open("rb") as source:
        parsed = parse_message(source, limits)
    body = extract_body(parsed.message)
    attachments: list[Attachment] = []
    for extracted in iter_attachments(parsed.message, limits, workdir):
        attachment = extracted.entry.to_attachment(row.org_id)
        if not store.exists(attachment.object_key):
            with extracted.open() as stream:
                store.put_file(attachment.object_key, stream, attachment.size_bytes)
        attachments.append(attachment)
    return attachments, body, parsed.defects


def _both(sender: PolicyDecision, automated: PolicyDecision) -> PolicyDecision:
    """The sender policy's decision, with the automated-mail hold added to it."""
    if not automated.hold:
        return sender
    if not sender.hold:
        return automated
    return PolicyDecision(
        hold=True, reason=f"{sender.reason}; {automated.reason}", temporary=sender.temporary
    )


def _hold(
    repo: MessageRepository, row: StoredMessage, decision: PolicyDecision, retries: int
) -> ExtractionResult:
    """QUARANTINED, or a retry first when a DNS failure decided the verdict."""
    reason = decision.reason or "held by the tenant's sender policy"
    if decision.temporary:
        if row.attempts < retries:
            return _fail(repo, row, f"sender check: DNS failure; retrying ({reason})", final=False)
        reason = f"{reason} (DNS failures on every attempt)"
    repo.quarantine(row.id, reason)
    return ExtractionResult(row.id, Outcome.QUARANTINED, row.org_id, row.attempts, error=reason)


def _fail(
    repo: MessageRepository, row: StoredMessage, error: str, *, final: bool
) -> ExtractionResult:
    """FAILED, or RECEIVED with its retry due when the task's scheduled run
    (``retry_delay`` of the same attempts) will come."""
    try:
        repo.fail(row.id, error, final=final, retry_in_s=retry_delay(row.attempts))
    except StoreUnavailable:
        # The row stays PROCESSING; its lease runs out and the sweeper re-enqueues it.
        return ExtractionResult(row.id, Outcome.RETRY, row.org_id, row.attempts, error=error)
    outcome = Outcome.FAILED if final else Outcome.RETRY
    return ExtractionResult(row.id, outcome, row.org_id, row.attempts, error=error)


def _describe(exc: Exception) -> str:
    """Error text for ``last_error``: our own messages, only the type of others
    (third-party texts may quote message bytes)."""
    if isinstance(exc, Unavailable) and exc.cause != "unavailable":
        return f"{type(exc).__name__}: {exc}: {exc.cause}"[:500]
    if isinstance(exc, IngestError):
        return f"{type(exc).__name__}: {exc}"[:500]
    return f"internal error ({type(exc).__name__})"


def _where(row: StoredMessage, exc: Exception) -> dict[str, object]:
    frames = traceback.extract_tb(exc.__traceback__)
    location = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    return {
        "message_id": str(row.id),
        "org_id": str(row.org_id),
        "error_type": type(exc).__name__,
        "location": location,
    }


def _report(span: trace.Span, result: ExtractionResult, duration_ms: float) -> None:
    fields: dict[str, object] = {
        "message_id": str(result.message_id),
        "org_id": str(result.org_id) if result.org_id else None,
        "attachments": len(result.attachments),
        "attempts": result.attempts,
        "duration_ms": duration_ms,
        "outcome": str(result.outcome),
        "parser_version": PARSER_VERSION,
        "error": result.error,
        "defects": list(result.defects),
    }
    for name, value in fields.items():
        if value is not None and name != "defects":
            span.set_attribute(f"ingest.{name}", value)  # type: ignore[arg-type]
    if result.outcome in (Outcome.FAILED, Outcome.RETRY):
        span.set_status(trace.StatusCode.ERROR, result.error)
    level = logging.WARNING if result.outcome is Outcome.FAILED else logging.INFO
    log.log(level, "extraction %s", result.outcome, extra=fields)
