"""What a mailbox holds: a told message as it is, an asked one with its reply future."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

__all__ = ["Request", "unpack"]


class Request(msgspec.Struct):
    """An ask in a mailbox: the message and the future its reply completes.

    A tell is queued as the bare message, so the common case allocates nothing. A
    msgspec Struct because it is built in C: half the cost of a slotted class.
    """

    message: Any
    fut: asyncio.Future[Any]


def unpack(item: Any) -> tuple[Any, asyncio.Future[Any] | None]:
    """Split a mailbox item into the message and its reply future (``None``: a tell)."""
    if type(item) is Request:
        return item.message, item.fut
    return item, None
