"""A request's place in a connection's answer order, and how a finished future fills it."""

from __future__ import annotations

import asyncio
from typing import Any

from contracts import ActorbusError, ShuttingDown

from ..ordering import internal_error
from .routing import Route

__all__ = ["Slot", "error_of", "resolve"]


class Slot:
    """One request's place in the answer order.

    Ready when ``fut`` is ``None`` (``value`` or ``error`` set) or done; ``index`` is
    not negative when ``fut`` is a reply shared by several requests.
    """

    __slots__ = (
        "error",
        "estimate",
        "extra",
        "fut",
        "head",
        "index",
        "keep_alive",
        "path",
        "route",
        "value",
    )

    def __init__(self, keep_alive: bool, head: bool, extra: dict[str, str] | None) -> None:
        self.keep_alive = keep_alive
        self.head = head
        self.extra = extra  # headers every answer to this request carries (CORS)
        self.route: Route | None = None
        self.value: Any = None
        self.error: ActorbusError | None = None
        self.fut: asyncio.Future[Any] | None = None
        self.index = -1
        self.path = ""  # the request's path: what its answer size is learnt by
        self.estimate = 0  # the bytes its answer is expected to take


def resolve(slot: Slot, fut: asyncio.Future[Any]) -> None:
    """Move a completed future's outcome into its slot."""
    slot.fut = None
    if fut.cancelled() or fut.exception() is not None:
        slot.error = error_of(fut)
        return
    result = fut.result()
    if slot.index >= 0:
        result = result[slot.index]
        if isinstance(result, ActorbusError):
            slot.error = result
            return
    slot.value = result


def error_of(fut: asyncio.Future[Any]) -> ActorbusError:
    """The error a failed or cancelled future answers with."""
    if fut.cancelled():
        return ShuttingDown("the request was cancelled by the shutdown")
    exc = fut.exception()
    if isinstance(exc, ActorbusError):
        return exc
    assert exc is not None
    return internal_error(exc, "http")
