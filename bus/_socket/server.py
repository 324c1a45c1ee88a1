"""The Unix-socket server: accepting, the ops it answers, bounds, statistics, shutdown.

Usage::

    async with open_bus() as bus, serve_unix(path, {"echo": echo}, bus=bus) as server:
        await server.wait_for_signal()

How the path is claimed (a lock file, stale sockets, mode 0600) is in ``_listen``;
what one connection does (framing, order, bounds, streams) is in ``_connection``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio
import msgspec

from contracts import OP_PING, OP_STATS, PingRequest, ServerConfig, StatsRequest

from .connection import Connection
from .listen import claim_path, peer_uid
from .wire import Request

__all__ = ["BatchHandler", "Handler", "Server", "ServerStatistics", "serve_unix"]

log = logging.getLogger("actorbus.server")


class StatisticsSource(Protocol):
    """What ``stats`` reports beside the server's own counters (a :class:`~bus.Bus`)."""

    def statistics(self) -> Any:
        """A msgspec-encodable snapshot."""


#: An op's handler: takes the request, returns the result, a :class:`~bus.Result`, an
#: awaitable of either (a future, e.g. an actor reply, or a coroutine), or an async
#: iterator whose items the connection streams as ``event`` messages. Raising an
#: ``ActorbusError`` answers that error.
Handler = Callable[[Request], Any]

#: An op's handler for several of its requests read together (consecutive frames of
#: one read with that op): returns one outcome per request, in order, each what the
#: op's :data:`Handler` would return, an ``ActorbusError`` instance (that request's
#: error) or a :class:`~bus.Part` of a reply shared by several. Raising fails them all.
BatchHandler = Callable[[list[Request]], list[Any]]


class ServerStatistics(msgspec.Struct, frozen=True):
    """The server's counters, reported by ``stats``.

    Attributes:
        connections: Connections open now.
        connections_total: Connections accepted since start.
        refused: Connections refused by the uid allow-list.
        inflight: Requests read and not yet answered, over every connection.
        streams: Streams (subscriptions) open now.
        frames_in: Requests read.
        frames_out: Responses and stream messages written.
        bytes_in: Bytes read.
        bytes_out: Bytes written.
        errors: Error responses by wire code.
        closing: Whether a shutdown has begun.
    """

    connections: int
    connections_total: int
    refused: int
    inflight: int
    streams: int
    frames_in: int
    frames_out: int
    bytes_in: int
    bytes_out: int
    errors: dict[str, int]
    closing: bool


