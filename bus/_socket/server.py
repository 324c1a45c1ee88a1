"""The Unix-socket server: accepting, the ops it answers, bounds, statistics, shutdown.

Usage::

    async with open_bus() as bus, serve_unix(path, {"echo": echo}, bus=bus) as server:
        await server.wait_for_signal()

How the path is claimed (a lock file, stale sockets, mode 0600) is in ``listen``;
what one connection does (framing, order, bounds) is in ``connection``, with its
flow control in ``flow`` and its streams in ``streams``; what they share with the
server (bounds, handler tables, counters) is the :class:`~.state.ServerState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio
import msgspec

from contracts import OP_PING, OP_STATS, PingRequest, ServerConfig, StatsRequest

from .connection import Connection
from .listen import claim_path, peer_uid
from .state import Counters, ServerState
from .wire import Request

__all__ = ["BatchHandler", "Counters", "Handler", "Server", "ServerStatistics", "serve_unix"]

log = logging.getLogger("actorbus.server")

#: Out of file descriptors at accept: the connections wait in the listen backlog
#: and accepting is tried again after this long.
ACCEPT_RETRY_S = 0.1
#: An accept failing for want of file descriptors is logged at most this often.
ACCEPT_LOG_EVERY_S = 10.0
#: Connections accepted per wake-up at most, so other work runs between bursts.
_ACCEPTS_PER_WAKE = 128
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


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
        queued_bytes: Bytes of answers held for clients now: written and not yet
            taken by the kernel, or expected from requests being answered.
        write_pauses: Times a connection stopped producing answers because its
            client did not read them.
        accept_errors: Accepts that failed for want of file descriptors.
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
    queued_bytes: int = 0
    write_pauses: int = 0
    accept_errors: int = 0


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
        state: What its connections share with it: bounds, handler tables, counters.
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
        table: dict[str, Handler] = {OP_PING: _ping, OP_STATS: self._stats}
        table.update(handlers)
        self.state = ServerState(config, table, batch_handlers or {}, statuses or {})
        self._connections: set[Connection] = set()
        self._orphans: set[asyncio.Future[Any]] = set()
        self._listener: socket.socket | None = None
        self._accepting: set[asyncio.Future[Any]] = set()
        self._accept_retry: asyncio.TimerHandle | None = None
        self._accept_logged = -ACCEPT_LOG_EVERY_S
        self._accept_unlogged = 0
        self._lock_fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._closed: anyio.Event | None = None  # set once a shutdown has finished

    # ---- what the state record holds, by its old names ---------------------------

    @property
    def handlers(self) -> dict[str, Handler]:
        """The ops it answers, by name (``ping`` and ``stats`` built in)."""
        return self.state.handlers

    @property
    def batch_handlers(self) -> dict[str, BatchHandler]:
        """Ops that also take their requests read together."""
        return self.state.batch_handlers

    @property
    def statuses(self) -> dict[str, int]:
        """Success statuses by op, for ops that do not answer 200."""
        return self.state.statuses

    @property
    def counters(self) -> Counters:
        """Running totals (see :meth:`statistics`)."""
        return self.state.counters

    @property
    def inflight(self) -> int:
        """Requests read and not yet answered, over every connection."""
        return self.state.inflight

    @property
    def closing(self) -> bool:
        """Whether a shutdown has begun."""
        return self.state.closing

    @property
    def hand_over(self) -> Callable[[asyncio.Transport, bytes], None] | None:
        """The HTTP hook (``docs/http.md``), or ``None`` to serve the two framings only.

        It takes a connection whose first byte starts an HTTP method token, with that
        first read.
        """
        return self.state.hand_over

    @hand_over.setter
    def hand_over(self, hook: Callable[[asyncio.Transport, bytes], None] | None) -> None:
        self.state.hand_over = hook

    # ---- lifecycle --------------------------------------------------------------

    async def start(self, backlog: int = 1024) -> None:
        """Claim the path and start accepting.

        Raises:
            SocketInUse: A live server holds the path, or a non-socket file sits on it.
        """
        self._lock_fd, sock, self._inode = await anyio.to_thread.run_sync(claim_path, self.path)
        try:
            sock.listen(backlog)
            self.loop.add_reader(sock.fileno(), self._accept)
        except BaseException:
            sock.close()
            self._release_path()
            raise
        self._listener = sock
        log.info("listening on %s", self.path)

    def _accept(self) -> None:
        """Accept every connection waiting (the listening socket is readable)."""
        listener = self._listener
        if listener is None:
            return
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    self._out_of_fds(exc)
                    return
                log.warning("accept failed: %s", errno.errorcode.get(exc.errno or 0, "error"))
                return
            conn.setblocking(False)
            task = self.loop.create_task(
                self.loop.connect_accepted_socket(lambda: Connection(self), conn)
            )
            self._accepting.add(task)
            task.add_done_callback(functools.partial(self._accepted, conn))

    def _accepted(self, conn: socket.socket, task: asyncio.Future[Any]) -> None:
        self._accepting.discard(task)
        if task.cancelled() or task.exception() is not None:
            conn.close()

    def _out_of_fds(self, exc: OSError) -> None:
        """No descriptor for a new connection: count, log (rate limited), retry soon.

        The connections wait in the listen backlog meanwhile; none is refused.
        """
        self.state.counters.accept_errors += 1
        self._accept_unlogged += 1
        now = self.loop.time()
        if now - self._accept_logged >= ACCEPT_LOG_EVERY_S:
            name = errno.errorcode.get(exc.errno or 0, "error")
            log.error(
                "accept failed: out of file descriptors (%s), %d time(s) since the last "
                "report; connections wait in the backlog, retrying every %gs",
                name,
                self._accept_unlogged,
                ACCEPT_RETRY_S,
            )
            self._accept_logged = now
            self._accept_unlogged = 0
        listener = self._listener
        if listener is None or self._accept_retry is not None:
            return
        self.loop.remove_reader(listener.fileno())
        self._accept_retry = self.loop.call_later(ACCEPT_RETRY_S, self._retry_accept)

    def _retry_accept(self) -> None:
        self._accept_retry = None
        listener = self._listener
        if listener is None:
            return
        self.loop.add_reader(listener.fileno(), self._accept)
        self._accept()

    def _stop_accepting(self) -> None:
        listener = self._listener
        if listener is None:
            return
        # Connections the kernel completed and we did not accept yet hold requests
        # too: they are accepted now, in the shutdown, and answered ShuttingDown.
        self._accept()
        self._listener = None
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        self.loop.remove_reader(listener.fileno())
        listener.close()

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
        self.state.closing = True
        self._stop_accepting()
        await anyio.to_thread.run_sync(self._release_path)
        if self._accepting:
            with anyio.move_on_after(1.0):
                await asyncio.gather(*self._accepting, return_exceptions=True)
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
        if self._accepting:
            with anyio.move_on_after(1.0):
                await asyncio.gather(*self._accepting, return_exceptions=True)
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
        self.state.handlers[op] = handler

    def admits(self, transport: asyncio.Transport) -> bool:
        """Whether the peer may connect: its uid is on ``allowed_uids`` (when set)."""
        allowed = self.config.allowed_uids
        if not allowed:
            return True
        uid = peer_uid(transport)
        if uid in allowed:
            return True
        self.state.counters.refused += 1
        log.warning("refused a connection from uid %s (not in allowed_uids)", uid)
        return False

    def connection_opened(self, conn: Connection) -> None:
        """A connection was accepted (and passed the uid allow-list)."""
        self._connections.add(conn)
        self.state.counters.connections_total += 1
        if self.state.closing:
            conn.begin_shutdown()

    def connection_closed(self, conn: Connection) -> None:
        """A connection is gone."""
        self._connections.discard(conn)
        self.state.forget(conn)

    def room(self) -> int:
        """How many more requests the server-wide bound admits now."""
        return self.state.room()

    def orphan(self, fut: asyncio.Future[Any], *, counted: bool = True) -> None:
        """Keep track of accepted work whose connection is gone until it finishes."""
        self._orphans.add(fut)
        fut.add_done_callback(self._orphans.discard)
        if counted:
            fut.add_done_callback(lambda _: self.state.release(1))

    # ---- reporting ----------------------------------------------------------------

    def statistics(self) -> ServerStatistics:
        """A snapshot of the server's counters."""
        state = self.state
        c = state.counters
        return ServerStatistics(
            connections=len(self._connections),
            connections_total=c.connections_total,
            refused=c.refused,
            inflight=state.inflight,
            streams=sum(conn.streams for conn in self._connections),
            frames_in=c.frames_in,
            frames_out=c.frames_out,
            bytes_in=c.bytes_in,
            bytes_out=c.bytes_out,
            errors=dict(c.errors),
            closing=state.closing,
            queued_bytes=state.queued_bytes,
            write_pauses=c.write_pauses,
            accept_errors=c.accept_errors,
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
