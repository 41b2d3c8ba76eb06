"""compose.yaml, read: the users' stack is the topology the container tier runs
(tests/containers/container_stack.py), with settings the image accepts. No engine
needed; runs in the ordinary suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ingest_core.settings import Settings, env_variable

ROOT = Path(__file__).resolve().parents[2]
OURS = ("ingest", "worker", "migrate")


def _substituted(text: str) -> str:
    """Compose's ``${VAR:-default}`` as its default, ``${VAR:?message}`` as a value."""
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "set-by-the-user", text)


@pytest.fixture(scope="module")
def compose() -> dict[str, dict[str, dict[str, object]]]:
    loaded = yaml.safe_load(_substituted((ROOT / "compose.yaml").read_text()))
    assert isinstance(loaded, dict)
    return loaded


def _environment(service: dict[str, object]) -> dict[str, str]:
    environment = service.get("environment") or {}
    assert isinstance(environment, dict)
    return {str(k): str(v) for k, v in environment.items()}


def test_every_ingest_variable_is_a_setting_and_the_image_accepts_them(compose: dict) -> None:
    known = {env_variable(name) for name in Settings.__dataclass_fields__}
    for name in OURS:
        environment = {"INGEST_ENV": "production", **_environment(compose["services"][name])}
        unknown = {k for k in environment if k.startswith("INGEST_")} - known
        assert not unknown, f"{name}: not settings: {unknown}"
        settings = Settings.from_env(environment)  # validates as the container will
        assert settings.production
        assert settings.secret_key, "production refuses webhook secrets without a key"


def test_postfix_reaches_the_service_its_main_cf_names(compose: dict) -> None:
    main_cf = (ROOT / "deploy/postfix/main.cf").read_text()
    transport = (ROOT / "deploy/postfix/transport").read_text()
    assert re.search(r"^smtpd_milters = inet:ingest:8890$", main_cf, re.MULTILINE)
    assert re.search(r"lmtp:inet:ingest:24$", transport, re.MULTILINE)
    assert "ingest" in compose["services"]
    domains = _environment(compose["services"]["ingest"])["INGEST_DOMAINS"]
    relay = re.search(r"^relay_domains = (.+)$", main_cf, re.MULTILINE)
    assert relay is not None
    assert domains.split(",") == relay.group(1).split(",")


def test_ours_run_read_only_without_capabilities_and_wait_for_the_migration(
    compose: dict,
) -> None:
    services = compose["services"]
    for name in OURS:
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]
    assert services["ingest"]["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": 0}
    for name in ("ingest", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert services["postfix"]["depends_on"] == {"ingest": {"condition": "service_healthy"}}
    waits = services["migrate"]["depends_on"]
    assert {k: v["condition"] for k, v in waits.items()} == {
        "db": "service_healthy",
        "redis": "service_healthy",
        "s3-bucket": "service_completed_successfully",
    }


def test_health_checks_and_named_volumes(compose: dict) -> None:
    services = compose["services"]
    for name in ("ingest", "worker", "db", "redis", "s3"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["ingest", "healthcheck"]' in dockerfile
    assert services["ingest"]["healthcheck"]["test"] == ["CMD", "ingest", "healthcheck"]
    used = {
        str(volume).split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
    }
    assert used == set(compose["volumes"])
