"""Parsing of LMTP command arguments (RFC 5321 §4.1, RFC 3030, RFC 6531, Postfix XFORWARD).

Every parser returns either the parsed value or the :class:`Reply` to send;
none of them raises for peer input and no reply quotes what the peer sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from lmtpd.protocol import _replies as r
from lmtpd.protocol._reply import Reply

XFORWARD_ATTRIBUTES: Final = frozenset({"NAME", "ADDR", "PROTO", "HELO", "SOURCE", "IDENT"})

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_SIZE = re.compile(r"[0-9]{1,20}")
_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~."
)
_LABEL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_XTEXT_HEX = re.compile(rb"\+([0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class MailArgs:
    address: str
    size: int | None
    body: str | None
    smtputf8: bool


@dataclass(frozen=True, slots=True)
class BdatArgs:
    """``size`` is None when the chunk size cannot be read (the stream is unframed);
    ``error`` is set when the size is known but the rest of the command is bad."""

    size: int | None
    last: bool = False
    error: Reply | None = None


def parse_lhlo(args: str) -> str | Reply:
    """The client's name: one printable ASCII token (a domain or an address literal)."""
    name = args.strip(" ")
    if not name or " " in name or not name.isascii() or not r.is_printable_ascii(name):
        return r.BAD_SYNTAX
    return name


def parse_mail(args: str, max_message_bytes: int) -> MailArgs | Reply:
    """``FROM:<reverse-path> [SP params]``; the null sender ``<>`` is allowed."""
    split = _split_path(args, "FROM:")
    if isinstance(split, Reply):
        return split
    address, params = split
    values: dict[str, str | None] = {}
    for keyword, value in params:
        if keyword not in ("SIZE", "BODY", "SMTPUTF8"):
            return r.BAD_MAIL_PARAM
        if keyword in values:
            return r.BAD_SYNTAX
        values[keyword] = value
    size, body, smtputf8 = values.get("SIZE"), values.get("BODY"), "SMTPUTF8" in values
    if (
        ("SIZE" in values and (size is None or not _SIZE.fullmatch(size)))
        or ("BODY" in values and (body is None or body.upper() not in ("7BIT", "8BITMIME")))
        or (smtputf8 and values["SMTPUTF8"] is not None)
    ):
        return r.BAD_SYNTAX
    if address:
        problem = _check_mailbox(address, smtputf8, r.BAD_SENDER)
        if problem is not None:
            return problem
    declared = int(size) if size is not None else None
    if declared is not None and declared > max_message_bytes:
        return r.TOO_BIG
    return MailArgs(address, declared, body.upper() if body is not None else None, smtputf8)


def parse_rcpt(args: str, smtputf8: bool) -> str | Reply:
    """``TO:<forward-path>``; no RCPT parameters are advertised, so none are accepted."""
    split = _split_path(args, "TO:")
    if isinstance(split, Reply):
        return split
    address, params = split
    if params:
        return r.BAD_RCPT_PARAM
    if address.lower() == "postmaster":  # RFC 5321 §4.1.1.3: domain-less postmaster
        return address
    problem = _check_mailbox(address, smtputf8, r.BAD_RECIPIENT)
    return address if problem is None else problem


def parse_bdat(args: bytes) -> BdatArgs:
    """``chunk-size [SP "LAST"]`` (RFC 3030), parsed from bytes: a BDAT line is
    never rejected before its chunk size is known."""
    tokens = args.lstrip(b" ").split(b" ")
    if not _SIZE.fullmatch(tokens[0].decode("latin-1")):
        return BdatArgs(None)
    size = int(tokens[0])
    rest = [t for t in tokens[1:] if t]
    if not rest:
        return BdatArgs(size)
    if len(rest) == 1 and rest[0].upper() == b"LAST":
        return BdatArgs(size, last=True)
    return BdatArgs(size, error=r.BAD_SYNTAX)


