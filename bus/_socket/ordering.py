"""A request's place in the answer order, how an outcome becomes an answer, and streams."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from contracts import (
    OP_EVENT,
    ActorbusError,
    ErrorBody,
    EventMessage,
    Framing,
    InternalError,
    Response,
    ShuttingDown,
)

from .wire import FrameWriter, Result

if TYPE_CHECKING:
    from .server import Counters

__all__ = [
    "PLAIN",
    "AnswerEncoder",
    "Part",
    "Slot",
    "StreamSink",
    "deferred",
    "end_stream",
    "internal_error",
    "pump_stream",
    "settle",
    "unknown_op_message",
]

log = logging.getLogger("actorbus.server")

#: Results that are answers as they are: the fast path skips the awaitable checks.
PLAIN: Final = frozenset({dict, list, str, int, float, bool, type(None), Result})
#: Stream items written with one call at most.
STREAM_BATCH: Final = 256


class Part:
    """One request's answer within a shared reply: item ``index`` of the list ``fut`` gives.

    What a batch handler returns for each request it passed on as part of one
    message (e.g. appends of one session as one writer message). An item that is
    an exception instance answers that request with the error; a failed ``fut``
    answers every request sharing it with its error.
    """

    __slots__ = ("fut", "index")

    def __init__(self, fut: asyncio.Future[Any], index: int) -> None:
        self.fut = fut
        self.index = index

    def __repr__(self) -> str:
        return f"Part({self.fut!r}, {self.index})"


class Slot(msgspec.Struct, eq=False):
    """One request's place in the answer order.

    Ready when ``fut`` is ``None`` (``value`` or ``error`` set) or done. A stream's
    ``fut`` is the task that pumps it; ``turn`` is set when the slot reaches the head,
    the moment the stream may write; ``end`` says why it was asked to stop early.
    ``index`` is not negative when ``fut`` is shared: the answer is that item of its list.
    A msgspec Struct: built in C, one per request answered later.
    """

    id: Any
    op: str
    value: Any = None
    error: ActorbusError | None = None
    fut: asyncio.Future[Any] | None = None
    index: int = -1
    turn: asyncio.Future[None] | None = None
    end: str | None = None
    started: bool = False


class AnswerEncoder:
    """Encodes answers and stream items into one buffer, taken whole for one write.

    Attributes:
        buffer: What was encoded and not yet taken.
    """

    __slots__ = ("_counters", "_statuses", "_writer", "buffer")

    def __init__(
        self, framing: Framing, counters: Counters, statuses: Mapping[str, int] | None = None
    ) -> None:
        self._writer = FrameWriter(framing)
        self._counters = counters
        self._statuses = statuses or None
        self.buffer = bytearray()

    def answer(self, rid: Any, op: str, value: Any, error: ActorbusError | None) -> None:
        """Encode the response to request ``rid`` (an unencodable result answers 500).

        A success is answered with the op's status from ``statuses`` (200 if none),
        unless the handler returned a :class:`Result` naming its own.
        """
        counters = self._counters
        counters.frames_out += 1
        if error is None:
            status = 200 if self._statuses is None else self._statuses.get(op, 200)
            if type(value) is Result:
                status = value.status
                value = value.value
            try:
                self._writer.add(Response(rid, True, status, value), self.buffer)
                return
            except Exception as exc:
                error = internal_error(exc, op, "its result could not be encoded")
        errors = counters.errors
        errors[error.code] = errors.get(error.code, 0) + 1
        body = ErrorBody(error.code, error.message)
        self._writer.add(Response(rid, False, error.status, error=body), self.buffer)

    def answer_parts(self, pending: deque[Slot], fut: asyncio.Future[Any]) -> int:
        """Answer the run of slots at the head of ``pending`` that are parts of ``fut``.

        ``fut`` completed with a list; each slot's answer is its item (an exception
        instance answers that slot with the error). The slots answered are popped.

        Returns:
            How many were answered.
        """
        results = fut.result()
        answered = 0
        while pending:
            slot = pending[0]
            if slot.fut is not fut:
                break
            try:
                value = results[slot.index]
            except Exception:  # a shared reply without this slot's item: settle says so
                settle(slot, fut)
                self.answer(slot.id, slot.op, slot.value, slot.error)
            else:
                if isinstance(value, BaseException):
                    settle(slot, fut)
                    self.answer(slot.id, slot.op, slot.value, slot.error)
                else:
                    self.answer(slot.id, slot.op, value, None)
            pending.popleft()
            answered += 1
        return answered

    def events(self, rid: Any, items: list[Any]) -> None:
        """Encode stream items as event messages of the stream ``rid``."""
        for item in items:
            try:
                self._writer.add(EventMessage(OP_EVENT, rid, item), self.buffer)
            except Exception as exc:
                log.error("dropped a stream item that cannot be encoded: %s", type(exc).__name__)
                continue
            self._counters.frames_out += 1

    def take(self) -> bytes:
        """Return what was encoded and empty the buffer for the next batch."""
        # A copy: the transport may keep what it could not send yet, and the buffer
        # is reused for the next batch.
        data = bytes(self.buffer)
        self.buffer.clear()
        self._counters.bytes_out += len(data)
        return data


def deferred(out: Any) -> bool:
    """Whether a handler's return is an answer to come rather than the answer itself."""
    return isinstance(out, asyncio.Future) or hasattr(out, "__anext__") or hasattr(out, "__await__")


