"""One client connection: every frame a read delivers, answered in order, within bounds.

A connection is an asyncio protocol, so reading costs no task switch: each read
is split into every complete frame it holds, each frame is dispatched at once,
and the replies that are ready are encoded into one buffer and written together.
A handler may answer later (a future or a coroutine, e.g. an actor's reply) or with
an async iterator (a stream, see ``streams``); the connection keeps reading
meanwhile, and answers leave strictly in request order: a reply waits for those
before it.

Bounds: requests read and not yet answered count as in flight, per connection and
in total; the bytes its answers hold count against the bytes bounds (``flow``).
At a bound the connection stops reading (the kernel buffer then pushes back on the
client) and stops producing answers, and resumes as answers leave. A client that
does not read its answers stops being read in turn. See ``docs/protocol.md``.
"""

from __future__ import annotations

import array
import asyncio
import enum
import fcntl
import logging
import termios
from collections import deque
from typing import Any, cast

from contracts import ActorbusError, InvalidRequest, ShuttingDown, UnknownOp

from .flow import Flow
from .ordering import (
    PLAIN,
    AnswerEncoder,
    Part,
    Slot,
    deferred,
    internal_error,
    settle,
    unknown_op_message,
)
from .state import ConnectionOwner
from .streams import Streams, pump_stream
from .wire import FrameReader, Request, is_http, parse_request, parse_requests

__all__ = ["Connection", "Phase"]

log = logging.getLogger("actorbus.server")

_UNBOUNDED = 1 << 62
#: How soon a connection waiting for bytes room looks again when nothing will tell it.
_RETRY_S = 0.01


class Phase(enum.Enum):
    """Where a connection is in its life; it only ever moves down this list."""

    OPEN = "open"
    """Reading: each complete frame is dispatched within the bounds and answered in order."""

    SHUTTING_DOWN = "shutting-down"
    """The server is stopping, the peer may still send: what it sent is read (including
    what sat in the kernel's buffer) and answered ``ShuttingDown``; running requests
    are answered as they finish; streams have been asked to end. Closes once nothing
    is pending or held and the kernel holds no more of the peer's bytes."""

    DRAINING = "draining"
    """Nothing more will be read: the peer shut down its sending side, or the byte
    stream failed (its error is queued as the last answer). Requests read before are
    dispatched and answered in full, streams that follow have been asked to end.
    Closes once nothing is pending or held."""

    CLOSING = "closing"
    """The transport was asked to close; nothing more is read or dispatched."""

    CLOSED = "closed"
    """The transport is gone (or was handed to HTTP); ``closed`` is set."""


