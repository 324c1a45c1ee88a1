"""Flow control of one connection: when it reads, and how many bytes its answers hold.

A connection's answers are held in memory from the moment they are produced until
the kernel takes them: in the transport's write buffer, in the encoder's buffer, or
as values of requests still running. :class:`Flow` counts those bytes (what the
transport holds, plus what the requests being answered are expected to add) against
``max_queued_bytes_per_connection`` and, through the :class:`~.state.ServerState`,
against ``max_queued_bytes_total``. While the peer does not read (the transport
asked to stop writing, or a bound is reached) the connection produces no answers
and reads no requests; see ``docs/protocol.md`` ("Order, pipelining and bounds").
"""

from __future__ import annotations

import asyncio

from .state import ServerState

__all__ = ["Flow"]


class Flow:
    """Read pausing, write pausing and the queued-bytes count of one connection.

    Attributes:
        reading: Whether the transport delivers reads (we did not pause it).
        write_paused: Whether the transport asked us to stop writing.
        queued: Bytes the transport held after our last write (or its last resume).
        expected: Bytes expected from requests dispatched and not yet answered.
    """

    __slots__ = (
        "_max",
        "_state",
        "_transport",
        "_writable",
        "expected",
        "queued",
        "reading",
        "write_paused",
    )

    def __init__(self, state: ServerState, transport: asyncio.Transport) -> None:
        self._state = state
        self._transport = transport
        self._max = state.max_queued_per_connection
        self._writable: asyncio.Future[None] | None = None
        self.reading = True
        self.write_paused = False
        self.queued = 0
        self.expected = 0

    # ---- queued bytes ------------------------------------------------------------

    def blocked(self, buffered: int = 0) -> bool:
        """Whether writing must wait: the peer does not read, or the connection's bound.

        ``buffered`` counts bytes encoded and not yet written.
        """
        return self.write_paused or self.queued + buffered >= self._max

    def admits(self, size: int, buffered: int) -> bool:
        """Whether a request expected to add ``size`` bytes may be dispatched (produced).

        A connection that holds nothing is always admitted one request, so an answer
        larger than a bound still goes and a new client is served at the total bound;
        otherwise the request must fit both the connection's bound and the total.
        """
        self.wrote()  # the transport drains without telling: count what it holds now
        if self.blocked(buffered):
            return False
        held = self.queued + self.expected + buffered
        if held == 0:
            return True
        state = self._state
        if state.queued_bytes + size > state.max_queued_total:
            return False
        return held + size <= self._max

    def may_stream(self) -> bool:
        """Whether a stream may take more items from its source now."""
        self.wrote()
        if self.blocked():
            return False
        state = self._state
        return self.queued == 0 or state.queued_bytes < state.max_queued_total

    def reserve(self, size: int) -> None:
        """A request expected to add ``size`` bytes was dispatched."""
        self.expected += size
        self._state.requeue(size)

    def unreserve(self, size: int) -> None:
        """Answers reserved ``size`` bytes were encoded (or will never be)."""
        if size:
            self.expected -= size
            self._state.requeue(-size)

    def wrote(self) -> None:
        """The transport was written to (or resumed): count what it holds now."""
        held = self._transport.get_write_buffer_size()
        delta = held - self.queued
        if delta:
            self.queued = held
            self._state.requeue(delta)

    def release(self) -> None:
        """The connection is gone: nothing of it is held any more."""
        self._state.requeue(-(self.queued + self.expected))
        self.queued = 0
        self.expected = 0
        self.wake_writable()

    # ---- reading -------------------------------------------------------------------

    def set_reading(self, on: bool) -> None:
        """Pause or resume the transport's reads (a no-op if already so, or closing)."""
        transport = self._transport
        if on == self.reading or transport.is_closing():
            return
        self.reading = on
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()

    # ---- writing ---------------------------------------------------------------------

    def pause_writing(self) -> None:
        """The transport's buffer passed its high-water mark."""
        if not self.write_paused:
            self.write_paused = True
            self._state.write_paused()

    def resume_writing(self) -> None:
        """The transport's buffer drained below its low-water mark."""
        self.write_paused = False
        self.wrote()

    async def wait_writable(self) -> None:
        """Wait until answers may be produced again (see :meth:`wake_writable`)."""
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()
        await self._writable

    def wake_writable(self) -> None:
        """Wake what waits in :meth:`wait_writable`; it checks :meth:`blocked` again."""
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
