"""The service's socket ops: each decodes its request and hands it to the actor that owns it.

A handler runs as its frame is read and never waits itself: it validates, then
returns what answers later (an actor's reply, a coroutine, a stream), and the
connection answers in request order. ``append`` returns the recorder's
``try_append`` awaitable, so appends pipelined on a connection queue in their
session writer's mailbox at once and are written as one batch (group commit).
Appends read together (consecutive frames of one read) are handed over at once by
``append_many``: one writer message per session, whose reply answers them all.
What must not overtake earlier work waits for it: appends behind their session's
open or batch (:class:`SessionOrder`), a ``live.read`` behind earlier live writes.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from actors import Enrichment, LiveData, Recorder
from actors.session import Exclusive, Queued, SessionOrder, session_key
from bus import BatchHandler, Handler, Part, Request, Result
from contracts import (
    OP_APPEND,
    OP_APPEND_BATCH,
    OP_ENRICH,
    OP_LIVE_READ,
    OP_LIVE_WRITE,
    OP_SESSION_OPEN,
    OP_STATS,
    OP_SUBSCRIBE,
    ActorbusError,
    AppendBatchRequest,
    AppendRequest,
    AppendResult,
    EnrichOpRequest,
    EnrichReport,
    EnrichRequest,
    LiveReadRequest,
    LiveWriteRequest,
    ProviderError,
    RawAppendBatchRequest,
    RawAppendRequest,
    SessionOpenRequest,
    StatsRequest,
    SubscribeRequest,
    decode_enrich_request,
)

if TYPE_CHECKING:
    from ._service import Service

__all__ = ["ServiceOps", "batch_item"]

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


class ServiceOps:
    """The handler table of one service: every op of SPEC section 9.

    Args:
        service: The service whose recorder, live data, enrichment and statistics
            the ops use.
    """

    def __init__(self, service: Service) -> None:
        self._service = service
        self._recorder: Recorder = service.recorder
        self._live: LiveData = service.live
        self._enrichment: Enrichment = service.enrichment
        self._order = SessionOrder(service.bus.loop, self._submit)
        # Live writes accepted and not finished; a live.read waits for those before
        # it, so a client reads what it wrote. Loop thread only.
        self._live_writes: set[asyncio.Future[Any]] = set()

    @staticmethod
    def statuses() -> dict[str, int]:
        """Success statuses other than 200: ``append`` answers 201."""
        return {OP_APPEND: 201}

    def batch_handlers(self) -> dict[str, BatchHandler]:
        """Ops that also take their requests read together: ``append``."""
        return {OP_APPEND: self.append_many}

    def handlers(self) -> dict[str, Handler]:
        """The ops by name (``ping`` is the server's own)."""
        table: dict[str, Callable[[Request], Any]] = {
            OP_SESSION_OPEN: self.session_open,
            OP_APPEND: self.append,
            OP_APPEND_BATCH: self.append_batch,
            OP_LIVE_WRITE: self.live_write,
            OP_LIVE_READ: self.live_read,
            OP_ENRICH: self.enrich,
            OP_STATS: self.stats,
            OP_SUBSCRIBE: self.subscribe,
        }
        return table

    # ---- session recording -----------------------------------------------------------

    def session_open(self, request: Request) -> Awaitable[Any]:
        """``session.open``: 201 ``{"created": true}``, or 200 ``{"created": false}``.

        Appends to the session that arrive while it opens wait for it (``SessionOrder``).
        """
        req = request.decode(SessionOpenRequest)
        order = self._order
        held = order.acquire([(req.user_id, req.session_id)])
        task = asyncio.ensure_future(self._open(req.user_id, req.session_id))
        task.add_done_callback(lambda _: order.release(held))
        return task

    async def _open(self, user_id: str, session_id: str) -> Any:
        if await self._recorder.open_session(user_id, session_id):
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
        event = _event_of(request)
        if self._order:
            held = self._order.hold(event)
            if held is not None:
                return held
        # The writer's reply as it is: no wrapper per event (201 comes from statuses()).
        return self._recorder.try_append(event)

    def append_many(self, requests: list[Request]) -> list[Any]:
        """``append`` for consecutive appends read together: one writer message per session.

        Each answer is what :meth:`append` would give: a malformed request or an
        invalid event fails alone, the others are written in order.
        """
        if self._order:
            # A session is being opened or batch-written: keep each append's own path,
            # which waits behind it.
            return [self._one(request) for request in requests]
        if requests[0].framing == "jsonl":
            raw = Request.decode_all(requests, RawAppendRequest)
            if raw is not None:  # the usual case: every frame well-formed, one C-level pass
                return _parts(self._recorder.try_append_many(list(map(bytes, map(_EVENT_OF, raw)))))
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
            return _parts(self._recorder.try_append_many(events))
        appended = iter(_parts(self._recorder.try_append_many(events)) if events else ())
        return [next(appended) if outcome is None else outcome for outcome in outcomes]

    def _one(self, request: Request) -> Any:
        try:
            return self.append(request)
        except ActorbusError as exc:
            return exc

    def _submit(self, event: Any) -> Awaitable[AppendResult]:
        return self._recorder.try_append(event)

    def append_batch(self, request: Request) -> Awaitable[dict[str, Any]]:
        """``append.batch``: 200 ``{"results": [...]}``, one response object per event."""
        events: list[Any]
        if request.framing == "jsonl":
            events = [bytes(raw) for raw in request.decode(RawAppendBatchRequest).events]
        else:
            events = request.decode(AppendBatchRequest).events
        # The batch holds its sessions until written, so appends sent after it
        # cannot overtake it (its events are queued only when its task runs).
        keys = [key for key in map(session_key, events) if key is not None]
        return self._batch(events, self._order.acquire(keys))

    async def _batch(self, events: list[Any], held: Exclusive) -> dict[str, Any]:
        try:
            if not held.ready.done():
                await held.ready
            outcomes = await self._recorder.append_batch(events) if events else []
        finally:
            self._order.release(held)
        return {"results": [batch_item(outcome) for outcome in outcomes]}

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

    # ---- live data -------------------------------------------------------------------

    def live_write(self, request: Request) -> Awaitable[Any]:
        """``live.write``: ``{"scope", "base", "bytes", "branches", ...}``."""
        req = request.decode(LiveWriteRequest)
        task = asyncio.ensure_future(self._live.write(req.scope, req.data, req.delete))
        self._live_writes.add(task)
        task.add_done_callback(self._live_writes.discard)
        return task

    def live_read(self, request: Request) -> Awaitable[dict[str, Any]]:
        """``live.read``: ``{"data": {...}}``, after the live writes received before it."""
        request.decode(LiveReadRequest)
        return self._read(list(self._live_writes))

    async def _read(self, before: list[asyncio.Future[Any]]) -> dict[str, Any]:
        if before:
            await asyncio.wait(before)
        return {"data": await self._live.read()}

    # ---- enrichment ------------------------------------------------------------------

    def enrich(self, request: Request) -> Awaitable[EnrichReport]:
        """``enrich``: the run's report (SPEC section 9).

        A run in which every item failed is answered ``502 ProviderError`` (the first
        failure's safe message); a run with some failures answers 200 and marks them.
        """
        req = request.decode(EnrichOpRequest)
        return self._enrich(decode_enrich_request(req.request))

    async def _enrich(self, run: EnrichRequest) -> EnrichReport:
        report = await self._enrichment.run(run)
        items = report.items
        if items and all(item.state == "failed" for item in items):
            first = items[0].error
            detail = first.message if first is not None else "the provider failed"
            raise ProviderError(f"every item of run {report.run_id!r} failed: {detail}")
        return report

    # ---- statistics ------------------------------------------------------------------

    def stats(self, request: Request) -> dict[str, Any]:
        """``stats``: ``{"server", "bus", "service"}`` counters."""
        request.decode(StatsRequest)
        return self._service.statistics()
