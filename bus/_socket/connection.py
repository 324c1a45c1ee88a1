"""One client connection: every frame a read delivers, answered in order, within bounds.

A connection is an asyncio protocol, so reading costs no task switch: each read
is split into every complete frame it holds, each frame is dispatched at once,
and the replies that are ready are encoded into one buffer and written together.
A handler may answer later (a future or a coroutine, e.g. an actor's reply) or with
an async iterator (a stream); the connection keeps reading meanwhile, and answers
leave strictly in request order: a reply waits for those before it.

Bounds: requests read and not yet answered count as in flight, per connection and
in total. At a bound the connection stops reading (the kernel buffer then pushes
back on the client) and resumes as answers leave. A client that does not read its
answers stops being read in turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from contracts import ActorbusError, InvalidRequest, ShuttingDown, UnknownOp

from .http import is_http
from .ordering import (
    PLAIN,
    AnswerEncoder,
    Part,
    Slot,
    deferred,
    end_stream,
    internal_error,
    pump_stream,
    settle,
    unknown_op_message,
)
from .wire import FrameReader, Request, parse_request, parse_requests

if TYPE_CHECKING:
    from .server import Server

__all__ = ["Connection"]

log = logging.getLogger("actorbus.server")

_UNBOUNDED = 1 << 62


class Connection(asyncio.Protocol):
    """The server side of one client connection (created by the server per accept)."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._loop = server.loop
        config = server.config
        self._per_connection = config.max_inflight_per_connection
        self._total = config.max_inflight_total
        self._idle_timeout = config.idle_timeout_s
        self._handlers = server.handlers
        self._batch_handlers = server.batch_handlers
        self._counters = server.counters
        self._transport: asyncio.Transport | None = None
        self._reader = FrameReader(config.max_frame_bytes)
        # Set once the first byte told the framing.
        self._encoder: AnswerEncoder | None = None
        # Requests read and not yet answered, in request order. Only the loop thread
        # touches it: appended by _accept, popped from the head by _flush.
        self._pending: deque[Slot] = deque()
        self._inflight = 0
        self._streams: set[Slot] = set()
        self._reading = True
        self._write_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._flush_scheduled = False
        self._eof = False
        self._failed = False
        self._shutting_down = False
        self._close_when_drained = False
        self._partial_since: float | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # ---- transport callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        transport = cast(asyncio.Transport, transport)
        if not self._server.admits(transport):
            transport.abort()
            return
        self._transport = transport
        self._server.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self._reader.framing is None and self._server.hand_over is not None and is_http(data):
            self._hand_over(data)
            return
        self._counters.bytes_in += len(data)
        reader = self._reader
        fresh = reader.buffered == 0
        before = self._counters.frames_in
        reader.feed(data)
        self._pump()
        if reader.buffered == 0:
            self._partial_since = None
        elif fresh or self._counters.frames_in != before:
            # A frame started or one completed: the client is making progress.
            self._partial_since = self._loop.time()
            if self._idle_handle is None:
                self._idle_handle = self._loop.call_later(self._idle_timeout, self._idle_check)
        self._flush()

    def _hand_over(self, data: bytes) -> None:
        """The HTTP hook: the first byte starts a method token, so HTTP takes the connection."""
        transport, hand_over = self._transport, self._server.hand_over
        assert transport is not None and hand_over is not None
        self._transport = None
        self._server.connection_closed(self)
        self.closed.set_result(None)
        hand_over(transport, data)

    def eof_received(self) -> bool:
        # The client shut down its side: answer what it sent, end its streams, close.
        self._eof = True
        self._close_when_drained = True
        for slot in list(self._streams):
            end_stream(slot, "client")
        self._pump()
        self._flush()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._transport = None
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        for slot in list(self._streams):
            end_stream(slot, "gone")
        server = self._server
        while self._pending:
            fut = self._pending.popleft().fut
            if fut is None or fut.done():
                server.release(1)
            else:
                # Accepted work still runs to completion; only its answer has nowhere to go.
                server.orphan(fut)
        self._inflight = 0
        self._wake_writable()
        server.connection_closed(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writable()
        self._flush()

    # ---- reading and dispatch -------------------------------------------------

    def _pump(self) -> None:
        """Dispatch every buffered complete frame there is room for; pause at the bounds."""
        if self._transport is None:
            return
        reader = self._reader
        server = self._server
        while True:
            if self._shutting_down:
                room = _UNBOUNDED
            else:
                room = min(self._per_connection - self._inflight, self._total - server.inflight)
            if room <= 0:
                self._set_reading(False)
                server.wait_for_room(self)
                return
            frames = reader.frames(room)
            if frames:
                framing = reader.framing
                assert framing is not None
                if self._encoder is None:
                    self._encoder = AnswerEncoder(framing, self._counters, self._server.statuses)
                if self._batch_handlers and len(frames) > 1:
                    self._accept_all(parse_requests(frames, framing))
                else:
                    accept = self._accept
                    for body in frames:
                        accept(parse_request(body, framing))
            if len(frames) < room:
                break
        if self._failed:
            return
        if reader.fatal is not None:
            self._fail_stream(reader.fatal)
        elif self._eof and reader.buffered and not self._shutting_down:
            self._fail_stream(InvalidRequest("the connection ended in the middle of a frame"))
        elif not self._close_when_drained:
            self._set_reading(True)

    def _accept_all(self, requests: list[Request]) -> None:
        """Dispatch the requests of one read; runs of a batch-handled op go together."""
        batch_handlers = self._batch_handlers
        count = len(requests)
        start = 0
        while start < count:
            request = requests[start]
            many = batch_handlers.get(request.op) if request.error is None else None
            if many is not None and request.op not in self._handlers:
                many = None  # a batch form without the op itself: not served
            stop = start + 1
            if many is not None and not self._shutting_down:
                op = request.op
                while stop < count and requests[stop].op == op and requests[stop].error is None:
                    stop += 1
            if stop - start == 1:
                self._accept(request)
            else:
                assert many is not None
                self._accept_many(requests[start:stop], many)
            start = stop

    def _accept_many(self, requests: list[Request], many: Any) -> None:
        """Hand consecutive requests of one op to its batch handler, then place each answer."""
        op = requests[0].op
        self._counters.frames_in += len(requests)
        try:
            outs: list[Any] = many(requests)
            if len(outs) != len(requests):
                raise RuntimeError(f"answered {len(outs)} of {len(requests)} requests")
        except Exception as exc:
            error = exc if isinstance(exc, ActorbusError) else internal_error(exc, op)
            for request in requests:
                self._place(request, None, error)
            return
        shared: asyncio.Future[Any] | None = None
        pending = self._pending
        for request, out in zip(requests, outs, strict=True):
            if type(out) is Part:
                fut = out.fut
                pending.append(Slot(request.id, op, fut=fut, index=out.index))
                self._inflight += 1
                self._server.inflight += 1
                if fut is not shared:
                    shared = fut
                    if not fut.done():
                        fut.add_done_callback(self._on_done)
            elif isinstance(out, ActorbusError):
                self._place(request, None, out)
            else:
                if type(out) not in PLAIN and deferred(out):
                    self._defer(request, out)
                else:
                    self._place(request, out, None)

    def _accept(self, request: Request) -> None:
        self._counters.frames_in += 1
        error: ActorbusError | None = request.error
        out: Any = None
        if error is None:
            if self._shutting_down:
                error = ShuttingDown("the server is shutting down")
            else:
                handler = self._handlers.get(request.op)
                if handler is None:
                    error = UnknownOp(unknown_op_message(request.op))
                else:
                    try:
                        out = handler(request)
                    except ActorbusError as exc:
                        error = exc
                    except Exception as exc:
                        error = internal_error(exc, request.op)
                    else:
                        if type(out) not in PLAIN and deferred(out):
                            self._defer(request, out)
                            return
        self._place(request, out, error)

    def _place(self, request: Request, out: Any, error: ActorbusError | None) -> None:
        """Answer a settled request now if nothing waits ahead of it, else queue it."""
        if not self._pending and not self._write_paused:
            # Nothing is waiting ahead of it: answer at once, no place in the order needed.
            assert self._encoder is not None
            self._encoder.answer(request.id, request.op, out, error)
            return
        slot = Slot(request.id, request.op)
        slot.value = out
        slot.error = error
        self._enqueue(slot)

    def _enqueue(self, slot: Slot) -> None:
        self._pending.append(slot)
        self._inflight += 1
        self._server.inflight += 1

    def _defer(self, request: Request, out: Any) -> None:
        """Give an answer that comes later its place: a future, an awaitable or a stream."""
        slot = Slot(request.id, request.op)
        if isinstance(out, asyncio.Future):
            slot.fut = out
            if not out.done():
                out.add_done_callback(self._on_done)
        elif hasattr(out, "__anext__"):
            slot.turn = self._loop.create_future()
            self._streams.add(slot)
            slot.fut = self._loop.create_task(pump_stream(slot, out, self))
            slot.fut.add_done_callback(self._on_done)
        else:
            slot.fut = asyncio.ensure_future(out)
            slot.fut.add_done_callback(self._on_done)
        self._enqueue(slot)

    def _fail_stream(self, error: ActorbusError) -> None:
        """The byte stream cannot be read on: answer ``error``, then close when drained."""
        self._failed = True
        if self._encoder is None:
            self._encoder = AnswerEncoder(
                self._reader.framing or "msgpack", self._counters, self._server.statuses
            )
        slot = Slot(None, "")
        slot.error = error
        self._enqueue(slot)
        self._reader.close()
        self._close_when_drained = True
        self._set_reading(False)

    def _set_reading(self, on: bool) -> None:
        transport = self._transport
        if on == self._reading or transport is None or transport.is_closing():
            return
        self._reading = on
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def _idle_check(self) -> None:
        self._idle_handle = None
        since = self._partial_since
        if self._transport is None or since is None or not self._reader.buffered:
            return
        elapsed = self._loop.time() - since
        if not self._reading or elapsed < self._idle_timeout:
            # Paused by our own bound, or progress since: not the client's stall.
            delay = self._idle_timeout - elapsed if self._reading else self._idle_timeout
            self._idle_handle = self._loop.call_later(max(delay, 0.001), self._idle_check)
            return
        self._fail_stream(
            InvalidRequest(f"no complete frame within idle_timeout_s ({self._idle_timeout:g}s)")
        )
        self._flush()

    # ---- answering ------------------------------------------------------------

    def _on_done(self, fut: asyncio.Future[Any]) -> None:
        # Only a completed head unblocks anything; coalesce completions into one flush.
        pending = self._pending
        if self._flush_scheduled or not pending:
            return
        head = pending[0].fut
        if head is None or head.done():
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Encode every answer ready at the head of the order; write them with one call."""
        self._flush_scheduled = False
        transport = self._transport
        encoder = self._encoder
        if transport is None or self._write_paused or encoder is None:
            self._maybe_close()
            return
        pending = self._pending
        while True:
            answered = 0
            while pending:
                slot = pending[0]
                fut = slot.fut
                if fut is not None:
                    if not fut.done():
                        turn = slot.turn
                        if turn is not None and not turn.done():
                            turn.set_result(None)
                        break
                    if slot.index >= 0 and not fut.cancelled() and fut.exception() is None:
                        # Parts of one shared reply: answer the whole run from its list.
                        answered += encoder.answer_parts(pending, fut)
                        continue
                    settle(slot, fut)
                encoder.answer(slot.id, slot.op, slot.value, slot.error)
                pending.popleft()
                answered += 1
            if encoder.buffer:
                transport.write(encoder.take())
            if not answered:
                break
            self._inflight -= answered
            self._server.release(answered)
            if self._reading and not self._eof:
                break
            # Room came free: frames held back by the bound are read now, and their
            # answers (ready ones go straight into the buffer) written in this pass.
            self._pump()
            if not encoder.buffer and not (
                pending and (pending[0].fut is None or pending[0].fut.done())
            ):
                break
            if self._transport is None or self._write_paused:
                break
        self._maybe_close()

    def _maybe_close(self) -> None:
        transport = self._transport
        if (
            transport is not None
            and self._close_when_drained
            and not self._pending
            and (self._shutting_down or not self._reader.buffered)
            and not transport.is_closing()
        ):
            transport.close()

    # ---- streams --------------------------------------------------------------

    def write_events(self, rid: Any, items: list[Any]) -> None:
        """Write a stream's items as event messages (its slot is at the head)."""
        transport = self._transport
        encoder = self._encoder
        if transport is None or encoder is None:
            return
        encoder.events(rid, items)
        transport.write(encoder.take())

    @property
    def write_paused(self) -> bool:
        """Whether the transport asked us to stop writing (the client reads slowly)."""
        return self._write_paused

    async def wait_writable(self) -> None:
        """Wait until the transport takes writes again."""
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()
        await self._writable

    def _wake_writable(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def stream_closed(self, slot: Slot) -> None:
        """A stream's pump finished (its answer follows through its future)."""
        self._streams.discard(slot)

    # ---- server control ---------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Requests read on this connection and not yet answered."""
        return self._inflight

    @property
    def streams(self) -> int:
        """Streams open on this connection."""
        return len(self._streams)

    def resume(self) -> None:
        """Room came free in the server-wide bound: read again if this one waited for it."""
        if self._transport is not None and not self._reading:
            self._pump()
            self._flush()

    def begin_shutdown(self) -> None:
        """Answer what was read (late requests: ``ShuttingDown``), end streams, then close."""
        self._shutting_down = True
        self._close_when_drained = True
        for slot in list(self._streams):
            end_stream(slot, "shutdown")
        self._pump()
        self._flush()

    def force_close(self) -> None:
        """Past the shutdown deadline: answer every request still waiting, then close."""
        for slot in self._pending:
            fut = slot.fut
            if fut is not None and not fut.done():
                self._server.orphan(fut, counted=False)
                slot.fut = None
                slot.error = ShuttingDown("not answered within the shutdown deadline")
        self._write_paused = False
        self._flush()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection without flushing (a client that never reads its answers)."""
        if self._transport is not None:
            self._transport.abort()
