"""The socket protocol's shapes: framings, op names, requests, responses, stream messages.

A request is a map ``{"id": <any, echoed>, "op": "<name>", ...fields}``. Every
request gets exactly one response, in request order on its connection::

    {"id": ..., "ok": true,  "status": 200, "result": {...}}
    {"id": ..., "ok": false, "status": 400, "error": {"code": "InvalidRequest", "message": "..."}}

A streaming op (``subscribe``) first sends any number of
``{"op": "event", "id": <the subscribe id>, "data": ...}`` messages, then its response.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from ._base import Base

__all__ = [
    "FRAME_HEADER_BYTES",
    "FRAMINGS",
    "OPS",
    "OP_APPEND",
    "OP_APPEND_BATCH",
    "OP_ENRICH",
    "OP_EVENT",
    "OP_LIVE_READ",
    "OP_LIVE_WRITE",
    "OP_PING",
    "OP_SESSION_OPEN",
    "OP_STATS",
    "OP_SUBSCRIBE",
    "ErrorBody",
    "EventMessage",
    "Framing",
    "OpRequest",
    "PingRequest",
    "Response",
    "StatsRequest",
]

#: The two framings a connection may speak, chosen by the first byte the client sends.
Framing = Literal["msgpack", "jsonl"]
FRAMINGS: Final[tuple[Framing, ...]] = ("msgpack", "jsonl")

#: Binary framing: a 4-byte big-endian length precedes each MessagePack frame.
FRAME_HEADER_BYTES: Final = 4

OP_PING: Final = "ping"
OP_SESSION_OPEN: Final = "session.open"
OP_APPEND: Final = "append"
OP_APPEND_BATCH: Final = "append.batch"
OP_LIVE_WRITE: Final = "live.write"
OP_LIVE_READ: Final = "live.read"
OP_ENRICH: Final = "enrich"
OP_STATS: Final = "stats"
OP_SUBSCRIBE: Final = "subscribe"
#: Not a request: the ``op`` of each message a stream sends before its response.
OP_EVENT: Final = "event"

#: Every request op of the protocol (``docs/protocol.md``).
OPS: Final[frozenset[str]] = frozenset(
    {
        OP_PING,
        OP_SESSION_OPEN,
        OP_APPEND,
        OP_APPEND_BATCH,
        OP_LIVE_WRITE,
        OP_LIVE_READ,
        OP_ENRICH,
        OP_STATS,
        OP_SUBSCRIBE,
    }
)


class OpRequest(Base, frozen=True, kw_only=True, tag_field="op"):
    """Base of a typed request: ``op`` is the tag, ``id`` is echoed in the response.

    Subclass it per op with ``tag="<op name>"``; decoding a frame as the subclass
    checks the op, every field and (``forbid_unknown_fields``) that no other is sent.
    """

    id: Any = None


class PingRequest(OpRequest, frozen=True, tag=OP_PING):
    """``ping``: no fields; answered ``{"pong": true}``."""


class StatsRequest(OpRequest, frozen=True, tag=OP_STATS):
    """``stats``: no fields; answered with the server's and the runtime's counters."""


class ErrorBody(Base, frozen=True):
    """What went wrong: the wire code (see ``contracts.ERRORS``) and a safe message."""

    code: str
    message: str


class Response(Base, frozen=True):
    """The one answer to a request; exactly one of ``result`` and ``error`` is present.

    Attributes:
        id: The request's ``id``, echoed as sent (``null`` when it had none).
        ok: Whether the op succeeded.
        status: An HTTP-style status (200, 201, or the error's status).
        result: The op's result, present when ``ok``.
        error: The error, present when not ``ok``.
    """

    id: Any
    ok: bool
    status: int
    result: Any = msgspec.UNSET
    error: ErrorBody | msgspec.UnsetType = msgspec.UNSET


class EventMessage(Base, frozen=True):
    """One item of a stream, sent before the stream's response.

    Attributes:
        op: Always ``"event"``, so a client tells it from a response.
        id: The ``id`` of the request that opened the stream.
        data: The item.
    """

    op: str
    id: Any
    data: Any
