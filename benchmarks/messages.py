"""The message mix the load generator sends.

Every message is built from a template once; per message only the Message-ID
changes, so the raw bytes (and the content-addressed object key) differ while
building a message costs almost nothing. Templates never have a line that
starts with a dot, so they go on the wire without dot-stuffing.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

KINDS = ("small", "pdf", "large")
PDF_BYTES = 200 * 1024
DEFAULT_LARGE_MB = 25.0
_PLACEHOLDER = b"@@MSGID@@"


@dataclass(frozen=True, slots=True)
class Template:
    """A message with a Message-ID slot; ``build`` fills it in."""

    kind: str
    head: bytes
    tail: bytes

    def build(self, message_id: str) -> bytes:
        return self.head + message_id.encode("ascii") + self.tail

    @property
    def approx_size(self) -> int:
        return len(self.head) + len(self.tail) + 40


def _split(raw: bytes, kind: str) -> Template:
    head, found, tail = raw.partition(_PLACEHOLDER)
    if not found:
        raise ValueError("template without a Message-ID slot")
    for line in raw.split(b"\r\n"):
        if line.startswith(b"."):
            raise ValueError("template line starts with a dot")
    return Template(kind, head, tail)


_HEADER = (
    b"From: Buyer <buyer@customer.example>\r\n"
    b"To: orders+bench@orders.localhost\r\n"
    b"Subject: Purchase order\r\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <" + _PLACEHOLDER + b">\r\n"
    b"MIME-Version: 1.0\r\n"
)

_ORDER_TEXT = (
    b"Hello,\r\n\r\nplease deliver the following items:\r\n\r\n"
    + b"".join(
        b"  %3d x article %06d  unit price %6.2f EUR\r\n" % (n % 7 + 1, 100000 + n, n * 1.25)
        for n in range(1, 25)
    )
    + b"\r\nDelivery to the usual dock, before noon.\r\nRegards,\r\nPurchasing\r\n"
)


def small_template() -> Template:
    """A plain-text order of about 1.5 KB."""
    raw = _HEADER + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + _ORDER_TEXT
    return _split(raw, "small")


def _pdf_like(size: int, seed: int) -> bytes:
    """Bytes that look like a PDF to a sniffer; the body is incompressible noise."""
    rng = random.Random(seed)
    header = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    trailer = b"\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return header + rng.randbytes(max(size - len(header) - len(trailer), 0)) + trailer


def _base64_lines(payload: bytes) -> bytes:
    encoded = base64.b64encode(payload)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"


def attachment_template(kind: str, payload_bytes: int, seed: int = 1) -> Template:
    """A multipart order: a text part and one base64 PDF-like attachment."""
    raw = (
        _HEADER
        + b'Content-Type: multipart/mixed; boundary="=_bench"\r\n\r\n'
        + b"--=_bench\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + _ORDER_TEXT
        + b"--=_bench\r\nContent-Type: application/pdf\r\n"
        + b'Content-Disposition: attachment; filename="order.pdf"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + _base64_lines(_pdf_like(payload_bytes, seed))
        + b"--=_bench--\r\n"
    )
    return _split(raw, kind)


def large_template(total_mb: float = DEFAULT_LARGE_MB) -> Template:
    """An order whose attachment makes the whole message about ``total_mb`` MB."""
    payload = int(total_mb * 1_000_000 * 57 / 78) - 2000  # base64 + CRLF every 76 columns
    return attachment_template("large", max(payload, 1), seed=25)


def templates(
    large_mb: float = DEFAULT_LARGE_MB, kinds: Iterable[str] = KINDS
) -> dict[str, Template]:
    """The templates of ``kinds`` (the 25 MB one is only built when asked for)."""
    builders: dict[str, Callable[[], Template]] = {
        "small": small_template,
        "pdf": lambda: attachment_template("pdf", PDF_BYTES),
        "large": lambda: large_template(large_mb),
    }
    return {kind: builders[kind]() for kind in kinds}


def parse_mix(text: str) -> dict[str, float]:
    """``"small:0.8,pdf:0.2"`` → weights by kind (normalised to sum 1)."""
    weights: dict[str, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        kind, _, weight = item.partition(":")
        kind = kind.strip()
        if kind not in KINDS:
            raise ValueError(f"unknown message kind {kind!r}; known: {', '.join(KINDS)}")
        value = float(weight) if weight.strip() else 1.0
        if value < 0:
            raise ValueError(f"negative weight for {kind}")
        weights[kind] = weights.get(kind, 0.0) + value
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the mix needs at least one kind with a positive weight")
    return {kind: value / total for kind, value in weights.items() if value > 0}


class MixPicker:
    """Deterministic kind sequence for a mix: message ``i`` always gets the same
    kind for a given seed, whichever connection sends it."""

    def __init__(self, mix: dict[str, float], seed: int = 7) -> None:
        self._kinds = list(mix)
        self._cumulative: list[float] = []
        running = 0.0
        for kind in self._kinds:
            running += mix[kind]
            self._cumulative.append(running)
        self._seed = seed

    def kind(self, index: int) -> str:
        draw = random.Random(self._seed * 1_000_003 + index).random()
        for kind, bound in zip(self._kinds, self._cumulative, strict=True):
            if draw < bound:
                return kind
        return self._kinds[-1]
