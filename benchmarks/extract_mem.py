"""Peak memory and time of building a MIME manifest, per message size.

Each measurement runs in a fresh subprocess (``ru_maxrss`` is a high-water
mark for the whole process): it imports the manifest code, records its peak
RSS as the baseline, then parses one message with a single big base64
attachment from a file and decodes the attachment to disk.

    python benchmarks/extract_mem.py            # 1, 10 and 35 MB
    python benchmarks/extract_mem.py 5 50       # other sizes (MB)
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from ingest_core.mime import MimeLimits, build_manifest
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
limits = MimeLimits(max_decoded_bytes=1 << 40)
start = time.perf_counter()
with open(sys.argv[1], "rb") as source:
    manifest = build_manifest(source, limits, workdir=Path(sys.argv[2]))
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"baseline_kib": base, "peak_kib": peak, "seconds": elapsed,
                  "attachments": len(manifest.entries),
                  "decoded": sum(e.size for e in manifest.entries)}))
"""


def write_message(path: Path, total_bytes: int) -> None:
    """A message of about ``total_bytes`` with one base64 attachment, 76-column lines."""
    payload_size = (total_bytes - 400) * 57 // 78  # 57 raw bytes per 76+2 column line
    block = os.urandom(3 * 1024 * 19)  # a multiple of 57 bytes: one line is 57 raw bytes
    with path.open("wb") as out:
        out.write(
            b"From: bench@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
            b"--b\r\nContent-Type: application/pdf\r\n"
            b'Content-Disposition: attachment; filename="big.pdf"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        written = 0
        while written < payload_size:
            chunk = block[: payload_size - written]
            out.write(base64.encodebytes(chunk).replace(b"\n", b"\r\n"))
            written += len(chunk)
        out.write(b"--b--\r\n")


def measure(size_mb: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        message = Path(tmp) / "message.eml"
        write_message(message, int(size_mb * 1024 * 1024))
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(message), tmp],
            capture_output=True,
            check=True,
        )
        result: dict[str, float] = json.loads(done.stdout)
        result["message_bytes"] = message.stat().st_size
        return result


def main(argv: list[str]) -> None:
    sizes = [float(a) for a in argv] or [1.0, 10.0, 35.0]
    print(f"{'size MB':>8} {'message B':>11} {'time s':>7} {'base MiB':>9} {'peak MiB':>9}")
    for size in sizes:
        r = measure(size)
        print(
            f"{size:>8g} {r['message_bytes']:>11.0f} {r['seconds']:>7.2f} "
            f"{r['baseline_kib'] / 1024:>9.1f} {r['peak_kib'] / 1024:>9.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
