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
import socket
import struct
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from contracts import (
    OP_EVENT,
    ActorbusError,
    ErrorBody,
    EventMessage,
    InternalError,
    InvalidRequest,
    Response,
    ShuttingDown,
    UnknownOp,
)

from ._wire import FrameReader, FrameWriter, Request, Result, parse_request

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._server import Server

__all__ = ["Connection"]

log = logging.getLogger("actorbus.server")

_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_UNBOUNDED = 1 << 62
_STREAM_BATCH = 256
# Results that are answers as they are: the fast path skips the awaitable checks.
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None), Result})


class _Slot:
    """One request's place in the answer order.

    Ready when ``fut`` is ``None`` (``value`` or ``error`` set) or done. A stream's
    ``fut`` is the task that pumps it; ``turn`` is set when the slot reaches the head,
    the moment the stream may write; ``end`` says why it was asked to stop early.
    """

    __slots__ = ("end", "error", "fut", "id", "op", "started", "turn", "value")

    def __init__(self, rid: Any, op: str) -> None:
        self.id = rid
        self.op = op
        self.value: Any = None
        self.error: ActorbusError | None = None
        self.fut: asyncio.Future[Any] | None = None
        self.turn: asyncio.Future[None] | None = None
        self.end: str | None = None
        self.started = False


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
        self._counters = server.counters
        self._transport: asyncio.Transport | None = None
        self._reader = FrameReader(config.max_frame_bytes)
        self._writer: FrameWriter | None = None
        # Requests read and not yet answered, in request order. Only the loop thread
        # touches it: appended by _accept, popped from the head by _flush.
        self._pending: deque[_Slot] = deque()
        self._out = bytearray()
        self._inflight = 0
        self._streams: set[_Slot] = set()
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
        allowed = self._server.config.allowed_uids
        if allowed:
            uid = _peer_uid(transport)
            if uid not in allowed:
                self._counters.refused += 1
                log.warning("refused a connection from uid %s (not in allowed_uids)", uid)
                transport.abort()
                return
        self._transport = transport
        self._server.connection_opened(self)

    def data_received(self, data: bytes) -> None:
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

    def eof_received(self) -> bool:
        # The client shut down its side: answer what it sent, end its streams, close.
        self._eof = True
        self._close_when_drained = True
        for slot in list(self._streams):
            self._end_stream(slot, "client")
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
            self._end_stream(slot, "gone")
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
                if self._writer is None:
                    self._writer = FrameWriter(framing)
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
                    error = UnknownOp(_unknown_op_message(request.op))
                else:
                    try:
                        out = handler(request)
                    except ActorbusError as exc:
                        error = exc
                    except Exception as exc:
                        error = _internal(exc, request.op)
                    else:
                        if type(out) not in _PLAIN and _deferred(out):
                            self._defer(request, out)
                            return
        if not self._pending and not self._write_paused:
            # Nothing is waiting ahead of it: answer at once, no place in the order needed.
            self._encode(request.id, request.op, out, error)
            return
        slot = _Slot(request.id, request.op)
        slot.value = out
        slot.error = error
        self._enqueue(slot)

    def _enqueue(self, slot: _Slot) -> None:
        self._pending.append(slot)
        self._inflight += 1
        self._server.inflight += 1

    def _defer(self, request: Request, out: Any) -> None:
        """Give an answer that comes later its place: a future, an awaitable or a stream."""
        slot = _Slot(request.id, request.op)
        if isinstance(out, asyncio.Future):
            slot.fut = out
            if not out.done():
                out.add_done_callback(self._on_done)
        elif hasattr(out, "__anext__"):
            slot.turn = self._loop.create_future()
            self._streams.add(slot)
            slot.fut = self._loop.create_task(self._stream(slot, out))
            slot.fut.add_done_callback(self._on_done)
        else:
            slot.fut = asyncio.ensure_future(out)
            slot.fut.add_done_callback(self._on_done)
        self._enqueue(slot)

    def _fail_stream(self, error: ActorbusError) -> None:
        """The byte stream cannot be read on: answer ``error``, then close when drained."""
        self._failed = True
        if self._writer is None:
            self._writer = FrameWriter(self._reader.framing or "msgpack")
        slot = _Slot(None, "")
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
        if transport is None or self._write_paused or self._writer is None:
            self._maybe_close()
            return
        pending = self._pending
        out = self._out
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
                    _settle(slot, fut)
                self._encode(slot.id, slot.op, slot.value, slot.error)
                pending.popleft()
                answered += 1
            if out:
                self._counters.bytes_out += len(out)
                transport.write(bytes(out))
                out.clear()
            if not answered:
                break
            self._inflight -= answered
            self._server.release(answered)
            if self._reading and not self._eof:
                break
            # Room came free: frames held back by the bound are read now, and their
            # answers (ready ones go straight into the buffer) written in this pass.
            self._pump()
            if not out and not (pending and (pending[0].fut is None or pending[0].fut.done())):
                break
            if self._transport is None or self._write_paused:
                break
        self._maybe_close()

    def _encode(self, rid: Any, op: str, value: Any, error: ActorbusError | None) -> None:
        writer = self._writer
        assert writer is not None
        self._counters.frames_out += 1
        if error is None:
            status = 200
            if type(value) is Result:
                status = value.status
                value = value.value
            try:
                writer.add(Response(rid, True, status, value), self._out)
                return
            except Exception as exc:
                error = _internal(exc, op, "its result could not be encoded")
        errors = self._counters.errors
        errors[error.code] = errors.get(error.code, 0) + 1
        body = ErrorBody(error.code, error.message)
        writer.add(Response(rid, False, error.status, error=body), self._out)

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

    async def _stream(self, slot: _Slot, items: AsyncIterator[Any]) -> Any:
        """Pump a stream's items as event messages once the slot is at the head."""
        slot.started = True
        sent = 0
        try:
            if slot.end is None:
                assert slot.turn is not None
                await slot.turn
                get_nowait = getattr(items, "get_nowait", None)
                while slot.end is None:
                    batch = [await items.__anext__()]
                    if get_nowait is not None:
                        while len(batch) < _STREAM_BATCH:
                            try:
                                batch.append(get_nowait())
                            except LookupError:
                                break
                    self._write_events(slot.id, batch)
                    sent += len(batch)
                    if self._write_paused:
                        await self._wait_writable()
        except StopAsyncIteration:
            return {"events": sent}
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if slot.end is None or task is None or task.uncancel() > 0:
                raise
        finally:
            self._streams.discard(slot)
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception as exc:
                    log.warning("closing a stream for op %s failed: %r", slot.op, type(exc))
        if slot.end == "shutdown":
            raise ShuttingDown("the server is shutting down; the stream ended")
        return {"events": sent}

    def _end_stream(self, slot: _Slot, reason: str) -> None:
        if slot.end is not None:
            return
        slot.end = reason
        fut = slot.fut
        if slot.started and fut is not None and not fut.done():
            fut.cancel()

    def _write_events(self, rid: Any, items: list[Any]) -> None:
        transport = self._transport
        writer = self._writer
        if transport is None or writer is None:
            return
        out = self._out
        for item in items:
            try:
                writer.add(EventMessage(OP_EVENT, rid, item), out)
            except Exception as exc:
                log.error("dropped a stream item that cannot be encoded: %s", type(exc).__name__)
                continue
        self._counters.frames_out += len(items)
        self._counters.bytes_out += len(out)
        transport.write(bytes(out))
        out.clear()

    async def _wait_writable(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()
        await self._writable

    def _wake_writable(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

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
            self._end_stream(slot, "shutdown")
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


def _deferred(out: Any) -> bool:
    """Whether a handler's return is an answer to come rather than the answer itself."""
    return isinstance(out, asyncio.Future) or hasattr(out, "__anext__") or hasattr(out, "__await__")


def _settle(slot: _Slot, fut: asyncio.Future[Any]) -> None:
    if fut.cancelled():
        slot.error = ShuttingDown("the request was cancelled as the server stopped")
        return
    exc = fut.exception()
    if exc is None:
        slot.value = fut.result()
    elif isinstance(exc, ActorbusError):
        slot.error = exc
    else:
        slot.error = _internal(exc, slot.op)


def _internal(exc: BaseException, op: str, what: str = "it failed unexpectedly") -> InternalError:
    # The exception's message may quote the request; log its type and where, never its text.
    where = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    log.error("op %s: %s: %s\n%s", op, what, type(exc).__name__, where)
    return InternalError(f"the request failed: {what} (the service logged the details)")


def _unknown_op_message(op: str) -> str:
    if not op or len(op) > 64 or not op.replace(".", "").replace("_", "").isalnum():
        return "unknown op"
    return f"unknown op {op!r}"


def _peer_uid(transport: asyncio.Transport) -> int | None:
    """The connecting process's uid from ``SO_PEERCRED`` (``None`` where unavailable)."""
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        _pid, uid, _gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _CRED.size))
    except (OSError, struct.error):
        return None
    return int(uid)
