"""What every connection of one server shares: its bounds, handler tables and counters.

:class:`ServerState` is the only record a connection writes server-wide figures
into, and only through its methods (:meth:`~ServerState.admit`,
:meth:`~ServerState.release`, :meth:`~ServerState.requeue`, :meth:`~ServerState.sent`
and the other counters' methods); the server owns it, counts what it does itself
(accepts, refusals) and reads it for ``stats``. Everything here is touched by the loop thread only.
See ``docs/protocol.md`` ("Order, pipelining and bounds").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from contracts import ServerConfig

__all__ = ["ConnectionOwner", "Counters", "Resumable", "ServerState"]

#: An answer estimate never falls below this many bytes (a response's envelope).
_MIN_ANSWER_BYTES = 32


class Resumable(Protocol):
    """A connection as the state sees it: one that can be told to read again."""

    def resume(self) -> None:
        """Room came free: read and answer again."""
        ...


class ConnectionOwner(Protocol):
    """What a connection needs of the server that accepted it.

    Named here, below both, so that the connection and the server never import
    each other's modules in a cycle (``docs/architecture.md``, "Layering").
    """

    @property
    def state(self) -> ServerState:
        """The record every connection of the server shares."""
        ...

    def admits(self, transport: asyncio.Transport) -> bool:
        """Whether the peer may connect (the uid allow-list)."""
        ...

    def connection_opened(self, conn: Any) -> None:
        """A connection was accepted."""
        ...

    def connection_closed(self, conn: Any) -> None:
        """A connection is gone."""
        ...

    def orphan(self, fut: asyncio.Future[Any], *, counted: bool = True) -> None:
        """Keep accepted work whose connection is gone until it finishes."""
        ...


class Counters:
    """The server's running totals; only the loop thread touches them, and they only grow."""

    __slots__ = (
        "accept_errors",
        "bytes_in",
        "bytes_out",
        "connections_total",
        "errors",
        "frames_in",
        "frames_out",
        "refused",
        "write_pauses",
    )

    def __init__(self) -> None:
        self.connections_total = 0
        self.refused = 0
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors: dict[str, int] = {}
        # Times a connection stopped producing answers because its peer did not read.
        self.write_pauses = 0
        # Accepts that failed for want of file descriptors (EMFILE, ENFILE).
        self.accept_errors = 0


class ServerState:
    """The bounds, handler tables and counters one server's connections share.

    Attributes:
        config: The server's bounds and limits.
        handlers: The ops answered, by name.
        batch_handlers: Ops that also take their requests read together.
        statuses: Success statuses by op, where not 200.
        counters: Running totals (only grow).
        inflight: Requests read and not yet answered (or, for a lost connection,
            not yet finished), over every connection.
        queued_bytes: Bytes of answers encoded and not yet taken by the kernel, plus
            the bytes expected from answers being produced, over every connection.
        closing: Whether a shutdown has begun.
    """

    __slots__ = (
        "_answer_bytes",
        "_waiting",
        "batch_handlers",
        "closing",
        "config",
        "counters",
        "hand_over",
        "handlers",
        "inflight",
        "loop",
        "max_queued_per_connection",
        "max_queued_total",
        "queued_bytes",
        "statuses",
    )

    def __init__(
        self,
        config: ServerConfig,
        handlers: dict[str, Any],
        batch_handlers: Mapping[str, Any],
        statuses: Mapping[str, int],
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.config = config
        self.handlers = handlers
        self.batch_handlers: dict[str, Any] = dict(batch_handlers)
        self.statuses: dict[str, int] = dict(statuses)
        self.counters = Counters()
        self.inflight = 0
        self.queued_bytes = 0
        self.max_queued_per_connection = config.max_queued_bytes_per_connection
        self.max_queued_total = config.max_queued_bytes_total
        self.closing = False
        # The HTTP hook (docs/http.md): takes a connection whose first byte starts an
        # HTTP method token, with that first read; None serves the two framings only.
        self.hand_over: Callable[[asyncio.Transport, bytes], None] | None = None
        # The size of each served op's answers, as last seen (a decaying maximum):
        # what a request of that op is expected to add to its connection's queue.
        # Only ops in ``handlers`` are learned, so its size is bounded.
        self._answer_bytes: dict[str, int] = {}
        # Connections that stopped reading at a server-wide bound, resumed as room
        # comes free.
        self._waiting: set[Resumable] = set()

    # ---- counters ------------------------------------------------------------

    def received(self, size: int) -> None:
        """A connection read ``size`` bytes."""
        self.counters.bytes_in += size

    def read_frames(self, count: int) -> None:
        """A connection split ``count`` requests from what it read."""
        self.counters.frames_in += count

    def sent(self, frames: int, size: int) -> None:
        """A connection wrote ``frames`` answers and stream messages in ``size`` bytes."""
        counters = self.counters
        counters.frames_out += frames
        counters.bytes_out += size

    def failed(self, code: str) -> None:
        """An error answer with ``code`` was encoded."""
        errors = self.counters.errors
        errors[code] = errors.get(code, 0) + 1

    def write_paused(self) -> None:
        """A connection stopped producing answers: its client does not read them."""
        self.counters.write_pauses += 1

    # ---- requests in flight --------------------------------------------------

    def admit(self, count: int) -> None:
        """``count`` requests were read and placed in their connection's answer order."""
        self.inflight += count

    def release(self, answered: int) -> None:
        """``answered`` requests left the in-flight count; wake connections waiting for room."""
        self.inflight -= answered
        if self._waiting and self.inflight < self.config.max_inflight_total:
            self._wake()

    def room(self) -> int:
        """How many more requests the server-wide in-flight bound admits now."""
        return self.config.max_inflight_total - self.inflight

    # ---- bytes queued ----------------------------------------------------------

    def expected(self, op: str) -> int:
        """The bytes an answer of ``op`` is expected to take.

        While none has been seen, a sixteenth of a connection's bound: a pipelined
        burst of an op never answered yet dispatches at most sixteen at once.
        """
        size = self._answer_bytes.get(op)
        return self.max_queued_per_connection >> 4 if size is None else size

    def learn(self, op: str, size: int) -> None:
        """An answer of ``op`` took ``size`` bytes: a decaying maximum of what it takes."""
        if op not in self.handlers:
            return
        known = self._answer_bytes.get(op)
        if known is None:
            self._answer_bytes[op] = max(size, _MIN_ANSWER_BYTES)
        elif size >= known:
            self._answer_bytes[op] = size
        else:
            self._answer_bytes[op] = max(size, known - (known >> 3), _MIN_ANSWER_BYTES)

    def requeue(self, delta: int) -> None:
        """A connection's queued bytes changed by ``delta``; wake those waiting for room."""
        self.queued_bytes += delta
        if delta < 0 and self._waiting and self.queued_bytes < self.max_queued_total:
            self._wake()

    # ---- waiting for server-wide room --------------------------------------------

    def wait_for_room(self, conn: Resumable) -> None:
        """``conn`` stopped at a server-wide bound; resume it when room comes free."""
        self._waiting.add(conn)

    def forget(self, conn: Resumable) -> None:
        """``conn`` is gone: it waits for nothing any more."""
        self._waiting.discard(conn)

    def _wake(self) -> None:
        waiting = list(self._waiting)
        self._waiting.clear()
        for conn in waiting:
            self.loop.call_soon(conn.resume)