class Counters:
    """The server's running totals; only the loop thread touches them, and they only grow."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "connections_total",
        "errors",
        "frames_in",
        "frames_out",
        "refused",
    )

    def __init__(self) -> None:
        self.connections_total = 0
        self.refused = 0
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors: dict[str, int] = {}


class Server:
    """A running Unix-socket server; create it with :func:`serve_unix`.

    Attributes:
        path: The socket path.
        config: The bounds and limits.
        handlers: The ops it answers, by name (``ping`` and ``stats`` built in).
        statuses: Success statuses by op, for ops that do not answer 200 (``{"append":
            201}``), so a handler can return an actor's reply as it is.
        batch_handlers: Ops that also take their requests read together (see
            :data:`BatchHandler`); a lone request still goes to its :data:`Handler`.
        counters: Running totals (see :meth:`statistics`).
        inflight: Requests read and not yet answered, over every connection.
    """

    def __init__(
        self,
        path: Path,
        handlers: Mapping[str, Handler],
        config: ServerConfig,
        bus: StatisticsSource | None = None,
        statuses: Mapping[str, int] | None = None,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.bus = bus
        self.loop = asyncio.get_running_loop()
        self.handlers: dict[str, Handler] = {OP_PING: _ping, OP_STATS: self._stats}
        self.handlers.update(handlers)
        self.statuses: dict[str, int] = dict(statuses or {})
        self.batch_handlers: dict[str, BatchHandler] = dict(batch_handlers or {})
        self.counters = Counters()
        # Requests read and not yet answered (or, for a lost connection, not yet
        # finished). Changed by connections only: +1 per request read, -n as answers leave.
        self.inflight = 0
        self.closing = False
        self._connections: set[Connection] = set()
        # Connections that stopped reading at a bound, resumed as room comes free.
        self._waiting: set[Connection] = set()
        self._orphans: set[asyncio.Future[Any]] = set()
        self._listener: asyncio.AbstractServer | None = None
        self._lock_fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._closed: anyio.Event | None = None  # set once a shutdown has finished
        # The HTTP hook (docs/http.md): takes a connection whose first byte starts an
        # HTTP method token, with that first read; None serves the two framings only.
        self.hand_over: Callable[[asyncio.Transport, bytes], None] | None = None

    # ---- lifecycle --------------------------------------------------------------

    async def start(self, backlog: int = 1024) -> None:
        """Claim the path and start accepting.

        Raises:
            SocketInUse: A live server holds the path, or a non-socket file sits on it.
        """
        self._lock_fd, sock, self._inode = await anyio.to_thread.run_sync(claim_path, self.path)
        try:
            self._listener = await self.loop.create_unix_server(
                lambda: Connection(self), sock=sock, backlog=backlog
            )
        except BaseException:
            sock.close()
            self._release_path()
            raise
        log.info("listening on %s", self.path)

    async def aclose(self) -> None:
        """Shut down gracefully: stop accepting, answer what was read, close, remove the socket.

        Requests read before the shutdown are processed (up to
        ``config.shutdown_deadline_s``, then answered ``ShuttingDown``); requests read
        after it began are answered ``ShuttingDown``; streams end the same way.
        """
        if self._closed is not None:
            await self._closed.wait()  # a second caller waits for the first to finish
            return
        self._closed = anyio.Event()
        try:
            await self._shut_down()
        finally:
            self._closed.set()

    async def _shut_down(self) -> None:
        self.closing = True
        if self._listener is not None:
            self._listener.close()
        await anyio.to_thread.run_sync(self._release_path)
        for conn in list(self._connections):
            conn.begin_shutdown()
        deadline = self.config.shutdown_deadline_s
        with anyio.move_on_after(deadline):
            await self._wait_connections()
        for conn in list(self._connections):
            conn.force_close()
        with anyio.move_on_after(1.0):
            await self._wait_connections()
        for conn in list(self._connections):
            conn.abort()
        if self._orphans:
            with anyio.move_on_after(deadline):
                await asyncio.gather(*self._orphans, return_exceptions=True)
            for fut in self._orphans:
                fut.cancel()
        if self._listener is not None:
            with anyio.move_on_after(1.0):
                await self._listener.wait_closed()
        log.info("stopped listening on %s", self.path)

    async def _wait_connections(self) -> None:
        while self._connections:
            await asyncio.gather(*(c.closed for c in self._connections))

    async def wait_for_signal(
        self, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
    ) -> signal.Signals:
        """Wait until the process receives one of ``signals``; return it.

        The caller then leaves the ``serve_unix`` block, which shuts down gracefully.
        """
        with anyio.open_signal_receiver(*signals) as received:
            async for signum in received:
                log.info("received %s: shutting down", signum.name)
                return signum
        raise RuntimeError("the signal receiver ended")  # pragma: no cover

    def _release_path(self) -> None:
        # Remove the socket only if it is still the one this server bound.
        if self._inode is not None:
            with contextlib.suppress(OSError):
                st = os.lstat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self.path)
            self._inode = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- used by connections ------------------------------------------------------

    def handle(self, op: str, handler: Handler) -> None:
        """Answer ``op`` with ``handler`` from now on (replacing any handler it had)."""
        self.handlers[op] = handler

    def admits(self, transport: asyncio.Transport) -> bool:
        """Whether the peer may connect: its uid is on ``allowed_uids`` (when set)."""
        allowed = self.config.allowed_uids
        if not allowed:
            return True
        uid = peer_uid(transport)
        if uid in allowed:
            return True
        self.counters.refused += 1
        log.warning("refused a connection from uid %s (not in allowed_uids)", uid)
        return False

    def connection_opened(self, conn: Connection) -> None:
        """A connection was accepted (and passed the uid allow-list)."""
        self._connections.add(conn)
        self.counters.connections_total += 1
        if self.closing:
            conn.begin_shutdown()

    def connection_closed(self, conn: Connection) -> None:
        """A connection is gone."""
        self._connections.discard(conn)
        self._waiting.discard(conn)

    def room(self) -> int:
        """How many more requests the server-wide bound admits now."""
        return self.config.max_inflight_total - self.inflight

    def wait_for_room(self, conn: Connection) -> None:
        """``conn`` stopped reading at a bound; resume it when answers leave."""
        self._waiting.add(conn)

    def release(self, answered: int) -> None:
        """``answered`` requests left the in-flight count; wake connections waiting for room."""
        self.inflight -= answered
        if self._waiting and self.inflight < self.config.max_inflight_total:
            waiting = list(self._waiting)
            self._waiting.clear()
            for conn in waiting:
                self.loop.call_soon(conn.resume)

    def orphan(self, fut: asyncio.Future[Any], *, counted: bool = True) -> None:
        """Keep track of accepted work whose connection is gone until it finishes."""
        self._orphans.add(fut)
        fut.add_done_callback(self._orphans.discard)
        if counted:
            fut.add_done_callback(lambda _: self.release(1))

    # ---- reporting ----------------------------------------------------------------

    def statistics(self) -> ServerStatistics:
        """A snapshot of the server's counters."""
        c = self.counters
        return ServerStatistics(
            connections=len(self._connections),
            connections_total=c.connections_total,
            refused=c.refused,
            inflight=self.inflight,
            streams=sum(conn.streams for conn in self._connections),
            frames_in=c.frames_in,
            frames_out=c.frames_out,
            bytes_in=c.bytes_in,
            bytes_out=c.bytes_out,
            errors=dict(c.errors),
            closing=self.closing,
        )

    def _stats(self, request: Request) -> dict[str, Any]:
        request.decode(StatsRequest)
        bus = self.bus
        return {
            "server": self.statistics(),
            "bus": bus.statistics() if bus is not None else None,
        }


