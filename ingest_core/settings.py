"""One frozen Settings object read from the environment (DESIGN §6)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest_core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(text: str) -> tuple[Network, ...]:
    try:
        return tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip()
        )
    except ValueError as exc:
        raise ConfigError(f"not a list of CIDR networks: {text!r}") from exc


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path("var").absolute())
    database_url: str | None = None
    object_store_url: str | None = None
    queue_url: str | None = None
    lmtp_listen: str = "127.0.0.1:2424"
    lmtp_allow_from: tuple[Network, ...] = field(
        default_factory=lambda: _networks("127.0.0.0/8,::1")
    )
    milter_listen: str = "127.0.0.1:8890"
    milter_allow_from: tuple[Network, ...] = field(
        default_factory=lambda: _networks("127.0.0.0/8,::1")
    )
    http_listen: str = "127.0.0.1:9325"
    domains: tuple[str, ...] = ("orders.localhost",)
    mailbox: str = "orders"
    max_message_bytes: int = 36_700_160
    max_recipients: int = 1000
    max_connections: int = 1000
    max_line_length: int = 4096
    command_timeout_s: float = 300.0
    data_timeout_s: float = 300.0
    store_timeout_s: float = 60.0
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
    dns_servers: tuple[str, ...] = ()  # ip, ip:port or [v6]:port; empty: resolv.conf
    dns_timeout_s: float = 5.0
    authserv_id: str | None = None  # None: the first of domains
    log_format: str = "json"
    env: str = "development"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def http_enabled(self) -> bool:
        """``INGEST_HTTP_LISTEN=off`` turns the health/readiness/metrics endpoint off."""
        return self.http_listen.strip().lower() != "off"

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
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(f"INGEST_{name}")
            return value if value not in (None, "") else None

        def number(name: str, default: float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError as exc:
                raise ConfigError(f"INGEST_{name} must be a number, got {raw!r}") from exc
            if value <= 0:
                raise ConfigError(f"INGEST_{name} must be positive, got {raw!r}")
            return value

        def seconds_or_zero(name: str, default: float) -> float:
            return 0.0 if get(name) in ("0", "0.0") else number(name, default)

        def integer(name: str, default: int) -> int:
            return int(number(name, default))

        defaults = cls()
        data_dir = Path(get("DATA_DIR") or "var").absolute()
        settings = cls(
            data_dir=data_dir,
            database_url=get("DATABASE_URL"),
            object_store_url=get("OBJECT_STORE_URL"),
            queue_url=get("QUEUE_URL"),
            lmtp_listen=get("LMTP_LISTEN") or defaults.lmtp_listen,
            lmtp_allow_from=_networks(get("LMTP_ALLOW_FROM") or "127.0.0.0/8,::1"),
            milter_listen=get("MILTER_LISTEN") or defaults.milter_listen,
            milter_allow_from=_networks(get("MILTER_ALLOW_FROM") or "127.0.0.0/8,::1"),
            http_listen=get("HTTP_LISTEN") or defaults.http_listen,
            domains=tuple(
                d.strip().lower().rstrip(".")
                for d in (get("DOMAINS") or "orders.localhost").split(",")
                if d.strip()
            ),
            mailbox=(get("MAILBOX") or defaults.mailbox).lower(),
            max_message_bytes=integer("MAX_MESSAGE_BYTES", defaults.max_message_bytes),
            max_recipients=integer("MAX_RECIPIENTS", defaults.max_recipients),
            max_connections=integer("MAX_CONNECTIONS", defaults.max_connections),
            max_line_length=integer("MAX_LINE_LENGTH", defaults.max_line_length),
            command_timeout_s=number("COMMAND_TIMEOUT_S", defaults.command_timeout_s),
            data_timeout_s=number("DATA_TIMEOUT_S", defaults.data_timeout_s),
            store_timeout_s=number("STORE_TIMEOUT_S", defaults.store_timeout_s),
            tenant_cache_s=seconds_or_zero("TENANT_CACHE_S", defaults.tenant_cache_s),
            shutdown_grace_s=number("SHUTDOWN_GRACE_S", defaults.shutdown_grace_s),
            spool_memory_bytes=integer("SPOOL_MEMORY_BYTES", defaults.spool_memory_bytes),
            spool_dir=Path(p) if (p := get("SPOOL_DIR")) else None,
            extract_max_parts=integer("EXTRACT_MAX_PARTS", defaults.extract_max_parts),
            extract_max_depth=integer("EXTRACT_MAX_DEPTH", defaults.extract_max_depth),
            extract_max_decoded_bytes=integer(
                "EXTRACT_MAX_DECODED_BYTES", defaults.extract_max_decoded_bytes
            ),
            extract_max_lines=integer("EXTRACT_MAX_LINES", defaults.extract_max_lines),
            extract_retries=integer("EXTRACT_RETRIES", defaults.extract_retries),
            sweep_age_s=number("SWEEP_AGE_S", defaults.sweep_age_s),
            claim_lease_s=number("CLAIM_LEASE_S", defaults.claim_lease_s),
            dns_servers=tuple(
                s.strip() for s in (get("DNS_SERVERS") or "").split(",") if s.strip()
            ),
            dns_timeout_s=number("DNS_TIMEOUT_S", defaults.dns_timeout_s),
            authserv_id=get("AUTHSERV_ID"),
            log_format=get("LOG_FORMAT") or defaults.log_format,
            env=get("ENV") or defaults.env,
        )
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
                    "INGEST_ENV=production refuses embedded defaults; set " + ", ".join(missing)
                )
        if self.log_format not in ("json", "console"):
            raise ConfigError(f"INGEST_LOG_FORMAT must be json or console, not {self.log_format!r}")
        if not self.domains:
            raise ConfigError("INGEST_DOMAINS names no domain")
        if self.dns_servers:
            from ingest_core.sender.dns import parse_nameserver

            for server in self.dns_servers:
                try:
                    parse_nameserver(server)
                except ValueError as exc:
                    raise ConfigError(f"INGEST_DNS_SERVERS: {exc}") from exc
