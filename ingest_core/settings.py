"""One frozen Settings object read from the environment (docs/configuration.md).

Every setting is a field of :class:`Settings` with its default written once, as
the field's default; ``INGEST_<FIELD NAME>`` overrides it. How a variable's text
becomes a value is decided by the field's type (``_BY_TYPE``), or for the few
fields with a rule of their own, by its name (``_BY_FIELD``). An empty variable
counts as unset.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest_core.errors import ConfigError
from ingest_core.model import MAX_MESSAGE_BYTES
from ingest_core.redact import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(text: str) -> tuple[Network, ...]:
    try:
        return tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip()
        )
    except ValueError as exc:
        raise ConfigError(f"not a list of CIDR networks: {text!r}") from exc


LOCAL_NETWORKS = _networks("127.0.0.0/8,::1")


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path("var").absolute())
    database_url: str | None = None
    object_store_url: str | None = None
    queue_url: str | None = None
    lmtp_listen: str = "127.0.0.1:2424"
    lmtp_allow_from: tuple[Network, ...] = LOCAL_NETWORKS
    milter_listen: str = "127.0.0.1:8890"
    milter_allow_from: tuple[Network, ...] = LOCAL_NETWORKS
    http_listen: str = "127.0.0.1:9325"
    api_listen: str = "127.0.0.1:9326"  # the tenant API (docs/api.md); off disables it
    api_public_url: str | None = None  # base of absolute URLs; None: http://<api_listen>
    api_trusted_proxies: tuple[Network, ...] = ()  # whose X-Forwarded-For hop counts
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    domains: tuple[str, ...] = ("orders.localhost",)
    mailbox: str = "orders"
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_recipients: int = 1000
    max_connections: int = 1000
    max_line_length: int = 4096
    processes: int = 1  # LMTP serving processes; INGEST_PROCESSES=auto: one per core
    command_timeout_s: float = 300.0
    data_timeout_s: float = 300.0
    store_timeout_s: float = 60.0
    connect_timeout_s: float = 1.5  # until Postgres or the object store counts as unreachable
    breaker_failures: int = 5
    breaker_reset_s: float = 5.0
    tenant_cache_s: float = 5.0
    shutdown_grace_s: float = 30.0
    spool_memory_bytes: int = 1 << 20
    spool_dir: Path | None = None
    extract_max_parts: int = 1000
    extract_max_depth: int = 10
    extract_max_decoded_bytes: int = 268_435_456
    extract_max_lines: int = 1_000_000
    extract_retries: int = 5
    sweep_age_s: float = 600.0
    claim_lease_s: float = 900.0
    retention_days: int | None = None  # a tenant's default retention; None: keep
    purge_batch: int = 500  # messages per purge transaction
    purge_grace_s: float = 900.0  # an object being removed refuses new references this long
    secret_key: str | None = None  # keys the HMAC of erased addresses in the audit table
    console_secret: str | None = None  # signs console sessions; development: made in data_dir
    dns_servers: tuple[str, ...] = ()  # ip, ip:port or [v6]:port; empty: resolv.conf
    dns_timeout_s: float = 5.0
    authserv_id: str | None = None  # None: the first of domains
    log_format: str = "json"
    env: str = "development"
    webhook_allow_private: bool = False  # send to loopback/private endpoints (development, tests)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def http_enabled(self) -> bool:
        """``INGEST_HTTP_LISTEN=off`` turns the health/readiness/metrics endpoint off."""
        return self.http_listen.strip().lower() != "off"

    @property
    def api_enabled(self) -> bool:
        """``INGEST_API_LISTEN=off`` turns the tenant API off."""
        return self.api_listen.strip().lower() != "off"

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.db"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The defaults, overridden by every ``INGEST_*`` variable that is set."""
        env = os.environ if environ is None else environ
        changes: dict[str, object] = {}
        for name, parse in _PARSERS.items():
            variable = env_variable(name)
            raw = env.get(variable)
            if raw:
                changes[name] = parse(variable, raw)
        settings = cls(**changes)  # type: ignore[arg-type]  # each value parsed for its field
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.production:
            missing = [
                name
                for name, value in (
                    ("INGEST_DATABASE_URL", self.database_url),
                    ("INGEST_OBJECT_STORE_URL", self.object_store_url),
                    ("INGEST_QUEUE_URL", self.queue_url),
                )
                if value is None
            ]
            if missing:
                raise ConfigError(
                    f"{missing[0]}: unset, and INGEST_ENV=production refuses embedded defaults"
                    " — set " + ", ".join(missing)
                )
        if self.log_format not in ("json", "console"):
            raise ConfigError(
                f"INGEST_LOG_FORMAT: {self.log_format!r} is not a log format — use json or console"
            )
        if not self.domains:
            raise ConfigError("INGEST_DOMAINS: names no domain — e.g. orders.example.com")
        self._validate_api()
        if self.dns_servers:
            from ingest_core.sender import parse_nameserver

            for server in self.dns_servers:
                try:
                    parse_nameserver(server)
                except ValueError as exc:
                    raise ConfigError(f"INGEST_DNS_SERVERS: {exc}") from exc

    def _validate_api(self) -> None:
        """TLS comes from hypercorn (cert and key) or from a trusted proxy; in
        production a non-loopback API listener needs one of them."""
        if (self.api_tls_cert is None) != (self.api_tls_key is None):
            raise ConfigError("INGEST_API_TLS_CERT and INGEST_API_TLS_KEY: set both (or neither)")
        if not (self.production and self.api_enabled):
            return
        if self.api_tls_cert is not None or self.api_trusted_proxies:
            return
        host = self.api_listen.rpartition(":")[0].strip("[]")
        if host.startswith("unix") or host in ("localhost", "127.0.0.1", "::1"):
            return
        raise ConfigError(
            f"INGEST_API_LISTEN: {self.api_listen} is not loopback, and INGEST_ENV=production"
            " needs TLS — set INGEST_API_TLS_CERT and INGEST_API_TLS_KEY, or"
            " INGEST_API_TRUSTED_PROXIES for a proxy that terminates it"
        )


