"""A minimal LMTP client over a trio stream, for pipelining, BDAT and abuse."""

from __future__ import annotations

import trio


class RawClient:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, address: str) -> RawClient:
        if address.startswith("unix:"):
            return cls(await trio.open_unix_socket(address[5:]))
        host, _, port = address.rpartition(":")
        return cls(await trio.open_tcp_stream(host.strip("[]"), int(port)))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError(bytes(self.buffer))
            self.buffer += chunk
        end = self.buffer.index(b"\r\n")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    async def reply(self) -> tuple[int, list[bytes]]:
        """One (possibly multi-line) reply: its code and its lines."""
        lines = []
        while True:
            line = await self.line()
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), lines

    async def code(self) -> int:
        return (await self.reply())[0]

    async def codes(self, n: int) -> list[int]:
        return [await self.code() for _ in range(n)]

    async def closed(self) -> bool:
        """True when the server closed the connection (EOF)."""
        try:
            return await self.stream.receive_some(1) == b""
        except trio.BrokenResourceError:
            return True

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def hello(self) -> None:
        assert await self.code() == 220
        await self.send(b"LHLO client.test\r\n")
        assert await self.code() == 250
