"""The text of a message: its decoded ``text/plain`` and ``text/html`` bodies.

Orders are often written in the body ("ship 10 widgets to dock 4"), so
extraction keeps it beside the attachment manifest (``message_body``,
docs/schema.md) and the tenant API serves it (``GET /v1/messages/{id}/body``).

A body part is a ``text/plain`` or ``text/html`` leaf that is not an attachment
(no ``attachment`` disposition, no filename) and not inside an attached message;
several parts of one type (text between inline images) are joined in order.
Each is decoded from its transfer encoding and its charset to ``str`` (an
unknown or missing charset is read as UTF-8, undecodable bytes become U+FFFD)
and cut at :data:`MAX_BODY_CHARS`. Without a text part, the text is a rendering
of the HTML (``inscriptis``: Apache-2.0, tables and lists laid out, no network).

Quoted reply history is split off with ``quotequail`` (MIT): ``reply`` is the
text before the first quoted block and its ``On … wrote:`` line,
``quoted`` says whether there was one. quotequail rather than
``mail-parser-reply``: its ``quote`` is line based and linear in the input,
while mail-parser-reply's patterns take seconds to minutes on hostile input
(100,000 blank lines) — and the body is the sender's to choose.
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING

from ingest_core.text import storable

if TYPE_CHECKING:
    from collections.abc import Iterator

MAX_BODY_CHARS = 256 * 1024
"""Characters kept of each body (text, HTML); the rest is cut (``truncated``)."""
_QUOTE_LINES = 1000  # quotequail looks for the start of a quote in this many lines

log = logging.getLogger("ingest.bodies")


@dataclass(frozen=True, slots=True)
class MessageBody:
    text: str | None  # the text/plain body, or the HTML rendered as text
    html: str | None
    text_from_html: bool = False
    reply: str | None = None  # the text without its quoted reply history
    quoted: bool = False  # reply history found (and split off in ``reply``)
    truncated: bool = False  # a body was cut at MAX_BODY_CHARS


def extract_body(message: Message, max_chars: int = MAX_BODY_CHARS) -> MessageBody:
    plain: list[str] = []
    html: list[str] = []
    truncated = False
    for part in _body_parts(message):
        decoded, cut = _decode(part, max_chars)
        truncated |= cut
        (html if part.get_content_subtype() == "html" else plain).append(decoded)
    text, truncated = _joined(plain, max_chars, truncated)
    markup, truncated = _joined(html, max_chars, truncated)
    from_html = text is None and markup is not None
    if from_html:
        text = _render(markup or "")
    reply, quoted = _split_reply(text)
    return MessageBody(
        storable(text), storable(markup), from_html, storable(reply), quoted, truncated
    )


def _body_parts(message: Message) -> Iterator[Message]:
    """The body leaves in document order, attached messages skipped."""
    stack = [message]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "message":
            continue  # an attached message: its text is an attachment's
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(p for p in reversed(children) if isinstance(p, Message))
            continue
        if part.get_content_type() not in ("text/plain", "text/html"):
            continue
        try:
            if part.get_content_disposition() == "attachment" or part.get_filename():
                continue
        except (ValueError, TypeError, LookupError):  # a broken header: not a body
            continue
        yield part


def _decode(part: Message, max_chars: int) -> tuple[str, bool]:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    cut = len(data) > max_chars * 4
    codec = _codec(part.get_content_charset())
    text = data[: max_chars * 4].decode(codec, "replace").replace("\r\n", "\n")
    if len(text) > max_chars:
        text, cut = text[:max_chars], True
    return text, cut


def _codec(charset: str | None) -> str:
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


def _joined(texts: list[str], max_chars: int, truncated: bool) -> tuple[str | None, bool]:
    if not texts:
        return None, truncated
    joined = "\n".join(texts)
    if len(joined) > max_chars:
        return joined[:max_chars], True
    return joined, truncated


def _render(html: str) -> str | None:
    from inscriptis import get_text

    try:
        return get_text(html).strip("\n") or None
    except Exception as exc:  # lxml refuses some markup: no rendering, the HTML stays
        log.info("html not rendered", extra={"error_type": type(exc).__name__})
        return None


def _split_reply(text: str | None) -> tuple[str | None, bool]:
    if not text:
        return text, False
    import quotequail

    chunks = quotequail.quote(text, limit=_QUOTE_LINES, quote_intro_line=True)
    if all(is_new for is_new, _ in chunks):
        return text, False
    reply: list[str] = []
    for is_new, chunk in chunks:
        if not is_new:
            break
        reply.append(chunk)
    return "\n".join(reply).strip() or None, True
