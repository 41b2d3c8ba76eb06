"""DnsResolver against the stub server: answers, negative answers, the cache,
temporary failures and deadlines."""

from __future__ import annotations

import threading
import time

import pytest

from ingest_core.errors import ConfigError, DnsTemporaryError
from ingest_core.sender.dns import DnsResolver, parse_nameserver
from ingest_core.settings import Settings
from tests.dnsstub import StubDns, running_stub

ZONE = {
    "example.com": {
        "TXT": ["v=spf1 ip4:192.0.2.0/24 -all", ["two ", "strings"]],
        "A": ["192.0.2.1"],
        "AAAA": ["2001:db8::1"],
        "MX": [(10, "mx.example.com"), (20, "mx2.example.com")],
    },
    "www.example.com": {"CNAME": ["example.com"]},
    "1.2.0.192.in-addr.arpa": {"PTR": ["mail.example.com"]},
    "big.example.com": {"TXT": ["x" * 1500]},
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stub():
    with running_stub({name: dict(records) for name, records in ZONE.items()}) as running:
        yield running


def make_resolver(stub: StubDns, **kwargs) -> DnsResolver:
    kwargs.setdefault("timeout_s", 0.3)
    return DnsResolver([stub.nameserver], **kwargs)


def test_record_types(stub):
    resolver = make_resolver(stub)
    assert resolver.txt("example.com") == [b"v=spf1 ip4:192.0.2.0/24 -all", b"two strings"]
    assert resolver.a("example.com") == ["192.0.2.1"]
    assert resolver.aaaa("example.com") == ["2001:db8::1"]
    assert sorted(resolver.mx("example.com")) == [(10, "mx.example.com"), (20, "mx2.example.com")]
    assert resolver.ptr("1.2.0.192.in-addr.arpa") == ["mail.example.com"]
    assert resolver.a("www.example.com") == ["192.0.2.1"]  # through the CNAME


def test_long_txt_comes_over_tcp(stub):
    assert make_resolver(stub).txt("big.example.com") == [b"x" * 1500]


def test_nxdomain_and_nodata_are_empty(stub):
    resolver = make_resolver(stub)
    assert resolver.txt("nothing.example.com") == []
    assert resolver.txt("www.example.org") == []
    assert resolver.ptr("example.com") == []


def test_invalid_names_are_empty_without_a_query(stub):
    resolver = make_resolver(stub)
    assert resolver.txt("a" * 64 + ".example.com") == []
    assert resolver.txt("a..b") == []
    assert stub.query_count() == 0


def test_cache_answers_second_lookup(stub):
    resolver = make_resolver(stub)
    resolver.txt("example.com")
    resolver.txt("EXAMPLE.com.")
    resolver.txt("nothing.example.com")
    resolver.txt("nothing.example.com")
    assert stub.query_count("example.com", "TXT") == 1
    assert stub.query_count("nothing.example.com", "TXT") == 1
    assert resolver.cache_size == 2


def test_cache_expiry_positive_capped_negative_short():
    clock = FakeClock()
    with running_stub(dict(ZONE), ttl=3600) as stub:
        resolver = make_resolver(stub, clock=clock, max_ttl_s=300, negative_ttl_s=60)
        resolver.txt("example.com")
        resolver.txt("nothing.example.com")
        clock.now += 61
        resolver.txt("example.com")
        resolver.txt("nothing.example.com")
        assert stub.query_count("example.com", "TXT") == 1
        assert stub.query_count("nothing.example.com", "TXT") == 2
        clock.now += 240  # 301 s after the first answer: past the 300 s cap
        resolver.txt("example.com")
        assert stub.query_count("example.com", "TXT") == 2


def test_cache_is_bounded(stub):
    resolver = make_resolver(stub, max_entries=3)
    for i in range(10):
        resolver.txt(f"n{i}.example.com")
    assert resolver.cache_size == 3
    resolver.txt("n9.example.com")
    assert stub.query_count("n9.example.com") == 1


def test_timeout_is_temporary_and_not_cached(stub):
    stub.timeout_names.add("slow.example.com")
    resolver = make_resolver(stub, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(DnsTemporaryError, match="timed out"):
        resolver.txt("slow.example.com")
    assert time.monotonic() - started < 1.5
    stub.timeout_names.clear()
    stub.zone["slow.example.com"] = {"TXT": ["late"]}
    assert resolver.txt("slow.example.com") == [b"late"]


def test_servfail_is_temporary(stub):
    stub.servfail_names.add("broken.example.com")
    with pytest.raises(DnsTemporaryError, match="SERVFAIL"):
        make_resolver(stub).txt("broken.example.com")


def test_deadline_in_the_past_fails_without_a_query(stub):
    resolver = make_resolver(stub)
    with pytest.raises(DnsTemporaryError, match="budget"):
        resolver.txt("example.com", deadline=time.monotonic() - 1)
    assert stub.query_count() == 0


def test_deadline_shortens_the_lookup(stub):
    stub.timeout_names.add("slow.example.com")
    resolver = make_resolver(stub, timeout_s=5.0)
    started = time.monotonic()
    with pytest.raises(DnsTemporaryError):
        resolver.txt("slow.example.com", deadline=time.monotonic() + 0.2)
    assert time.monotonic() - started < 1.5


def test_nobody_listening_is_temporary(closed_port):
    resolver = DnsResolver([f"127.0.0.1:{closed_port}"], timeout_s=0.2)
    with pytest.raises(DnsTemporaryError):
        resolver.txt("example.com")


def test_threads_share_one_resolver(stub):
    resolver = make_resolver(stub, timeout_s=2.0)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(20):
                results.append(resolver.a("example.com" if i % 2 else "www.example.com"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(r == ["192.0.2.1"] for r in results)
    assert len(results) == 160


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("2001:db8::1", ("2001:db8::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
    ],
)
def test_parse_nameserver(spec, expected):
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize("spec", ["dns.example.com", "1.2.3.4:0", "1.2.3.4:x", "[::1]x", ""])
def test_parse_nameserver_refuses(spec):
    with pytest.raises(ValueError, match="nameserver"):
        parse_nameserver(spec)


def test_settings_read_dns_fields():
    settings = Settings.from_env(
        {
            "INGEST_DNS_SERVERS": "127.0.0.1:5353, [::1]:53",
            "INGEST_DNS_TIMEOUT_S": "2.5",
            "INGEST_DOMAINS": "orders.example.com",
        }
    )
    assert settings.dns_servers == ("127.0.0.1:5353", "[::1]:53")
    assert settings.dns_timeout_s == 2.5
    assert settings.authserv_id is None
    defaults = Settings.from_env({})
    assert defaults.dns_servers == ()
    assert defaults.dns_timeout_s == 5.0
    assert Settings.from_env({"INGEST_AUTHSERV_ID": "mx.example.com"}).authserv_id == (
        "mx.example.com"
    )


def test_settings_refuse_a_bad_nameserver():
    with pytest.raises(ConfigError, match="INGEST_DNS_SERVERS"):
        Settings.from_env({"INGEST_DNS_SERVERS": "dns.example.com"})


def test_a_resolver_that_stops_answering_is_not_waited_on_again(stub):
    clock = FakeClock()
    resolver = make_resolver(stub, timeout_s=0.1, trip_after=3, cooldown_s=30, clock=clock)
    stub.timeout_names.update({"slow1.example.com", "slow2.example.com", "slow3.example.com"})
    for name in ("slow1.example.com", "slow2.example.com", "slow3.example.com"):
        with pytest.raises(DnsTemporaryError, match="timed out"):
            resolver.txt(name)
    asked = stub.query_count()
    started = time.monotonic()
    with pytest.raises(DnsTemporaryError, match="not answering"):
        resolver.txt("example.com")  # answerable, but not asked during the pause
    assert time.monotonic() - started < 0.05
    assert stub.query_count() == asked
    clock.now += 31  # the pause is over: one lookup goes through
    stub.timeout_names.clear()
    assert resolver.a("example.com") == ["192.0.2.1"]
    assert resolver.aaaa("example.com") == ["2001:db8::1"]


def test_one_timeout_after_the_pause_starts_another_pause(stub):
    clock = FakeClock()
    resolver = make_resolver(stub, timeout_s=0.1, trip_after=2, cooldown_s=30, clock=clock)
    stub.timeout_names.add("slow.example.com")
    for _ in range(2):
        with pytest.raises(DnsTemporaryError, match="timed out"):
            resolver.txt("slow.example.com")
    clock.now += 31
    with pytest.raises(DnsTemporaryError, match="timed out"):
        resolver.txt("slow.example.com")  # let through, and still not answering
    with pytest.raises(DnsTemporaryError, match="not answering"):
        resolver.a("example.com")


def test_answers_in_between_keep_timeouts_from_adding_up(stub):
    resolver = make_resolver(stub, timeout_s=0.1, trip_after=2)
    stub.timeout_names.add("slow.example.com")
    for _ in range(3):
        with pytest.raises(DnsTemporaryError, match="timed out"):
            resolver.txt("slow.example.com")
        assert resolver.txt("nothing-here.example.com") == []  # NXDOMAIN is an answer
        resolver.clear_cache()


def test_servfail_is_an_answer_and_resets_the_count(stub):
    resolver = make_resolver(stub, timeout_s=0.1, trip_after=2)
    stub.timeout_names.add("slow.example.com")
    stub.servfail_names.add("broken.example.com")
    for _ in range(3):
        with pytest.raises(DnsTemporaryError, match="timed out"):
            resolver.txt("slow.example.com")
        with pytest.raises(DnsTemporaryError, match="SERVFAIL"):
            resolver.txt("broken.example.com")