class Connection(asyncio.Protocol):
    """The server side of one client connection (created by the server per accept)."""

    def __init__(self, server: ConnectionOwner) -> None:
        self._server = server
        state = server.state
        self._state = state
        self._loop = state.loop
        config = state.config
        self._per_connection = config.max_inflight_per_connection
        self._idle_timeout = config.idle_timeout_s
        self._handlers = state.handlers
        self._batch_handlers = state.batch_handlers
        self._transport: asyncio.Transport | None = None
        self._flow: Flow | None = None
        self._fd = -1
        self._reader = FrameReader(config.max_frame_bytes)
        # Set once the first byte told the framing.
        self._encoder: AnswerEncoder | None = None
        # Requests read and not yet answered, in request order. Only the loop thread
        # touches it: appended by _accept, popped from the head by _flush.
        self._pending: deque[Slot] = deque()
        # Requests read and not yet dispatched: held while their answers would pass
        # the bytes bound. Reading is paused while any are held.
        self._held: deque[Request] = deque()
        self._held_bytes = 0
        self._inflight = 0
        self._streams = Streams()
        self._flush_handle: asyncio.Handle | None = None
        self._retry_handle: asyncio.TimerHandle | None = None
        self._partial_since: float | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self.phase = Phase.OPEN
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # ---- transport callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        transport = cast(asyncio.Transport, transport)
        if not self._server.admits(transport):
            transport.abort()
            self._set_closed()
            return
        self._transport = transport
        self._flow = Flow(self._state, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._fd = sock.fileno()
        self._server.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self.phase is not Phase.OPEN and self.phase is not Phase.SHUTTING_DOWN:
            return
        reader = self._reader
        if reader.framing is None and self._state.hand_over is not None and is_http(data):
            self._hand_over(data)
            return
        self._state.received(len(data))
        fresh = reader.buffered == 0
        reader.feed(data)
        taken = self._pump()
        if reader.buffered == 0:
            self._partial_since = None
        elif fresh or taken:
            # A frame started or one completed: the client is making progress.
            self._partial_since = self._loop.time()
            if self._idle_handle is None:
                self._idle_handle = self._loop.call_later(self._idle_timeout, self._idle_check)
        self._flush()

    def _hand_over(self, data: bytes) -> None:
        """The HTTP hook: the first byte starts a method token, so HTTP takes the connection."""
        transport, hand_over = self._transport, self._state.hand_over
        assert transport is not None and hand_over is not None
        self._transport = None
        self._server.connection_closed(self)
        self._set_closed()
        hand_over(transport, data)

    def eof_received(self) -> bool:
        # The client shut down its side: answer everything it sent (streams that end
        # by themselves in full), end the streams that follow, then close.
        if self.phase is Phase.OPEN or self.phase is Phase.SHUTTING_DOWN:
            self.phase = Phase.DRAINING
        self._streams.end("client", following_only=True)
        self._pump()
        self._flush()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._transport = None
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        self._streams.end("gone")
        server = self._server
        state = self._state
        while self._pending:
            fut = self._pending.popleft().fut
            if fut is None or fut.done():
                state.release(1)
            else:
                # Accepted work still runs to completion; only its answer has nowhere to go.
                server.orphan(fut)
        if self._held:
            state.release(len(self._held))
            self._held.clear()
            self._held_bytes = 0
        self._inflight = 0
        if self._flow is not None:
            self._flow.release()
        server.connection_closed(self)
        self._set_closed()

    def pause_writing(self) -> None:
        assert self._flow is not None
        self._flow.pause_writing()

    def resume_writing(self) -> None:
        flow = self._flow
        assert flow is not None
        flow.resume_writing()
        self.resume()

    def _set_closed(self) -> None:
        self.phase = Phase.CLOSED
        if not self.closed.done():
            self.closed.set_result(None)

    # ---- reading and dispatch -------------------------------------------------

    def _pump(self) -> int:
        """Dispatch the held and buffered requests there is room for; pause at the bounds.

        Returns:
            How many requests were split from the buffered bytes.
        """
        taken = 0
        if self._transport is None or self.phase is Phase.CLOSING or self.phase is Phase.CLOSED:
            return taken
        flow = self._flow
        assert flow is not None
        if self._held:
            self._dispatch_held()
        reader = self._reader
        state = self._state
        while True:
            if state.closing:
                room = _UNBOUNDED  # every request is answered ShuttingDown: no work held
            else:
                room = min(self._per_connection - self._inflight, state.room())
            if room <= 0:
                flow.set_reading(False)
                state.wait_for_room(self)
                return taken
            frames = reader.frames(room)
            if frames:
                taken += len(frames)
                state.read_frames(len(frames))
                framing = reader.framing
                assert framing is not None
                if self._encoder is None:
                    self._encoder = AnswerEncoder(framing, state)
                if len(frames) == 1:
                    requests = [parse_request(frames[0], framing)]
                else:
                    requests = parse_requests(frames, framing)
                if state.closing:
                    # Read after the shutdown began: answered, never served.
                    for request in requests:
                        if request.error is None:
                            request.error = ShuttingDown("the server is shutting down")
                self._dispatch(requests)
            if len(frames) < room:
                break
        fatal = reader.fatal
        if fatal is not None:
            reader.fatal = None  # answered once; the reader is closed and reads nothing more
            self._fail_stream(fatal)
        elif self.phase is Phase.DRAINING:
            if reader.buffered and not state.closing:
                self._fail_stream(InvalidRequest("the connection ended in the middle of a frame"))
        elif self._held:
            # Answers wait for the peer: requests are read on (and held, not
            # dispatched) up to the in-flight bound and as many bytes as the bytes bound.
            flow.set_reading(self._held_bytes + reader.buffered < state.max_queued_per_connection)
        else:
            flow.set_reading(True)
        return taken

    def _hold(self, requests: list[Request]) -> None:
        """Keep requests read for later dispatch; they count as in flight meanwhile."""
        self._held.extend(requests)
        self._held_bytes += sum(len(request.body) for request in requests)
        self._inflight += len(requests)
        self._state.admit(len(requests))
        self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Answers wait for room: be woken when it comes.

        Room comes as answers leave, when the transport resumes writing or when other
        connections release bytes; a transport draining below its high-water mark
        says nothing, so a connection waiting with nothing of its own pending looks
        again shortly.
        """
        state = self._state
        flow = self._flow
        assert flow is not None
        state.wait_for_room(self)
        if self._retry_handle is None and not flow.write_paused:
            self._retry_handle = self._loop.call_later(_RETRY_S, self._retry)

    def _retry(self) -> None:
        self._retry_handle = None
        self.resume()

    def _dispatch_held(self) -> None:
        """Dispatch held requests while there is room (the rest stays held, in order)."""
        held = self._held
        requests = list(held)
        held.clear()
        self._held_bytes = 0
        self._inflight -= len(requests)
        self._state.admit(-len(requests))
        self._dispatch(requests)

    def _dispatch(self, requests: list[Request]) -> None:
        """Dispatch requests in order while their answers fit the bytes bound; hold the rest.

        Runs of a batch-handled op go to its batch handler together.
        """
        if self._held:
            self._hold(requests)  # behind requests already held: order is kept
            return
        flow = self._flow
        assert flow is not None and self._encoder is not None
        buffer = self._encoder.buffer
        state = self._state
        batch_handlers = self._batch_handlers if len(requests) > 1 else None
        count = len(requests)
        start = 0
        while start < count:
            request = requests[start]
            stop = start + 1
            size = 0
            if request.error is None:
                size = state.expected(request.op)
                if not flow.admits(size, len(buffer)):
                    self._hold(requests[start:])
                    return
                if batch_handlers:
                    many = batch_handlers.get(request.op)
                    if many is not None and request.op in self._handlers:
                        op = request.op
                        # As many of the run as the bytes bound admits at once.
                        most = count
                        if size:
                            room = state.max_queued_per_connection - flow.queued - flow.expected
                            most = start + max(1, (room - len(buffer)) // size)
                        while (
                            stop < count
                            and stop < most
                            and requests[stop].op == op
                            and requests[stop].error is None
                        ):
                            stop += 1
                        if stop - start > 1:
                            self._accept_many(requests[start:stop], many, size)
                            start = stop
                            continue
            self._accept(request, size)
            start = stop

    def _accept_many(self, requests: list[Request], many: Any, size: int) -> None:
        """Hand consecutive requests of one op to its batch handler, then place each answer."""
        op = requests[0].op
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
        parts = 0
        for request, out in zip(requests, outs, strict=True):
            if type(out) is Part:
                fut = out.fut
                pending.append(Slot(request.id, op, fut=fut, index=out.index, reserved=size))
                parts += 1
                if fut is not shared:
                    shared = fut
                    if not fut.done():
                        fut.add_done_callback(self._on_done)
            elif isinstance(out, ActorbusError):
                self._place(request, None, out)
            elif type(out) not in PLAIN and deferred(out):
                self._defer(request, out, size)
            else:
                self._place(request, out, None, size)
        if parts:
            self._inflight += parts
            self._state.admit(parts)
            assert self._flow is not None
            self._flow.reserve(size * parts)

    def _accept(self, request: Request, size: int) -> None:
        error: ActorbusError | None = request.error
        out: Any = None
        if error is None:
            handler = self._handlers.get(request.op)
            if handler is None:
                error = UnknownOp(unknown_op_message(request.op, self._handlers))
            else:
                try:
                    out = handler(request)
                except ActorbusError as exc:
                    error = exc
                except Exception as exc:
                    error = internal_error(exc, request.op)
                else:
                    if type(out) not in PLAIN and deferred(out):
                        self._defer(request, out, size)
                        return
        self._place(request, out, error, size)

    def _place(
        self, request: Request, out: Any, error: ActorbusError | None, size: int = 0
    ) -> None:
        """Answer a settled request now if nothing waits ahead of it, else queue it."""
        flow = self._flow
        assert flow is not None
        if not self._pending and not flow.write_paused:
            # Nothing is waiting ahead of it: answer at once, no place in the order needed.
            assert self._encoder is not None
            self._encoder.answer(request.id, request.op, out, error)
            return
        slot = Slot(request.id, request.op, reserved=size)
        slot.value = out
        slot.error = error
        self._enqueue(slot)

    def _enqueue(self, slot: Slot) -> None:
        self._pending.append(slot)
        self._inflight += 1
        self._state.admit(1)
        if slot.reserved:
            assert self._flow is not None
            self._flow.reserve(slot.reserved)

    def _defer(self, request: Request, out: Any, size: int) -> None:
        """Give an answer that comes later its place: a future, an awaitable or a stream."""
        slot = Slot(request.id, request.op, reserved=size)
        if isinstance(out, asyncio.Future):
            slot.fut = out
            if not out.done():
                out.add_done_callback(self._on_done)
        elif hasattr(out, "__anext__"):
            slot.turn = self._loop.create_future()
            self._streams.add(slot, out)
            slot.fut = self._loop.create_task(pump_stream(slot, out, self))
            slot.fut.add_done_callback(self._on_done)
        else:
            slot.fut = asyncio.ensure_future(out)
            slot.fut.add_done_callback(self._on_done)
        self._enqueue(slot)

    def _fail_stream(self, error: ActorbusError) -> None:
        """The byte stream cannot be read on: answer ``error``, then close when drained."""
        if self._encoder is None:
            self._encoder = AnswerEncoder(self._reader.framing or "msgpack", self._state)
        slot = Slot(None, "")
        slot.error = error
        self._enqueue(slot)
        self._reader.close()
        if self.phase is Phase.OPEN or self.phase is Phase.SHUTTING_DOWN:
            self.phase = Phase.DRAINING
        assert self._flow is not None
        self._flow.set_reading(False)

    def _kernel_buffered(self) -> int:
        """Bytes the peer sent that the kernel holds and we have not read yet."""
        if self._fd < 0:
            return 0
        count = array.array("i", [0])
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, count, True)
        except OSError:
            return 0
        return count[0]

    def _idle_check(self) -> None:
        self._idle_handle = None
        since = self._partial_since
        flow = self._flow
        if (
            self._transport is None
            or flow is None
            or since is None
            or not self._reader.buffered
            or self.phase is not Phase.OPEN
        ):
            return
        elapsed = self._loop.time() - since
        if not flow.reading or elapsed < self._idle_timeout:
            # Paused by our own bound, or progress since: not the client's stall.
            delay = self._idle_timeout - elapsed if flow.reading else self._idle_timeout
            self._idle_handle = self._loop.call_later(max(delay, 0.001), self._idle_check)
            return
        if self._kernel_buffered():
            # The peer's bytes arrived and we did not read them yet (the process was
            # stalled): they are read first, then judged.
            self._idle_handle = self._loop.call_later(0.01, self._idle_check)
            return
        self._fail_stream(
            InvalidRequest(f"no complete frame within idle_timeout_s ({self._idle_timeout:g}s)")
        )
        self._flush()

    # ---- answering ------------------------------------------------------------

    def _on_done(self, fut: asyncio.Future[Any]) -> None:
        # Only a completed head unblocks anything; coalesce completions into one flush.
        pending = self._pending
        if self._flush_handle is not None or not pending:
            return
        head = pending[0].fut
        if head is None or head.done():
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Encode the answers ready at the head of the order, within the bytes bound; write."""
        self._flush_handle = None
        transport = self._transport
        encoder = self._encoder
        flow = self._flow
        if transport is None or flow is None or encoder is None:
            self._maybe_close()
            return
        pending = self._pending
        buffer = encoder.buffer
        while True:
            answered = 0
            reserved = 0
            while pending and not flow.blocked(len(buffer)):
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
                        count, held = encoder.answer_parts(pending, fut)
                        answered += count
                        reserved += held
                        continue
                    settle(slot, fut)
                encoder.answer(slot.id, slot.op, slot.value, slot.error)
                reserved += slot.reserved
                pending.popleft()
                answered += 1
            if buffer:
                transport.write(encoder.take())
                flow.wrote()
            if not answered:
                break
            flow.unreserve(reserved)
            self._inflight -= answered
            self._state.release(answered)
            if flow.reading and not self._held:
                break
            # Room came free: requests held back by a bound are dispatched now, and
            # their answers (ready ones go straight into the buffer) written in this pass.
            self._pump()
            if not buffer and not (pending and (pending[0].fut is None or pending[0].fut.done())):
                break
            if self._transport is None or flow.blocked():
                break
        if buffer and self._transport is not None:
            transport.write(encoder.take())
            flow.wrote()
        self._maybe_close()

    def _maybe_close(self) -> None:
        transport = self._transport
        phase = self.phase
        if (
            transport is None
            or (phase is not Phase.DRAINING and phase is not Phase.SHUTTING_DOWN)
            or self._pending
            or self._held
            or transport.is_closing()
        ):
            return
        if phase is Phase.SHUTTING_DOWN:
            if self._reader.buffered or self._kernel_buffered():
                return  # the peer's requests are read, then answered ShuttingDown
        elif self._reader.buffered and not self._state.closing:
            return
        self.phase = Phase.CLOSING
        transport.close()

    # ---- streams (the sink a stream's pump writes to) ---------------------------

    def write_events(self, rid: Any, items: list[Any]) -> None:
        """Write a stream's items as event messages (its slot is at the head)."""
        transport = self._transport
        encoder = self._encoder
        if transport is None or encoder is None:
            return
        encoder.events(rid, items)
        transport.write(encoder.take())
        assert self._flow is not None
        self._flow.wrote()

    def blocked(self) -> bool:
        """Whether a stream must wait before taking more items (the peer does not read)."""
        flow = self._flow
        if flow is None or self._transport is None:
            return False
        if flow.may_stream():
            return False
        self._wait_for_room()
        return True

    @property
    def write_paused(self) -> bool:
        """Whether the transport asked us to stop writing (the client reads slowly)."""
        return self._flow is not None and self._flow.write_paused

    async def wait_writable(self) -> None:
        """Wait until the connection may produce answers again."""
        assert self._flow is not None
        await self._flow.wait_writable()

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

    @property
    def queued_bytes(self) -> int:
        """Bytes this connection's answers hold (written and not yet sent, or expected)."""
        flow = self._flow
        return 0 if flow is None else flow.queued + flow.expected

    def resume(self) -> None:
        """Room came free (a bound, or the peer reads again): produce and read again."""
        if self._transport is None:
            return
        flow = self._flow
        assert flow is not None
        flow.wake_writable()  # a stream waiting looks again (and waits again if need be)
        self._flush()
        if not flow.reading or self._held:
            self._pump()
            self._flush()

    def begin_shutdown(self) -> None:
        """Answer what was read (later requests: ``ShuttingDown``), end streams, then close."""
        if self.phase is Phase.OPEN:
            self.phase = Phase.SHUTTING_DOWN
        self._streams.end("shutdown")
        if self._transport is None:
            return
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
        transport = self._transport
        encoder = self._encoder
        if transport is None or encoder is None:
            if transport is not None and not transport.is_closing():
                transport.close()
            return
        # The peer may not read: what is left is encoded at once, whatever the bounds.
        answered = 0
        pending = self._pending
        while pending:
            slot = pending.popleft()
            if slot.fut is not None:
                settle(slot, slot.fut)
            encoder.answer(slot.id, slot.op, slot.value, slot.error)
            answered += 1
        for request in self._held:
            error = ShuttingDown("the server is shutting down")
            encoder.answer(request.id, request.op, None, error)
            answered += 1
        self._held.clear()
        self._held_bytes = 0
        if encoder.buffer:
            transport.write(encoder.take())
        if answered:
            self._inflight -= answered
            self._state.release(answered)
        self.phase = Phase.CLOSING
        if not transport.is_closing():
            transport.close()

    def abort(self) -> None:
        """Drop the connection without flushing (a client that never reads its answers)."""
        if self._transport is not None:
            self._transport.abort()
