"""The structure of a report: RFC 6522 ``multipart/report`` and its
delivery-status part (RFC 3464), and the recipient of a bounce in another
format (``flufl.bounce``'s detectors: Exim, qmail, Exchange 5.5, Yahoo …).

Only a message already known to be a bounce or a report is parsed; ordinary
mail never gets here, so the cost stays with the automated traffic.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.parser import HeaderParser
from typing import TYPE_CHECKING

from flufl.bounce import scan_message

from ingest_core.headers import clean_field
from ingest_core.mime import ManifestError, parse_message
from ingest_core.model import BounceDetails

if TYPE_CHECKING:
    from email.message import Message
    from typing import BinaryIO

    from ingest_core.mime import MimeLimits

MAX_RECIPIENT = 320
MAX_DIAGNOSTIC = 500
# flufl.bounce reads a whole message: give it the first part of a bounce only
# (the explanation comes first; the returned original, attachments and all, last).
SCAN_LIMIT = 256 * 1024
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_ADDRESS = re.compile(r"[^\s<>@]{1,256}@[^\s<>@]{1,255}")


def report_parts(source: BinaryIO, limits: MimeLimits) -> tuple[str | None, BounceDetails | None]:
    """The report types found in a ``multipart/report`` (``delivery-status``,
    ``feedback-report``, ``disposition-notification``) by the content type of its
    second part, and the delivery status's details. ``(None, None)`` when the
    message cannot be parsed within the limits."""
    try:
        parsed = parse_message(source, limits)
    except ManifestError:
        return None, None
    for part in parsed.message.walk():
        content_type = part.get_content_type()
        if content_type in ("message/delivery-status", "message/global-delivery-status"):
            return "delivery-status", delivery_status(part)
        if content_type == "message/feedback-report":
            return "feedback-report", None
        if content_type in (
            "message/disposition-notification",
            "message/global-disposition-notification",
        ):
            return "disposition-notification", None
    return None, None


def delivery_status(part: Message) -> BounceDetails:
    """The first failed recipient of a delivery-status part (else its first
    recipient): the per-message block comes first, then one block per recipient."""
    blocks = _blocks(part)
    recipients = [block for block in blocks[1:] if _field(block, "action") or _recipient(block)]
    if not recipients:
        return BounceDetails()
    chosen = next((b for b in recipients if _field(b, "action") == "failed"), recipients[0])
    action = _field(chosen, "action")
    status = _field(chosen, "status")
    found = _STATUS.search(status or "")
    return BounceDetails(
        original_recipient=_recipient(chosen),
        action=action if action in _ACTIONS else None,
        status=found.group() if found else None,
        diagnostic=clean_field(_diagnostic(chosen), MAX_DIAGNOSTIC),
    )


def scanned_recipient(source: BinaryIO) -> str | None:
    """The failed address ``flufl.bounce`` finds in a bounce of another format."""
    head = source.read(SCAN_LIMIT)
    message = email.message_from_bytes(head, policy=email.policy.compat32)
    try:
        found = sorted(scan_message(message))
    except Exception:  # a detector choking on odd input must not fail the message
        return None
    for address in found:
        text = address.decode("utf-8", "replace") if isinstance(address, bytes) else str(address)
        if _ADDRESS.fullmatch(text):
            return clean_field(text, MAX_RECIPIENT)
    return None


def _blocks(part: Message) -> list[dict[str, str]]:
    """The status blocks as lower-case field → value, parsed with the stdlib parser."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser already split it into blocks
        return [
            {k.lower(): str(v) for k, v in block.items()}
            for block in payload
            if not isinstance(block, str)
        ]
    text = part.get_payload(decode=True)
    data = text if isinstance(text, bytes) else b""
    raw = data.decode("utf-8", "replace").replace("\r\n", "\n")
    parser = HeaderParser()
    return [
        {k.lower(): str(v) for k, v in parser.parsestr(block + "\n").items()}
        for block in re.split(r"\n\s*\n", raw)
        if block.strip()
    ]


def _field(block: dict[str, str], name: str) -> str | None:
    value = block.get(name)
    return value.strip().lower() if value else None


def _recipient(block: dict[str, str]) -> str | None:
    """Original-Recipient if given, else Final-Recipient: ``rfc822; address``."""
    for name in ("original-recipient", "final-recipient"):
        value = block.get(name)
        if value:
            address = value.partition(";")[2] or value
            found = _ADDRESS.search(address.strip().strip("<>"))
            if found:
                return clean_field(found.group().strip("<>"), MAX_RECIPIENT)
    return None


def _diagnostic(block: dict[str, str]) -> str | None:
    value = block.get("diagnostic-code")
    if not value:
        return None
    kind, _, text = value.partition(";")
    return text if text.strip() else kind
