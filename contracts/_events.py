"""The recording contract: the event head, the envelope and the append result."""

from __future__ import annotations

import msgspec

from ._base import Base

__all__ = ["AppendResult", "Envelope", "EventHead"]


class EventHead(msgspec.Struct, frozen=True):
    """The fields the recorder needs from an event; every other field is kept as sent.

    Decoding an event as ``EventHead`` reads only these four keys and ignores the
    rest, so the recorder can validate without rebuilding the event: the bytes it
    writes are the bytes it received (kept as :class:`msgspec.Raw`).
    """

    record_id: str
    user_id: str
    session_id: str
    source: str


class Envelope(msgspec.Struct, frozen=True):
    """One line of a session log: the write time and the event exactly as received.

    Attributes:
        recorded_at: UTC write time, ISO 8601 with milliseconds and ``Z``.
        event: The producer's event, byte for byte.
    """

    recorded_at: str
    event: msgspec.Raw


class AppendResult(Base, frozen=True, gc=False):
    """The acknowledgement of one append: the producer's id and the write time.

    Not tracked by the garbage collector (two strings cannot form a cycle): one is
    made per event, and untracked objects are cheaper to make and never scanned.
    """

    record_id: str
    recorded_at: str
