"""`ingest healthcheck`: connect to our own LMTP listener, LHLO, NOOP, QUIT."""

from __future__ import annotations

import smtplib
import sys
from typing import TYPE_CHECKING

from lmtpd.listeners import parse_listen

if TYPE_CHECKING:
    from ingest_core.settings import Settings


def check(settings: Settings, timeout: float = 5.0) -> int:
    target = parse_listen(settings.lmtp_listen)
    try:
        if isinstance(target, str):
            client = smtplib.LMTP(target, timeout=timeout)
        else:
            host, port = target
            host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
            client = smtplib.LMTP(host, port, timeout=timeout)
        with client:
            code, _ = client.ehlo()
            noop, _ = client.noop()
    except (OSError, smtplib.SMTPException) as exc:
        print(f"unhealthy: {type(exc).__name__}", file=sys.stderr)
        return 1
    if code != 250 or noop != 250:
        print(f"unhealthy: LHLO {code}, NOOP {noop}", file=sys.stderr)
        return 1
    print("healthy")
    return 0
