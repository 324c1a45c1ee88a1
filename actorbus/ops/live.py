"""The live-data ops: ``live.write`` and ``live.read`` (see ``docs/runbook.md``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from actors import LiveData
from bus import Request
from contracts import LiveReadRequest, LiveWriteRequest

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

    def live_write(self, request: Request) -> Awaitable[Any]:
        """``live.write``: ``{"scope", "base", "bytes", "branches", ...}``."""
        req = request.decode(LiveWriteRequest)
        task = asyncio.ensure_future(self._live.write(req.scope, req.data, req.delete))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    def live_read(self, request: Request) -> Awaitable[dict[str, Any]]:
        """``live.read``: ``{"data": {...}}``, after the live writes received before it."""
        request.decode(LiveReadRequest)
        return self._read(list(self._writes))

    async def _read(self, before: list[asyncio.Future[Any]]) -> dict[str, Any]:
        if before:
            await asyncio.wait(before)
        return {"data": await self._live.read()}
