"""The enrichment op: ``enrich`` (see ``docs/enrichment.md``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable
from typing import Any

from actors import Enrichment
from bus import Request
from contracts import (
    EnrichOpRequest,
    EnrichReport,
    EnrichRequest,
    ProviderError,
    decode_as,
    decode_enrich_request,
)

__all__ = ["EnrichOps"]


class EnrichOps:
    """The enrichment op of one service.

    Args:
        enrichment: The service's enrichment facade.
    """

    def __init__(self, enrichment: Enrichment, keep_runs: int = 32) -> None:
        self._enrichment = enrichment
        # The last runs' reports, newest last, for the dashboard: bounded, in memory
        # only. Appended when a run finishes, by the loop thread only.
        self.recent: deque[EnrichReport] = deque(maxlen=keep_runs)

    def enrich(self, request: Request) -> Awaitable[EnrichReport]:
        """``enrich``: the run's report (``docs/enrichment.md``).

        A run in which every item failed is answered ``502 ProviderError`` (the first
        failure's safe message); a run with some failures answers 200 and marks them.
        """
        req = decode_as(request.body, EnrichOpRequest, request.framing)
        return self.run(req.request)

    def run(self, request: Any) -> Awaitable[EnrichReport]:
        """Run an enrichment request given as a plain value: ``enrich``'s and HTTP's step.

        Raises:
            InvalidRequest: The request is not a valid enrichment request.
        """
        return self._enrich(decode_enrich_request(request))

    async def _enrich(self, run: EnrichRequest) -> EnrichReport:
        report = await self._enrichment.run(run)
        self.recent.append(report)
        items = report.items
        if items and all(item.state == "failed" for item in items):
            first = items[0].error
            detail = first.message if first is not None else "the provider failed"
            raise ProviderError(f"every item of the run failed: {detail}")
        return report