def _ping(request: Request) -> dict[str, bool]:
    request.decode(PingRequest)
    return {"pong": True}


@asynccontextmanager
async def serve_unix(
    path: str | os.PathLike[str],
    handlers: Mapping[str, Handler],
    config: ServerConfig | None = None,
    *,
    bus: StatisticsSource | None = None,
    backlog: int = 1024,
    statuses: Mapping[str, int] | None = None,
    batch_handlers: Mapping[str, BatchHandler] | None = None,
    hand_over: Callable[[asyncio.Transport, bytes], None] | None = None,
) -> AsyncIterator[Server]:
    """Serve ``handlers`` on the Unix socket ``path`` for the duration of the block.

    Leaving the block shuts down gracefully (see :meth:`Server.aclose`) and removes
    the socket file. Run it inside ``open_bus`` so the actors outlive the server.

    Args:
        path: The socket path; its directory must exist.
        handlers: Handlers by op name; ``ping`` and ``stats`` are built in and may be
            replaced.
        config: Limits and bounds (defaults when omitted).
        bus: The runtime whose statistics ``stats`` reports.
        backlog: The listen backlog.
        statuses: Success statuses by op where not 200 (a :class:`Result` returned
            by a handler still names its own).
        batch_handlers: Ops that also take consecutive requests read together, as
            one call (:data:`BatchHandler`), e.g. to pass them on as one message.
        hand_over: Takes each connection whose first byte starts an HTTP method
            token (e.g. :meth:`~bus.HttpEndpoint.hand_over`), with its first read.

    Yields:
        The running server.

    Raises:
        SocketInUse: A live server holds ``path`` (or a non-socket file sits on it).
    """
    server = Server(Path(path), handlers, config or ServerConfig(), bus, statuses, batch_handlers)
    server.hand_over = hand_over
    await server.start(backlog)
    try:
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await server.aclose()