def settle(slot: Slot, fut: asyncio.Future[Any]) -> None:
    """Move a finished future's outcome into its slot (an error for anything unexpected)."""
    if fut.cancelled():
        slot.error = ShuttingDown("the request was cancelled as the server stopped")
        return
    exc = fut.exception()
    if exc is None:
        if slot.index < 0:
            slot.value = fut.result()
            return
        try:
            value = fut.result()[slot.index]
        except Exception as bad:  # a shared reply without this request's item
            slot.error = internal_error(bad, slot.op, "its shared reply had no answer for it")
            return
        if not isinstance(value, BaseException):
            slot.value = value
            return
        exc = value
    if isinstance(exc, ActorbusError):
        slot.error = exc
    else:
        slot.error = internal_error(exc, slot.op)


def internal_error(
    exc: BaseException, op: str, what: str = "it failed unexpectedly"
) -> InternalError:
    """Log an unexpected failure safely and return the ``InternalError`` that answers it."""
    # The exception's message may quote the request; log its type and where, never its text.
    where = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    log.error("op %s: %s: %s\n%s", op, what, type(exc).__name__, where)
    return InternalError(f"the request failed: {what} (the service logged the details)")


def unknown_op_message(op: str) -> str:
    """The ``UnknownOp`` message: names the op only when it looks like an op name."""
    if not op or len(op) > 64 or not op.replace(".", "").replace("_", "").isalnum():
        return "unknown op"
    return f"unknown op {op!r}"


class StreamSink(Protocol):
    """Where a stream's items go: the connection that opened it."""

    @property
    def write_paused(self) -> bool:
        """Whether writes should wait."""
        ...

    def write_events(self, rid: Any, items: list[Any]) -> None:
        """Write items as event messages of the stream ``rid``."""

    async def wait_writable(self) -> None:
        """Wait until writes may go on."""

    def stream_closed(self, slot: Slot) -> None:
        """The stream's pump is done."""


async def pump_stream(slot: Slot, items: AsyncIterator[Any], sink: StreamSink) -> Any:
    """Write a stream's items once its slot is at the head; return its final result.

    Ends with ``{"events": n}`` when the items run out or the client ended it, raises
    ``ShuttingDown`` when the server ended it, and raises what the items raised (a
    lagging subscription's ``Overloaded``). The items are closed on every path.
    """
    slot.started = True
    sent = 0
    try:
        if slot.end is None:
            assert slot.turn is not None
            await slot.turn
            # A bus Subscription hands over what it buffered without a wait each.
            get_nowait = getattr(items, "get_nowait", None)
            while slot.end is None:
                batch = [await items.__anext__()]
                if get_nowait is not None:
                    while len(batch) < STREAM_BATCH:
                        try:
                            batch.append(get_nowait())
                        except LookupError:
                            break
                sink.write_events(slot.id, batch)
                sent += len(batch)
                if sink.write_paused:
                    await sink.wait_writable()
    except StopAsyncIteration:
        return {"events": sent}
    except asyncio.CancelledError:
        # Our own cancel (end_stream) ends the stream; any other cancel goes on.
        task = asyncio.current_task()
        if slot.end is None or task is None or task.uncancel() > 0:
            raise
    finally:
        sink.stream_closed(slot)
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception as exc:
                log.warning("closing a stream of op %s failed: %s", slot.op, type(exc).__name__)
    if slot.end == "shutdown":
        raise ShuttingDown("the server is shutting down; the stream ended")
    return {"events": sent}


def end_stream(slot: Slot, reason: str) -> None:
    """Ask a stream to end: ``"client"`` (half-close), ``"gone"`` or ``"shutdown"``."""
    if slot.end is not None:
        return
    slot.end = reason
    fut = slot.fut
    # A pump not yet started sees slot.end when it starts: cancelling it now would
    # skip the finally that closes the items.
    if slot.started and fut is not None and not fut.done():
        fut.cancel()