def env_variable(name: str) -> str:
    """The environment variable of the field ``name``: ``INGEST_`` and its name in capitals."""
    return f"INGEST_{name.upper()}"


# Parsers: (variable name, its non-empty text) -> the field's value, or ConfigError.

_POSITIVE = "give a positive number"


def _text(variable: str, raw: str) -> str:
    return raw


def _positive(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}: must be a number, got {raw!r} — {_POSITIVE}") from exc
    if value <= 0:
        raise ConfigError(f"{variable}: must be positive, got {raw!r} — {_POSITIVE}")
    return value


def _positive_int(variable: str, raw: str) -> int:
    value = int(_positive(variable, raw))
    if value < 1:
        raise ConfigError(f"{variable}: must be positive, got {raw!r} — {_POSITIVE}")
    return value


def _seconds_or_zero(variable: str, raw: str) -> float:
    """Positive seconds, or 0 to turn the feature off."""
    return 0.0 if raw in ("0", "0.0") else _positive(variable, raw)


def _cores_or_count(variable: str, raw: str) -> int:
    """A positive count, or ``auto``: the number of cores."""
    if raw.strip().lower() == "auto":
        return os.cpu_count() or 1
    return _positive_int(variable, raw)


def _path(variable: str, raw: str) -> Path:
    return Path(raw)


def _absolute_path(variable: str, raw: str) -> Path:
    return Path(raw).absolute()


def _list(variable: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _domains(variable: str, raw: str) -> tuple[str, ...]:
    return tuple(domain.lower().rstrip(".") for domain in _list(variable, raw))


def _lower(variable: str, raw: str) -> str:
    return raw.lower()


def _network_list(variable: str, raw: str) -> tuple[Network, ...]:
    try:
        return _networks(raw)
    except ConfigError as exc:
        raise ConfigError(f"{variable}: {exc} — e.g. 10.0.0.0/8,::1") from exc


ENVIRONMENTS = ("development", "production")


def _flag(variable: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{variable}: {raw!r} is not true or false")


def _environment(variable: str, raw: str) -> str:
    """``development`` or ``production``, in any case; anything else is refused
    rather than run as development."""
    value = raw.strip().lower()
    if value not in ENVIRONMENTS:
        raise ConfigError(
            f"{variable}: {raw!r} is not an environment — use development or production"
        )
    return value


_DATABASE_SCHEMES = ("postgresql", "postgres")


def _database_url(variable: str, raw: str) -> str:
    """A ``postgresql://`` URL or a libpq ``key=value`` conninfo."""
    text = raw.strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() not in _DATABASE_SCHEMES:
            raise ConfigError(
                f"{variable}: {redact_url(text)!r} is not PostgreSQL ({scheme}://)"
                " — use postgresql://user@host:5432/dbname"
            )
        if not rest:
            raise ConfigError(f"{variable}: {text!r} names no server — {_DATABASE_EXAMPLE}")
        return text
    if "=" not in text:
        raise ConfigError(f"{variable}: {redact_url(text)!r} is not a URL — {_DATABASE_EXAMPLE}")
    return text


_DATABASE_EXAMPLE = "use postgresql://user@host:5432/dbname, or unset it for the embedded one"


_BY_TYPE: dict[str, Callable[[str, str], object]] = {
    "str": _text,
    "str | None": _text,
    "int": _positive_int,
    "int | None": _positive_int,
    "float": _positive,
    "Path": _path,
    "Path | None": _path,
    "tuple[str, ...]": _list,
    "tuple[Network, ...]": _network_list,
    "bool": _flag,
}

_BY_FIELD: dict[str, Callable[[str, str], object]] = {
    "data_dir": _absolute_path,  # resolved against the working directory
    "domains": _domains,
    "mailbox": _lower,
    "tenant_cache_s": _seconds_or_zero,
    "processes": _cores_or_count,
    "env": _environment,
    "database_url": _database_url,
}

# One parser per field, resolved at import so a field of a new type fails at once.
_PARSERS: dict[str, Callable[[str, str], object]] = {
    f.name: _BY_FIELD.get(f.name) or _BY_TYPE[str(f.type)] for f in fields(Settings)
}
