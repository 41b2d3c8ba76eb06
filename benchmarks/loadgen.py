"""A trio load generator that speaks LMTP (LHLO) or SMTP (EHLO).

N connections each run transactions back to back (one recipient per message,
no pipelining: the aiosmtpd baseline offers none). The work is either closed
loop (a fixed count or a duration: every connection sends its next message as
soon as the last one was answered) or open loop (a fixed arrival rate, for
end-to-end latency at a load the worker can follow).

Accept latency is the time from the last byte of the data (``CRLF . CRLF``
handed to the kernel) to the final reply line.

    python -m benchmarks.loadgen --target 127.0.0.1:2424 --count 2000
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from benchmarks.messages import MixPicker, Template, parse_mix, templates
from benchmarks.stats import summarise

if TYPE_CHECKING:
    from collections.abc import Mapping

RECEIVE_SIZE = 65536
DEFAULT_RECIPIENT = "orders+bench@orders.localhost"


class ProtocolError(Exception):
    """The server said something the client cannot continue from."""


@dataclass(frozen=True, slots=True)
class Sample:
    kind: str
    latency_s: float
    code: int
    replied_at: float  # wall clock (time.time()) when the final reply arrived
    header_id: str  # the Message-ID we sent, without brackets


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    non_250: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    bytes_sent: int = 0

    @property
    def accepted(self) -> list[Sample]:
        return [s for s in self.samples if s.code == 250]

    def summary(self) -> dict[str, object]:
        accepted = self.accepted
        by_kind: dict[str, object] = {}
        for kind in sorted({s.kind for s in accepted}):
            by_kind[kind] = summarise([s.latency_s for s in accepted if s.kind == kind])
        return {
            "messages": len(self.samples),
            "accepted": len(accepted),
            "elapsed_s": round(self.elapsed_s, 3),
            "messages_per_s": round(len(accepted) / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "mb_per_s": round(self.bytes_sent / 1e6 / self.elapsed_s, 2) if self.elapsed_s else 0,
            "accept_latency": summarise([s.latency_s for s in accepted]),
            "accept_latency_by_kind": by_kind,
            "errors": dict(self.errors),
            "non_250": dict(self.non_250),
        }


@dataclass
class Workload:
    """What to send: ``count`` messages, or for ``duration_s``, or at ``rate`` per
    second for ``duration_s`` (open loop)."""

    target: tuple[str, int]
    connections: int = 100
    count: int | None = None
    duration_s: float | None = None
    rate: float | None = None
    mix: Mapping[str, float] = field(default_factory=lambda: {"small": 1.0})
    protocol: str = "lmtp"
    recipient: str = DEFAULT_RECIPIENT
    sender: str = "buyer@customer.example"
    label: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    reply_timeout_s: float = 120.0
    large_mb: float = 25.0
    pipeline: bool = False  # MAIL, RCPT, DATA in one write, as Postfix's LMTP client does


class _Lines:
    """Reads CRLF-terminated reply lines from a stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: its code and its last line's text."""
        while True:
            line = await self._line()
            if len(line) < 3 or not line[:3].isdigit():
                raise ProtocolError("malformed reply line")
            if line[3:4] != b"-":
                return int(line[:3]), line[4:].decode("utf-8", "replace")

    async def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            data = await self._stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise ProtocolError("connection closed by the server")
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line


class _Source:
    """Hands out message indexes to connections until the workload is done."""

    def __init__(self, workload: Workload) -> None:
        self._workload = workload
        self._next = 0
        self._deadline = (
            time.monotonic() + workload.duration_s if workload.duration_s is not None else None
        )
        self._paced: trio.MemoryReceiveChannel[int] | None = None

    def paced(self, receive: trio.MemoryReceiveChannel[int]) -> None:
        self._paced = receive

    async def take(self) -> int | None:
        if self._paced is not None:
            try:
                return await self._paced.receive()
            except trio.EndOfChannel:
                return None
        count = self._workload.count
        if count is not None and self._next >= count:
            return None
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return None
        self._next += 1
        return self._next - 1


async def _pace(send: trio.MemorySendChannel[int], rate: float, duration_s: float) -> None:
    """Release message ``i`` at ``start + i / rate`` (open loop)."""
    total = max(1, math.floor(rate * duration_s))
    async with send:
        start = trio.current_time()
        for index in range(total):
            await trio.sleep_until(start + index / rate)
            await send.send(index)


