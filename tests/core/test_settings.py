"""Settings.from_env: every field read from its INGEST_ variable, defaults from
the dataclass alone."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest

from ingest_core.errors import ConfigError
from ingest_core.settings import Settings, env_variable


def test_an_empty_environment_gives_the_dataclass_defaults():
    assert Settings.from_env({}) == Settings()


def test_an_empty_variable_counts_as_unset():
    assert Settings.from_env({"INGEST_MAILBOX": "", "INGEST_MAX_RECIPIENTS": ""}) == Settings()


def test_every_field_has_its_own_variable():
    names = [env_variable(f.name) for f in fields(Settings)]
    assert len(set(names)) == len(names)
    assert "INGEST_BREAKER_FAILURES" in names
    assert "INGEST_CONNECT_TIMEOUT_S" in names


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    [
        ("INGEST_BREAKER_FAILURES", "3", "breaker_failures", 3),
        ("INGEST_BREAKER_RESET_S", "2.5", "breaker_reset_s", 2.5),
        ("INGEST_CONNECT_TIMEOUT_S", "0.5", "connect_timeout_s", 0.5),
        ("INGEST_PROCESSES", "4", "processes", 4),
        ("INGEST_PROCESSES", "auto", "processes", os.cpu_count() or 1),
        ("INGEST_MAX_MESSAGE_BYTES", "1048576", "max_message_bytes", 1 << 20),
        ("INGEST_TENANT_CACHE_S", "0", "tenant_cache_s", 0.0),
        (
            "INGEST_DOMAINS",
            "Orders.Example.COM., b.example",
            "domains",
            ("orders.example.com", "b.example"),
        ),
        ("INGEST_MAILBOX", "Orders", "mailbox", "orders"),
        ("INGEST_SPOOL_DIR", "/tmp/spool", "spool_dir", Path("/tmp/spool")),
        ("INGEST_DATABASE_URL", "postgresql://db/x", "database_url", "postgresql://db/x"),
    ],
)
def test_a_variable_sets_its_field(variable, raw, field, expected):
    assert getattr(Settings.from_env({variable: raw}), field) == expected


def test_the_data_dir_is_resolved_against_the_working_directory():
    assert Settings.from_env({"INGEST_DATA_DIR": "here"}).data_dir == Path("here").absolute()


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("INGEST_BREAKER_FAILURES", "0", "must be positive"),
        ("INGEST_BREAKER_RESET_S", "-1", "must be positive"),
        ("INGEST_CONNECT_TIMEOUT_S", "soon", "must be a number"),
        ("INGEST_PROCESSES", "0", "must be positive"),
        ("INGEST_PROCESSES", "many", "must be a number"),
        ("INGEST_STORE_TIMEOUT_S", "0", "must be positive"),
        ("INGEST_LMTP_ALLOW_FROM", "not-a-network", "CIDR"),
        ("INGEST_LOG_FORMAT", "xml", "json or console"),
    ],
)
def test_a_bad_value_names_its_variable(variable, raw, message):
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env({variable: raw})
    assert variable in str(caught.value)
