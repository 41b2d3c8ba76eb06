"""The command line of `just bench` (``python -m benchmarks.run``): which
phases run, how long, and against which servers; 0 skips a phase."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.procs import REPO

RESULTS = REPO / "benchmarks" / "results"


def parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=description)
    add = parser.add_argument
    add("-c", "--connections", type=int, default=100, help="concurrent connections (100)")
    add("-d", "--duration", type=float, default=6.0, help="seconds of the small phase (6)")
    add(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the small phase, servers alternating; each reports its median (3)",
    )
    add(
        "--revision",
        help="also run ours as it was at this git revision, beside ours (load phases)",
    )
    add("-n", "--count", type=int, help="messages per load phase instead of a duration")
    add("--mix", default="small:0.8,pdf:0.2", help="mixed phase, kind:weight,… (small, pdf, large)")
    add("--mixed-duration", type=float, default=4.0, help="seconds of the mixed phase; 0 skips")
    add("--large-mb", type=float, default=25.0, help="size of the RSS-phase message; 0 skips")
    add("--e2e-rate", type=float, default=20.0, help="paced msg/s with the worker running")
    add("--e2e-duration", type=float, default=5.0, help="seconds of the e2e phase; 0 skips")
    add("--e2e-timeout", type=float, default=60.0, help="longest wait for PROCESSED")
    add("--workers", type=int, default=2, help="worker threads of `ingest worker`")
    add("--ceiling-count", type=int, default=3000, help="messages for the ceiling; 0 skips")
    add("--ceiling-threads", type=int, default=100)
    add(
        "--servers",
        default="ours,ours2,baseline,seed",
        help="which servers, comma-separated (ours2: ours with --processes 2)",
    )
    add("--results", type=Path, default=RESULTS, help="folder for the JSON and the logs")
    add("--keep", action="store_true", help="keep the data folder (Postgres, objects)")
    add(
        "--pipelined-duration",
        type=float,
        default=6.0,
        help="seconds of a small phase pipelined as Postfix sends (ours only); 0 skips",
    )
    add("--profile", action="store_true", help="py-spy each server during the small phase")
    add("--postfix-count", type=int, default=2000, help="messages of the Postfix phase; 0 skips")
    add("--postfix-sessions", type=int, default=20, help="smtp-source sessions (20); 0 skips")
    add("--api-count", type=int, default=2000, help="messages the API phase reads; 0 skips")
    add("--api-duration", type=float, default=4.0, help="seconds per API request kind (4)")
    add("--api-clients", type=int, default=8, help="API client threads (8)")
    add("--api-attachment-kb", type=int, default=256, help="attachment size of the API phase")
    add(
        "--events-count",
        type=int,
        default=1000,
        help="messages of the events phase, one webhook event each (1000); 0 skips",
    )
    add(
        "--purge-count",
        type=int,
        default=20_000,
        help="stored messages the purge phase removes (20000); 0 skips",
    )
    return parser
