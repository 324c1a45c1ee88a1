"""The live-data ops: ``live.write`` and ``live.read`` (see ``docs/runbook.md``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from actors import LiveData
from bus import Request
from contracts import (
    LiveReadRequest,
    LiveWriteRequest,
    decode_as,
)

__all__ = ["LiveOps"]


class LiveOps:
    """The live-data ops of one service; a read waits for the writes received before it.

    Args:
        live: The service's live-data gate.
    """

    def __init__(self, live: LiveData) -> None:
        self._live = live
        # Live writes accepted and not finished; a live.read waits for those before
        # it, so a client reads what it wrote. Loop thread only.
        self._writes: set[asyncio.Future[Any]] = set()
        # The last accepted write's safe metadata (scope, base, lock wait; never the
        # data), for the dashboard. Set by the write's done callback, loop thread only.
        self.last_write: Any = None

    def live_write(self, request: Request) -> Awaitable[Any]:
        """``live.write``: ``{"scope", "base", "bytes", "branches", ...}``."""
        req = decode_as(request.body, LiveWriteRequest, request.framing)
        return self.write(req.scope, req.data, req.delete)

    def write(self, scope: str, data: dict[str, Any], delete: bool = False) -> Awaitable[Any]:
        """Write ``scope``'s branches: the step ``live.write`` and HTTP share."""
        task = asyncio.ensure_future(self._live.write(scope, data, delete))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        task.add_done_callback(self._note)
        return task

    def _note(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is None:
            self.last_write = task.result()

    def live_read(self, request: Request) -> Awaitable[dict[str, Any]]:
        """``live.read``: ``{"data": {...}}``, after the live writes received before it."""
        decode_as(request.body, LiveReadRequest, request.framing)
        return self.read()

    def read(self) -> Awaitable[dict[str, Any]]:
        """``{"data": {...}}`` after the writes received before: ``live.read``'s and HTTP's step."""
        return self._read(list(self._writes))

    async def _read(self, before: list[asyncio.Future[Any]]) -> dict[str, Any]:
        if before:
            await asyncio.wait(before)
        return {"data": await self._live.read()}
