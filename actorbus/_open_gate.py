"""Appends that arrive while their session is still being opened wait for the open.

A client may pipeline ``session.open`` and the session's first appends. The
server handles every frame as it reads it, and opening runs in a worker thread,
so without this gate those appends would reach the recorder before the directory
exists and fail ``MissingSessionPath``. While an open of a session is running,
appends to that session are held here in arrival order and submitted, in that
order, the moment it finishes (whatever its outcome: an append to a session that
still does not exist then fails on its own). Other sessions are not held.

The gate costs nothing when no open is running: the caller checks ``bool(gate)``
before reading an event's ids.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgspec

__all__ = ["OpenGate", "session_key"]

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


class _Held:
    """One session's open(s) in flight and the appends waiting for them."""

    __slots__ = ("done", "opens", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.opens = 0
        self.waiting: list[tuple[Any, asyncio.Future[Any]]] = []
        self.done: asyncio.Future[None] = loop.create_future()


class OpenGate:
    """Holds appends to sessions whose open is running; see the module docstring.

    Args:
        loop: The event loop the service runs on.
        submit: Starts one append and returns what answers it (it may raise).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, submit: Callable[[Any], Awaitable[Any]]
    ) -> None:
        self._loop = loop
        self._submit = submit
        # Sessions being opened. Only the loop thread touches it: an entry is added
        # when an open starts and removed, with its appends submitted in order, by
        # the callback of the last open of that session to finish.
        self._held: dict[Key, _Held] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def opening(self, key: Key, task: asyncio.Future[Any]) -> None:
        """An open of ``key`` started; hold its appends until ``task`` is done."""
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(self._loop)
        held.opens += 1
        task.add_done_callback(lambda _: self._opened(key))

    def hold(self, event: Any) -> asyncio.Future[Any] | None:
        """Queue ``event`` if its session is being opened; return the future of its answer."""
        key = session_key(event)
        held = self._held.get(key) if key is not None else None
        if held is None:
            return None
        fut: asyncio.Future[Any] = self._loop.create_future()
        held.waiting.append((event, fut))
        return fut

    def waits(self, events: Iterable[Any]) -> list[asyncio.Future[None]]:
        """What a batch of ``events`` must wait for: the opens of the sessions it names."""
        found: list[asyncio.Future[None]] = []
        for event in events:
            key = session_key(event)
            held = self._held.get(key) if key is not None else None
            if held is not None and held.done not in found:
                found.append(held.done)
        return found

    def _opened(self, key: Key) -> None:
        held = self._held[key]
        held.opens -= 1
        if held.opens:
            return
        del self._held[key]
        for event, fut in held.waiting:
            try:
                answer = asyncio.ensure_future(self._submit(event))
            except Exception as exc:
                fut.set_exception(exc)
                continue
            answer.add_done_callback(functools.partial(_settle, fut))
        held.done.set_result(None)


def _settle(fut: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    if fut.done():
        return
    if done.cancelled():
        fut.cancel()
    elif (exc := done.exception()) is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(done.result())
