"""What the sender check costs the worker per message, against dkimpy's own
``dkim.verify`` of the same message (the baseline: the least any DKIM check
costs), in one run, over one stub DNS server on 127.0.0.1.

Ours is the whole verdict (SPF, every DKIM signature, DMARC with the public
suffix list, the summary), with a cold cache (every lookup asked) and a warm one
(the cache answers). Network DNS latency comes on top of the cold figure.

    python -m benchmarks.sender_auth              # 5 KB and 1 MB, 200 rounds
    python -m benchmarks.sender_auth -n 50 --sizes 5,1000,10000
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dkim
import dns.resolver

from ingest_core.sender import DnsResolver, DnsSenderVerifier
from tests.dnsstub import DkimKey, dkim_sign, make_dkim_key, running_stub

if TYPE_CHECKING:
    from collections.abc import Callable

RESULTS = Path(__file__).resolve().parent / "results"
CLIENT = "192.0.2.10"


def message(key: DkimKey, size_kb: int) -> bytes:
    head = (
        b"From: Buyer <buyer@big.example>\r\nTo: orders+acme@orders.example.com\r\n"
        b"Subject: PO 4711\r\nMessage-ID: <po-4711@big.example>\r\n\r\n"
    )
    line = b"SKU-4711;12;pallet;please ship by Friday;0000000000000000\r\n"
    body = line * max(1, size_kb * 1024 // len(line))
    return dkim_sign(head + body, key, domain="big.example", selector="sel")


def timed(rounds: int, call: Callable[[], object]) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, int(len(samples) * 0.95))],
    }


def run(sizes_kb: list[int], rounds: int) -> dict[str, object]:
    key = make_dkim_key()
    zone: dict[str, dict[str, list[object]]] = {
        "big.example": {"TXT": [f"v=spf1 ip4:{CLIENT} -all"]},
        "_dmarc.big.example": {"TXT": ["v=DMARC1; p=reject"]},
        "sel._domainkey.big.example": {"TXT": [key.txt]},
    }
    results: dict[str, object] = {}
    with running_stub(zone) as stub:
        host, port = stub.nameserver.rsplit(":", 1)
        plain = dns.resolver.Resolver(configure=False)
        plain.nameservers, plain.port = [host], int(port)

        def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
            answer = plain.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
            return b"".join(b"".join(record.strings) for record in answer)

        for size in sizes_kb:
            raw = message(key, size)

            def baseline(raw: bytes = raw) -> None:
                assert dkim.verify(raw, dnsfunc=dnsfunc)

            results[f"{size}KB"] = {
                "bytes": len(raw),
                "ours_cold": timed(rounds, ours(stub.nameserver, raw, cold=True)),
                "ours_warm": timed(rounds, ours(stub.nameserver, raw, cold=False)),
                "baseline_dkim_only": timed(rounds, baseline),
            }
    return results


def ours(nameserver: str, raw: bytes, *, cold: bool) -> Callable[[], None]:
    """One full verdict; ``cold`` empties the resolver's cache first."""
    resolver = DnsResolver([nameserver], timeout_s=2.0)
    verifier = DnsSenderVerifier(resolver, authserv_id="orders.example.com")

    def call() -> None:
        if cold:
            resolver.clear_cache()
        verdict = verifier.verify(
            io.BytesIO(raw),
            envelope_from="buyer@big.example",
            client_address=CLIENT,
            client_helo="mx.big.example",
        )
        assert verdict.dmarc == "pass", verdict.summary

    return call


def table(results: dict[str, object]) -> str:
    lines = [
        "| message | ours, cold cache (3 lookups) | ours, warm cache"
        " | baseline: dkim.verify alone (1 key lookup) |",
        "|---|---|---|---|",
    ]
    for label, entry in results.items():
        assert isinstance(entry, dict)
        cells = [
            f"{entry[k]['median_ms']:.2f} ms (p95 {entry[k]['p95_ms']:.2f})"
            for k in ("ours_cold", "ours_warm", "baseline_dkim_only")
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=200)
    parser.add_argument("--sizes", default="5,1000", help="message sizes in KB")
    args = parser.parse_args()
    results = run([int(s) for s in args.sizes.split(",")], args.rounds)
    print(table(results))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"sender-auth-{stamp}.json"
    out.write_text(json.dumps({"rounds": args.rounds, "results": results}, indent=1))
    print(f"written: {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
