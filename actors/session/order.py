"""Each session's appends reach its writer in the order they were made, whatever the op.

The recorder keeps this guarantee for every caller (the socket's pipelined ops
included). A single ``append`` and an ``append_batch`` queue their events in their
writer's mailbox in the call itself, so they keep call order by themselves. An open
does not: ``open_session`` runs in a worker thread, and an append made behind it
would overtake it and fail ``MissingSessionPath``.

So an open takes its session *exclusively* until it finishes: appends to it made
meanwhile wait in call order, then go in that order (each is queued the moment its
turn comes). A batch naming a held session takes all its sessions the same way,
after every op already holding or waiting for them, so appends made after it wait
for it too; two batches never wait for each other. Sessions nobody holds cost
nothing: the recorder checks ``bool(order)`` before reading an event's ids.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgspec

__all__ = ["Exclusive", "SessionOrder", "session_key"]

Key = tuple[str, str]


class _Ids(msgspec.Struct):
    user_id: Any = None
    session_id: Any = None


_IDS = msgspec.json.Decoder(_Ids)


def session_key(event: Any) -> Key | None:
    """The ``(user_id, session_id)`` an event names, or ``None`` if it names none."""
    if isinstance(event, bytes):
        try:
            ids = _IDS.decode(event)
        except (msgspec.DecodeError, RecursionError):
            return None
        user, session = ids.user_id, ids.session_id
    elif isinstance(event, Mapping):
        user, session = event.get("user_id"), event.get("session_id")
    else:
        return None
    if type(user) is str and type(session) is str:
        return (user, session)
    return None


class Exclusive:
    """An op holding its sessions; ``ready`` is done once it heads every one's queue."""

    __slots__ = ("keys", "ready")

    def __init__(self, keys: frozenset[Key], ready: asyncio.Future[None]) -> None:
        self.keys = keys
        self.ready = ready


class _Append:
    __slots__ = ("event", "fut")

    def __init__(self, event: Any, fut: asyncio.Future[Any]) -> None:
        self.event = event
        self.fut = fut


class SessionOrder:
    """Orders appends, batches and opens per session; see the module docstring.

    Args:
        loop: The event loop the service runs on.
        submit: Queues one append now and returns what answers it (it may raise).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, submit: Callable[[Any], Awaitable[Any]]
    ) -> None:
        self._loop = loop
        self._submit = submit
        # Held sessions: each queue starts with the op holding it (an Exclusive),
        # then what arrived after, in order. Only the loop thread touches it; a key
        # is present exactly while some op holds it.
        self._queues: dict[Key, deque[Exclusive | _Append]] = {}

    def __bool__(self) -> bool:
        return bool(self._queues)

    def holds_any(self, keys: Iterable[Key]) -> bool:
        """Whether an op holds or waits for any of ``keys``."""
        queues = self._queues
        return any(key in queues for key in keys)

    def acquire(self, keys: Iterable[Key]) -> Exclusive:
        """Take ``keys`` after every op already holding or waiting for them."""
        ready: asyncio.Future[None] = self._loop.create_future()
        exclusive = Exclusive(frozenset(keys), ready)
        for key in exclusive.keys:
            self._queues.setdefault(key, deque()).append(exclusive)
        self._check_ready(exclusive)
        return exclusive

    def release(self, exclusive: Exclusive) -> None:
        """``exclusive`` is done: let what waited behind it go, in order."""
        for key in exclusive.keys:
            queue = self._queues.get(key)
            if queue is None:
                continue
            if queue[0] is exclusive:
                queue.popleft()
                self._drain(key, queue)
            else:
                queue.remove(exclusive)  # released before its turn (cancelled)
        if not exclusive.ready.done():
            exclusive.ready.cancel()

    def hold(self, event: Any) -> asyncio.Future[Any] | None:
        """Queue ``event`` behind its session's holder; ``None`` if the session is free."""
        key = session_key(event)
        queue = self._queues.get(key) if key is not None else None
        if queue is None:
            return None
        fut: asyncio.Future[Any] = self._loop.create_future()
        queue.append(_Append(event, fut))
        return fut

    def _drain(self, key: Key, queue: deque[Exclusive | _Append]) -> None:
        while queue:
            head = queue[0]
            if isinstance(head, Exclusive):
                self._check_ready(head)
                return
            queue.popleft()
            try:
                answer = asyncio.ensure_future(self._submit(head.event))
            except Exception as exc:
                head.fut.set_exception(exc)
                continue
            answer.add_done_callback(functools.partial(_settle, head.fut))
        del self._queues[key]

    def _check_ready(self, exclusive: Exclusive) -> None:
        if exclusive.ready.done():
            return
        if all(self._queues[key][0] is exclusive for key in exclusive.keys):
            exclusive.ready.set_result(None)


def _settle(fut: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    if fut.done():
        return
    if done.cancelled():
        fut.cancel()
    elif (exc := done.exception()) is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(done.result())
