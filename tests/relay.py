"""A wiretap for the tests: loopback TCP relays that record every byte crossing them, both ways,
per connection, as a passive attacker on the path between a client and a server would see it.

A plain module, not a pytest plugin. `Wiretap` runs its relays on an event loop of its own in a
background thread, so a test can run the (synchronous) scanner through them.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

# How long `stop` waits for relayed connections to end once their client has gone.
SETTLE_SECONDS = 5.0


@dataclass
class Tapped:
    """One relayed connection to `port`: what crossed, as (side, bytes) in arrival order;
    side is "client" or "server"."""

    port: int
    chunks: list[tuple[str, bytes]] = field(default_factory=list)

    def sent_by(self, side: str) -> bytes:
        return b"".join(data for who, data in self.chunks if who == side)


class Wiretap:
    """Relays on loopback, each forwarding to one upstream port and recording what crosses."""

    def __init__(self) -> None:
        self.connections: list[Tapped] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wiretap", daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> Self:
        self._thread.start()
        return self

    def relay(self, listen: str, upstream: tuple[str, int], source: str | None = None) -> int:
        """Listen on a free port of `listen` and relay each connection to `upstream`, connecting
        from `source` when given; returns the port."""
        coroutine = self._listen(listen, upstream, source)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def tapped(self, port: int) -> list[Tapped]:
        """The recorded connections to upstream `port`, in order."""
        return [tapped for tapped in self.connections if tapped.port == port]

    def stop(self) -> None:
        """Wait (bounded) for relayed connections to end, then close everything."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def _listen(self, listen: str, upstream: tuple[str, int], source: str | None) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self._relay(reader, writer, upstream, source)
            finally:
                self._tasks.discard(task)

        server = await asyncio.start_server(handle, listen, 0)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: tuple[str, int],
        source: str | None,
    ) -> None:
        tapped = Tapped(upstream[1])
        self.connections.append(tapped)
        local = (source, 0) if source else None
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream, local_addr=local)
        except OSError:
            writer.transport.abort()
            return
        await asyncio.gather(
            _pump(reader, up_writer, tapped, "client"), _pump(up_reader, writer, tapped, "server")
        )

    async def _close(self) -> None:
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=SETTLE_SECONDS)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            server.close()


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tapped: Tapped, side: str
) -> None:
    """Copy one direction, recording each chunk; when it ends, close the other end after
    flushing, as the peer that stopped would."""
    try:
        while data := await reader.read(65536):
            tapped.chunks.append((side, data))
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
