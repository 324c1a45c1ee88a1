"""Running the bus on uvloop when it is installed, on plain asyncio otherwise."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["run", "uvloop_available"]

T = TypeVar("T")


def uvloop_available() -> bool:
    """Whether uvloop can be imported here."""
    return importlib.util.find_spec("uvloop") is not None


def run(func: Callable[..., Awaitable[T]], *args: Any, use_uvloop: bool | None = None) -> T:
    """Run ``func(*args)`` on asyncio, with uvloop's loop when available.

    Args:
        func: The async entry point.
        *args: Its positional arguments.
        use_uvloop: Force uvloop on or off; ``None`` picks it when installed.

    Returns:
        What ``func`` returned.
    """
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    return anyio.run(func, *args, backend="asyncio", backend_options={"use_uvloop": use_uvloop})
