"""The storage ceiling: ``InboundService.accept`` called directly from many
threads on pre-built spools, no protocol at all. Same adapters, database,
object folder and queue as the servers (from the same environment).

    python -m benchmarks.ceiling --threads 100 --count 2000 --mix small:1

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
import uuid

from benchmarks.messages import MixPicker, parse_mix, templates
from benchmarks.stats import summarise
from ingest_core.bootstrap import open_app
from ingest_core.logs import configure_logging
from ingest_core.ports import Envelope
from ingest_core.settings import Settings
from ingest_core.spool import Spool

RECIPIENT = "orders+bench@orders.localhost"


def measure(threads: int, count: int, mix: str, large_mb: float) -> dict[str, object]:
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    weights = parse_mix(mix)
    built = templates(large_mb, {"small", *weights})
    picker = MixPicker(weights)
    label = uuid.uuid4().hex[:12]
    spools = [
        Spool.from_bytes(built[picker.kind(i)].build(f"ceiling-{label}-{i}@loadgen.localhost"))
        for i in range(count)
    ]
    with open_app(settings) as app:
        decision = app.service.check_recipient(RECIPIENT, False)
        if not decision.accepted:
            raise SystemExit(f"recipient refused: {decision.reply}")
        envelope = Envelope(mail_from="buyer@customer.example", recipients=(decision,))

        def one(spool: Spool) -> tuple[int, float]:
            started = time.perf_counter()
            [outcome] = app.service.accept(envelope, spool)
            return outcome.reply.code, time.perf_counter() - started

        app.service.accept(envelope, Spool.from_bytes(built["small"].build(f"warm-{label}@x")))
        started, cpu_before = time.perf_counter(), time.process_time()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(one, spools))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    accepted = [latency for code, latency in results if code == 250]
    return {
        "threads": threads,
        "messages": count,
        "accepted": len(accepted),
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(len(accepted) / elapsed, 1),
        "accept_call": summarise(accepted),
        "cpu_ms_per_msg": round(1000 * cpu / max(len(accepted), 1), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="direct-storage ceiling")
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--mix", default="small:1")
    parser.add_argument("--large-mb", type=float, default=25.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.threads, args.count, args.mix, args.large_mb)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