def parse_xforward(args: str) -> dict[str, str] | Reply:
    """Postfix XFORWARD: ``NAME=value`` pairs, values in xtext (RFC 3461 §4).

    Decoded values are made printable (control characters become ``?``, as Postfix
    does for its own logs): they end up in rows and log lines.
    """
    tokens = [t for t in args.split(" ") if t]
    if not tokens:
        return r.BAD_SYNTAX
    attributes: dict[str, str] = {}
    for token in tokens:
        name, eq, value = token.partition("=")
        name = name.upper()
        if not eq or name not in XFORWARD_ATTRIBUTES:
            return r.BAD_SYNTAX
        decoded = _decode_xtext(value)
        if decoded is None:
            return r.BAD_SYNTAX
        attributes[name] = decoded
    return attributes


def _decode_xtext(value: str) -> str | None:
    if not value.isascii() or not all("!" <= ch <= "~" for ch in value):
        return None
    raw = value.encode("ascii")
    if raw.count(b"+") != len(_XTEXT_HEX.findall(raw)):
        return None
    decoded = _XTEXT_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
    text = decoded.decode("utf-8", errors="replace")
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _split_path(args: str, prefix: str) -> tuple[str, list[tuple[str, str | None]]] | Reply:
    """``PREFIX<path> params`` (one optional space after the colon, as many clients
    send) → the address inside the brackets and the parsed parameters."""
    if args[: len(prefix)].upper() != prefix:
        return r.BAD_SYNTAX
    rest = args[len(prefix) :]
    if rest.startswith(" "):
        rest = rest[1:]
    end = _closing_bracket(rest)
    if end is None:
        return r.BAD_SYNTAX
    tail = rest[end + 1 :]
    if tail and not tail.startswith(" "):
        return r.BAD_SYNTAX
    params: list[tuple[str, str | None]] = []
    for token in tail.split(" "):
        if not token:
            continue
        keyword, eq, value = token.partition("=")
        if not _KEYWORD.fullmatch(keyword) or (eq and not value):
            return r.BAD_SYNTAX
        params.append((keyword.upper(), value if eq else None))
    return rest[1:end], params


def _closing_bracket(text: str) -> int | None:
    """Index of the ``>`` closing a path that starts at text[0], skipping quoted strings."""
    if not text.startswith("<"):
        return None
    in_quotes = False
    i = 1
    while i < len(text):
        ch = text[i]
        if in_quotes and ch == "\\":
            i += 2
            continue
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == ">" and not in_quotes:
            return i
        i += 1
    return None


def _check_mailbox(address: str, smtputf8: bool, bad: Reply) -> Reply | None:
    """None if ``address`` is a usable mailbox; else the reply to send.

    Deliberately lenient on the local part's dots (senders such as ``a..b@x`` exist)
    but strict on what could confuse later stages: controls, unquoted spaces and
    specials, malformed domains.
    """
    if not address.isprintable():  # controls, NUL, CR/LF, Unicode separators
        return bad
    if not address.isascii() and not smtputf8:
        return r.NEEDS_SMTPUTF8
    if address.startswith("@"):  # source route (RFC 5321 §4.1.2): accepted, ignored
        address = address.partition(":")[2]
    local, domain = _split_mailbox(address)
    if local is None or domain is None or not _valid_domain(domain):
        return bad
    return None


def _split_mailbox(address: str) -> tuple[str | None, str | None]:
    if address.startswith('"'):
        end = _closing_quote(address)
        if end is None or address[end + 1 : end + 2] != "@":
            return None, None
        return address[: end + 1], address[end + 2 :]
    local, at, domain = address.partition("@")
    if not at or not local or not all(ch in _ATEXT or not ch.isascii() for ch in local):
        return None, None
    return local, domain


def _closing_quote(text: str) -> int | None:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text):
                return None
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return None


def _valid_domain(domain: str) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        inner = domain[1:-1]
        return bool(inner) and all("!" <= ch <= "~" and ch not in "[]\\" for ch in inner)
    labels = domain.split(".")
    return all(label and all(ch in _LABEL or not ch.isascii() for ch in label) for label in labels)
