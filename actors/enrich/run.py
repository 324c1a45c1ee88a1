"""One enrichment run's bookkeeping: item states, spend, budget, and provider batches.

A :class:`RunState` belongs to the task running the request: only that task (and
the batch tasks it starts and waits for) touches it, so it needs no lock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import attrgetter
from typing import cast

import anyio
import msgspec

from bus import ActorRef
from contracts import (
    ActorbusError,
    CacheReport,
    EnrichCounts,
    EnrichReport,
    EnrichRequest,
    ItemError,
    ItemReport,
    ItemState,
    ProviderConfig,
    ProviderError,
)

from .actor import CallKey, CallOutcome, Commit, Looked, Probe
from .providers import Provider, ProviderAnswer, ProviderItem, answers_from
from .safety import bounded, is_safe, safe_summary
from .spend import Budget, SourceTally, spend_report
from .store import CacheEntry, PruneResult

__all__ = ["RunState", "call_batch"]

_source_of = attrgetter("source_id")
_id_of = attrgetter("item_id")


class RunState:
    """Everything one run learns, until it becomes the report."""

    def __init__(self, request: EnrichRequest, costs: dict[str, int | None]) -> None:
        self.request = request
        count = len(request.items)
        self.states: list[ItemState | None] = [None] * count
        self.summaries: list[str | None] = [None] * count
        self.errors: dict[int, ItemError] = {}
        self.eligible = count
        # Every eligible item's slot, kept for pruning (empty unless the run prunes).
        self.slots: list[str] = []
        self.costs = costs
        self.tallies = {
            sid: SourceTally(costs.get(sid)) for sid in {item.source_id for item in request.items}
        }
        self.budget = Budget(request.budget_usd)
        # Keys this run claimed and has not yet committed; released if the run ends early.
        self.pending: set[CallKey] = set()
        self.prior: dict[int, str] = {}
        self.skipped: list[Probe] = []
        self.fatal: ActorbusError | None = None
        self.written = self.stale = self.malformed = self.pruned = self.retained = 0
        self.degraded = False

    def absorb(self, looked: Looked, *, first: bool) -> None:
        """Take in one ``Begin`` answer (later waves re-read, so count only the first)."""
        if first:
            self.stale = looked.stale
            self.malformed = looked.malformed
            self.slots = looked.slots
            for index in looked.ineligible:
                self.states[index] = "ineligible"
            self.eligible -= len(looked.ineligible)
        self.degraded |= looked.degraded
        states, summaries = self.states, self.summaries
        if len(looked.hit_index) == len(states):
            # Every item a hit (the unchanged rerun): fill both lists in C.
            states[:] = repeat("hit", len(states))
            summaries[:] = looked.hit_summary
        else:
            for index, summary in zip(looked.hit_index, looked.hit_summary, strict=True):
                states[index] = "hit"
                summaries[index] = summary
        items = self.request.items
        if len(self.tallies) == 1:
            by_source = {sid: len(looked.hit_index) for sid in self.tallies}
        else:
            by_source = Counter(items[index].source_id for index in looked.hit_index)
        for sid, hits in by_source.items():
            self.tallies[sid].saved += (self.costs.get(sid) or 0) * hits
        self.prior.update(looked.prior)
        self.budget.reserved += looked.reserved
        for index in looked.unprovided:
            sid = items[index].source_id
            self._fail(
                index,
                ItemError("ProviderError", "no provider is configured for the item's source_id"),
            )
        version = self.request.adapter_version
        for probe in looked.owned:
            self.pending.add((probe.slot, version, probe.fingerprint))
        self.skipped = looked.skipped
        for probe in looked.skipped:
            states[probe.index] = "skipped"
            summaries[probe.index] = self.prior.get(probe.index)

    def batches(
        self, owned: list[Probe], config_of: Callable[[str], ProviderConfig]
    ) -> list[tuple[str, list[Probe], int]]:
        """Claimed misses as (source, batch, nano-dollars reserved), priority order kept."""
        by_source: dict[str, list[Probe]] = {}
        for probe in owned:
            by_source.setdefault(probe.source_id, []).append(probe)
        capped = self.budget.limit is not None
        out = []
        for sid, probes in by_source.items():
            size = config_of(sid).batch_size
            cost = self.costs.get(sid) or 0
            for start in range(0, len(probes), size):
                batch = probes[start : start + size]
                out.append((sid, batch, cost * len(batch) if capped else 0))
        return out

    def apply(self, index: int, outcome: CallOutcome) -> None:
        """Record how a call answered one item."""
        if outcome.error is None:
            self.states[index] = "enriched"
            self.summaries[index] = outcome.summary
        else:
            self._fail(index, outcome.error)

    def _fail(self, index: int, error: ItemError) -> None:
        self.states[index] = "failed"
        self.errors[index] = error
        self.summaries[index] = self.prior.get(index)

    async def await_shared(self, attached: dict[int, asyncio.Future[CallOutcome]]) -> None:
        """Wait for calls other runs (or this one) own; shielded so sharers are unharmed."""
        for index, fut in attached.items():
            self.apply(index, await asyncio.shield(fut))

    def retry_candidates(self) -> list[Probe] | None:
        """Skipped items, when budget freed since (cheaper usage, failures) pays for one."""
        remaining = self.budget.remaining()
        if remaining is None or not self.skipped:
            return None
        costs = [self.costs.get(p.source_id) for p in self.skipped]
        if not any(c is not None and c <= remaining for c in costs):
            return None
        return list(self.skipped)

    def absorb_prune(self, result: PruneResult) -> None:
        """Take in the prune's counts."""
        self.pruned = result.pruned
        self.retained = result.retained
        self.malformed += result.malformed
        self.degraded |= result.degraded

    def report(self) -> EnrichReport:
        """The report of ``docs/enrichment.md``; carries ids, states, labels and counts only."""
        request = self.request
        states, summaries, errors = self.states, self.summaries, self.errors
        assert None not in states, "every item is answered before the report"
        answered = cast(list[ItemState], states)
        items = list(
            map(
                ItemReport,
                map(_source_of, request.items),
                map(_id_of, request.items),
                answered,
                summaries,
                repeat(None),
            )
        )
        for index, error in errors.items():
            items[index] = msgspec.structs.replace(items[index], error=error)
        hits = states.count("hit")
        skipped = states.count("skipped")
        counts = EnrichCounts(
            eligible=self.eligible,
            ineligible=len(request.items) - self.eligible,
            hits=hits,
            misses=self.eligible - hits,
            written=self.written,
            skipped=skipped,
            stale=self.stale,
            pruned=self.pruned,
            retained=self.retained,
            malformed=self.malformed,
        )
        return EnrichReport(
            run_id=request.run_id,
            counts=counts,
            items=items,
            spend=spend_report(self.tallies, skipped > 0, request.cadence_per_day),
            cache=CacheReport("degraded" if self.degraded else "ok"),
        )


