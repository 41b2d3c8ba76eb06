"""The key that signs the console's session cookies (``INGEST_CONSOLE_SECRET``).

In development an unset key is made once and kept in
``$INGEST_DATA_DIR/console-secret`` (mode 0600), so sessions survive a restart
and every serving process of ``--processes N`` signs with the same key. In
production it must be set: a key on a container's disk would differ between
replicas and vanish with the container."""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

from ingest_core.errors import ConfigError

if TYPE_CHECKING:
    from ingest_core.settings import Settings

FILE_NAME = "console-secret"
MIN_LENGTH = 32


def console_secret(settings: Settings) -> str:
    """Raises ConfigError in production without the key, or for a short one."""
    if settings.console_secret is not None:
        if len(settings.console_secret) < MIN_LENGTH:
            raise ConfigError(
                f"INGEST_CONSOLE_SECRET: at least {MIN_LENGTH} characters"
                " — e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return settings.console_secret
    if settings.production:
        raise ConfigError(
            "INGEST_CONSOLE_SECRET: unset, and INGEST_ENV=production needs it to sign"
            " console sessions — set it (the same on every host)"
        )
    path = settings.data_dir / FILE_NAME
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    temp = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(key + "\n")
    try:
        os.link(temp, path)  # whole or not at all; a process that got there first wins
    except FileExistsError:
        key = path.read_text("ascii").strip()
    finally:
        temp.unlink()
    return key
