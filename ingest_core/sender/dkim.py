"""DKIM and ARC verification with dkimpy, mapped onto result words.

dkimpy answers True/False or raises; it folds "no key published", "key record
broken" and "DNS timed out" into a plain False. Those must be ``permerror``
and ``temperror``, not ``fail``, so the key lookup here remembers what it found
and our ``DnsTemporaryError`` (not a dkimpy exception) passes through dkimpy
untouched.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from ingest_core.errors import DnsTemporaryError
from ingest_core.text import displayable

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("ingest.sender")
# dkimpy logs parse errors with header text at ERROR; keep them out of our logs'
# error stream (they describe the sender's mistakes, not ours).
_library_log = logging.getLogger("ingest.sender.dkimpy")
_library_log.setLevel(logging.CRITICAL)

MIN_KEY_BITS = 1024
Signed = TypeVar("Signed", dkim.DKIM, dkim.ARC)


@dataclass(frozen=True, slots=True)
class Checked:
    domain: str  # d=, lower case ("" when unreadable)
    selector: str  # s=
    result: str  # pass | fail | neutral | temperror | permerror
    reason: str | None = None


def signer(value: bytes | str) -> tuple[str, str]:
    """``(d=, s=)`` of a DKIM-Signature value, best effort, display-safe."""
    raw = value.encode("utf-8", "replace") if isinstance(value, str) else value
    try:
        tags = parse_tag_value(re.sub(rb"\s+", b" ", raw).strip())
    except (InvalidTagValueList, ValueError, IndexError):
        return "", ""
    domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
    selector = tags.get(b"s", b"").decode("ascii", "replace").strip()
    return displayable(domain, 253), displayable(selector, 253)


class KeyLookup:
    """dkimpy's ``dnsfunc``: the selector's TXT record; remembers what it found."""

    def __init__(self, txt: Callable[[str], list[bytes]]) -> None:
        self._txt = txt
        self.asked = False
        self.record: bytes | None = None

    def reset(self) -> None:
        self.asked, self.record = False, None

    def __call__(self, name: bytes, timeout: object = None) -> bytes | None:
        self.asked, self.record = True, None
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError:
            return None
        records = self._txt(text)  # DnsTemporaryError passes through dkimpy
        self.record = next((r for r in records if b"p=" in r), records[0] if records else None)
        return self.record


def _why_false(keys: KeyLookup, name: bytes) -> tuple[str, str]:
    if not keys.asked:
        return "permerror", "signature not evaluated"
    if keys.record is None:
        return "permerror", "no key published for the selector"
    try:
        dkim.evaluate_pk(name, keys.record)
    except Exception:
        return "permerror", "key record unusable"
    return "fail", "signature does not verify"


def _verify_one(message: dkim.DKIM, idx: int, keys: KeyLookup, who: tuple[str, str]) -> Checked:
    keys.reset()
    try:
        ok = message.verify(idx=idx, dnsfunc=keys)
    except DnsTemporaryError as exc:
        return Checked(*who, "temperror", str(exc))
    except dkim.ValidationError as exc:
        if "body hash mismatch" in str(exc):
            return Checked(*who, "fail", "body hash mismatch")
        return Checked(*who, "permerror", displayable(str(exc), 200))
    except dkim.DKIMException as exc:
        return Checked(*who, "permerror", displayable(str(exc), 200))
    except Exception:  # dkimpy on hostile input
        log.warning("DKIM verification failed unexpectedly", exc_info=True)
        return Checked(*who, "permerror", "signature could not be evaluated")
    if ok:
        return Checked(*who, "pass")
    name = f"{who[1]}._domainkey.{who[0]}".encode("ascii", "replace")
    result, reason = _why_false(keys, name)
    return Checked(*who, result, reason)


def _parsed(kind: type[Signed], message: bytes) -> Signed:
    """dkimpy finds the end of the header by splitting the whole message into a
    list of lines, about one and a half times the message again. With CRLF line
    ends only (what LMTP hands over) the result is the same when it parses the
    header alone and gets the body as it is."""
    end = message.find(b"\r\n\r\n")
    if end <= 0 or message.count(b"\n") != message.count(b"\r\n"):
        return kind(message, logger=_library_log, minkey=MIN_KEY_BITS)
    parsed = kind(message[: end + 4], logger=_library_log, minkey=MIN_KEY_BITS)
    parsed.body = message[end + 4 :]
    return parsed


def verify_dkim(
    message: bytes, txt: Callable[[str], list[bytes]], *, limit: int, fallback: list[str]
) -> tuple[list[Checked], int]:
    """Results for the first ``limit`` DKIM-Signature fields, in header order,
    and how many fields there are. ``fallback``: the signature values read from
    the header block, reported as permerror if dkimpy cannot parse the message."""
    try:
        parsed = _parsed(dkim.DKIM, message)
    except Exception:
        reason = "message header could not be parsed for DKIM"
        return [Checked(*signer(v), "permerror", reason) for v in fallback[:limit]], len(fallback)
    values = [v for name, v in parsed.headers if name.lower() == b"dkim-signature"]
    keys = KeyLookup(txt)
    results = [_verify_one(parsed, i, keys, signer(v)) for i, v in enumerate(values[:limit])]
    return results, len(values)


def verify_arc(message: bytes, txt: Callable[[str], list[bytes]]) -> tuple[str, str | None]:
    """``(pass | fail | none, reason)`` of the message's ARC chain."""
    try:
        chain = _parsed(dkim.ARC, message)
        cv, _results, reason = chain.verify(dnsfunc=KeyLookup(txt))
    except DnsTemporaryError as exc:
        return "fail", f"ARC key lookup failed: {exc}"
    except dkim.DKIMException as exc:
        return "fail", displayable(str(exc), 200)
    except Exception:  # dkimpy on hostile input
        log.warning("ARC verification failed unexpectedly", exc_info=True)
        return "fail", "ARC chain could not be evaluated"
    if cv == dkim.CV_Pass:
        return "pass", None
    if cv == dkim.CV_None:
        return "none", None
    return "fail", displayable(str(reason), 200)
