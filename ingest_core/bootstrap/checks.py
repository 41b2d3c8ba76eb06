"""What ``ingest config`` asks of each dependency, and the migrations the code has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest_core.adapters.objects import object_store_from_url
from ingest_core.adapters.postgres.embedded import database_url_for
from ingest_core.adapters.postgres.migrate import applied_migrations, available_migrations
from ingest_core.adapters.queue import huey_from_url, pending_jobs
from ingest_core.bootstrap.configs import PROBE_TIMEOUT_S
from ingest_core.errors import IngestError, Unavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest_core.settings import Settings


def check_dependencies(settings: Settings) -> dict[str, str | None]:
    """Postgres (reached, schema up to date), the object store and the queue,
    each asked once: None when it answered, else what failed, with the
    dependency's own error. Creates no embedded database and no queue file."""
    timeout_s = min(PROBE_TIMEOUT_S, settings.store_timeout_s)

    def postgres() -> None:
        url = database_url_for(settings, create=False)
        applied = set(applied_migrations(url, timeout_s=timeout_s))
        missing = [version for version, _ in available_migrations() if version not in applied]
        if missing:
            raise IngestError(
                f"reached, but {len(missing)} migration(s) not applied ({missing[0]}…)"
                " — run `ingest db upgrade`"
            )

    def object_store() -> None:
        object_store_from_url(
            settings.object_store_url,
            settings.objects_dir,
            timeout_s=timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        ).ping()

    def queue() -> None:
        if settings.queue_url is None and not settings.queue_path.exists():
            raise IngestError(
                f"no queue file at {settings.queue_path} yet — `ingest serve` creates it"
            )
        pending_jobs(huey_from_url(settings.queue_url, settings.queue_path, timeout_s=timeout_s))

    checks: dict[str, Callable[[], None]] = {
        "postgres": postgres,
        "object_store": object_store,
        "queue": queue,
    }
    return {name: _failure(check) for name, check in checks.items()}


def _failure(check: Callable[[], None]) -> str | None:
    try:
        check()
    except Unavailable as exc:
        return f"{exc} [{exc.cause}]{_root_cause(exc)}"
    except IngestError as exc:
        return str(exc)
    except Exception as exc:  # an adapter's own error: say what it was
        return f"{type(exc).__name__}: {exc}"
    return None


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost error behind ``exc``, as ``: …`` (the
    driver's own words, e.g. libpq's), or nothing."""
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    if inner is exc:
        return ""
    text = str(inner).strip().splitlines()
    return f": {text[0].strip()}" if text else ""


def migration_versions() -> list[str]:
    """Every migration this version of the code has, in order."""
    return [version for version, _ in available_migrations()]
