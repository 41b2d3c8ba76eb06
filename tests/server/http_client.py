"""A tiny HTTP/1.1 client over trio streams and a reader of Prometheus text, for
the HTTP endpoint's tests."""

from __future__ import annotations

from dataclasses import dataclass

import trio
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def parse_reply(raw: bytes) -> HttpReply:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("ascii").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpReply(int(status), headers, body)


async def exchange(address: str, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes."""
    host, _, port = address.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(request)
        received = bytearray()
        with trio.fail_after(30):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return bytes(received)


async def get(address: str, path: str, method: str = "GET") -> HttpReply:
    request = f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
    return parse_reply(await exchange(address, request))


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a text exposition, None if absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of ``name``: sorted label pairs → value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                found[tuple(sorted(s.labels.items()))] = float(s.value)
    return found
