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
    decode_as,
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
        return bytes(decode_as(request.body, RawAppendRequest, request.framing).event)
    return decode_as(request.body, AppendRequest, request.framing).event


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


class _Following:
    """A followed session's stream: it has no end of its own, so a half-close ends it.

    ``follows`` tells the socket server so (``docs/protocol.md``, "Streams"); a
    ``follow: false`` stream is sent in full whatever the client does after it.
    """

    __slots__ = ("_items",)
    follows = True

    def __init__(self, items: AsyncIterator[Any]) -> None:
        self._items = items

    def __aiter__(self) -> _Following:
        return self

    def __anext__(self) -> Awaitable[Any]:
        return self._items.__anext__()

    async def aclose(self) -> None:
        """Close the envelopes and the follower under them."""
        aclose = getattr(self._items, "aclose", None)
        if aclose is not None:
            await aclose()


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
        # Events acknowledged (written) through these ops, over every door (socket
        # and HTTP): the dashboard's events per second. Counted by the replies' done
        # callbacks on the loop thread; it only grows.
        self.recorded = 0

    def _count_one(self, fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self.recorded += 1

    def _count_many(self, fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self.recorded += sum(1 for item in fut.result() if not isinstance(item, ActorbusError))

    def session_open(self, request: Request) -> Awaitable[Any]:
        """``session.open``: 201 ``{"created": true}``, or 200 ``{"created": false}``."""
        req = decode_as(request.body, SessionOpenRequest, request.framing)
        return self._opened(self.open(req.user_id, req.session_id))

    def open(self, user_id: str, session_id: str) -> Awaitable[bool]:
        """Open a session: whether it created the directory (the op's and HTTP's shared step).

        Raises:
            InvalidEvent: An id is not safe.
        """
        # The recorder holds the session from this call, so appends read after the
        # open wait for it.
        return self._recorder.open_session(user_id, session_id)

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
        return self.append_event(_event_of(request))

    def append_event(self, event: bytes | Any) -> Awaitable[AppendResult]:
        """Append one event (its JSON bytes, or a map): the step ``append`` and HTTP share.

        Raises:
            InvalidEvent: The event breaks the recording contract.
            EventTooLarge: The event's line is over ``max_event_bytes``.
            Overloaded: The session writer's mailbox is full.
        """
        # The writer's reply as it is: no wrapper per event (201 comes from statuses).
        reply = self._recorder.try_append(event)
        watch = getattr(reply, "add_done_callback", None)
        if watch is not None:
            watch(self._count_one)
        return reply

    def append_events(self, events: list[Any]) -> list[Part | ActorbusError]:
        """Append events read together: one writer message per session, one answer each.

        The step ``append_many`` and HTTP's pipelined and bulk appends share: each
        answer is a :class:`~bus.Part` of its writer's reply, or the event's error.
        """
        outcomes = self._recorder.try_append_many(events)
        seen: Any = None
        for outcome in outcomes:
            if type(outcome) is tuple and outcome[0] is not seen:
                # One callback per writer reply, however many events share it.
                seen = outcome[0]
                seen.add_done_callback(self._count_many)
        return _parts(outcomes)

    def append_many(self, requests: list[Request]) -> list[Any]:
        """``append`` for consecutive appends read together: one writer message per session.

        Each answer is what :meth:`append` would give: a malformed request or an
        invalid event fails alone, the others are written in order.
        """
        if requests[0].framing == "jsonl":
            raw = Request.decode_all(requests, RawAppendRequest)
            if raw is not None:  # the usual case: every frame well-formed, one C-level pass
                return self.append_events(list(map(bytes, map(_EVENT_OF, raw))))
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
            return self.append_events(events)
        appended = iter(self.append_events(events) if events else ())
        return [next(appended) if outcome is None else outcome for outcome in outcomes]

    def append_batch(self, request: Request) -> Awaitable[dict[str, Any]]:
        """``append.batch``: 200 ``{"results": [...]}``, one response object per event."""
        events: list[Any]
        if request.framing == "jsonl":
            events = [
                bytes(raw)
                for raw in decode_as(request.body, RawAppendBatchRequest, request.framing).events
            ]
        else:
            events = decode_as(request.body, AppendBatchRequest, request.framing).events
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
        req = decode_as(request.body, SubscribeRequest, request.framing)
        lines = self.envelope_lines(
            req.user_id, req.session_id, follow=req.follow, from_start=req.from_start
        )
        items = _envelopes(lines, request.framing == "jsonl")
        return _Following(items) if req.follow else items

    def envelope_lines(
        self, user_id: str, session_id: str, *, follow: bool, from_start: bool
    ) -> AsyncIterator[bytes]:
        """The session's envelope lines as on disk: what ``subscribe`` and HTTP stream.

        ``follow: false`` gives what is recorded now, from the start.

        Raises:
            InvalidEvent: An id is not safe.
        """
        recorder = self._recorder
        if follow:
            return recorder.follow(user_id, session_id, from_start=from_start)
        return recorder.replay(user_id, session_id)

    async def require_session(self, user_id: str, session_id: str) -> None:
        """Return if the session was opened; a stream checks this before it starts.

        Raises:
            InvalidEvent: An id is not safe.
            MissingSessionPath: The session was never opened.
        """
        lines = self._recorder.replay(user_id, session_id)
        try:
            await anext(aiter(lines), None)
        finally:
            aclose = getattr(lines, "aclose", None)
            if aclose is not None:
                await aclose()
