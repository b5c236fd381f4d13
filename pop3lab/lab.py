"""Start and stop many emulated endpoints, each on its own loopback address.

Linux routes all of 127.0.0.0/8 to `lo`, so a fleet of 1,000 servers is 1,000 addresses such as
127.1.0.1, 127.1.0.2, ... with the same ports each, and no setup. Each endpoint listens on the
services (pop3lab.config.SERVICES) its config switches on: POP3 and POP3S by default, IMAP,
IMAPS, submission and submissions when asked. `Lab` runs inside an
existing event loop; `LabThread` gives synchronous code (pytest fixtures, benchmarks) a lab on
its own loop in a background thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from pop3lab import hostile
from pop3lab._tls import server_tls
from pop3lab.config import SERVICES, EndpointConfig
from pop3lab.hostile import HostileConfig
from pop3lab.journal import Journal
from pop3lab.server import Handler, handlers

AnyConfig = EndpointConfig | HostileConfig
EndpointSpec = tuple[str, AnyConfig]
ConnectionCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True)
class BoundEndpoint:
    """Where one endpoint ended up listening; a port is None when that listener is off.
    `journal` records what clients sent to it on every port (pop3lab.journal)."""

    address: str
    config: AnyConfig
    pop3_port: int | None
    pop3s_port: int | None
    imap_port: int | None = None
    imaps_port: int | None = None
    submission_port: int | None = None
    submissions_port: int | None = None
    journal: Journal = field(default_factory=Journal, compare=False, repr=False)

    def port(self, service: str) -> int | None:
        """The port of one service (pop3lab.config.SERVICES), None when it is off."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}")
        port: int | None = getattr(self, f"{service}_port")
        return port


class Lab:
    """A set of listening endpoints inside the running event loop. Stop it to free the ports."""

    def __init__(self) -> None:
        """An empty lab; `start` adds endpoints."""
        self.endpoints: dict[str, BoundEndpoint] = {}
        self._servers: list[asyncio.Server] = []
        # Open connections, so that `stop` can cut them instead of waiting for clients.
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(
        self,
        endpoints: Sequence[EndpointSpec],
        *,
        pop3_port: int = 0,
        pop3s_port: int = 0,
        imap_port: int = 0,
        imaps_port: int = 0,
        submission_port: int = 0,
        submissions_port: int = 0,
    ) -> dict[str, BoundEndpoint]:
        """Listen on every (address, config); port 0 picks a free port per listener.

        Returns the newly bound endpoints by address. If any bind fails, the listeners this
        call opened are closed again and the error propagates.
        """
        ports = dict(
            zip(
                SERVICES,
                (pop3_port, pop3s_port, imap_port, imaps_port, submission_port, submissions_port),
                strict=True,
            )
        )
        started: dict[str, BoundEndpoint] = {}
        mark = len(self._servers)
        try:
            for address, config in endpoints:
                if address in self.endpoints or address in started:
                    raise ValueError(f"address {address} is already in this lab")
                started[address] = await self._start_one(address, config, ports)
        except BaseException:
            await _close_servers(self._servers[mark:])
            del self._servers[mark:]
            raise
        self.endpoints.update(started)
        return started

    async def stop(self) -> None:
        """Close every listener and every open connection."""
        await _close_servers(self._servers)
        self._servers.clear()
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self.endpoints.clear()

    async def __aenter__(self) -> Lab:
        """`async with Lab() as lab:` stops the lab on exit."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop everything, whatever happened inside the block."""
        await self.stop()

    async def _start_one(
        self, address: str, config: AnyConfig, ports: dict[str, int]
    ) -> BoundEndpoint:
        """Open the listeners the config switches on; one journal records them all."""
        journal = Journal()
        bound: dict[str, int | None] = {}
        for service, handler in _listeners(config).items():
            if getattr(config, service):
                bound[f"{service}_port"] = await self._listen(
                    address, ports[service], handler, journal, service
                )
        return BoundEndpoint(
            address,
            config,
            bound.pop("pop3_port", None),
            bound.pop("pop3s_port", None),
            **bound,
            journal=journal,
        )

    async def _listen(
        self, address: str, port: int, handler: Handler, journal: Journal, service: str
    ) -> int:
        """Start one listener and return the port it got.

        TLS listeners are plain TCP too: the handler runs the handshake itself (see _channel).
        """
        callback = self._tracked(handler, journal, service)
        server = await asyncio.start_server(callback, address, port, backlog=128)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def _tracked(self, handler: Handler, journal: Journal, service: str) -> ConnectionCallback:
        """Wrap a handler so `stop` can find and cancel its connections, and so the journal
        records the connection's bytes from the first one on."""

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections[task] = writer
            log = journal.open(service)
            log.peer = str(writer.get_extra_info("peername", ("",))[0])
            log.tap(reader)
            try:
                await handler(reader, writer, log)
            except asyncio.CancelledError:
                # Only stop() cancels these tasks; Python 3.11's start_server would otherwise
                # log each cancelled connection as an unhandled error.
                pass
            finally:
                del self._connections[task]

        return run


def _listeners(config: AnyConfig) -> dict[str, Handler]:
    """The connection handler of each service of one endpoint."""
    if isinstance(config, HostileConfig):
        # Hostile behaviours speak raw bytes on every port, TLS ports included.
        return {service: hostile.handler(config, service) for service in SERVICES}
    return handlers(config, server_tls(config))


async def _close_servers(servers: Sequence[asyncio.Server]) -> None:
    """Stop accepting on all of them, then wait until each has closed."""
    for server in servers:
        server.close()
    await asyncio.gather(*(server.wait_closed() for server in servers))


class LabThread:
    """A `Lab` on its own event loop in a daemon thread, for synchronous callers.

    `with LabThread([("127.0.0.2", EndpointConfig())]) as lab: lab.endpoints["127.0.0.2"]`.
    """

    def __init__(
        self,
        endpoints: Sequence[EndpointSpec] = (),
        *,
        pop3_port: int = 0,
        pop3s_port: int = 0,
        imap_port: int = 0,
        imaps_port: int = 0,
        submission_port: int = 0,
        submissions_port: int = 0,
    ) -> None:
        """Remember what to start; nothing listens until `__enter__` (or `start`)."""
        self._initial = list(endpoints)
        self._ports = {
            "pop3_port": pop3_port,
            "pop3s_port": pop3s_port,
            "imap_port": imap_port,
            "imaps_port": imaps_port,
            "submission_port": submission_port,
            "submissions_port": submissions_port,
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pop3lab", daemon=True)
        self.lab = Lab()

    @property
    def endpoints(self) -> dict[str, BoundEndpoint]:
        """Every endpoint the lab serves, by address."""
        return self.lab.endpoints

    def start(self) -> LabThread:
        """Start the loop thread and the initial endpoints; returns self."""
        self._thread.start()
        try:
            self.add(self._initial, **self._ports)
        except BaseException:
            self.stop()
            raise
        return self

    def add(self, endpoints: Sequence[EndpointSpec], **ports: int) -> dict[str, BoundEndpoint]:
        """Start more endpoints from any thread; blocks until they listen. `ports` are
        `Lab.start`'s (pop3_port=..., imap_port=..., and so on)."""
        coroutine = self.lab.start(endpoints, **ports)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self) -> None:
        """Stop the lab, the loop and the thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.lab.stop(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> LabThread:
        """Start on entry."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop on exit."""
        self.stop()
