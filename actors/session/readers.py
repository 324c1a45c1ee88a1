"""Reading session logs back: a replay of what is there, and a follow as it grows.

Both read through the store (the IO module), a chunk at a time on a worker thread,
and yield complete lines only: a shared lock on each read waits out any append in
progress, and bytes after the last newline are held back until their line ends.

A follow re-reads the log itself rather than trusting the topic's items: the
session topic only wakes it up. So nothing is missed or repeated between the
replay and the live part, and appends made by other processes (which publish
nothing here) are picked up by a poll every ``poll_s``.

A reader also checks, on every read, that the log is still the one it was
reading: the same file (device and inode) and, byte for byte, the same last line
before its position. A log replaced under it (a rotation by rename) or cut
under it (a rotation by copy and truncate, even one that has grown back past
the reader's position) ends the stream with a typed error instead of yielding a
fragment or silently skipping lines; ``docs/recording.md`` says which rotations
are safe for followers and how a subscriber resumes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from bus import Bus, Subscription
from contracts import MissingSessionPath, RecorderIOError, ShuttingDown

from .events import session_topic
from .store import LogWindow, SessionStore

__all__ = ["READ_CHUNK", "LogCursor", "follow_lines", "replay_lines"]

#: Bytes read per worker-thread call.
READ_CHUNK = 1 << 20
#: How far back a follow that starts at the end looks for the last line.
_TAIL_BYTES = 4096
_RESUME = (
    "; it ends here: read the rotated copy for lines after the last one received, "
    "then subscribe again"
)


def _split(carry: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    parts = (carry + data).split(b"\n") if carry else data.split(b"\n")
    tail = parts.pop()
    return [line for line in parts if line], tail


class LogCursor:
    """A reader's place in one session log, checked against the log on every read.

    The cursor keeps the bytes of the log just before its position (the last
    complete line read and any partial line after it) and where they start; each
    read starts there, so one read both checks them and goes on. Loop thread only.

    Args:
        store: Where the log lives.
        user_id: The session's user.
        session_id: The session.
    """

    __slots__ = (
        "_anchor",
        "_carry",
        "_identity",
        "_skip",
        "_start",
        "session_id",
        "store",
        "user_id",
    )

    def __init__(self, store: SessionStore, user_id: str, session_id: str) -> None:
        self.store = store
        self.user_id = user_id
        self.session_id = session_id
        # The file read so far (None before the first read), where the anchor starts
        # in it, the anchor (the log's bytes from there to the position), the bytes
        # after the last newline, and whether those are the tail of a line whose
        # start was never read (only when starting at the end of a damaged log).
        self._identity: tuple[int, int] | None = None
        self._start = 0
        self._anchor = b""
        self._carry = b""
        self._skip = False

    async def _window(self, offset: int, limit: int) -> LogWindow:
        try:
            window: LogWindow = await anyio.to_thread.run_sync(
                self.store.window, self.user_id, self.session_id, offset, limit
            )
        except MissingSessionPath:
            if self._identity is None:
                raise
            raise MissingSessionPath(
                "the session log was removed under this reader (rotated away)" + _RESUME
            ) from None
        if self._identity is None:
            self._identity = window.identity
        elif window.identity != self._identity:
            raise RecorderIOError(
                "the session log was replaced under this reader (a rotation by rename)" + _RESUME
            )
        return window

    async def seek_end(self) -> None:
        """Start at the end of the log as it is now (lines to come only)."""
        size = (await self._window(0, 0)).size
        start = max(0, size - _TAIL_BYTES)
        data = (await self._window(start, size - start)).data
        if len(data) != size - start:
            raise RecorderIOError("the session log was truncated under this reader" + _RESUME)
        last = data.rfind(b"\n")
        self._carry = data[last + 1 :]
        # A partial line whose start lies before the bytes looked at is never yielded.
        self._skip = last < 0 and start > 0
        self._keep(start, data)

    def _keep(self, start: int, seen: bytes) -> None:
        """Keep as anchor the last complete line of ``seen`` (at ``start``) and the carry."""
        end = len(seen) - len(self._carry)  # just after the last newline, if any
        if end > 0:
            cut = seen.rfind(b"\n", 0, end - 1) + 1
            start += cut
            seen = seen[cut:]
        self._start = start
        self._anchor = seen

    async def read(self) -> list[bytes] | None:
        """The complete lines appended since the last read; ``None`` when nothing new.

        Raises:
            MissingSessionPath: The session was never opened, or its log was removed.
            RecorderIOError: The log cannot be read, or was replaced or truncated.
        """
        anchor = self._anchor
        window = await self._window(self._start, len(anchor) + READ_CHUNK)
        data = window.data
        if not data.startswith(anchor):
            raise RecorderIOError(
                "the session log was truncated under this reader (a rotation by copy and "
                "truncate)" + _RESUME
            )
        new = data[len(anchor) :]
        if not new:
            return None
        lines, self._carry = _split(self._carry, new)
        if self._skip and lines:
            self._skip = False
            del lines[0]
        self._keep(self._start, data)
        return lines


async def replay_lines(store: SessionStore, user_id: str, session_id: str) -> AsyncIterator[bytes]:
    """Yield each line of the session log (without its newline), oldest first.

    Stops at the end of the log as it stands when the last chunk is read; a
    trailing fragment without a newline is not a line and is not yielded.

    Raises:
        MissingSessionPath: The session was never opened (no log).
        RecorderIOError: The log cannot be read, or was rotated during the replay.
    """
    cursor = LogCursor(store, user_id, session_id)
    while (lines := await cursor.read()) is not None:
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
        MissingSessionPath: The session was never opened, or its log was removed
            while followed.
        RecorderIOError: The log cannot be read, or was replaced or truncated while
            followed (a rotation): the stream ends rather than skip or split lines.
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
        cursor = LogCursor(store, user_id, session_id)
        if not from_start:
            await cursor.seek_end()
        while True:
            _drain(wakeups)  # before reading: later appends wake us again
            while (lines := await cursor.read()) is not None:
                for line in lines:
                    yield line
            with anyio.move_on_after(poll_s):
                try:
                    await wakeups.__anext__()
                except StopAsyncIteration:
                    return  # the bus closed its topics
    finally:
        await wakeups.aclose()
