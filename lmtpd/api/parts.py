"""Small HTTP pieces of the tenant API: problem documents (RFC 9457) with fixed
texts, byte ranges (RFC 9110 §14) and a safe Content-Disposition (RFC 6266)."""

from __future__ import annotations

import json
import re
import unicodedata
from urllib.parse import quote

from starlette.responses import Response

PROBLEM_TYPE = "application/problem+json"

# status -> (title, detail): the only texts a problem document carries.
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "A query parameter is malformed or out of range."),
    401: ("Unauthorized", "Send a valid API token: Authorization: Bearer ing_…"),
    403: ("Forbidden", "This token may not use this endpoint."),
    404: ("Not found", "No such resource for this token."),
    405: ("Method not allowed", "This resource does not support that method."),
    409: ("Conflict", "The resource is not in a state that allows this yet."),
    416: ("Range not satisfiable", "The requested range lies outside the representation."),
    429: ("Too many requests", "Too many failed authentication attempts; retry later."),
    500: ("Internal error", "The request failed on our side; it has been logged."),
    503: ("Unavailable", "A dependency is unavailable; retry later."),
}


def problem(status: int, **headers: str) -> Response:
    title, detail = PROBLEMS[status]
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(
        json.dumps(body).encode("utf-8"),
        status,
        headers={"Cache-Control": "no-store", **headers},
        media_type=PROBLEM_TYPE,
    )


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive of a single-range ``Range`` header, or None to
    send the whole representation (no header, several ranges, other units).
    Raises :class:`Unsatisfiable` for a range outside ``size``."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(size - length, 0), size - 1
    start = int(first)
    if start >= size:
        raise Unsatisfiable(header)
    end = int(last) if last else size - 1
    if end < start:
        return None  # invalid: ignored (RFC 9110 §14.2)
    return start, min(end, size - 1)


_UNSAFE = re.compile(r"[^A-Za-z0-9!#$&+.^_`|~ -]")


def content_disposition(filename: str | None, fallback: str) -> str:
    """``attachment`` with an ASCII ``filename`` (unsafe characters replaced) and,
    when the name is not plain ASCII, ``filename*`` (RFC 8187). Path parts and
    control characters of a hostile name never reach the header."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    name = name[:150] or fallback
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = _UNSAFE.sub("_", folded).strip() or fallback
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += "; filename*=UTF-8''" + quote(name, safe="")
    return value
