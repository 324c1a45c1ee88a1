"""The service ops' requests: one typed :class:`~contracts.OpRequest` per op (``docs/protocol.md``).

A handler decodes its frame with the op's type, so a missing, mistyped or unknown
field is ``InvalidRequest`` before any actor sees it. Two ops have a JSON Lines twin
whose events are :class:`msgspec.Raw`: the bytes the client sent, kept byte for byte
for the session log. MessagePack carries no JSON text, so its twin decodes the event
to a value (a map, or the event's JSON text as a ``bin``, which is kept as sent).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._protocol import (
    OP_APPEND,
    OP_APPEND_BATCH,
    OP_ENRICH,
    OP_LIVE_READ,
    OP_LIVE_WRITE,
    OP_SESSION_OPEN,
    OP_SUBSCRIBE,
    OpRequest,
)

__all__ = [
    "AppendBatchRequest",
    "AppendRequest",
    "EnrichOpRequest",
    "LiveReadRequest",
    "LiveWriteRequest",
    "RawAppendBatchRequest",
    "RawAppendRequest",
    "SessionOpenRequest",
    "SubscribeRequest",
]


class SessionOpenRequest(OpRequest, frozen=True, tag=OP_SESSION_OPEN):
    """``session.open``: create the session's directory (201 created, 200 existed)."""

    user_id: str
    session_id: str


class AppendRequest(OpRequest, frozen=True, tag=OP_APPEND):
    """``append`` over MessagePack: the event as a map, or its JSON text as ``bin``."""

    event: Any


class RawAppendRequest(OpRequest, frozen=True, tag=OP_APPEND):
    """``append`` over JSON Lines: the event's bytes exactly as sent."""

    event: msgspec.Raw


class AppendBatchRequest(OpRequest, frozen=True, tag=OP_APPEND_BATCH):
    """``append.batch`` over MessagePack: events as maps (or JSON text as ``bin``)."""

    events: list[Any]


class RawAppendBatchRequest(OpRequest, frozen=True, tag=OP_APPEND_BATCH):
    """``append.batch`` over JSON Lines: each event's bytes exactly as sent."""

    events: list[msgspec.Raw]


class LiveWriteRequest(OpRequest, frozen=True, tag=OP_LIVE_WRITE):
    """``live.write``: ``data`` shaped like the whole document, holding the scope's branches.

    Attributes:
        scope: ``full``, ``host-local``, ``trend-finder`` or a configured scope.
        data: The branches to write.
        delete: Remove owned branches that ``data`` leaves out.
    """

    scope: str
    data: dict[str, Any]
    delete: bool = False


class LiveReadRequest(OpRequest, frozen=True, tag=OP_LIVE_READ):
    """``live.read``: no fields; answered ``{"data": {...}}``."""


class EnrichOpRequest(OpRequest, frozen=True, tag=OP_ENRICH):
    """``enrich``: ``request`` is checked by :func:`~contracts.decode_enrich_request`."""

    request: Any


class SubscribeRequest(OpRequest, frozen=True, tag=OP_SUBSCRIBE):
    """``subscribe``: stream a session's envelopes as they are recorded.

    Attributes:
        user_id: The session's user.
        session_id: The session.
        from_start: Send the envelopes already recorded first, then new ones.
        follow: Keep streaming new envelopes; ``False`` sends what is recorded now
            (from the start) and ends the stream.
    """

    user_id: str
    session_id: str
    from_start: bool = False
    follow: bool = True
