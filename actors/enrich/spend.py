"""Spend accounting and budget planning for enrichment runs (pure logic, no IO).

Money is counted in integer nano-dollars so that sums and budget comparisons are
exact: ``0.01 * 3`` must fit a budget of ``0.03``.

Labels (``docs/enrichment.md``): a charge is ``exact`` when the provider reported
the item's actual cost, ``estimated`` when it came from the configured per-item
cost, ``free`` for a source configured at zero cost, and ``unavailable`` when
neither is known. Combining labels (per source, then per run): any
``unavailable`` makes the total ``unavailable``; else any ``estimated`` makes it
``estimated`` (exact mixed with estimated is an estimate); else ``exact`` (exact
with free stays exact); else ``free``. A source this run did not pay for (only
hits, or only failures that reported nothing) reports ``free`` when configured at
zero cost and ``exact`` otherwise: nothing was spent, and that is known exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from contracts import Projection, RunSpend, SourceSpend, SpendReport, SpendState

__all__ = [
    "MAX_ITEM_USD",
    "NANOS",
    "Budget",
    "SourceTally",
    "combine",
    "from_nanos",
    "spend_report",
    "to_nanos",
]

NANOS = 1_000_000_000


#: The largest cost one item may be reported to have. A provider's report above it
#: is not believed (like a negative or NaN one): the item is charged its estimate.
#: Bounding each charge keeps every sum and projection a finite float.
MAX_ITEM_USD = 1e12


def to_nanos(usd: float) -> int:
    """USD as integer nano-dollars, for any finite amount (a huge budget included).

    The float product is exact enough and fast; past a double's range (a budget of
    1e300 dollars) the amount is scaled exactly as a fraction instead, so a client's
    number never overflows (Python integers have no bound).

    Raises:
        ValueError: ``usd`` is NaN or infinite (the contracts refuse those first).
    """
    scaled = usd * NANOS
    if math.isfinite(scaled):
        return round(scaled)
    if not math.isfinite(usd):
        raise ValueError("an amount must be finite")
    return round(Fraction(usd) * NANOS)


def from_nanos(nanos: int) -> float:
    """Integer nano-dollars as USD."""
    return round(nanos / NANOS, 9)


def combine(states: Iterable[SpendState]) -> SpendState:
    """The label of a total made of figures with these labels (see the module docstring)."""
    found = set(states)
    for state in ("unavailable", "estimated", "exact", "free"):
        if state in found:
            return state
    return "exact"


class Budget:
    """A run's budget: what is reserved for calls in flight and what was charged.

    ``None`` means no cap. Reservations use the estimated per-item cost; settling a
    call replaces its reservation with what was actually charged, so budget freed
    by cheaper actual usage or by failures can pay for items skipped earlier.
    """

    __slots__ = ("capped", "limit", "reserved", "spent")

    def __init__(self, limit_usd: float | None) -> None:
        self.limit = None if limit_usd is None else to_nanos(limit_usd)
        self.reserved = 0
        self.spent = 0
        # Whether the cap (or an unknown cost under a cap) stopped some call.
        self.capped = False

    def remaining(self) -> int | None:
        """Nano-dollars still free to reserve, or ``None`` without a cap."""
        if self.limit is None:
            return None
        return self.limit - self.reserved - self.spent

    def settle(self, reserved: int, charged: int) -> None:
        """A call ended: release its reservation and count its charge."""
        self.reserved -= reserved
        self.spent += charged


class SourceTally:
    """What one source cost this run: calls made, nano-dollars charged, labels met."""

    __slots__ = ("calls", "cost", "labels", "nanos", "saved")

    def __init__(self, cost: int | None) -> None:
        self.cost = cost  # configured per-item cost in nano-dollars, None if unknown
        self.calls = 0
        self.nanos = 0
        self.saved = 0
        self.labels: set[SpendState] = set()

    def charge(self, usd: float | None, failed: bool) -> int:
        """Account one answered item; return the nano-dollars charged.

        A reported cost is charged as exact. Otherwise a failed item is charged
        nothing, and a successful one its configured cost (estimated), zero for a
        free source, or nothing known (unavailable).
        """
        if usd is not None and math.isfinite(usd) and 0 <= usd <= MAX_ITEM_USD:
            nanos = to_nanos(usd)
            self.labels.add("exact")
        elif failed:
            return 0
        elif self.cost is None:
            self.labels.add("unavailable")
            return 0
        elif self.cost == 0:
            self.labels.add("free")
            return 0
        else:
            nanos = self.cost
            self.labels.add("estimated")
        self.nanos += nanos
        return nanos

    def state(self) -> SpendState:
        """This source's label for the run."""
        if not self.labels:
            return "free" if self.cost == 0 else "exact"
        return combine(self.labels)


def spend_report(
    tallies: dict[str, SourceTally], capped: bool, cadence_per_day: float | None
) -> SpendReport:
    """Spend per source (sorted by id), per run, and projected per month."""
    sources = [
        SourceSpend(source_id=sid, state=t.state(), usd=from_nanos(t.nanos), calls=t.calls)
        for sid, t in sorted(tallies.items())
    ]
    run_nanos = sum(t.nanos for t in tallies.values())
    run = RunSpend(
        state=combine(s.state for s in sources),
        usd=from_nanos(run_nanos),
        capped=capped,
        saved_usd=from_nanos(sum(t.saved for t in tallies.values())),
    )
    if cadence_per_day is None:
        projection = Projection(state="cadence-unavailable", monthly_usd=None)
    else:
        monthly = round(run_nanos * cadence_per_day * 30 / NANOS, 9)
        projection = Projection(state="projected", monthly_usd=monthly)
    return SpendReport(sources=sources, run=run, projection=projection)
