"""The enrichment actor: owner of the cache and of the calls in flight.

Every run goes through it twice or more: ``Begin`` looks the run's items up in
the cache and, in the same message, claims the misses it will pay for, so no
other run can claim them in between; ``Commit`` writes a finished batch's
entries and hands its outcome to every run that shared the call. Provider calls
themselves run in the caller's task, never inside a handler, so a slow provider
holds up nobody else's run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Set
from typing import Any

import anyio
import msgspec

from bus import Actor
from contracts import EnrichRequest, ItemError

from .keys import key_items
from .store import CachedSummary, CacheEntry, CacheStore, PruneResult, SaveResult

__all__ = [
    "Begin",
    "CallKey",
    "CallOutcome",
    "Commit",
    "EnrichmentActor",
    "Looked",
    "Probe",
    "Prune",
    "Release",
]

log = logging.getLogger("actorbus.enrich")

#: A call in flight is identified by the full cache key: (slot, adapter_version, fingerprint).
CallKey = tuple[str, str, str]


class CallOutcome(msgspec.Struct, frozen=True):
    """What a shared call produced for one item: a safe summary or an error."""

    summary: str | None = None
    error: ItemError | None = None


class Probe(msgspec.Struct, gc=False):
    """One missed item of a run: its position, key parts, metadata and priority.

    Untracked by the garbage collector (it refers to no container that could
    refer back to it), which keeps collections cheap on runs with many misses.
    """

    index: int
    source_id: str
    item_id: str
    slot: str
    fingerprint: str
    metadata: dict[str, Any]
    priority: float
    force: bool


class Begin(msgspec.Struct, frozen=True):
    """Look items up and claim, highest priority first, the misses the budget affords.

    The first wave of a run passes the whole request (``retry`` is ``None``): the
    actor computes every item's keys while it looks them up, in one pass. Later
    waves pass the skipped items to try again. ``costs`` holds each source's
    estimated per-item cost in nano-dollars (``None`` unknown); ``providers`` the
    sources that have one; ``remaining`` the budget left in nano-dollars
    (``None``: no cap).
    """

    request: EnrichRequest
    retry: list[Probe] | None
    costs: Mapping[str, int | None]
    providers: Set[str]
    remaining: int | None


class Looked(msgspec.Struct):
    """The answer to :class:`Begin`.

    ``slots`` lists every eligible item's slot (first wave of a pruning run only).
    """

    hit_index: list[int] = msgspec.field(default_factory=list)
    hit_summary: list[str] = msgspec.field(default_factory=list)
    ineligible: list[int] = msgspec.field(default_factory=list)
    slots: list[str] = msgspec.field(default_factory=list)
    prior: dict[int, str] = msgspec.field(default_factory=dict)
    owned: list[Probe] = msgspec.field(default_factory=list)
    attached: dict[int, asyncio.Future[CallOutcome]] = msgspec.field(default_factory=dict)
    skipped: list[Probe] = msgspec.field(default_factory=list)
    unprovided: list[int] = msgspec.field(default_factory=list)
    reserved: int = 0
    stale: int = 0
    malformed: int = 0
    degraded: bool = False


class Commit(msgspec.Struct, frozen=True):
    """A finished batch: entries to write by slot, and the outcome of each claimed key."""

    enrichment_type: str
    entries: dict[str, CacheEntry]
    outcomes: list[tuple[CallKey, CallOutcome]]


class Release(msgspec.Struct, frozen=True):
    """Claims given up without an answer (the run was cancelled or failed)."""

    keys: list[CallKey]


class Prune(msgspec.Struct, frozen=True):
    """Drop entries of ``sources`` in ``enrichment_type`` whose slot is not in ``keep``."""

    enrichment_type: str
    sources: frozenset[str]
    keep: frozenset[str]


_ABANDONED = CallOutcome(error=ItemError("ProviderError", "the shared provider call was abandoned"))
_STOPPED = CallOutcome(
    error=ItemError("ShuttingDown", "enrichment stopped before the call finished")
)


class EnrichmentActor(Actor):
    """Owns the cache store and the map of provider calls in flight.

    Args:
        store: The cache storage (blocking; every call runs in a worker thread).
        on_stop_hooks: Closers run when the actor stops (the providers' ``aclose``).
    """

    def __init__(
        self, store: CacheStore, on_stop_hooks: list[Callable[[], Awaitable[None]]] | None = None
    ) -> None:
        self._store = store
        self._hooks = on_stop_hooks or []
        # Calls in flight by full cache key. Added by ``Begin`` for each claimed miss,
        # removed (and resolved) by ``Commit``, ``Release`` or stop; a key in here
        # always has exactly one run that will answer it.
        self._inflight: dict[CallKey, asyncio.Future[CallOutcome]] = {}

    async def receive(self, message: Any) -> Any:
        """Handle one of the messages of this module."""
        match message:
            case Begin():
                return await self._begin(message)
            case Commit():
                return await self._commit(message)
            case Release(keys=keys):
                self._resolve(keys, _ABANDONED)
                return None
            case Prune():
                return await self._prune(message)
        raise TypeError(f"unexpected message {type(message).__name__}")

    async def on_stop(self) -> None:
        """Answer every run still waiting on a shared call, then close the providers."""
        self._resolve(list(self._inflight), _STOPPED)
        for hook in self._hooks:
            try:
                await hook()
            except Exception as exc:
                log.warning("closing an enrichment provider failed: %s", type(exc).__name__)

    def _resolve(self, keys: list[CallKey], outcome: CallOutcome) -> None:
        for key in keys:
            fut = self._inflight.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(outcome)

    def _lookup(self, msg: Begin) -> tuple[Looked, list[Probe]]:
        """Runs in a worker thread: key the items, read their shards, sort hits from misses.

        Runs once per item of every run, so the per-item loops are kept lean: a
        :class:`Probe` is built only for a miss.

        Raises:
            InvalidRequest: An item is not an :class:`EnrichItem` or its metadata
                is not JSON (nothing is claimed then).
        """
        request = msg.request
        kind, version = request.enrichment_type, request.adapter_version
        looked = Looked()
        store = self._store
        usable = store.ensure()
        looked.degraded = not usable
        misses: list[Probe] = []
        if msg.retry is not None:
            found = store.load(kind, [p.slot for p in msg.retry]) if usable else None
            for probe in msg.retry:
                entry = found.entries.get(probe.slot) if found is not None else None
                if self._classify(looked, probe, entry, version):
                    misses.append(probe)
        else:
            keyed = key_items(kind, request.items)
            looked.ineligible = keyed.ineligible
            if request.prune:
                looked.slots = keyed.slots
            found = store.load(kind, keyed.slots) if usable else None
            entries = found.entries if found is not None else {}
            indices, fps, forced = keyed.indices, keyed.fingerprints, keyed.forced
            hit_index, hit_summary = looked.hit_index, looked.hit_summary
            missed: list[tuple[int, CachedSummary | None]] = []
            pos = -1
            for entry in map(entries.get, keyed.slots):
                pos += 1
                if (
                    entry is not None
                    and entry.fingerprint == fps[pos]
                    and entry.adapter_version == version
                    and (not forced or indices[pos] not in forced)
                ):
                    hit_index.append(indices[pos])
                    hit_summary.append(entry.summary)
                else:
                    missed.append((pos, entry))
            items = request.items
            for pos, entry in missed:
                item = items[indices[pos]]
                probe = Probe(
                    indices[pos],
                    item.source_id,
                    item.item_id or "",
                    keyed.slots[pos],
                    fps[pos],
                    keyed.metadata[pos],
                    item.priority,
                    item.force,
                )
                self._classify(looked, probe, entry, version)
                misses.append(probe)
        if found is not None:
            looked.malformed = found.malformed
            looked.degraded = found.degraded
        misses.sort(key=lambda p: -p.priority)  # stable: equal priorities keep request order
        return looked, misses

    @staticmethod
    def _classify(looked: Looked, probe: Probe, entry: CachedSummary | None, version: str) -> bool:
        """Record a hit, or what a miss had cached; return whether it is a miss."""
        if entry is None:
            return True
        if entry.fingerprint == probe.fingerprint and entry.adapter_version == version:
            if not probe.force:
                looked.hit_index.append(probe.index)
                looked.hit_summary.append(entry.summary)
                return False
        elif entry.adapter_version != version:
            looked.stale += 1
        looked.prior[probe.index] = entry.summary
        return True

    async def _begin(self, msg: Begin) -> Looked:
        looked, misses = await anyio.to_thread.run_sync(self._lookup, msg)
        inflight = self._inflight
        loop = asyncio.get_running_loop()
        remaining = msg.remaining
        version = msg.request.adapter_version
        for probe in misses:
            key = (probe.slot, version, probe.fingerprint)
            fut = inflight.get(key)
            if fut is not None:
                looked.attached[probe.index] = fut
                continue
            if probe.source_id not in msg.providers:
                looked.unprovided.append(probe.index)
                continue
            if remaining is not None:
                cost = msg.costs.get(probe.source_id)
                if cost is None or cost > remaining:
                    looked.skipped.append(probe)
                    continue
                remaining -= cost
                looked.reserved += cost
            inflight[key] = loop.create_future()
            looked.owned.append(probe)
        return looked

    async def _commit(self, msg: Commit) -> SaveResult:
        saved = SaveResult()
        if msg.entries:
            saved = await anyio.to_thread.run_sync(
                self._store.save, msg.enrichment_type, msg.entries
            )
        for key, outcome in msg.outcomes:
            self._resolve([key], outcome)
        return saved

    async def _prune(self, msg: Prune) -> PruneResult:
        return await anyio.to_thread.run_sync(
            self._store.prune, msg.enrichment_type, msg.sources, msg.keep
        )
