"""The recorder: the Python boundary of session recording.

It validates every event before any writer sees it (so a bad event creates
nothing and costs no thread hop), routes it to the session's
:class:`~actors.SessionWriter`, and returns the writer's acknowledgement. It also
opens sessions (through the session manager) and reads logs back.

Three layers, each in its own module: this boundary (validation, errors), the
writer actor (order, batching, acknowledgement) and the IO module (open, lock,
write, close), which alone touches the files.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Any, cast

from bus import ActorRef, Bus
from contracts import ActorbusError, AppendResult, RecorderConfig

from .events import EventCheck, check_id
from .file_store import FileSessionStore
from .order import Exclusive, SessionOrder
from .store import SessionBackend, SessionStore
from .threaded import ThreadedSessions
from .writer import Append, AppendBatch, SessionWriter, WriterSettings

__all__ = ["Queued", "Recorder"]

#: An event queued by :meth:`Recorder.try_append_many`: its answer is item ``index``
#: of the list the future gives (the reply its session's writer makes for the batch).
Queued = tuple[Awaitable[list[AppendResult | ActorbusError]], int]
#: Valid events grouped by session: their places in the request, bytes and record ids.
_Groups = dict[tuple[str, str], tuple[Sequence[int], list[bytes], list[str]]]

Event = bytes | Mapping[str, Any]

# Session writer references kept for reuse; a bound, not a cache that must hit.
_REFS_MAX = 1024


_RECORD_ID_OF = operator.attrgetter("record_id")


class Recorder:
    """Records events into per-session JSON Lines logs under ``root``.

    Creating a recorder registers the :class:`~actors.SessionWriter` keyed kind on
    ``bus`` (one recorder per bus).

    Args:
        bus: The running bus the writers live on.
        root: The service root; logs go to ``<root>/logs/users/<u>/sessions/<s>.jsonl``.
        config: Line bound, durability and batch bounds.
        clock: Returns the current time in UTC, for ``recorded_at`` (default: the
            system clock).
        store: The blocking store logs live in (default: files under ``root``),
            run on an IO thread.
        backend: Where logs live, when not a blocking store (JetStream); takes
            the place of ``store``.
        idle_s: Passivate a session's writer idle this long (default: the bus's).
        max_live: Bound on live writers (default: the bus's).
        mailbox_size: Each writer's mailbox bound (default: the bus's).

    Errors raised by the calls below are the wire errors of :mod:`contracts`:
    ``InvalidEvent`` 400, ``MissingSessionPath`` 409, ``EventTooLarge`` 413,
    ``RecorderIOError`` 500, ``Overloaded`` and ``ShuttingDown`` 503.
    """

    def __init__(
        self,
        bus: Bus,
        root: Path,
        config: RecorderConfig,
        clock: Callable[[], datetime] | None = None,
        *,
        store: SessionStore | None = None,
        backend: SessionBackend | None = None,
        idle_s: float | None = None,
        max_live: int | None = None,
        mailbox_size: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.config = config
        self._bus = bus
        if backend is None:
            backend = ThreadedSessions(
                bus, store if store is not None else FileSessionStore(self.root)
            )
        self.backend = backend
        checker = EventCheck(config.max_event_bytes)
        self._check = checker.check
        self._check_batch = checker.check_batch
        self._plain_batch = checker.plain_batch
        # Writer references by (user_id, session_id); loop thread only.
        self._refs: dict[tuple[str, str], ActorRef] = {}
        # Sessions held by an open or a batch in progress, and the appends that
        # arrived behind them (see order.py); loop thread only.
        self._order = SessionOrder(bus.loop, self._try_append_now)
        batch_max_bytes = config.batch_max_bytes
        if backend.max_chunk_bytes is not None:
            batch_max_bytes = min(batch_max_bytes, backend.max_chunk_bytes)
        settings = WriterSettings(
            bus,
            backend,
            clock,
            durable=config.durability == "fsync",
            batch_max_events=config.batch_max_events,
            batch_max_bytes=batch_max_bytes,
        )
        bus.register(
            SessionWriter,
            lambda key: SessionWriter(key, settings),
            idle_s=idle_s,
            max_live=max_live,
            mailbox_size=mailbox_size,
        )

    def open_session(self, user_id: str, session_id: str) -> Awaitable[bool]:
        """Create the session (for files, its directory): the only way one is created.

        The session is held from this call until it exists: appends to
        it made meanwhile (pipelined behind the open on a connection) wait and then
        go in the order they were made, so none fails ``MissingSessionPath``.

        Returns:
            An awaitable of True when this call created it, False when it existed.

        Raises:
            InvalidEvent: An id is not safe; nothing is created.
            RecorderIOError: The directory cannot be created (from the awaitable).
        """
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        order = self._order
        held = order.acquire([(user_id, session_id)])
        task = asyncio.ensure_future(self.backend.open_session(user_id, session_id))
        task.add_done_callback(lambda _: order.release(held))
        return task

    def append(self, event: Event) -> Awaitable[AppendResult]:
        """Record one event; the awaitable completes once its line was handed to the kernel.

        Validation happens in the call, so an invalid event raises at once;
        awaiting the result waits for room in the writer's mailbox and for the write.

        Args:
            event: One JSON object as received (kept byte for byte), or a decoded
                mapping (encoded once).

        Returns:
            An awaitable of ``{record_id, recorded_at}``.

        Raises:
            InvalidEvent: The event breaks the recording contract; nothing is written.
            EventTooLarge: Its line exceeds ``max_event_bytes``; nothing is written.
            MissingSessionPath: The session was never opened; nothing is created.
            RecorderIOError: The write failed; no partial line was left.
            ShuttingDown: The bus is closing.
        """
        if self._order:
            held = self._order.hold(event)
            if held is not None:
                return held
        raw, head = self._check(event)
        ref = self._refs.get((head.user_id, head.session_id))
        if ref is None:
            ref = self._writer(head.user_id, head.session_id)
        reply: Awaitable[AppendResult] = ref.ask(Append(raw, head.record_id))
        return reply

    def try_append(self, event: Event) -> Awaitable[AppendResult]:
        """Queue one event now, or fail at once; await the result for the acknowledgement.

        Raises:
            Overloaded: The session's mailbox is full (nothing queued).
            InvalidEvent: As for :meth:`append`, raised here.
            EventTooLarge: As for :meth:`append`, raised here.
        """
        if self._order:
            held = self._order.hold(event)
            if held is not None:
                return held
        return self._try_append_now(event)

    def _try_append_now(self, event: Event) -> Awaitable[AppendResult]:
        raw, head = self._check(event)
        reply: Awaitable[AppendResult] = self._writer(head.user_id, head.session_id).try_ask(
            Append(raw, head.record_id)
        )
        return reply

    def try_append_many(self, events: Sequence[Event]) -> list[Queued | ActorbusError]:
        """Queue many events now, as one writer message per session; one outcome per event.

        Each valid event's outcome is a :data:`Queued` pair ``(fut, index)``: its
        answer is item ``index`` of the list ``fut`` gives, the reply of its session's
        writer (an ``AppendResult`` or the error), once written. An invalid event's
        outcome is its error, and it fails alone. Events of one session are queued in
        the order given, behind what that session already has queued. This is how a
        socket connection passes on the appends of one read.

        A session whose writer's mailbox is full gets ``Overloaded`` for its events
        (nothing of them queued); the other sessions' events are queued.
        """
        if self._order:
            # A session is being opened or batch-written: each event takes its own
            # path, which waits behind its session's holder.
            return list(map(self._queue_one, events))
        outcomes: list[Queued | ActorbusError | None] = [None] * len(events)
        for key, (indices, raws, ids) in self._group(events, outcomes).items():
            try:
                fut = self._writer(*key).try_ask(AppendBatch(raws, ids))
            except ActorbusError as exc:
                for index in indices:
                    outcomes[index] = type(exc)(exc.message)
                continue
            if len(indices) == len(events):  # one session, every event valid
                return list(zip(repeat(fut), indices))
            for at, index in enumerate(indices):
                outcomes[index] = (fut, at)
        return cast(list[Queued | ActorbusError], outcomes)

    def _group(self, events: Sequence[Event], outcomes: list[Any]) -> _Groups:
        """Validate ``events``; group the valid ones by session, errors into ``outcomes``.

        Per session, in order: the events' places in ``events``, their bytes and
        their ids. The common batch (plain events, one session) is validated in
        C-level passes and makes one group without a Python loop per event.
        """
        one, heads = self._plain_batch(events)
        if one is not None:
            session, record_ids = one
            plain = cast(list[bytes], list(events))  # plain_batch takes only bytes
            return {session: (range(len(events)), plain, record_ids)}
        groups: _Groups = {}
        key: tuple[str, str] | None = None
        places: list[int] = []
        raws: list[bytes] = []
        ids: list[str] = []
        for index, checked in enumerate(self._check_batch(events, heads)):
            if isinstance(checked, ActorbusError):
                outcomes[index] = checked
                continue
            raw, head = checked
            if key is None or head.session_id != key[1] or head.user_id != key[0]:
                key = (head.user_id, head.session_id)
                if key not in groups:
                    groups[key] = ([], [], [])
                places, raws, ids = groups[key]  # type: ignore[assignment]
            places.append(index)
            raws.append(raw)
            ids.append(head.record_id)
        return groups

    def _queue_one(self, event: Event) -> Queued | ActorbusError:
        try:
            reply = self.try_append(event)
        except ActorbusError as exc:
            return exc
        listed: asyncio.Future[list[AppendResult | ActorbusError]] = self._bus.loop.create_future()
        asyncio.ensure_future(reply).add_done_callback(partial(_as_list, listed))
        return (listed, 0)

    def append_batch(
        self, events: Sequence[Event]
    ) -> Awaitable[list[AppendResult | ActorbusError]]:
        """Record many events; return one result or error per event, in order.

        An invalid event fails alone. Events of one session are written in the
        order given, as one message to its writer, queued in this call, so what is
        appended after the call is written after the batch. A session being opened
        holds the batch until it exists.
        """
        results: list[AppendResult | ActorbusError | None] = [None] * len(events)
        groups = self._group(events, results)
        order = self._order
        if order and order.holds_any(groups):
            return asyncio.ensure_future(self._held_batch(groups, results, order.acquire(groups)))
        asks = [
            self._writer(*key).ask(AppendBatch(raws, ids)) for key, (_, raws, ids) in groups.items()
        ]
        return self._gathered(groups, results, asks)

    async def _held_batch(
        self, groups: _Groups, results: list[Any], held: Exclusive
    ) -> list[AppendResult | ActorbusError]:
        try:
            if not held.ready.done():
                await held.ready
            asks = [
                self._writer(*key).ask(AppendBatch(raws, ids))
                for key, (_, raws, ids) in groups.items()
            ]
            return await self._gathered(groups, results, asks)
        finally:
            self._order.release(held)

    @staticmethod
    async def _gathered(
        groups: _Groups, results: list[Any], asks: list[Awaitable[Any]]
    ) -> list[AppendResult | ActorbusError]:
        if not asks:
            return cast(list[AppendResult | ActorbusError], results)
        if len(asks) == 1:
            try:
                replies: list[Any] = [await asks[0]]
            except ActorbusError as exc:
                replies = [exc]
        else:
            replies = await asyncio.gather(*asks, return_exceptions=True)
        if len(replies) == 1 and type(replies[0]) is list and len(replies[0]) == len(results):
            return cast(list[AppendResult | ActorbusError], replies[0])  # one session, all valid
        for (indices, _, _), reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, ActorbusError):
                    raise reply
                for index in indices:
                    results[index] = type(reply)(reply.message)
                continue
            for index, result in zip(indices, reply, strict=True):
                results[index] = result
        # Every slot is filled: an error from the boundary or a reply from the writer.
        return cast(list[AppendResult | ActorbusError], results)

    def _writer(self, user_id: str, session_id: str) -> ActorRef:
        """The session writer's reference (kept: a reference outlives passivation)."""
        key = (user_id, session_id)
        ref = self._refs.get(key)
        if ref is None:
            if len(self._refs) >= _REFS_MAX:
                self._refs.clear()
            ref = self._refs[key] = self._bus.ref(SessionWriter, key)
        return ref

    def replay(self, user_id: str, session_id: str) -> AsyncIterator[bytes]:
        """Iterate the session's envelope lines (no newline), oldest first.

        Raises:
            InvalidEvent: An id is not safe (raised here, before iterating).
            MissingSessionPath: The session directory does not exist.
            RecorderIOError: The log cannot be read.
        """
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        return self.backend.replay(user_id, session_id)

    def follow(
        self,
        user_id: str,
        session_id: str,
        *,
        from_start: bool = True,
        poll_s: float = 0.25,
    ) -> AsyncIterator[bytes]:
        """Iterate the session's lines, then new ones as they land, until the caller stops.

        Args:
            user_id: The session's user.
            session_id: The session.
            from_start: Replay existing lines first; otherwise only lines to come.
            poll_s: How often to look for lines appended by other processes
                (appends made through this recorder wake the follower at once).

        Raises:
            InvalidEvent: An id is not safe (raised here, before iterating).
            MissingSessionPath: The session directory does not exist.
            ShuttingDown: The bus is closed.
        """
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        return self.backend.follow(user_id, session_id, from_start=from_start, poll_s=poll_s)


def _as_list(
    listed: asyncio.Future[list[AppendResult | ActorbusError]], done: asyncio.Future[Any]
) -> None:
    """Answer a held append as a one-item shared reply (``listed``) once ``done``."""
    if listed.done():
        return
    if done.cancelled():
        listed.cancel()
    elif (exc := done.exception()) is not None:
        listed.set_exception(exc)
    else:
        listed.set_result([done.result()])