async def call_batch(
    run: RunState,
    ref: ActorRef,
    provider: Provider,
    source_id: str,
    config: ProviderConfig,
    batch: list[Probe],
    reserved: int,
    *,
    clock: Callable[[], str],
    max_summary_bytes: int,
    private: Sequence[str],
) -> None:
    """Call the provider for one batch, account it, and commit it through the actor.

    A failed call fails its items with a :class:`~contracts.ProviderError` and
    writes nothing; it charges only what the provider reported.
    """
    request = run.request
    kind, version = request.enrichment_type, request.adapter_version
    items = [
        ProviderItem(source_id, p.item_id, kind, version, p.fingerprint, p.metadata) for p in batch
    ]
    tally = run.tallies[source_id]
    tally.calls += 1
    # command and http providers enforce timeout_s themselves (and kill or close);
    # this outer guard is for providers that might not.
    guard = config.timeout_s + (5.0 if config.kind in ("command", "http") else 0.0)
    failure: ItemError | None = None
    answers: Sequence[ProviderAnswer | None] = ()
    try:
        with anyio.fail_after(guard):
            answers = answers_from(await provider.enrich(items), len(items))
    except ProviderError as exc:
        text = exc.message if is_safe(exc.message, private) else "the provider failed"
        failure = ItemError(exc.code, bounded(text, 512))
    except TimeoutError:
        failure = ItemError("ProviderError", f"provider for {source_id!r} timed out")
    except Exception as exc:
        failure = ItemError(
            "ProviderError", f"provider for {source_id!r} raised {type(exc).__name__}"
        )
    written_at = clock()
    entries: dict[str, CacheEntry] = {}
    outcomes: list[tuple[CallKey, CallOutcome]] = []
    charged = 0
    for probe, answer in zip(batch, answers or repeat(None), strict=False):
        key = (probe.slot, version, probe.fingerprint)
        if answer is None:
            outcome = CallOutcome(error=failure)
        else:
            summary = (
                None
                if answer.error is not None
                else safe_summary(answer.summary, max_summary_bytes, private)
            )
            charged += tally.charge(answer.usd, failed=summary is None)
            if summary is not None:
                outcome = CallOutcome(summary=summary)
                entries[probe.slot] = CacheEntry(
                    probe.source_id, probe.item_id, version, probe.fingerprint, summary, written_at
                )
            elif answer.error is not None:
                said = answer.error if is_safe(answer.error, private) else "no detail"
                outcome = CallOutcome(
                    error=ItemError(
                        "ProviderError",
                        bounded(f"provider for {source_id!r} failed this item: {said}", 512),
                    )
                )
            else:
                outcome = CallOutcome(
                    error=ItemError(
                        "ProviderError", f"provider for {source_id!r} answered an unusable summary"
                    )
                )
        outcomes.append((key, outcome))
        run.apply(probe.index, outcome)
    run.budget.settle(reserved, charged)
    try:
        saved = await ref.ask(Commit(kind, entries, outcomes))
    except ActorbusError as exc:
        run.fatal = exc
        return
    run.written += saved.written
    run.degraded |= saved.degraded
    run.pending.difference_update(key for key, _ in outcomes)
