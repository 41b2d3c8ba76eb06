"""DMARC (RFC 7489) on top of SPF and DKIM results: the RFC5322.From identity,
policy discovery, identifier alignment and the verdict.

Kept apart from the SPF and DKIM plumbing because it is pure logic over their
results plus one or two TXT lookups, which arrive through ``lookup_txt``. The
organizational domain comes from the Public Suffix List bundled with the
``publicsuffixlist`` package, never fetched at run time.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from typing import TYPE_CHECKING, cast

from publicsuffixlist import PublicSuffixList

from ingest_core.errors import DnsTemporaryError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from email.headerregistry import Address, AddressHeader

MAX_FROM_LENGTH = 2000
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_POLICIES = ("none", "quarantine", "reject")
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")
_FROM = HeaderRegistry()["from"]  # built once: the registry makes a new class per call


def normalise_domain(text: str | None) -> str | None:
    """A DNS domain in lower-case A-labels, or None when ``text`` is not one
    (an address literal, a single label, bad characters, too long)."""
    if not text:
        return None
    domain = text.strip().rstrip(".").lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(lb) for lb in labels):
        return None
    return domain


def _addresses(value: str) -> tuple[Address, ...] | None:
    """The addresses of a From value; None if it cannot be parsed. A display
    name whose encoded words decode to CR/LF makes the email package refuse the
    whole field, so a second try drops encoded words (never part of an address)."""
    for text in (value, _ENCODED_WORD.sub("x", value)):
        try:
            return cast("AddressHeader", _FROM("from", text)).addresses
        except Exception:  # the email package's parser on hostile input
            continue
    return None


def from_identity(values: Sequence[str]) -> tuple[str | None, str | None, str | None]:
    """``(address, domain, problem)`` of the RFC5322.From field values.

    A message with no From field, several, or one naming several addresses has
    no single author domain: DMARC cannot be applied, and the address must not
    be trusted for allow-listing either.
    """
    if not values:
        return None, None, "no From field"
    if len(values) > 1:
        return None, None, "several From fields"
    if len(values[0]) > MAX_FROM_LENGTH:
        return None, None, "From field too long"
    addresses = _addresses(values[0])
    if addresses is None:
        return None, None, "unparsable From field"
    if len(addresses) != 1:
        return None, None, "several From addresses" if addresses else "From names no address"
    address = addresses[0]
    domain = normalise_domain(address.domain)
    if domain is None or not address.username:
        return None, None, "From address has no valid domain"
    local = address.username.lower()
    if not local.isprintable() or any(c.isspace() for c in local) or len(local) > 64:
        return None, None, "From address has an unusable local part"
    return f"{local}@{domain}", domain, None


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registered domain under its public suffix (``mail.example.co.uk`` →
    ``example.co.uk``); the domain itself when it is a public suffix."""
    return _public_suffixes().privatesuffix(domain) or domain


def aligned(identifier: str | None, from_domain: str, *, strict: bool) -> bool:
    """Whether an authenticated domain is aligned with the From domain."""
    if identifier is None:
        return False
    if strict:
        return identifier == from_domain
    return organizational_domain(identifier) == organizational_domain(from_domain)


class DmarcRecordError(ValueError):
    """A published DMARC record that cannot be used."""


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    policy: str  # p=
    subdomain_policy: str | None  # sp=
    strict_dkim: bool  # adkim=s
    strict_spf: bool  # aspf=s
    pct: int


def parse_record(text: str) -> DmarcRecord:
    """A ``v=DMARC1; p=...`` record. Unknown tags are ignored; a missing or
    invalid p= is ``none`` when rua= is given (RFC 7489 §6.6.3), else an error."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
        elif part.strip():
            raise DmarcRecordError(f"not a tag=value pair: {part.strip()[:40]!r}")
    if next(iter(tags), None) != "v" or tags["v"] != "DMARC1":
        raise DmarcRecordError("does not start with v=DMARC1")
    policy = tags.get("p", "").lower()
    if policy not in _POLICIES:
        if not tags.get("rua"):
            raise DmarcRecordError("p= missing or not none/quarantine/reject")
        policy = "none"
    subdomain_policy = tags.get("sp", "").lower()
    pct = tags.get("pct", "100")
    return DmarcRecord(
        policy=policy,
        subdomain_policy=subdomain_policy if subdomain_policy in _POLICIES else None,
        strict_dkim=tags.get("adkim", "r").lower() == "s",
        strict_spf=tags.get("aspf", "r").lower() == "s",
        pct=min(100, int(pct)) if pct.isdigit() else 100,
    )


@dataclass(frozen=True, slots=True)
class DmarcOutcome:
    result: str  # pass | fail | none | temperror | permerror
    policy: str | None  # the effective p= (or sp=) for the From domain
    aligned: bool  # an aligned SPF or DKIM pass, even without a record
    reason: str | None = None


def _records_at(name: str, lookup_txt: Callable[[str], list[bytes]]) -> list[str]:
    texts = (t.decode("ascii", "replace") for t in lookup_txt(name))
    return [t for t in texts if t.lstrip().startswith("v=DMARC1")]


def evaluate(
    from_domain: str,
    *,
    spf_result: str,
    spf_domain: str | None,
    dkim: Sequence[tuple[str, str]],
    lookup_txt: Callable[[str], list[bytes]],
) -> DmarcOutcome:
    """The DMARC verdict for ``from_domain`` given SPF and DKIM results;
    ``dkim`` is ``(signing domain, result)`` per signature. ``lookup_txt``
    raises DnsTemporaryError for a failed lookup."""
    org = organizational_domain(from_domain)
    record: DmarcRecord | None = None
    problem: str | None = None
    temporary: str | None = None
    policy: str | None = None
    try:
        texts = _records_at(f"_dmarc.{from_domain}", lookup_txt)
        at_org = not texts and org != from_domain
        if at_org:
            texts = _records_at(f"_dmarc.{org}", lookup_txt)
        if len(texts) > 1:
            problem = "several DMARC records"
        elif texts:
            record = parse_record(texts[0])
            policy = (record.subdomain_policy or record.policy) if at_org else record.policy
    except DnsTemporaryError as exc:
        temporary = f"DMARC record lookup failed: {exc}"
    except DmarcRecordError as exc:
        problem = f"DMARC record: {exc}"

    # Without a record the modes are relaxed (the default); when the record could
    # not be read, strict, so an unknown adkim=s cannot be passed by a sibling.
    strict_spf = record.strict_spf if record else temporary is not None
    strict_dkim = record.strict_dkim if record else temporary is not None
    spf_aligned = spf_domain is not None and aligned(spf_domain, from_domain, strict=strict_spf)
    dkim_aligned = [r for d, r in dkim if aligned(d, from_domain, strict=strict_dkim)]
    is_aligned = (spf_aligned and spf_result == "pass") or "pass" in dkim_aligned

    if temporary is not None:
        return DmarcOutcome("temperror", None, is_aligned, temporary)
    if problem is not None:
        return DmarcOutcome("permerror", None, is_aligned, problem)
    if record is None:
        return DmarcOutcome("none", None, is_aligned, "no DMARC record")
    if is_aligned:
        return DmarcOutcome("pass", policy, True)
    if (spf_aligned and spf_result == "temperror") or "temperror" in dkim_aligned:
        reason = "an aligned identifier could not be checked (DNS)"
        return DmarcOutcome("temperror", policy, False, reason)
    return DmarcOutcome("fail", policy, False, "no aligned SPF or DKIM pass")
