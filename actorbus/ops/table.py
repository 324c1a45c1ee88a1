"""The service's socket ops: each decodes its request and hands it to the actor that owns it.

A handler runs as its frame is read and never waits itself: it validates, then
returns what answers later (an actor's reply, a coroutine, a stream), and the
connection answers in request order. The ops live by family: ``session``
(recording), ``live`` (live data), ``enrich``; ``stats`` is here. The table of
every op and its status is in ``docs/protocol.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors import Enrichment, LiveData, Recorder
from bus import BatchHandler, Handler, Request
from contracts import (
    OP_APPEND,
    OP_APPEND_BATCH,
    OP_ENRICH,
    OP_LIVE_READ,
    OP_LIVE_WRITE,
    OP_SESSION_OPEN,
    OP_STATS,
    OP_SUBSCRIBE,
    StatsRequest,
    decode_as,
)

from .enrich import EnrichOps
from .live import LiveOps
from .session import SessionOps

__all__ = ["ServiceOps"]


class ServiceOps:
    """The handler table of one service: every op of ``docs/protocol.md``.

    Args:
        recorder: The service's recorder.
        live: The service's live-data gate.
        enrichment: The service's enrichment facade.
        statistics: What ``stats`` answers (the service's counters).
    """

    def __init__(
        self,
        recorder: Recorder,
        live: LiveData,
        enrichment: Enrichment,
        statistics: Callable[[], dict[str, Any]],
        max_runs: int,
    ) -> None:
        self._statistics = statistics
        self.session = SessionOps(recorder)
        self.live = LiveOps(live)
        self.enrichment = EnrichOps(enrichment, max_runs)

    @staticmethod
    def statuses() -> dict[str, int]:
        """Success statuses other than 200: ``append`` answers 201."""
        return {OP_APPEND: 201}

    def batch_handlers(self) -> dict[str, BatchHandler]:
        """Ops that also take their requests read together: ``append``."""
        return {OP_APPEND: self.session.append_many}

    def handlers(self) -> dict[str, Handler]:
        """The ops by name (``ping`` is the server's own)."""
        session, live = self.session, self.live
        table: dict[str, Callable[[Request], Any]] = {
            OP_SESSION_OPEN: session.session_open,
            OP_APPEND: session.append,
            OP_APPEND_BATCH: session.append_batch,
            OP_LIVE_WRITE: live.live_write,
            OP_LIVE_READ: live.live_read,
            OP_ENRICH: self.enrichment.enrich,
            OP_STATS: self.stats,
            OP_SUBSCRIBE: session.subscribe,
        }
        return table

    def stats(self, request: Request) -> dict[str, Any]:
        """``stats``: ``{"server", "bus", "service"}`` counters."""
        decode_as(request.body, StatsRequest, request.framing)
        return self._statistics()
