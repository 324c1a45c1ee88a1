"""The enrichment contract: the ``enrich`` request and its report (``docs/enrichment.md``).

Field names here are contract names: clients and scripts depend on them. A request
decoded from the wire goes through :func:`decode_enrich_request`, which turns every
shape or range problem into :class:`~contracts.InvalidRequest`.
"""

from __future__ import annotations

import math
import sys
from typing import Annotated, Any, Literal

import msgspec

from ._base import Base
from ._decode import convert_as, decode_as
from ._errors import InvalidRequest

__all__ = [
    "CacheReport",
    "EnrichCounts",
    "EnrichItem",
    "EnrichReport",
    "EnrichRequest",
    "ItemError",
    "ItemReport",
    "ItemState",
    "Projection",
    "RunSpend",
    "SourceSpend",
    "SpendReport",
    "SpendState",
    "decode_enrich_request",
]

#: How an item was answered.
ItemState = Literal["hit", "enriched", "skipped", "ineligible", "failed"]
#: How a money figure is known: reported by the provider, from the configured
#: per-item cost, a zero-cost source, or not known at all.
SpendState = Literal["exact", "estimated", "free", "unavailable"]

#: The largest finite float: a range bound that refuses NaN and the infinities, which
#: MessagePack can carry.
_FLOAT_MAX = sys.float_info.max

#: Bound on an id's length; ids travel in every report.
MAX_ID_CHARS = 512


def _check_id(name: str, value: str) -> None:
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidRequest(f"{name} must be 1 to {MAX_ID_CHARS} characters")


#: The most runs a day a cadence may state (one every 86.4 ms): a bound that keeps
#: the monthly projection (run usd x cadence x 30) a finite number.
MAX_CADENCE_PER_DAY = 1_000_000.0


def _check_amount(name: str, value: float | None, most: float | None = None) -> None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise InvalidRequest(f"{name} must be a finite number >= 0 or null")
    if value is not None and most is not None and value > most:
        raise InvalidRequest(f"{name} must be at most {most:g} or null")


class EnrichItem(Base, frozen=True):
    """One piece of evidence to enrich.

    Attributes:
        source_id: The collector source; picks the provider.
        item_id: A stable id, or ``None`` (such an item is ineligible: never cached).
        metadata: Cheap facts about the item; their fingerprint decides a cache hit.
        priority: Higher is enriched first when the budget is short.
        force: Call the provider even when the cache holds a current summary.
    """

    source_id: str
    item_id: str | None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)] = 0.0
    force: bool = False

    def __post_init__(self) -> None:
        _check_id("source_id", self.source_id)
        if self.item_id is not None and len(self.item_id) > MAX_ID_CHARS:
            raise InvalidRequest(f"item_id must be at most {MAX_ID_CHARS} characters")
        if not math.isfinite(self.priority):
            raise InvalidRequest("priority must be a finite number")


class EnrichRequest(Base, frozen=True):
    """An enrichment run: evidence items plus the run's budget, cadence and pruning.

    Attributes:
        run_id: The caller's id for the run, echoed in the report.
        enrichment_type: What kind of enrichment (part of the cache key).
        adapter_version: The version of the caller's adapter (part of the cache key);
            entries of another version are stale.
        items: The evidence, in the caller's order (the report keeps it).
        budget_usd: The most this run may spend, or ``None`` for no cap.
        cadence_per_day: How many runs a day, for the monthly projection.
        prune: Drop cached entries of this type and these sources whose items are
            not in this request.
    """

    run_id: str
    enrichment_type: str
    adapter_version: str
    items: list[EnrichItem] = msgspec.field(default_factory=list)
    budget_usd: Annotated[float, msgspec.Meta(ge=0, le=_FLOAT_MAX)] | None = None
    cadence_per_day: Annotated[float, msgspec.Meta(ge=0, le=MAX_CADENCE_PER_DAY)] | None = None
    prune: bool = False

    def __post_init__(self) -> None:
        _check_id("run_id", self.run_id)
        _check_id("enrichment_type", self.enrichment_type)
        _check_id("adapter_version", self.adapter_version)
        _check_amount("budget_usd", self.budget_usd)
        _check_amount("cadence_per_day", self.cadence_per_day, MAX_CADENCE_PER_DAY)


def decode_enrich_request(data: Any) -> EnrichRequest:
    """Build a request from decoded JSON or MessagePack (a dict), or from JSON bytes.

    Args:
        data: The ``request`` field of an ``enrich`` op, or its JSON text.

    Returns:
        The validated request.

    Raises:
        InvalidRequest: A missing, unknown or mistyped field, or a value out of range.
    """
    if isinstance(data, bytes | str):
        return decode_as(data, EnrichRequest, "jsonl", "enrich request")
    return convert_as(data, EnrichRequest, "enrich request")


class EnrichCounts(Base, frozen=True):
    """Every count of one run.

    Attributes:
        eligible: Items with a stable id.
        ineligible: Items without one (never cached).
        hits: Eligible items answered from the cache, no provider call.
        misses: Eligible items the cache could not answer (new, changed, stale,
            forced, unreadable).
        written: Cache entries this run wrote.
        skipped: Misses not sent to a provider (budget or policy).
        stale: Cached entries of another adapter version met by this run's items.
        pruned: Cached entries removed by pruning.
        retained: Cached entries pruning looked at and kept.
        malformed: Unreadable cache entries met (treated as misses).
    """

    eligible: int = 0
    ineligible: int = 0
    hits: int = 0
    misses: int = 0
    written: int = 0
    skipped: int = 0
    stale: int = 0
    pruned: int = 0
    retained: int = 0
    malformed: int = 0


class ItemError(Base, frozen=True, gc=False):
    """Why an item failed: a wire error code and its safe message."""

    code: str
    message: str


class ItemReport(Base, frozen=True, gc=False):
    """How one item was answered; ``summary`` is the safe summary, if any.

    ``error`` says why a ``failed`` item failed. Untracked by the garbage collector
    (strings only; a report may hold 100,000 of them).
    """

    source_id: str
    item_id: str | None
    state: ItemState
    summary: str | None = None
    error: ItemError | None = None


class SourceSpend(Base, frozen=True):
    """Money spent on one source this run; ``calls`` counts provider calls (batches)."""

    source_id: str
    state: SpendState
    usd: float
    calls: int


class RunSpend(Base, frozen=True):
    """Money spent by the whole run, whether the budget stopped calls, what hits saved."""

    state: SpendState
    usd: float
    capped: bool
    saved_usd: float


class Projection(Base, frozen=True):
    """The run's spend per month at the request's cadence."""

    state: Literal["projected", "cadence-unavailable"]
    monthly_usd: float | None


class SpendReport(Base, frozen=True):
    """Spend per source, per run, and projected per month."""

    sources: list[SourceSpend]
    run: RunSpend
    projection: Projection


class CacheReport(Base, frozen=True):
    """The cache's health during the run: ``degraded`` when it could not be used."""

    state: Literal["ok", "degraded"]


class EnrichReport(Base, frozen=True):
    """The answer to an enrichment run: counts, items in request order, spend, cache."""

    run_id: str
    counts: EnrichCounts
    items: list[ItemReport]
    spend: SpendReport
    cache: CacheReport
