"""What the recorder needs of the place session logs live.

Two protocols, one per side of a round trip:

- :class:`SessionBackend` is what the recorder and its writers call, on the event
  loop: open a session, write chunks (the outcome comes back through a callback),
  replay and follow. Two backends keep it: :class:`~actors.session.ThreadedSessions`
  runs a blocking :class:`SessionStore` on the committer's IO thread, and
  :class:`~actors.session.JetStreamSessions` talks to NATS JetStream.
- :class:`SessionStore` is the blocking store the threaded backend runs:
  :class:`~actors.FileSessionStore` (``file_store.py``) is its one implementation,
  and what is particular to it (the log's flock, waiting for another process's
  lock) stays there.

The contract each call keeps is in ``docs/recording.md``; the JetStream mapping in
``docs/scale-out.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import NamedTuple, Protocol

from contracts import ActorbusError

__all__ = ["LogWindow", "Outcome", "SessionBackend", "SessionStore"]

#: How many chunks were written, and the error that stopped the rest (or None).
Outcome = tuple[int, ActorbusError | None]


class LogWindow(NamedTuple):
    """What one read of a session log saw, all from one open descriptor.

    Attributes:
        data: The bytes read from the requested offset.
        size: The log's length when it was read (under the shared lock).
        identity: Which log was read (for a file, device and inode): a log
            replaced by another (a rotation by rename) has another identity.
    """

    data: bytes
    size: int
    identity: tuple[int, int]


class SessionStore(Protocol):
    """Where session logs live. Every method blocks; call them off the event loop.

    Appends come in two forms: :meth:`try_append` for the committer's IO thread,
    which must never wait behind another holder of the log, and :meth:`append`,
    which waits as long as the store needs, on a thread of its own.
    """

    def open_session(self, user_id: str, session_id: str) -> bool:
        """Create the session's place; return whether this call created it."""
        ...

    def append(
        self, user_id: str, session_id: str, chunks: Sequence[bytes], *, durable: bool
    ) -> Outcome:
        """Append chunks of complete lines, waiting for the log if another holds it.

        A failed chunk leaves nothing behind; the outcome says how many were written.
        """
        ...

    def try_append(
        self, user_id: str, session_id: str, chunks: Sequence[bytes], *, durable: bool
    ) -> Outcome | None:
        """As :meth:`append`, but ``None`` (nothing written) where it would have to wait."""
        ...

    def read(self, user_id: str, session_id: str, offset: int, limit: int) -> bytes:
        """Read up to ``limit`` bytes of the log from ``offset``."""
        ...

    def size(self, user_id: str, session_id: str) -> int:
        """The log's length in bytes."""
        ...

    def window(self, user_id: str, session_id: str, offset: int, limit: int) -> LogWindow:
        """Read from ``offset`` with the log's size and identity; see :class:`LogWindow`."""
        ...


class SessionBackend(Protocol):
    """Session logs as the recorder sees them: every call is made on the event loop.

    Attributes:
        max_chunk_bytes: The most one written chunk may hold (``None``: no bound
            beyond the recorder's own batch bound).
    """

    max_chunk_bytes: int | None

    def open_session(self, user_id: str, session_id: str) -> Awaitable[bool]:
        """Create the session; the awaitable gives whether this call created it."""
        ...

    def write(
        self,
        user_id: str,
        session_id: str,
        chunks: Sequence[bytes],
        *,
        durable: bool,
        then: Callable[[Outcome], None],
    ) -> None:
        """Write chunks of complete lines in order; ``then(outcome)`` runs on the loop after.

        A session's writes are made in the order this is called. A chunk is written
        whole or not at all; the outcome says how many chunks were written and the
        error that stopped the rest. ``then`` must not raise.
        """
        ...

    def replay(self, user_id: str, session_id: str) -> AsyncIterator[bytes]:
        """Iterate the session's lines (no newline), oldest first, to the end as it stands."""
        ...

    def follow(
        self, user_id: str, session_id: str, *, from_start: bool, poll_s: float
    ) -> AsyncIterator[bytes]:
        """Iterate the session's lines, then new ones as they land, until the caller stops."""
        ...
