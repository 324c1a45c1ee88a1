"""Enrichment benchmarks: answering from a large cache, its start-up, memory and pruning."""

from __future__ import annotations

import time
import tracemalloc

from actors import Enrichment
from bus import open_bus
from contracts import EnrichItem, EnrichmentConfig, EnrichRequest, ProviderConfig

from ._harness import Context, Measurement, Scenario, Target

__all__ = ["SCENARIOS"]

_TYPE = "summary"
_VERSION = "v1"
# One batch for the whole seeding run: the cache fills in one write per shard.
_CONFIG = EnrichmentConfig(
    providers={
        "bench": ProviderConfig(
            kind="simulated", cost_usd=0.001, usage="exact", batch_size=1_000_000
        )
    }
)


def _request(count: int, *, prune: bool = False) -> EnrichRequest:
    items = [
        EnrichItem(
            "bench",
            f"item-{i:07d}",
            {"url": f"https://example.org/{i}", "etag": f"{i:x}", "size": i},
        )
        for i in range(count)
    ]
    return EnrichRequest("bench", _TYPE, _VERSION, items, prune=prune)


async def hits(ctx: Context) -> Measurement:
    entries = ctx.scale(100_000, 20_000)
    root = ctx.scratch("enrich-hits")
    request = _request(entries)
    one = EnrichRequest("probe", _TYPE, _VERSION, request.items[:1])
    figures = []
    async with open_bus() as bus:
        start = time.perf_counter()
        seeded = await Enrichment(bus, root, _CONFIG, name="bench-seed").run(request)
        seed_s = time.perf_counter() - start
        assert seeded.counts.written == entries, seeded.counts
        # Start-up: a fresh facade answering one item from the full cache.
        tracemalloc.start()
        start = time.perf_counter()
        enrichment = Enrichment(bus, root, _CONFIG, name="bench-startup")
        report = await enrichment.run(one)
        startup_s = time.perf_counter() - start
        startup_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.counts.hits == 1
        enrichment = Enrichment(bus, root, _CONFIG, name="bench-hits")
        for attempt in range(2 if ctx.quick else 3):
            start = time.perf_counter()
            report = await enrichment.run(request)
            figures.append(entries / (time.perf_counter() - start))
            assert report.counts.hits == entries, report.counts
            ctx.progress((attempt + 1) / 4)
        tracemalloc.start()
        await enrichment.run(request)
        run_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # Prune every entry but one: the request keeps a single item of the source.
        keep_one = EnrichRequest("prune", _TYPE, _VERSION, request.items[:1], prune=True)
        start = time.perf_counter()
        report = await enrichment.run(keep_one)
        prune_s = time.perf_counter() - start
        assert report.counts.pruned == entries - 1, report.counts
    ctx.progress(1.0)
    return Measurement(
        max(figures),
        "items/s",
        {
            "entries": entries,
            "run_items": entries,
            "runs_items_per_s": [round(f) for f in figures],
            "seed_s": round(seed_s, 3),
            "startup_one_item_ms": round(startup_s * 1000, 2),
            "startup_peak_kib": round(startup_peak / 1024, 1),
            "run_peak_mib": round(run_peak / 2**20, 1),
            f"prune_{entries // 1000}k_s": round(prune_s, 3),
            "prune_entries": entries - 1,
            "note": "quick mode seeds 20,000 entries" if ctx.quick else "100,000 entries",
        },
    )


SCENARIOS = [
    Scenario(
        "enrich.hits",
        hits,
        target=Target("seed.per_event", 1.0, "higher"),
        doc="items/s answered from a cache of 100,000 entries (one run asking for all of them)",
    ),
]
