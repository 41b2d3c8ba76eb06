"""TNEF (``winmail.dat``) unpacking with ``tnefparse``, in a bounded child process.

``tnefparse`` 1.4 (last release 2021) trusts the counts inside the file: a
property count of 0xFFFFFFFF makes ``decode_mapi`` loop four billion times
(logging a warning each time), every object is parsed from a fresh copy of the
rest of the buffer (quadratic in the number of objects) and embedded messages
recurse without a bound. None of that can be interrupted inside our worker
thread, so the library runs in a child process with CPU-time, address-space
and wall-clock limits and its logging switched off. The child writes each
attachment to its own file and prints a JSON listing; any failure, limit or
odd output means "not unpacked", and the caller keeps ``winmail.dat`` itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
TIMEOUT_S = 60.0
CPU_S = 30
MEMORY_BYTES = 1 << 30
MAX_FILES = 1000


@dataclass(frozen=True, slots=True)
class TnefFile:
    """One attachment unpacked from a TNEF stream; ``name`` is as the file says."""

    name: str | None
    path: Path


def is_tnef(content_type: str, filename: str | None) -> bool:
    if content_type in TNEF_TYPES:
        return True
    return content_type == "application/octet-stream" and (filename or "").lower() == "winmail.dat"


def unpack_tnef(
    source: Path,
    outdir: Path,
    *,
    timeout_s: float | None = None,
    cpu_s: int | None = None,
    memory_bytes: int | None = None,
) -> list[TnefFile] | None:
    """The attachments inside ``source``, written under ``outdir``; None when the
    stream cannot be unpacked within the bounds (module defaults when not given)."""
    outdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "ingest_core.mime.tnef",
        str(source),
        str(outdir),
        str(cpu_s or CPU_S),
        str(memory_bytes or MEMORY_BYTES),
    ]
    try:
        done = subprocess.run(  # fixed command; paths we created
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=timeout_s or TIMEOUT_S,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    if done.returncode != 0:
        return None
    return _read_listing(done.stdout, outdir)


def _read_listing(stdout: bytes, outdir: Path) -> list[TnefFile] | None:
    try:
        listing = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(listing, list) or len(listing) > MAX_FILES:
        return None
    files = []
    for entry in listing:
        if not isinstance(entry, dict):
            return None
        name, file = entry.get("name"), entry.get("file")
        if not isinstance(file, str) or "/" in file or not (outdir / file).is_file():
            return None
        files.append(TnefFile(name if isinstance(name, str) else None, outdir / file))
    return files


# -- the child process --------------------------------------------------------


def _limit_child(cpu_s: int, memory_bytes: int) -> None:
    import logging
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    logging.disable(logging.CRITICAL)


def _attachment_name(attachment: object) -> str | None:
    try:
        name = attachment.long_filename()  # type: ignore[attr-defined]
    except Exception:  # tnefparse decodes names without guarding
        return None
    return name if isinstance(name, str) and name else None


def _child(argv: list[str]) -> int:
    source, outdir, cpu_s, memory_bytes = argv
    _limit_child(int(cpu_s), int(memory_bytes))
    from tnefparse.tnef import TNEF

    tnef = TNEF(Path(source).read_bytes(), do_checksum=False)
    listing = []
    for index, attachment in enumerate(tnef.attachments[:MAX_FILES]):
        data = getattr(attachment, "data", None)
        if not isinstance(data, bytes):
            continue
        file = f"{index}.bin"
        (Path(outdir) / file).write_bytes(data)
        listing.append({"name": _attachment_name(attachment), "file": file})
    json.dump(listing, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
