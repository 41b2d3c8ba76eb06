"""Ours as it was at an earlier git revision, beside ours as it is, in one run.

The machines drift by tens of percent within minutes, so a change is measured
against the code before it in the same run: ``--revision REV`` takes that
revision's ``lmtpd`` and ``ingest_core`` (``git archive``, nothing else is
touched), runs them as a server of their own in the load phases, and the report
compares the two round by round. Both run on this checkout's virtualenv and
database (its migrations): a revision that needs other dependencies, or refuses
a newer schema, cannot be compared this way.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from functools import partial
from typing import TYPE_CHECKING

from benchmarks.procs import REPO, BenchError, ServerProcess, start_ours

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

NAME = "revision"
PACKAGES = ("lmtpd", "ingest_core")


def extract(revision: str, folder: Path) -> Path:
    """The revision's packages under ``folder``; the folder."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", revision, *PACKAGES],
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BenchError(f"--revision {revision}: git archive failed") from exc
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(folder, filter="data")
    return folder


def starter(tree: Path) -> Callable[[dict[str, str], Path, str], ServerProcess]:
    return partial(start_ours, tree=tree, name=NAME)
