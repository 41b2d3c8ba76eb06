"""Sender authentication of a received message: SPF, DKIM, DMARC and ARC.

An order email is an instruction to ship goods and anyone can write any From
line, so the worker asks this module, per message, whether the From domain is
authenticated. Every failure is a verdict, never an exception: malformed
records or signatures are ``permerror``, DNS timeouts and SERVFAIL are
``temperror`` (the caller retries those later).

Libraries: pyspf evaluates SPF and dkimpy verifies DKIM and ARC, both through
our ``DnsResolver`` (pyspf via its module-level ``DNSLookup`` hook, routed per
thread with a context variable; dkimpy via ``dnsfunc``). DMARC is ``dmarc.py``.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO

import spf

from ingest_core.errors import ConfigError, DnsTemporaryError
from ingest_core.headers import HEAD_LIMIT, header_fields, read_head
from ingest_core.model import MAX_MESSAGE_BYTES
from ingest_core.sender import dmarc
from ingest_core.sender.dkim import signer, verify_arc, verify_dkim
from ingest_core.sender.dns import DnsResolver
from ingest_core.text import displayable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest_core.settings import Settings

log = logging.getLogger("ingest.sender")

MAX_DKIM_SIGNATURES = 10
_TOKEN = re.compile(r"[^A-Za-z0-9._@+=-]")
_SPF_RESULTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"})


@dataclass(frozen=True, slots=True)
class DkimResult:
    domain: str
    selector: str
    result: str  # pass | fail | neutral | temperror | permerror
    reason: str | None = field(default=None, compare=False)  # why, for people


@dataclass(frozen=True, slots=True)
class SenderAuth:
    spf: str  # pass|fail|softfail|neutral|none|temperror|permerror
    spf_domain: str | None  # the domain SPF was checked for
    dkim: tuple[DkimResult, ...]  # one per signature (at most 10), in header order
    dmarc: str  # pass|fail|none|temperror|permerror (none = no record)
    dmarc_policy: str | None  # the From domain's effective p= / sp=; None without a record
    from_domain: str | None  # RFC5322.From domain; None if absent/unparsable/several
    from_address: str | None  # the single From address, lower case
    aligned: bool  # an aligned SPF or DKIM pass for from_domain (with or without DMARC)
    arc: str  # pass|fail|none
    summary: str  # Authentication-Results-style text, one line, safe to display
    spf_identity: str = "mailfrom"  # mailfrom | helo
    reasons: tuple[str, ...] = field(default=())  # why verdicts are not pass, for people

    def as_json(self) -> dict[str, object]:
        return {
            "spf": self.spf,
            "spf_domain": self.spf_domain,
            "spf_identity": self.spf_identity,
            "dkim": [
                {"domain": d.domain, "selector": d.selector, "result": d.result} for d in self.dkim
            ],
            "dmarc": self.dmarc,
            "dmarc_policy": self.dmarc_policy,
            "from_domain": self.from_domain,
            "from_address": self.from_address,
            "aligned": self.aligned,
            "arc": self.arc,
            "summary": self.summary,
            "reasons": list(self.reasons),
        }


def clean(text: str | None, limit: int = 200) -> str:
    """Display-safe text (:func:`ingest_core.text.displayable`), bounded."""
    return displayable(text, limit)


def _token(text: str | None, limit: int = 253) -> str:
    """A value for ``key=value`` in the summary: a restricted charset, never empty."""
    return _TOKEN.sub("", text or "")[:limit] or "unknown"


_WANTED = frozenset({"from", "dkim-signature", "arc-seal"})
_SPF_LOOKUP: contextvars.ContextVar[Callable[[str, str], list[Any]] | None] = (
    contextvars.ContextVar("spf_lookup", default=None)
)
_ORIGINAL_SPF_LOOKUP = spf.DNSLookup


def _spf_dns_lookup(name: str, qtype: str, strict: object = True, timeout: object = 20) -> Any:
    """Installed as ``spf.DNSLookup``: our resolver inside ``verify``, pyspf's own
    lookup for anyone else in the process."""
    lookup = _SPF_LOOKUP.get()
    if lookup is None:
        return _ORIGINAL_SPF_LOOKUP(name, qtype, strict, timeout)
    return lookup(name, qtype)


class _Check:
    """The DNS side of one ``verify`` call: every lookup shares one deadline."""

    def __init__(self, resolver: DnsResolver, deadline: float) -> None:
        self.resolver = resolver
        self.deadline = deadline

    def txt(self, name: str) -> list[bytes]:
        return self.resolver.txt(name, deadline=self.deadline)

    def spf_lookup(self, name: str, qtype: str) -> list[Any]:
        """pyspf's ``DNSLookup`` contract: ``[((name, qtype), value), ...]``."""
        r, d = self.resolver, self.deadline
        try:
            if qtype == "TXT":
                return [((name, qtype), (t,)) for t in r.txt(name, deadline=d)]
            if qtype == "A":
                return [((name, qtype), a) for a in r.a(name, deadline=d)]
            if qtype == "AAAA":
                return [((name, qtype), a) for a in r.aaaa(name, deadline=d)]
            if qtype == "MX":
                return [((name, qtype), mx) for mx in r.mx(name, deadline=d)]
            if qtype == "PTR":
                return [((name, qtype), p) for p in r.ptr(name, deadline=d)]
        except DnsTemporaryError as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        return []  # type SPF (99) is obsolete: never published alone


