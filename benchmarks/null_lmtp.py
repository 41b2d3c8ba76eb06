"""A null LMTP sink: answers 250 to every recipient and stores nothing.

The reference target of the Postfix phase: whatever rate Postfix reaches against
it is Postfix's own limit on this machine (its queue, its LMTP client, its
concurrency and connection caching). It advertises what ``ingest serve`` does,
except CHUNKING (Postfix's LMTP client never sends BDAT), so Postfix runs the
same exchange (PIPELINING, XFORWARD) against both.

    python -m benchmarks.null_lmtp --port 2424

Prints ``READY host:port`` once it listens; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

HOSTNAME = "sink.localhost"
LHLO = (
    f"250-{HOSTNAME}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
    "250-SMTPUTF8\r\n250-SIZE 36700160\r\n"
    "250 XFORWARD NAME ADDR PROTO HELO SOURCE IDENT\r\n"
).encode("ascii")
OK = b"250 2.0.0 OK\r\n"
DELIVERED = b"250 2.0.0 delivered to the null sink\r\n"


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One LMTP connection. Each reply is written as its command is read, so pipelined
    commands get their replies in order; the end of data gets one 250 per recipient."""
    writer.write(f"220 {HOSTNAME} LMTP null sink\r\n".encode("ascii"))
    recipients = 0
    try:
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 2.0.0 End data with <CR><LF>.<CR><LF>\r\n")
                while await reader.readline() not in (b".\r\n", b""):
                    pass
                writer.write(DELIVERED * max(recipients, 1))
                recipients = 0
                await writer.drain()
            elif verb == b"RCPT":
                recipients += 1
                writer.write(OK)
            elif verb in (b"LHLO", b"EHLO"):
                writer.write(LHLO)
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                break
            else:  # MAIL, RSET, NOOP, XFORWARD
                if verb in (b"MAIL", b"RSET"):
                    recipients = 0
                writer.write(OK)
        await writer.drain()
    except (ConnectionError, ValueError):  # reset, or a line over the reader's limit
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def serve(port: int) -> None:
    server = await asyncio.start_server(session, "127.0.0.1", port, backlog=512, limit=1 << 20)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY 127.0.0.1:{port}", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