class _Connection:
    """One client connection: greeting, LHLO/EHLO, then transactions."""

    def __init__(self, workload: Workload, stream: trio.SocketStream) -> None:
        self.workload = workload
        self.stream = stream
        self.lines = _Lines(stream)

    async def command(self, line: str) -> tuple[int, str]:
        await self.stream.send_all(line.encode("ascii") + b"\r\n")
        return await self.lines.reply()

    async def open(self) -> None:
        code, _ = await self.lines.reply()
        if code != 220:
            raise ProtocolError(f"greeting {code}")
        verb = "LHLO" if self.workload.protocol == "lmtp" else "EHLO"
        code, _ = await self.command(f"{verb} loadgen.localhost")
        if code != 250:
            raise ProtocolError(f"{verb} {code}")

    async def send(self, kind: str, data: bytes, header_id: str, result: LoadResult) -> None:
        if self.workload.pipeline:
            await self.send_pipelined(kind, data, header_id, result)
            return
        code, _ = await self.command(f"MAIL FROM:<{self.workload.sender}>")
        if code == 250:
            code, _ = await self.command(f"RCPT TO:<{self.workload.recipient}>")
        if code != 250:
            result.non_250[str(code)] += 1
            result.samples.append(Sample(kind, 0.0, code, time.time(), header_id))
            await self.command("RSET")
            return
        code, _ = await self.command("DATA")
        if code != 354:
            raise ProtocolError(f"DATA {code}")
        await self.stream.send_all(data)
        await self.stream.send_all(b".\r\n")
        await self._final_reply(kind, data, header_id, result)

    async def send_pipelined(
        self, kind: str, data: bytes, header_id: str, result: LoadResult
    ) -> None:
        """RFC 2920: the envelope and DATA in one write, the body and its end in one."""
        envelope = (
            f"MAIL FROM:<{self.workload.sender}>\r\nRCPT TO:<{self.workload.recipient}>\r\nDATA\r\n"
        )
        await self.stream.send_all(envelope.encode("ascii"))
        codes = [(await self.lines.reply())[0] for _ in range(3)]
        if codes != [250, 250, 354]:
            bad = next(c for c in codes if c not in (250, 354))
            result.non_250[str(bad)] += 1
            result.samples.append(Sample(kind, 0.0, bad, time.time(), header_id))
            if codes[2] == 354:
                await self.stream.send_all(b".\r\n")
                await self.lines.reply()
            await self.command("RSET")
            return
        await self.stream.send_all(data + b".\r\n")
        await self._final_reply(kind, data, header_id, result)

    async def _final_reply(
        self, kind: str, data: bytes, header_id: str, result: LoadResult
    ) -> None:
        """Accept latency: from the end of data handed to the kernel to the reply."""
        sent = time.perf_counter()
        code, _ = await self.lines.reply()
        latency = time.perf_counter() - sent
        result.bytes_sent += len(data)
        if code != 250:
            result.non_250[str(code)] += 1
        result.samples.append(Sample(kind, latency, code, time.time(), header_id))


async def _client(
    workload: Workload,
    source: _Source,
    picker: MixPicker,
    built: Mapping[str, Template],
    result: LoadResult,
) -> None:
    """Runs transactions until the source is empty; reconnects after an error."""
    index: int | None = None
    while True:
        try:
            with trio.fail_after(workload.reply_timeout_s):
                stream = await trio.open_tcp_stream(*workload.target)
            async with stream:
                conn = _Connection(workload, stream)
                with trio.fail_after(workload.reply_timeout_s):
                    await conn.open()
                while True:
                    if index is None:
                        index = await source.take()
                    if index is None:
                        with trio.move_on_after(5):
                            await conn.command("QUIT")
                        return
                    kind = picker.kind(index)
                    header_id = f"bench-{workload.label}-{index}@loadgen.localhost"
                    data = built[kind].build(header_id)
                    with trio.fail_after(workload.reply_timeout_s):
                        await conn.send(kind, data, header_id, result)
                    index = None
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ProtocolError) as exc:
            result.errors[type(exc).__name__] += 1
            index = None  # the message counts as an error, not retried
            await trio.sleep(0.05)


async def run_load(workload: Workload, built: Mapping[str, Template] | None = None) -> LoadResult:
    """Run one workload to completion and return what happened."""
    if workload.count is None and workload.duration_s is None:
        raise ValueError("a workload needs a count or a duration")
    if built is None:
        built = templates(workload.large_mb, workload.mix)
    picker = MixPicker(dict(workload.mix))
    result = LoadResult()
    source = _Source(workload)
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        if workload.rate is not None:
            send, receive = trio.open_memory_channel[int](0)
            source.paced(receive)
            nursery.start_soon(_pace, send, workload.rate, workload.duration_s or 1.0)
        for _ in range(workload.connections):
            nursery.start_soon(_client, workload, source, picker, built, result)
    result.elapsed_s = trio.current_time() - started
    return result


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=_target, required=True, help="host:port")
    parser.add_argument("--protocol", choices=("lmtp", "smtp"), default="lmtp")
    parser.add_argument("-c", "--connections", type=int, default=100)
    parser.add_argument("-n", "--count", type=int)
    parser.add_argument("-d", "--duration", type=float)
    parser.add_argument("--rate", type=float, help="open loop: messages per second")
    parser.add_argument("--mix", default="small:0.8,pdf:0.2")
    parser.add_argument("--large-mb", type=float, default=25.0)
    parser.add_argument("--recipient", default=DEFAULT_RECIPIENT)
    parser.add_argument("--pipeline", action="store_true", help="pipeline MAIL/RCPT/DATA")
    args = parser.parse_args(argv)
    workload = Workload(
        target=args.target,
        connections=args.connections,
        count=args.count if args.count or args.duration else 1000,
        duration_s=args.duration,
        rate=args.rate,
        mix=parse_mix(args.mix),
        protocol=args.protocol,
        recipient=args.recipient,
        large_mb=args.large_mb,
        pipeline=args.pipeline,
    )
    result = trio.run(run_load, workload)
    print(json.dumps(result.summary(), indent=1))
    return 0 if not result.errors and not result.non_250 else 1


if __name__ == "__main__":
    raise SystemExit(main())
