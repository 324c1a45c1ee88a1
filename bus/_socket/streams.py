"""Streams: a handler's async iterator written as ``event`` messages, in its place in the order.

A stream's slot reaches the head of its connection's answer order, then
:func:`pump_stream` writes its items as they come, waiting while the connection is
blocked (the peer does not read, or a bytes bound is reached), and returns the
stream's final answer. A client's half-close ends only the streams that follow a
source with no end of its own (:func:`follows`); any other stream is sent in full.
See ``docs/protocol.md`` ("Streams").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final, Literal, Protocol

from contracts import ShuttingDown

from .ordering import Slot

__all__ = ["STREAM_BATCH", "StreamSink", "Streams", "end_stream", "follows", "pump_stream"]

log = logging.getLogger("actorbus.server")

#: Stream items written with one call at most.
STREAM_BATCH: Final = 256

#: Why a stream was asked to end early: the client half-closed, it went away, or
#: the server is stopping.
EndReason = Literal["client", "gone", "shutdown"]


def follows(items: object) -> bool:
    """Whether a stream follows a source with no end of its own (a half-close ends it).

    A stream says so with a true ``follows`` attribute; a bus topic subscription
    (it has ``get_nowait``) follows. Any other stream ends by itself.
    """
    flag = getattr(items, "follows", None)
    if flag is not None:
        return bool(flag)
    return hasattr(items, "get_nowait")


class StreamSink(Protocol):
    """Where a stream's items go: the connection that opened it."""

    def blocked(self) -> bool:
        """Whether writes should wait (the peer does not read, or a bound is reached)."""
        ...

    def write_events(self, rid: Any, items: list[Any]) -> None:
        """Write items as event messages of the stream ``rid``."""

    async def wait_writable(self) -> None:
        """Wait until writes may go on."""

    def stream_closed(self, slot: Slot) -> None:
        """The stream's pump is done."""


class Streams:
    """The streams open on one connection, with whether each follows."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[Slot, bool] = {}

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Slot]:
        return iter(list(self._open))

    def add(self, slot: Slot, items: object) -> None:
        """A stream opened in ``slot``."""
        self._open[slot] = follows(items)

    def discard(self, slot: Slot) -> None:
        """A stream's pump finished."""
        self._open.pop(slot, None)

    def end(self, reason: EndReason, *, following_only: bool = False) -> None:
        """Ask every stream (or every one that follows) to end for ``reason``."""
        for slot, following in list(self._open.items()):
            if following or not following_only:
                end_stream(slot, reason)


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
                # Nothing is taken from the source while the peer does not read.
                while sink.blocked():
                    await sink.wait_writable()
                batch = [await items.__anext__()]
                if get_nowait is not None:
                    while len(batch) < STREAM_BATCH:
                        try:
                            batch.append(get_nowait())
                        except LookupError:
                            break
                sink.write_events(slot.id, batch)
                sent += len(batch)
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


def end_stream(slot: Slot, reason: EndReason) -> None:
    """Ask a stream to end: ``"client"`` (half-close), ``"gone"`` or ``"shutdown"``."""
    if slot.end is not None:
        return
    slot.end = reason
    fut = slot.fut
    # A pump not yet started sees slot.end when it starts: cancelling it now would
    # skip the finally that closes the items.
    if slot.started and fut is not None and not fut.done():
        fut.cancel()
