"""The effective configuration, as people and scripts see it (``ingest config``,
the ``ready`` log line): every setting with its variable and where its value
came from, secrets redacted.

Redacted: the password of any URL (``postgresql://user:***@host/db``,
``redis://:***@host``), a ``password=`` in a key/value conninfo, and the AWS
secret key and session token, INGEST_SECRET_KEY and INGEST_CONSOLE_SECRET (only
whether they are set is shown).
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from ingest_core.redact import REDACTED, redact_url
from ingest_core.settings import env_variable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ingest_core.settings import Settings

# The AWS variables the object store reads (obstore's names); secrets are shown
# only as set or unset.
AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ALLOW_HTTP",
)
_AWS_SECRETS = frozenset({"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})

_SECRET_FIELDS = frozenset({"database_url", "object_store_url", "queue_url"})


def effective_settings(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, dict[str, object]]:
    """Per field: its ``variable``, its ``value`` (JSON-ready, URLs redacted) and
    its ``source`` (``environment`` or ``default``)."""
    env = os.environ if environ is None else environ
    report: dict[str, dict[str, object]] = {}
    for item in fields(settings):
        variable = env_variable(item.name)
        value = _plain(getattr(settings, item.name))
        if item.name in _SECRET_FIELDS and isinstance(value, str):
            value = redact_url(value)
        elif item.name in ("secret_key", "console_secret") and value is not None:
            value = REDACTED
        report[item.name] = {
            "variable": variable,
            "value": value,
            "source": "environment" if env.get(variable) else "default",
        }
    return report


def aws_environment(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The AWS variables the S3 store reads: values, secrets as ``***``; None when unset."""
    env = os.environ if environ is None else environ
    shown: dict[str, str | None] = {}
    for name in AWS_VARIABLES:
        value = env.get(name) or None
        shown[name] = REDACTED if value is not None and name in _AWS_SECRETS else value
    return shown


def setup_summary(settings: Settings, database_url: str) -> dict[str, str]:
    """Where the data lives, for the ``ready`` line: data dir, database (password
    redacted; the embedded server's folder), object store and queue."""
    database = (
        f"embedded in {settings.pg_dir}" if settings.embedded_database else redact_url(database_url)
    )
    return {
        "data_dir": str(settings.data_dir),
        "database": database,
        "object_store": redact_url(settings.object_store_url or str(settings.objects_dir)),
        "queue": redact_url(settings.queue_url or str(settings.queue_path)),
    }


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [str(item) for item in value]
    return value
