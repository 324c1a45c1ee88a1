"""The enrichment service facade: one call runs one enrichment request end to end.

Flow of :meth:`Enrichment.run` (docs/enrichment.md draws it)::

    fingerprint items ─▶ actor: Begin (cache lookup + claim misses within budget)
        ─▶ call providers for the claimed misses, batched, in this task
        ─▶ actor: Commit per batch (write entries, answer runs sharing the call)
        ─▶ wait for calls other runs own ─▶ retry skipped items the budget
           now affords ─▶ actor: Prune (if asked) ─▶ report
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio

from bus import ActorRef, Bus
from contracts import (
    ActorbusError,
    EnrichmentConfig,
    EnrichReport,
    EnrichRequest,
    InvalidRequest,
    ProviderConfig,
)

from .actor import Begin, EnrichmentActor, Probe, Prune, Release
from .external import build_provider
from .providers import Provider
from .run import RunState, call_batch
from .spend import to_nanos
from .store import CacheStore, FileCacheStore

__all__ = ["Enrichment"]


def _utc_now() -> str:
    now = dt.datetime.fromtimestamp(time.time(), dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Enrichment:
    """Answers enrichment requests from the private cache first, paying only for misses.

    Creating it spawns the enrichment actor on ``bus``. Providers are built from
    ``config.providers``; ``providers`` adds or replaces providers by source id
    (a replaced source keeps its configured cost, batch size and limits).

    Args:
        bus: The running actor system.
        root: The service root; the cache lives under ``<root>/cache/enrichment``.
        config: The ``[enrichment]`` configuration.
        providers: Providers by source id, beside or instead of configured ones.
        store: The cache storage (default: sharded files under ``root``).
        clock: Returns the UTC write time stamped on entries (ISO 8601, ms, ``Z``).
        name: The actor's name on the bus.

    Raises:
        InvalidRequest: A provider's configuration is incomplete or its python
            target cannot be imported.
    """

    def __init__(
        self,
        bus: Bus,
        root: Path,
        config: EnrichmentConfig,
        providers: Mapping[str, Provider] | None = None,
        *,
        store: CacheStore | None = None,
        clock: Callable[[], str] = _utc_now,
        name: str = "enrichment",
    ) -> None:
        self.config = config
        built: dict[str, Provider] = {
            sid: build_provider(sid, cfg, config.max_summary_bytes)
            for sid, cfg in config.providers.items()
            if providers is None or sid not in providers
        }
        built.update(providers or {})
        for sid, provider in built.items():
            if not callable(getattr(provider, "enrich", None)):
                raise InvalidRequest(f"provider {sid!r} has no enrich() method")
        self.providers: dict[str, Provider] = built
        self._costs: dict[str, int | None] = {}
        for sid in built:
            cost = self._config_of(sid).cost_usd
            self._costs[sid] = None if cost is None else to_nanos(cost)
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        self._clock = clock
        # Strings no summary or error may carry: the root as given and absolute
        # (abspath, not resolve: no filesystem call on the event loop).
        self._private = tuple({str(root), os.path.abspath(root)})
        self._store = store if store is not None else FileCacheStore(root)
        closers: list[Callable[[], Awaitable[None]]] = []
        for provider in built.values():
            close = getattr(provider, "aclose", None)
            if callable(close):
                closers.append(close)
        self._ref: ActorRef = bus.spawn(lambda: EnrichmentActor(self._store, closers), name=name)

    def _config_of(self, source_id: str) -> ProviderConfig:
        return self.config.providers.get(source_id) or ProviderConfig()

    def _limiter(self, source_id: str) -> anyio.CapacityLimiter:
        limiter = self._limiters.get(source_id)
        if limiter is None:
            concurrency = self._config_of(source_id).concurrency
            limiter = self._limiters[source_id] = anyio.CapacityLimiter(concurrency)
        return limiter

    async def run(self, request: EnrichRequest) -> EnrichReport:
        """Run one enrichment request and report it (``docs/enrichment.md``).

        Args:
            request: The run: items, budget, cadence, prune.

        Returns:
            Counts, one entry per item in request order, spend, cache state.

        Raises:
            InvalidRequest: The request is malformed (metadata that is not JSON).
            ShuttingDown: The bus closed during the run.
        """
        if not isinstance(request, EnrichRequest):
            raise InvalidRequest("an enrich request must be an EnrichRequest")
        run = RunState(request, self._costs)
        try:
            await self._waves(run)
            if request.prune:
                pruned = await self._ref.ask(
                    Prune(
                        request.enrichment_type,
                        frozenset(item.source_id for item in request.items),
                        frozenset(run.slots),
                    )
                )
                run.absorb_prune(pruned)
        finally:
            if run.pending:
                # If the bus is closing, the actor's stop answers the sharers instead.
                with anyio.CancelScope(shield=True), contextlib.suppress(ActorbusError):
                    await self._ref.tell(Release(list(run.pending)))
        return run.report()

    async def _waves(self, run: RunState) -> None:
        retry: list[Probe] | None = None
        first = True
        while first or retry:
            begin = Begin(
                run.request, retry, self._costs, frozenset(self.providers), run.budget.remaining()
            )
            # Shielded: once the actor handles Begin, the claims it makes must reach
            # this run, or nobody would ever answer the runs sharing them.
            with anyio.CancelScope(shield=True):
                looked = await self._ref.ask(begin)
                run.absorb(looked, first=first)
            first = False
            batches = run.batches(looked.owned, self._config_of)
            if batches:
                async with anyio.create_task_group() as tg:
                    for source_id, batch, reserved in batches:
                        tg.start_soon(self._call, run, source_id, batch, reserved)
            if run.fatal is not None:
                raise run.fatal
            await run.await_shared(looked.attached)
            retry = run.retry_candidates()

    async def _call(self, run: RunState, source_id: str, batch: list[Probe], reserved: int) -> None:
        config = self._config_of(source_id)
        async with self._limiter(source_id):
            await call_batch(
                run,
                self._ref,
                self.providers[source_id],
                source_id,
                config,
                batch,
                reserved,
                clock=self._clock,
                max_summary_bytes=self.config.max_summary_bytes,
                private=self._private,
            )

    async def aclose(self) -> None:
        """Close the providers' connections (the actor also does when it stops)."""
        for provider in self.providers.values():
            close = getattr(provider, "aclose", None)
            if callable(close):
                await close()