class DnsSenderVerifier:
    """Verifies against live DNS through ``resolver``; see the module docstring.

    ``budget_s`` bounds all DNS time of one message (SPF may make ten lookups,
    each DKIM signature one); lookups past it are ``temperror``. Messages over
    ``max_bytes`` get SPF and DMARC-by-SPF only: their DKIM results are
    ``neutral`` and ARC ``none``.
    """

    def __init__(
        self,
        resolver: DnsResolver,
        *,
        authserv_id: str,
        max_bytes: int = MAX_MESSAGE_BYTES,
        budget_s: float = 20.0,
    ) -> None:
        self.resolver = resolver
        self.authserv_id = _token(authserv_id)
        self.max_bytes = max_bytes
        self.budget_s = budget_s
        if spf.DNSLookup is not _spf_dns_lookup:
            spf.DNSLookup = _spf_dns_lookup

    def verify(
        self,
        raw: BinaryIO,
        *,
        envelope_from: str,
        client_address: str | None,
        client_helo: str | None,
    ) -> SenderAuth:
        check = _Check(self.resolver, self.resolver.now() + self.budget_s)
        raw.seek(0)
        head = read_head(raw, HEAD_LIMIT)
        fields = header_fields(head, _WANTED)
        from_address, from_domain, from_problem = dmarc.from_identity(fields.get("from", []))
        reasons = [from_problem] if from_problem else []

        spf_result, spf_domain, identity, spf_reason = self._spf(
            check, envelope_from, client_address, client_helo
        )
        if spf_reason:
            reasons.append(f"spf: {spf_reason}")

        dkim_results: tuple[DkimResult, ...] = ()
        arc = "none"
        truncated = len(head) >= HEAD_LIMIT  # more fields may follow: let dkimpy look
        if fields.get("dkim-signature") or fields.get("arc-seal") or truncated:
            look_for_arc = truncated or bool(fields.get("arc-seal"))
            dkim_results, arc, more = self._dkim_and_arc(raw, check, fields, look_for_arc)
            reasons.extend(more)

        if from_domain is None:
            outcome = dmarc.DmarcOutcome("permerror", None, False, "no single From domain")
        else:
            outcome = dmarc.evaluate(
                from_domain,
                spf_result=spf_result,
                spf_domain=spf_domain,
                dkim=[(dmarc.normalise_domain(d.domain) or "", d.result) for d in dkim_results],
                lookup_txt=check.txt,
            )
            if outcome.reason and outcome.result != "none":
                reasons.append(f"dmarc: {outcome.reason}")
        auth = SenderAuth(
            spf=spf_result,
            spf_domain=spf_domain,
            dkim=dkim_results,
            dmarc=outcome.result,
            dmarc_policy=outcome.policy,
            from_domain=from_domain,
            from_address=from_address,
            aligned=outcome.aligned,
            arc=arc,
            summary="",
            spf_identity=identity,
            reasons=tuple(clean(r) for r in reasons),
        )
        return _with_summary(auth, self.authserv_id, spf_reason)

    def _spf(
        self,
        check: _Check,
        envelope_from: str,
        client_address: str | None,
        client_helo: str | None,
    ) -> tuple[str, str | None, str, str | None]:
        """``(result, domain, identity, reason)``; HELO when MAIL FROM is ``<>``."""
        sender = envelope_from.strip().removeprefix("<").removesuffix(">").strip()
        helo = (client_helo or "").strip()
        if sender:  # RFC 7208 §4.3: a bare local part takes the HELO domain
            identity = "mailfrom"
            local, at, domain_part = sender.rpartition("@")
            if not at:
                local, domain_part = sender, helo
        else:
            identity, local, domain_part = "helo", "", helo
        domain = dmarc.normalise_domain(domain_part)
        if domain is None:
            what = "MAIL FROM" if identity == "mailfrom" else "HELO (MAIL FROM is <>)"
            return "none", None, identity, f"{what} has no usable domain"
        client = (client_address or "").strip().strip("[]")
        if client.lower().startswith("ipv6:"):  # Postfix XFORWARD spells IPv6 so
            client = client[5:]
        if not client:
            return "none", domain, identity, "no client address (no XFORWARD)"
        try:
            address = str(ipaddress.ip_address(client))
        except ValueError:
            return "none", domain, identity, "client address is not an IP address"
        query_sender = f"{local or 'postmaster'}@{domain}" if identity == "mailfrom" else ""
        token = _SPF_LOOKUP.set(check.spf_lookup)
        try:
            q = spf.query(i=address, s=query_sender, h=helo or domain, querytime=0)
            result, _code, explanation = q.check()
        except Exception:  # pyspf on hostile input; our own DNS errors became TempError
            log.warning("SPF check failed unexpectedly for %s", domain, exc_info=True)
            return "permerror", domain, identity, "SPF evaluation failed"
        finally:
            _SPF_LOOKUP.reset(token)
        result = str(result).lower()
        if result not in _SPF_RESULTS:
            return "permerror", domain, identity, f"unexpected SPF result {result!r}"
        return result, domain, identity, (None if result == "pass" else str(explanation))

    def _dkim_and_arc(
        self, raw: BinaryIO, check: _Check, fields: dict[str, list[str]], look_for_arc: bool
    ) -> tuple[tuple[DkimResult, ...], str, list[str]]:
        """DKIM results in header order, the ARC verdict, and reasons."""
        signatures = fields.get("dkim-signature", [])
        raw.seek(0)
        message = raw.read(self.max_bytes + 1)
        if len(message) > self.max_bytes:
            reason = f"message over {self.max_bytes} bytes: DKIM and ARC not checked"
            too_big = tuple(
                DkimResult(*signer(v), result="neutral", reason=reason)
                for v in signatures[:MAX_DKIM_SIGNATURES]
            )
            return too_big, "none", [reason]
        checked, count = verify_dkim(
            message, check.txt, limit=MAX_DKIM_SIGNATURES, fallback=signatures
        )
        results = tuple(DkimResult(c.domain, c.selector, c.result, c.reason) for c in checked)
        reasons = [f"dkim {r.domain or '?'}: {r.reason}" for r in results if r.reason]
        if count > MAX_DKIM_SIGNATURES:
            reasons.append(f"{count - MAX_DKIM_SIGNATURES} more DKIM signatures not checked")
        arc, arc_reason = verify_arc(message, check.txt) if look_for_arc else ("none", None)
        if arc_reason:
            reasons.append(f"arc: {arc_reason}")
        return results, arc, reasons


