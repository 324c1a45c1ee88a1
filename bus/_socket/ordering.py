"""A request's place in the answer order, and how an outcome becomes an answer.

Streams are in ``streams``; see ``docs/protocol.md`` ("Order, pipelining and bounds").
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

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
    from .state import ServerState

__all__ = [
    "PLAIN",
    "AnswerEncoder",
    "Part",
    "Slot",
    "deferred",
    "internal_error",
    "settle",
    "unknown_op_message",
]

log = logging.getLogger("actorbus.server")

#: Results that are answers as they are: the fast path skips the awaitable checks.
PLAIN: Final = frozenset({dict, list, str, int, float, bool, type(None), Result})


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
    ``reserved`` is the bytes its connection counts for the answer until it is encoded.
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
    reserved: int = 0


class AnswerEncoder:
    """Encodes answers and stream items into one buffer, taken whole for one write.

    Attributes:
        buffer: What was encoded and not yet taken.
    """

    __slots__ = ("_sent", "_state", "_statuses", "_writer", "buffer")

    def __init__(self, framing: Framing, state: ServerState) -> None:
        self._writer = FrameWriter(framing)
        self._state = state
        # Messages encoded since the last take, counted in the state record then.
        self._sent = 0
        self._statuses: Mapping[str, int] | None = state.statuses or None
        self.buffer = bytearray()

    def answer(self, rid: Any, op: str, value: Any, error: ActorbusError | None) -> None:
        """Encode the response to request ``rid`` (an unencodable result answers 500).

        A success is answered with the op's status from ``statuses`` (200 if none),
        unless the handler returned a :class:`Result` naming its own.
        """
        self._sent += 1
        start = len(self.buffer)
        if error is None:
            status = 200 if self._statuses is None else self._statuses.get(op, 200)
            if type(value) is Result:
                status = value.status
                value = value.value
            try:
                self._writer.add(Response(rid, True, status, value), self.buffer)
                self._state.learn(op, len(self.buffer) - start)
                return
            except Exception as exc:
                error = internal_error(exc, op, "its result could not be encoded")
        self._state.failed(error.code)
        body = ErrorBody(error.code, error.message)
        self._writer.add(Response(rid, False, error.status, error=body), self.buffer)
        self._state.learn(op, len(self.buffer) - start)

    def answer_parts(self, pending: deque[Slot], fut: asyncio.Future[Any]) -> tuple[int, int]:
        """Answer the run of slots at the head of ``pending`` that are parts of ``fut``.

        ``fut`` completed with a list; each slot's answer is its item (an exception
        instance answers that slot with the error). The slots answered are popped.

        Returns:
            How many were answered, and the bytes they had reserved.
        """
        results = fut.result()
        answered = 0
        reserved = 0
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
            reserved += slot.reserved
            pending.popleft()
            answered += 1
        return answered, reserved

    def events(self, rid: Any, items: list[Any]) -> None:
        """Encode stream items as event messages of the stream ``rid``."""
        for item in items:
            try:
                self._writer.add(EventMessage(OP_EVENT, rid, item), self.buffer)
            except Exception as exc:
                log.error("dropped a stream item that cannot be encoded: %s", type(exc).__name__)
                continue
            self._sent += 1

    def take(self) -> bytes:
        """Return what was encoded and empty the buffer for the next batch."""
        # A copy: the transport may keep what it could not send yet, and the buffer
        # is reused for the next batch.
        data = bytes(self.buffer)
        self.buffer.clear()
        self._state.sent(self._sent, len(data))
        self._sent = 0
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


def unknown_op_message(op: str, served: Iterable[str] = ()) -> str:
    """The ``UnknownOp`` message, which never repeats what the client sent.

    An op this server does not serve is whatever the client put there (a token
    pasted in the wrong place), so the message lists the ops the server does serve,
    which are its own names (``docs/protocol.md``, "Errors").
    """
    names = sorted(served)
    if not names:
        return "unknown op"
    return "unknown op (the ops are: " + ", ".join(names) + ")"
