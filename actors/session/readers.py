"""Reading session logs back: a replay of what is there, and a follow as it grows.

Both read through the store (the IO module), a chunk at a time on a worker thread,
and yield complete lines only: a shared lock on each read waits out any append in
progress, and bytes after the last newline are held back until their line ends.

A follow re-reads the log itself rather than trusting the topic's items: the
session topic only wakes it up. So nothing is missed or repeated between the
replay and the live part, and appends made by other processes (which publish
nothing here) are picked up by a poll every ``poll_s``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from bus import Bus, Subscription
from contracts import ShuttingDown

from .committer import SessionStore
from .events import session_topic

__all__ = ["READ_CHUNK", "follow_lines", "replay_lines"]

#: Bytes read per worker-thread call.
READ_CHUNK = 1 << 20


def _split(carry: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    parts = (carry + data).split(b"\n") if carry else data.split(b"\n")
    tail = parts.pop()
    return [line for line in parts if line], tail


async def _read(store: SessionStore, user_id: str, session_id: str, offset: int) -> bytes:
    return await anyio.to_thread.run_sync(store.read, user_id, session_id, offset, READ_CHUNK)


async def replay_lines(store: SessionStore, user_id: str, session_id: str) -> AsyncIterator[bytes]:
    """Yield each line of the session log (without its newline), oldest first.

    Stops at the end of the log as it stands when the last chunk is read; a
    trailing fragment without a newline is not a line and is not yielded.

    Raises:
        MissingSessionPath: The session directory does not exist.
        RecorderIOError: The log cannot be read.
    """
    offset = 0
    carry = b""
    while True:
        data = await _read(store, user_id, session_id, offset)
        if not data:
            return
        offset += len(data)
        lines, carry = _split(carry, data)
        for line in lines:
            yield line


def _drain(subscription: Subscription) -> None:
    while subscription.pending():
        subscription.get_nowait()


async def follow_lines(
    store: SessionStore,
    bus: Bus,
    user_id: str,
    session_id: str,
    *,
    from_start: bool,
    poll_s: float,
) -> AsyncIterator[bytes]:
    """Yield the log's lines, then each new line as it lands, until the caller stops.

    Args:
        store: Where the log lives.
        bus: The bus whose session topic announces appends made here.
        user_id: The session's user.
        session_id: The session.
        from_start: Replay the existing lines first; otherwise start at the end.
        poll_s: How often to look for appends made by other processes.

    Raises:
        MissingSessionPath: The session directory does not exist.
        RecorderIOError: The log cannot be read.
        ShuttingDown: The bus is closed.
    """
    if bus.closed:
        raise ShuttingDown("the bus is closed")
    # Subscribed before the first read: an append that lands after that read
    # always leaves a wake-up behind. One buffered item is enough to wake us.
    wakeups = bus.topic(session_topic(user_id, session_id)).subscribe(
        max_buffer=1, overflow="drop_newest"
    )
    try:
        offset = 0
        if not from_start:
            offset = await anyio.to_thread.run_sync(store.size, user_id, session_id)
        carry = b""
        while True:
            _drain(wakeups)  # before reading: later appends wake us again
            while data := await _read(store, user_id, session_id, offset):
                offset += len(data)
                lines, carry = _split(carry, data)
                for line in lines:
                    yield line
            with anyio.move_on_after(poll_s):
                try:
                    await wakeups.__anext__()
                except StopAsyncIteration:
                    return  # the bus closed its topics
    finally:
        await wakeups.aclose()
