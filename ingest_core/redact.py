"""Passwords out of connection strings, for logs, messages and ``ingest config``."""

from __future__ import annotations

import re

REDACTED = "***"

_URL_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):(?P<secret>[^/@]*)@")
_CONNINFO_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\S+)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<secret>[^&]*)")


def redact_url(text: str) -> str:
    """``text`` with any password replaced by ``***``."""
    if "://" in text:  # a URL: user:password@ and ?password=
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
        return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}", text)
    return _CONNINFO_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}", text)  # key=value
