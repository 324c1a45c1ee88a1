"""The recording ops: ``session.open``, ``append``, ``append.batch`` and ``subscribe``.

A handler runs as its frame is read and never waits itself: it validates, then
returns what answers later. ``append`` returns the recorder's ``try_append``
awaitable, so appends pipelined on a connection queue in their session writer's
mailbox at once and are written as one batch (group commit). Appends read together
(consecutive frames of one read) are handed over at once by ``append_many``: one
writer message per session, whose reply answers them all. The recorder keeps each
session's order across ops (an append pipelined behind an open or a batch waits for
it); see ``docs/recording.md``.
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import msgspec

from actors import Recorder
from actors.session import Queued
from bus import Part, Request, Result
from contracts import (
    ActorbusError,
    AppendBatchRequest,
    AppendRequest,
    AppendResult,
    RawAppendBatchRequest,
    RawAppendRequest,
    SessionOpenRequest,
    SubscribeRequest,
)

__all__ = ["SessionOps", "batch_item"]

_ENVELOPE = msgspec.json.Decoder()
_EVENT_OF = operator.attrgetter("event")


def _event_of(request: Request) -> Any:
    """An ``append`` request's event: its bytes as sent (JSON Lines) or its value (MessagePack).

    Raises:
        InvalidRequest: The request is malformed.
    """
    if request.framing == "jsonl":
        return bytes(request.decode(RawAppendRequest).event)
    return request.decode(AppendRequest).event


def _parts(outcomes: list[Queued | ActorbusError]) -> list[Part | ActorbusError]:
    """The socket's answer for each queued append: its part of its writer's reply."""
    return [Part(*outcome) if type(outcome) is tuple else outcome for outcome in outcomes]  # type: ignore[arg-type, misc]


def batch_item(outcome: AppendResult | ActorbusError) -> dict[str, Any]:
    """One entry of an ``append.batch`` result: the response object one ``append`` would get."""
    if isinstance(outcome, ActorbusError):
        return {
            "ok": False,
            "status": outcome.status,
            "error": {"code": outcome.code, "message": outcome.message},
        }
    return {"ok": True, "status": 201, "result": outcome}


async def _envelopes(lines: AsyncIterator[bytes], jsonl: bool) -> AsyncIterator[Any]:
    """A session's envelope lines as stream items for the connection's framing.

    JSON Lines embeds each line as it is on disk; MessagePack cannot carry JSON text,
    so each envelope becomes a map there.
    """
    try:
        async for line in lines:
            yield msgspec.Raw(line) if jsonl else _ENVELOPE.decode(line)
    finally:
        aclose = getattr(lines, "aclose", None)
        if aclose is not None:
            await aclose()


class SessionOps:
    """The recording ops of one service.

    Args:
        recorder: The service's recorder.
    """

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def session_open(self, request: Request) -> Awaitable[Any]:
        """``session.open``: 201 ``{"created": true}``, or 200 ``{"created": false}``."""
        req = request.decode(SessionOpenRequest)
        # The recorder holds the session from this call, so appends read after the
        # open wait for it.
        return self._opened(self._recorder.open_session(req.user_id, req.session_id))

    @staticmethod
    async def _opened(created: Awaitable[bool]) -> Any:
        if await created:
            return Result({"created": True}, 201)
        return {"created": False}

    def append(self, request: Request) -> Awaitable[AppendResult]:
        """``append``: 201 ``{"record_id", "recorded_at"}`` once the line reached the kernel.

        Raises:
            InvalidRequest: The request is malformed.
            InvalidEvent: The event breaks the recording contract.
            EventTooLarge: The event's line is over ``max_event_bytes``.
            Overloaded: The session writer's mailbox is full.
        """
        # The writer's reply as it is: no wrapper per event (201 comes from statuses).
        return self._recorder.try_append(_event_of(request))

    def append_many(self, requests: list[Request]) -> list[Any]:
        """``append`` for consecutive appends read together: one writer message per session.

        Each answer is what :meth:`append` would give: a malformed request or an
        invalid event fails alone, the others are written in order.
        """
        recorder = self._recorder
        if requests[0].framing == "jsonl":
            raw = Request.decode_all(requests, RawAppendRequest)
            if raw is not None:  # the usual case: every frame well-formed, one C-level pass
                return _parts(recorder.try_append_many(list(map(bytes, map(_EVENT_OF, raw)))))
        events: list[Any] = []
        outcomes: list[Any] = []
        for request in requests:
            try:
                events.append(_event_of(request))
            except ActorbusError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        if len(events) == len(requests):
            return _parts(recorder.try_append_many(events))
        appended = iter(_parts(recorder.try_append_many(events)) if events else ())
        return [next(appended) if outcome is None else outcome for outcome in outcomes]

    def append_batch(self, request: Request) -> Awaitable[dict[str, Any]]:
        """``append.batch``: 200 ``{"results": [...]}``, one response object per event."""
        events: list[Any]
        if request.framing == "jsonl":
            events = [bytes(raw) for raw in request.decode(RawAppendBatchRequest).events]
        else:
            events = request.decode(AppendBatchRequest).events
        # The recorder holds the batch's sessions from this call until written.
        return self._results(self._recorder.append_batch(events))

    @staticmethod
    async def _results(
        outcomes: Awaitable[list[AppendResult | ActorbusError]],
    ) -> dict[str, Any]:
        return {"results": [batch_item(outcome) for outcome in await outcomes]}

    def subscribe(self, request: Request) -> AsyncIterator[Any]:
        """``subscribe``: stream the session's envelopes as ``event`` messages.

        ``from_start`` sends what is recorded first; ``follow: false`` sends what is
        recorded now and ends with ``{"events": n}``. A followed stream ends when the
        client half-closes or leaves (``{"events": n}``) or the service stops
        (``ShuttingDown``). A session never opened ends it at once with
        ``MissingSessionPath``.
        """
        req = request.decode(SubscribeRequest)
        recorder = self._recorder
        if req.follow:
            lines = recorder.follow(req.user_id, req.session_id, from_start=req.from_start)
        else:
            lines = recorder.replay(req.user_id, req.session_id)
        return _envelopes(lines, request.framing == "jsonl")
