"""The session backend over a blocking store: one IO thread writes, worker threads read.

:class:`ThreadedSessions` keeps the :class:`~.store.SessionBackend` protocol for any
blocking :class:`~.store.SessionStore` (the file store by default): writes go to the
:class:`~.committer.Committer`'s IO thread, opens and reads to anyio's worker
threads, and followers are woken by the session's topic (``readers.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio

from bus import Bus

from .committer import Committer
from .readers import follow_lines, replay_lines
from .store import Outcome, SessionStore

__all__ = ["ThreadedSessions"]


class ThreadedSessions:
    """A :class:`~.store.SessionBackend` running a blocking store off the loop.

    Args:
        bus: The running bus (its loop, and its session topics for followers).
        store: The blocking store the logs live in.
    """

    #: The recorder's own batch bound is the only bound on a chunk.
    max_chunk_bytes: int | None = None

    def __init__(self, bus: Bus, store: SessionStore) -> None:
        self.bus = bus
        self.store = store
        self.committer = Committer(bus.loop, store)

    def open_session(self, user_id: str, session_id: str) -> Awaitable[bool]:
        """Create the session's place on a worker thread."""
        return asyncio.ensure_future(
            anyio.to_thread.run_sync(self.store.open_session, user_id, session_id)
        )

    def write(
        self,
        user_id: str,
        session_id: str,
        chunks: Sequence[bytes],
        *,
        durable: bool,
        then: Callable[[Outcome], None],
    ) -> None:
        """Queue the write on the committer's IO thread (see ``committer.py``)."""
        self.committer.write(user_id, session_id, chunks, durable=durable, then=then)

    def replay(self, user_id: str, session_id: str) -> AsyncIterator[bytes]:
        """The log's complete lines, read a chunk at a time on a worker thread."""
        return replay_lines(self.store, user_id, session_id)

    def follow(
        self, user_id: str, session_id: str, *, from_start: bool, poll_s: float
    ) -> AsyncIterator[bytes]:
        """Replay, then new lines: woken by the session's topic, polling for other hosts."""
        return follow_lines(
            self.store, self.bus, user_id, session_id, from_start=from_start, poll_s=poll_s
        )
