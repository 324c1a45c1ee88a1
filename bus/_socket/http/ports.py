"""What an HTTP connection needs of the endpoint it serves, named below both.

:class:`Shared` is the endpoint as a connection and its dispatcher see it, so that
``protocol`` and ``dispatch`` never import ``endpoint``, which makes the
connections: imports point one way (``docs/architecture.md``, "Layering").
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from contracts import ActorbusError, HttpConfig

from .messages import HttpRequest
from .routing import Route

__all__ = ["HttpCounters", "Shared"]


class HttpCounters:
    """Running totals; only the loop thread changes them, and they only grow."""

    __slots__ = ("bytes_in", "bytes_out", "connections_total", "errors", "requests")

    def __init__(self) -> None:
        self.connections_total = 0
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors: dict[str, int] = {}


class Shared(Protocol):
    """The endpoint's state and calls that every connection of it uses."""

    loop: asyncio.AbstractEventLoop
    config: HttpConfig
    counters: HttpCounters
    closing: bool
    cors: bool
    max_body_bytes: int
    max_inflight: int
    max_queued_bytes: int
    answer_sizes: dict[str, int]

    def admit(self, request: HttpRequest) -> Route:
        """The route that answers ``request``, once the request may have it."""
        ...

    def cors_headers(self, headers: dict[str, str]) -> dict[str, str] | None:
        """The CORS headers an answer to a request with ``headers`` carries."""
        ...

    def count_error(self, error: ActorbusError) -> None:
        """Count an error answer by its code."""
        ...

    def opened(self, protocol: Any) -> None:
        """A connection started speaking HTTP."""
        ...

    def closed(self, protocol: Any) -> None:
        """A connection is gone."""
        ...