def _comment(text: str) -> str:
    return clean(text, 120).translate(str.maketrans("", "", "();\\"))


def _with_summary(auth: SenderAuth, authserv_id: str, spf_reason: str | None) -> SenderAuth:
    """The Authentication-Results-style line: every value is a restricted token
    or a comment stripped of structure, so no header text can break it."""
    spf_part = f"spf={auth.spf}"
    if spf_reason and auth.spf in ("none", "temperror", "permerror"):
        spf_part += f" ({_comment(spf_reason)})"
    if auth.spf_domain:
        spf_part += f" smtp.{auth.spf_identity}={auth.spf_domain}"
    parts = [authserv_id, spf_part]
    parts += [
        f"dkim={d.result} header.d={_token(d.domain)} header.s={_token(d.selector)}"
        for d in auth.dkim
    ] or ["dkim=none"]
    dmarc_part = f"dmarc={auth.dmarc}"
    if auth.dmarc_policy:
        dmarc_part += f" (p={auth.dmarc_policy})"
    if auth.from_domain:
        dmarc_part += f" header.from={auth.from_domain}"
    parts += [dmarc_part, f"arc={auth.arc}"]
    return replace(auth, summary="; ".join(parts))


def build_verifier(settings: Settings) -> DnsSenderVerifier:
    """The verifier the worker uses: INGEST_DNS_SERVERS (or resolv.conf), a
    per-lookup timeout of INGEST_DNS_TIMEOUT_S and four times that per message."""
    try:
        resolver = DnsResolver(settings.dns_servers, timeout_s=settings.dns_timeout_s)
    except ValueError as exc:
        raise ConfigError(f"INGEST_DNS_SERVERS: {exc}") from exc
    return DnsSenderVerifier(
        resolver,
        authserv_id=settings.authserv_id or settings.domains[0],
        max_bytes=settings.max_message_bytes,
        budget_s=4 * settings.dns_timeout_s,
    )
