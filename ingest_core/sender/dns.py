"""A small DNS client for sender authentication.

SPF, DKIM and DMARC verdicts are only as good as the lookups behind them, and a
lookup that timed out is not the same as a name with no record: the first must
become ``temperror``, the second ``none``. This wraps dnspython so that

* every lookup has a deadline (``timeout_s`` per lookup, and an optional
  caller's deadline on top, for a whole message's budget);
* timeouts, SERVFAIL and REFUSED raise ``DnsTemporaryError``, while NXDOMAIN
  and "no records of that type" return an empty list;
* answers are cached in process, bounded in count, positive answers for their
  TTL (capped), negative answers briefly, failures never;
* a resolver that stops answering is not waited on again and again: after
  ``trip_after`` timeouts in a row (no answer in between), lookups fail at once
  for ``cooldown_s``, then one is let through to see whether it is back. During
  a resolver outage a message costs the worker milliseconds, not its whole DNS
  budget, and is judged (or retried) as ``temperror`` all the same.

It is thread-safe: the worker verifies several messages at once.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from threading import Lock
from typing import TYPE_CHECKING, Any, TypeVar, cast

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ingest_core.errors import DnsTemporaryError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from dns.rdata import Rdata

T = TypeVar("T")
log = logging.getLogger("ingest.dns")

MAX_TTL_S = 300.0
NEGATIVE_TTL_S = 60.0
MAX_ENTRIES = 10_000
MAX_ATTEMPT_S = 2.0
TRIP_AFTER = 10
COOLDOWN_S = 30.0


class _TimedOut(Exception):
    """Internal: the resolver did not answer in time."""


def parse_nameserver(spec: str) -> tuple[str, int]:
    """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"2001:db8::1"`` or ``"[::1]:5353"``."""
    text = spec.strip()
    port = 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"nameserver must be host, host:port or [v6]:port, not {spec!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"nameserver port must be 1-65535, not {spec!r}")
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"nameserver must be an IP address, not {spec!r}") from exc
    return str(address), port


def _txt(rdata: Rdata) -> bytes:
    return b"".join(cast("Any", rdata).strings)


def _address(rdata: Rdata) -> str:
    return str(cast("Any", rdata).address)


def _mx(rdata: Rdata) -> tuple[int, str]:
    mx = cast("Any", rdata)
    return int(mx.preference), str(mx.exchange.to_text(omit_final_dot=True))


def _ptr(rdata: Rdata) -> str:
    return str(cast("Any", rdata).target.to_text(omit_final_dot=True))


class DnsResolver:
    """Lookups with deadlines and a bounded cache; see the module docstring."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        *,
        timeout_s: float = 5.0,
        max_ttl_s: float = MAX_TTL_S,
        negative_ttl_s: float = NEGATIVE_TTL_S,
        max_entries: int = MAX_ENTRIES,
        trip_after: int = TRIP_AFTER,
        cooldown_s: float = COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``nameservers`` empty: the system's resolv.conf. Raises ValueError for a
        nameserver that is not ``ip``, ``ip:port`` or ``[v6]:port``."""
        self.timeout_s = timeout_s
        self._max_ttl_s = max_ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, tuple[object, ...]]] = OrderedDict()
        self._lock = Lock()
        self._trip_after = trip_after
        self._cooldown_s = cooldown_s
        self._timeouts_in_a_row = 0
        self._skip_until = -float("inf")
        self._unconfigured: str | None = None
        if nameservers:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*parse_nameserver(ns)) for ns in nameservers
            ]
        else:
            try:
                self._resolver = dns.resolver.Resolver(configure=True)
            except dns.exception.DNSException as exc:
                self._resolver = dns.resolver.Resolver(configure=False)
                self._unconfigured = f"no nameservers configured ({exc}); set INGEST_DNS_SERVERS"
        self._resolver.timeout = min(MAX_ATTEMPT_S, timeout_s)
        self._resolver.lifetime = timeout_s

    @property
    def nameservers(self) -> tuple[str, ...]:
        return tuple(str(ns) for ns in self._resolver.nameservers)

    def txt(self, name: str, *, deadline: float | None = None) -> list[bytes]:
        """Each TXT record at ``name``, its strings joined; [] if none."""
        return self._lookup(name, "TXT", _txt, deadline)

    def a(self, name: str, *, deadline: float | None = None) -> list[str]:
        return self._lookup(name, "A", _address, deadline)

    def aaaa(self, name: str, *, deadline: float | None = None) -> list[str]:
        return self._lookup(name, "AAAA", _address, deadline)

    def mx(self, name: str, *, deadline: float | None = None) -> list[tuple[int, str]]:
        """``(preference, exchange)`` pairs, exchange without the final dot."""
        return self._lookup(name, "MX", _mx, deadline)

    def ptr(self, name: str, *, deadline: float | None = None) -> list[str]:
        return self._lookup(name, "PTR", _ptr, deadline)

    def now(self) -> float:
        """The clock that deadlines are measured on."""
        return self._clock()

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    @property
    def cache_size(self) -> int:
        with self._lock:
            return len(self._cache)

    def _lookup(
        self, name: str, rdtype: str, convert: Callable[[Rdata], T], deadline: float | None
    ) -> list[T]:
        """``deadline`` is on this resolver's clock (``time.monotonic`` by default)."""
        key = (name.lower().rstrip("."), rdtype)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                if cached[0] > now:
                    self._cache.move_to_end(key)
                    return list(cast("tuple[T, ...]", cached[1]))
                del self._cache[key]
            if now < self._skip_until:
                raise DnsTemporaryError(f"{rdtype} {key[0]}: resolver not answering; not asked")
        lifetime = self.timeout_s if deadline is None else min(self.timeout_s, deadline - now)
        if lifetime <= 0:
            raise DnsTemporaryError(f"{rdtype} {key[0]}: time budget for DNS used up")
        try:
            values, ttl = self._query(key[0], rdtype, convert, lifetime)
        except _TimedOut as exc:
            self._note_timeout()
            raise DnsTemporaryError(f"{rdtype} {key[0]}: timed out") from exc
        except DnsTemporaryError:
            self._note_answer()  # SERVFAIL/REFUSED: the resolver is there
            raise
        self._note_answer()
        if ttl is not None:
            with self._lock:
                self._cache[key] = (self._clock() + ttl, tuple(values))
                self._cache.move_to_end(key)
                while len(self._cache) > self._max_entries:
                    self._cache.popitem(last=False)
        return values

    def _note_answer(self) -> None:
        with self._lock:
            self._timeouts_in_a_row = 0

    def _note_timeout(self) -> None:
        """Count a timeout; the ``trip_after``-th in a row stops asking for a while
        (a lookup let through after the pause that times out again restarts it)."""
        with self._lock:
            self._timeouts_in_a_row += 1
            tripped = self._timeouts_in_a_row >= self._trip_after
            if tripped:
                self._skip_until = self._clock() + self._cooldown_s
                self._timeouts_in_a_row = self._trip_after - 1
        if tripped:
            log.warning(
                "DNS resolver not answering; lookups paused",
                extra={"nameservers": list(self.nameservers), "pause_s": self._cooldown_s},
            )

    def _query(
        self, name: str, rdtype: str, convert: Callable[[Rdata], T], lifetime: float
    ) -> tuple[list[T], float | None]:
        """The values and how long to cache them (None: do not cache)."""
        if self._unconfigured is not None:
            raise DnsTemporaryError(f"{rdtype} {name}: {self._unconfigured}")
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            return [], None  # not a valid DNS name: nothing can be published there
        try:
            answer = self._resolver.resolve(
                qname, rdtype, lifetime=lifetime, search=False, raise_on_no_answer=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
            return [], self._negative_ttl_s
        except dns.exception.Timeout as exc:
            raise _TimedOut from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsTemporaryError(f"{rdtype} {name}: servers failed (SERVFAIL)") from exc
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"{rdtype} {name}: {type(exc).__name__}") from exc
        if answer.rrset is None:
            return [], self._negative_ttl_s
        values = [convert(rdata) for rdata in answer.rrset]
        ttl = min(self._max_ttl_s, max(0.0, answer.expiration - time.time()))
        return values, ttl
